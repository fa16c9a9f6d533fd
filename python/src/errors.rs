//! Turning shmkit's typed errors into the Python exceptions of `shmkit.errors`.
//!
//! The exception classes are written in Python (`pysrc/shmkit/errors.py`), because each must
//! also subclass a `threading` or built-in class that only exists at run time; this module
//! looks them up once per call site and instantiates them.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use shmkit::{BarrierError, LockError, OwnerInfo, SegmentError, UnlockError};

/// An instance of `shmkit.errors.<class>` built from `args`.
pub(crate) fn raise<'py, A>(py: Python<'py>, class: &str, args: A) -> PyErr
where
    A: pyo3::call::PyCallArgs<'py>,
{
    let made = py
        .import("shmkit.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|cls| cls.call1(args));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(e) => e,
    }
}

fn owner_ids(owner: &Option<OwnerInfo>) -> (Option<u32>, Option<u32>) {
    (owner.map(|o| o.pid), owner.map(|o| o.tid))
}

/// A lock error other than a timeout (those are `False` or `LockTimeout` by call site).
pub(crate) fn lock_error(py: Python<'_>, e: LockError) -> PyErr {
    let message = e.to_string();
    match e {
        LockError::Timeout { owner, .. } | LockError::WouldBlock { owner } => {
            raise(py, "LockTimeout", (message, owner.pid, owner.tid))
        }
        LockError::NotRecoverable => raise(py, "NotRecoverableError", (message,)),
        LockError::Corrupt { .. } => raise(py, "CorruptError", (message,)),
        LockError::TooDeep | LockError::Interrupted { .. } => PyRuntimeError::new_err(message),
    }
}

/// A release or `make_consistent` by a thread that does not hold the mutex.
pub(crate) fn unlock_error(py: Python<'_>, e: UnlockError) -> PyErr {
    // `threading.RLock.release` says exactly this; we add who holds it.
    let UnlockError::NotOwner { owner } = &e;
    let message = match owner {
        Some(o) => format!("cannot release un-acquired lock (it is held by {o})"),
        None => "cannot release un-acquired lock".to_owned(),
    };
    raise(py, "NotOwnerError", (message,))
}

/// The owner-died outcome: the caller holds the lock.
pub(crate) fn owner_died(py: Python<'_>, previous: Option<OwnerInfo>) -> PyErr {
    let (pid, tid) = owner_ids(&previous);
    let who = previous.map_or_else(|| "an unknown holder".to_owned(), |p| p.to_string());
    let message = format!(
        "the previous holder ({who}) died holding the mutex; this thread now holds it: repair \
         what it protects, call make_consistent(), then release it"
    );
    raise(py, "OwnerDiedError", (message, pid, tid))
}

/// A barrier error (an action's own exception is re-raised by the caller instead).
pub(crate) fn barrier_error(py: Python<'_>, e: BarrierError) -> PyErr {
    let message = e.to_string();
    match e {
        BarrierError::Timeout { .. } => raise(py, "BarrierTimeout", (message,)),
        BarrierError::PartyDied { tid } => raise(py, "PartyDiedError", (message, tid)),
        BarrierError::Corrupt { .. } => raise(py, "CorruptError", (message,)),
        BarrierError::Broken | BarrierError::Interrupted | BarrierError::ActionFailed { .. } => {
            raise(py, "BrokenBarrierError", (message,))
        }
    }
}

/// A segment error, as `SegmentError` (an `OSError`) or `ObjectNotFound` (a `KeyError`).
pub(crate) fn segment_error(py: Python<'_>, e: SegmentError) -> PyErr {
    let message = shmkit::error_chain(&e);
    match e {
        SegmentError::ObjectNotFound { .. } => raise(py, "ObjectNotFound", (message,)),
        _ => raise(py, "SegmentError", (message,)),
    }
}
