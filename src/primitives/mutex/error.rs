//! Who held a mutex, and why locking or unlocking failed.

use super::raw::OwnerSnapshot;
use crate::sys::identity::Liveness;
use std::fmt;
use std::time::Duration;

/// Who holds (or held) a mutex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerInfo {
    /// Process id of the holder.
    pub pid: u32,
    /// Thread id of the holder.
    pub tid: u32,
    /// Whether that thread is still running.
    pub liveness: Liveness,
}

impl From<OwnerSnapshot> for OwnerInfo {
    fn from(s: OwnerSnapshot) -> Self {
        OwnerInfo {
            pid: s.pid,
            tid: s.tid,
            liveness: s.liveness,
        }
    }
}

impl fmt::Display for OwnerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} tid {} ({})", self.pid, self.tid, self.liveness)
    }
}

/// Why a lock attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// The deadline passed while another thread held the mutex.
    #[error("timed out after {waited:?} waiting for a mutex held by {owner}; if that process is stuck, inspect or kill it")]
    Timeout {
        /// How long this call waited.
        waited: Duration,
        /// The holder when the deadline passed.
        owner: OwnerInfo,
    },
    /// `try_lock` (or a zero timeout) found the mutex held by another live thread.
    #[error("mutex is held by {owner}")]
    WouldBlock {
        /// The current holder.
        owner: OwnerInfo,
    },
    /// The caller's interrupt check said stop while another thread held the mutex.
    #[error("interrupted while waiting for a mutex held by {owner}")]
    Interrupted {
        /// The holder when the wait was interrupted.
        owner: OwnerInfo,
    },
    /// A previous holder died and the next one released it without making it consistent.
    #[error("mutex is not recoverable: a holder died and the data it protected was never declared consistent; recreate the mutex")]
    NotRecoverable,
    /// The calling thread already holds the mutex `u32::MAX` times.
    #[error("mutex locked reentrantly too many times by the same thread")]
    TooDeep,
    /// The mutex's bytes hold a value no shmkit process writes.
    #[error("corrupt mutex: {what}")]
    Corrupt {
        /// Which field.
        what: &'static str,
    },
}

/// Why a guard-free release (or [`Mutex::make_consistent`](super::Mutex::make_consistent)(super::Mutex::make_consistent)) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnlockError {
    /// The calling thread does not hold the mutex (`threading.RLock.release` raises
    /// `RuntimeError` here). Nothing was changed.
    #[error("cannot release a mutex this thread does not hold; {}", match owner {
        Some(o) => format!("it is held by {o}"),
        None => "it is not held".to_string(),
    })]
    NotOwner {
        /// The holder at the time of the call, if any.
        owner: Option<OwnerInfo>,
    },
}
