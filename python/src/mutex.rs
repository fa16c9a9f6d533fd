//! `shmkit.Mutex`: a robust reentrant mutex with `threading.RLock`'s whole interface.
//!
//! Guard-free underneath (`Mutex::acquire` / `release`): Python holds a lock across calls,
//! which a Rust guard cannot follow. The uncontended path runs with the GIL held (one
//! compare-and-swap); only a wait lets go of it.

use crate::errors::{lock_error, owner_died, raise, unlock_error};
use crate::wait::{detached, lock_timeout, seconds, DEFAULT_LOCK_TIMEOUT};
use crate::Origin;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use shmkit::{Held, LockError, Mutex, SavedHold, Timeout};

/// What a mutex pickles to: segment, name and default timeout.
type Pickled = (String, String, Option<f64>);

/// A robust, reentrant mutex (as `threading.RLock`), shared by every process that opens its
/// segment, or local to this process when made with `Mutex()`.
#[pyclass(module = "shmkit._shmkit", name = "Mutex", frozen, weakref)]
pub struct PyMutex {
    pub(crate) inner: Mutex,
    timeout: Timeout,
    origin: Origin,
}

impl PyMutex {
    pub(crate) fn wrap(inner: Mutex, timeout: Timeout, origin: Origin) -> PyMutex {
        PyMutex {
            inner,
            timeout,
            origin,
        }
    }

    /// Acquires with `timeout`; `Ok(false)` on timeout, owner death as `OwnerDiedError`.
    fn acquire_for(&self, py: Python<'_>, timeout: Timeout) -> PyResult<bool> {
        let held = match self.inner.try_acquire_uncontended() {
            Some(done) => done,
            None if timeout.is_zero() => self.inner.acquire(Timeout::ZERO, &shmkit::NoInterrupt),
            None => {
                let inner = &self.inner;
                let (held, raised) = detached(py, |check| inner.acquire(timeout, check));
                if let Some(e) = raised {
                    return Err(e);
                }
                held
            }
        };
        match held {
            Ok(Held::Once | Held::Reentered { .. }) => Ok(true),
            Ok(Held::OwnerDied { previous }) => Err(owner_died(py, previous)),
            Err(LockError::Timeout { .. } | LockError::WouldBlock { .. }) => Ok(false),
            Err(e) => Err(lock_error(py, e)),
        }
    }
}

#[pymethods]
impl PyMutex {
    /// A mutex local to this process (for threads). `timeout` is the default acquire timeout
    /// in seconds (60 unless given; -1 waits forever).
    #[new]
    #[pyo3(signature = (timeout = None))]
    fn new(timeout: Option<f64>) -> PyResult<PyMutex> {
        Ok(PyMutex::wrap(
            Mutex::new_local(),
            lock_timeout(timeout, DEFAULT_LOCK_TIMEOUT)?,
            Origin::Local,
        ))
    }

    /// Acquires the mutex, as `threading.RLock.acquire`: True once held, False if `timeout`
    /// passed (or, with `blocking=False`, if another thread holds it). `timeout=None` is this
    /// handle's default (60 s), `-1` waits forever. A previous holder's death raises
    /// `OwnerDiedError` with the mutex held by the caller.
    #[pyo3(signature = (blocking = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        // CPython's order: converting the number (NaN, infinity) fails first, then a timeout
        // with `blocking=False`, then a negative timeout other than -1.
        if let Some(t) = timeout {
            if t.is_nan() || t.is_infinite() {
                lock_timeout(Some(t), self.timeout)?;
            }
        }
        if !blocking {
            if timeout.is_some_and(|t| t != -1.0) {
                return Err(PyValueError::new_err(
                    "can't specify a timeout for a non-blocking call",
                ));
            }
            return self.acquire_for(py, Timeout::ZERO);
        }
        let t = lock_timeout(timeout, self.timeout)?;
        self.acquire_for(py, t)
    }

    /// Releases one level; `NotOwnerError` (a `RuntimeError`) if this thread does not hold it.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.release().map_err(|e| unlock_error(py, e))
    }

    fn __enter__<'a>(slf: PyRef<'a, Self>, py: Python<'a>) -> PyResult<PyRef<'a, Self>> {
        if slf.acquire_for(py, slf.timeout)? {
            return Ok(slf);
        }
        let owner = slf.inner.owner();
        let message = format!(
            "mutex not acquired within {}; held by {}",
            seconds(slf.timeout).map_or("forever".to_owned(), |s| format!("{s} s")),
            owner.map_or("nobody now".to_owned(), |o| o.to_string())
        );
        Err(raise(
            py,
            "LockTimeout",
            (
                message,
                owner.map_or(0, |o| o.pid),
                owner.map_or(0, |o| o.tid),
            ),
        ))
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    /// Declares the protected data repaired after `OwnerDiedError` (the caller must hold it).
    fn make_consistent(&self, py: Python<'_>) -> PyResult<()> {
        self.inner
            .make_consistent()
            .map_err(|e| unlock_error(py, e))
    }

    /// Releases the last level leaving the mutex inconsistent: the next acquirer gets
    /// `OwnerDiedError` and repairs.
    fn release_inconsistent(&self, py: Python<'_>) -> PyResult<()> {
        self.inner
            .release_inconsistent()
            .map_err(|e| unlock_error(py, e))
    }

    /// Is the mutex held by any thread?
    fn locked(&self) -> bool {
        self.inner.owner().is_some()
    }

    /// `(pid, tid)` of the holder, or None.
    #[getter]
    fn owner(&self) -> Option<(u32, u32)> {
        self.inner.owner().map(|o| (o.pid, o.tid))
    }

    /// The default acquire timeout in seconds (None: forever).
    #[getter]
    fn timeout(&self) -> Option<f64> {
        seconds(self.timeout)
    }

    fn _is_owned(&self) -> bool {
        self.inner.held_by_current_thread()
    }

    fn _recursion_count(&self) -> u32 {
        self.inner.recursion_count()
    }

    /// Releases every level; returns `(count, owner tid)` for `_acquire_restore`.
    fn _release_save(&self, py: Python<'_>) -> PyResult<(u32, u32)> {
        let tid = self.inner.owner().map_or(0, |o| o.tid);
        let saved = self.inner.release_save().map_err(|e| unlock_error(py, e))?;
        Ok((saved.count(), tid))
    }

    /// Acquires and restores the levels `_release_save` returned (waits forever, as
    /// `threading.RLock._acquire_restore`).
    fn _acquire_restore(&self, py: Python<'_>, state: (u32, u32)) -> PyResult<()> {
        let saved = SavedHold::new(state.0)
            .ok_or_else(|| PyValueError::new_err("a saved hold has a count of at least 1"))?;
        let inner = &self.inner;
        let (held, raised) = detached(py, |check| {
            inner.acquire_restore(saved, Timeout::Forever, check)
        });
        if let Some(e) = raised {
            return Err(e);
        }
        match held {
            Ok(Held::OwnerDied { previous }) => Err(owner_died(py, previous)),
            Ok(_) => Ok(()),
            Err(e) => Err(lock_error(py, e)),
        }
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Pickled)> {
        let (segment, name) = self.origin.named("Mutex")?;
        let rebuild = py.import("shmkit")?.getattr("_rebuild_mutex")?.unbind();
        Ok((rebuild, (segment, name, seconds(self.timeout))))
    }

    /// `threading.RLock`'s shape — `<locked shmkit.Mutex object owner=… count=… at 0x…>` —
    /// plus the name and segment. `owner` is `threading.get_ident()` when this thread holds
    /// it (as `RLock` shows), else the holder's kernel thread id and pid.
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let inner = &this.inner;
        let (state, owner) = match inner.owner() {
            None => ("unlocked", "owner=0".to_owned()),
            Some(_) if inner.held_by_current_thread() => {
                let ident: u64 = slf
                    .py()
                    .import("threading")?
                    .getattr("get_ident")?
                    .call0()?
                    .extract()?;
                ("locked", format!("owner={ident}"))
            }
            Some(o) => ("locked", format!("owner={} pid={}", o.tid, o.pid)),
        };
        Ok(format!(
            "<{state} shmkit.Mutex object {owner} count={}{} at {:#x}>",
            inner.holder_count(),
            this.origin.repr_fields(),
            slf.as_ptr() as usize
        ))
    }
}

/// `RuntimeError` for an origin that cannot be pickled.
pub(crate) fn not_shareable(kind: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "a process-local {kind} cannot be pickled; open it by name in a segment to share it"
    ))
}
