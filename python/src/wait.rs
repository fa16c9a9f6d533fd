//! Blocking without the GIL, interruptible by Ctrl+C.
//!
//! Every wait runs detached from the interpreter (other Python threads keep running) with an
//! interrupt check that re-attaches for a moment and runs the pending signal handlers
//! (`PyErr_CheckSignals`): a `KeyboardInterrupt` raised there ends the wait (shmkit's check
//! runs at most every 50 ms and right after the signal's `EINTR`) and is re-raised by the caller.
//! Only the main thread runs signal handlers, exactly as in CPython.

use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use shmkit::{Interrupt, Timeout, WaitStrategy};
use std::cell::Cell;

/// Runs `wait` detached from the interpreter with a Ctrl+C check. Returns its result and the
/// exception a signal handler raised, if that is what stopped it.
pub(crate) fn detached<T, F>(py: Python<'_>, wait: F) -> (T, Option<PyErr>)
where
    F: for<'a> FnOnce(&'a dyn Interrupt) -> T + Send,
    T: Send,
{
    py.detach(|| {
        let raised: Cell<Option<PyErr>> = Cell::new(None);
        let check = || {
            Python::attach(|py| match py.check_signals() {
                Ok(()) => false,
                Err(e) => {
                    raised.set(Some(e));
                    true
                }
            })
        };
        let out = wait(&check);
        (out, raised.take())
    })
}

/// A `threading`-style timeout in seconds: `None` is the caller's default, `-1` (the
/// `acquire` convention) waits forever; NaN and other negative values are a `ValueError`,
/// infinity an `OverflowError` — with CPython's own messages.
pub(crate) fn lock_timeout(timeout: Option<f64>, default: Timeout) -> PyResult<Timeout> {
    match timeout {
        None => Ok(default),
        Some(-1.0) => Ok(Timeout::Forever),
        Some(t) if t.is_nan() => Err(PyValueError::new_err("Invalid value NaN (not a number)")),
        Some(t) if t.is_infinite() => Err(PyOverflowError::new_err(
            "timestamp out of range for platform time_t",
        )),
        Some(t) if t < 0.0 => Err(PyValueError::new_err("timeout value must be positive")),
        Some(t) if t > TIMEOUT_MAX => Err(PyOverflowError::new_err(
            "timestamp out of range for platform time_t",
        )),
        Some(t) => Timeout::from_secs_f64(t)
            .map_err(|_| PyOverflowError::new_err("timestamp out of range for platform time_t")),
    }
}

/// A `Condition.wait`-style timeout: `None` waits forever, anything not positive polls (as
/// `threading.Event.wait` does), infinity is an `OverflowError`.
pub(crate) fn wait_timeout(timeout: Option<f64>) -> PyResult<Timeout> {
    match timeout {
        None => Ok(Timeout::Forever),
        Some(t) if t.is_nan() || t <= 0.0 => Ok(Timeout::ZERO),
        Some(t) if t > TIMEOUT_MAX => Err(PyOverflowError::new_err(
            "timestamp out of range for platform time_t",
        )),
        Some(t) => Timeout::from_secs_f64(t)
            .map_err(|_| PyOverflowError::new_err("timeout value is too large")),
    }
}

/// `threading.TIMEOUT_MAX` on 64-bit Linux: CPython refuses longer timeouts with an
/// `OverflowError` rather than waiting forever.
pub(crate) const TIMEOUT_MAX: f64 = 9_223_372_036.0;

/// `timeout` as seconds for `repr`s and properties (`None` for forever).
pub(crate) fn seconds(timeout: Timeout) -> Option<f64> {
    match timeout {
        Timeout::After(d) => Some(d.as_secs_f64()),
        Timeout::Forever => None,
    }
}

/// The default mutex acquire timeout: the core's (60 s, the Python system's).
pub(crate) const DEFAULT_LOCK_TIMEOUT: Timeout = Timeout::After(shmkit::DEFAULT_LOCK_TIMEOUT);

/// A wait strategy by name: "block", "spin_then_block" or "spin" (and that name, kept).
pub(crate) fn strategy(name: &str) -> PyResult<(WaitStrategy, &'static str)> {
    match name {
        "block" => Ok((WaitStrategy::Block, "block")),
        "spin_then_block" => Ok((WaitStrategy::SpinThenBlock, "spin_then_block")),
        "spin" => Ok((WaitStrategy::Spin, "spin")),
        other => Err(PyValueError::new_err(format!(
            "wait must be \"block\", \"spin_then_block\" or \"spin\", not {other:?}"
        ))),
    }
}
