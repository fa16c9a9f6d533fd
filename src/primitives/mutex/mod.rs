//! The robust reentrant mutex.
//!
//! Layered as in `lock_api`: [`raw`] is the robust lock (one futex word naming its owner);
//! this module adds reentrancy (a depth counter only the holder touches), the consistency state
//! of pthread's robust mutexes, deadlines, and the guard types.
//!
//! Consistency follows `pthread_mutex_consistent(3)`: when a holder dies, the next locker gets
//! an [`OwnerDiedGuard`]. Calling [`OwnerDiedGuard::make_consistent`] declares the protected
//! data repaired; dropping the guard without it marks the mutex *not recoverable*, and every
//! later lock fails with [`LockError::NotRecoverable`].

mod raw;

use super::{Pad, StateRef, DEFAULT_LOCK_TIMEOUT};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::sys::clock::Deadline;
use crate::sys::identity::{current_thread, Liveness};
use raw::{OwnerSnapshot, Patience, RawAcquire, RawFailure};
use shm_layout::MutexConsistency;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

pub use raw::DEATH_CHECK_INTERVAL;

/// The mutex's shared state; byte-for-byte [`shm_layout::MutexLayout`].
#[repr(C, align(64))]
pub(crate) struct MutexState {
    word: AtomicU32,
    consistency: AtomicU32,
    owner: AtomicU64,
    count: AtomicU32,
    owner_pid: AtomicU32,
    _reserved: Pad<40>,
}

#[cfg(not(loom))]
const _: () = {
    use shm_layout::MutexLayout;
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<MutexState>() == size_of::<MutexLayout>());
    assert!(align_of::<MutexState>() == align_of::<MutexLayout>());
    assert!(offset_of!(MutexState, word) == offset_of!(MutexLayout, word));
    assert!(offset_of!(MutexState, consistency) == offset_of!(MutexLayout, consistency));
    assert!(offset_of!(MutexState, owner) == offset_of!(MutexLayout, owner));
    assert!(offset_of!(MutexState, count) == offset_of!(MutexLayout, count));
    assert!(offset_of!(MutexState, owner_pid) == offset_of!(MutexLayout, owner_pid));
};

impl MutexState {
    /// A free, consistent mutex.
    pub(crate) fn new() -> Self {
        MutexState {
            word: AtomicU32::new(0),
            consistency: AtomicU32::new(MutexConsistency::Consistent as u32),
            owner: AtomicU64::new(0),
            count: AtomicU32::new(0),
            owner_pid: AtomicU32::new(0),
            _reserved: Pad::new(),
        }
    }
}

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
    /// `try_lock` found the mutex held by another live thread.
    #[error("mutex is held by {owner}")]
    WouldBlock {
        /// The current holder.
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

/// A robust, reentrant, process-shared mutex.
///
/// It protects no data itself (data in a segment is reached by offset): hold the guard while
/// touching what it protects. Cloning the handle gives another handle to the same mutex.
#[derive(Clone)]
pub struct Mutex {
    state: StateRef<MutexState>,
}

impl fmt::Debug for Mutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("offset", &self.state.offset())
            .field("owner", &self.owner())
            .finish()
    }
}

/// The result of a successful lock: either a plain guard, or a guard telling the caller that
/// the previous holder died inside its critical section.
#[must_use = "dropping an `OwnerDied` outcome without `make_consistent` makes the mutex unrecoverable"]
#[derive(Debug)]
pub enum Acquired<'a> {
    /// The mutex was free (or already held by this thread).
    Locked(MutexGuard<'a>),
    /// The previous holder died holding it; the data it protects may be half-updated.
    OwnerDied(OwnerDiedGuard<'a>),
}

impl<'a> Acquired<'a> {
    /// The guard, after calling `repair` first if the previous holder died (then the mutex is
    /// made consistent). For callers whose repair is the same wherever they lock.
    pub fn recover_with(self, repair: impl FnOnce(&OwnerDiedGuard<'a>)) -> MutexGuard<'a> {
        match self {
            Acquired::Locked(g) => g,
            Acquired::OwnerDied(g) => {
                repair(&g);
                g.make_consistent()
            }
        }
    }

    /// True if the previous holder died.
    pub fn owner_died(&self) -> bool {
        matches!(self, Acquired::OwnerDied(_))
    }
}

/// Holds the mutex; releases one level of it when dropped. Not `Send`: a mutex is owned by a
/// thread.
#[must_use = "the mutex is released as soon as the guard is dropped"]
pub struct MutexGuard<'a> {
    mutex: &'a Mutex,
    tid: u32,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for MutexGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("tid", &self.tid)
            .finish()
    }
}

/// Holds a mutex whose previous holder died. Repair the protected data, then call
/// [`make_consistent`](Self::make_consistent); dropping it instead marks the mutex not
/// recoverable (and releases it).
#[must_use = "dropping this guard without make_consistent makes the mutex unrecoverable"]
pub struct OwnerDiedGuard<'a> {
    guard: Option<MutexGuard<'a>>,
    previous: Option<OwnerInfo>,
}

impl fmt::Debug for OwnerDiedGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDiedGuard")
            .field("previous", &self.previous)
            .finish()
    }
}

impl<'a> OwnerDiedGuard<'a> {
    /// The holder that died, when this call saw it die. `None` when an earlier survivor
    /// recovered the mutex and died itself before making it consistent.
    pub fn previous_owner(&self) -> Option<OwnerInfo> {
        self.previous
    }

    /// Releases the mutex leaving it inconsistent: the next locker is told the owner died.
    pub fn release_inconsistent(mut self) {
        drop(self.guard.take());
    }

    /// Declares the protected data consistent again and returns an ordinary guard.
    pub fn make_consistent(mut self) -> MutexGuard<'a> {
        let guard = self.guard.take().expect("guard present until consumed");
        guard
            .mutex
            .state
            .consistency
            .store(MutexConsistency::Consistent as u32, Ordering::Relaxed);
        guard
    }
}

impl Drop for OwnerDiedGuard<'_> {
    fn drop(&mut self) {
        if let Some(guard) = &self.guard {
            guard
                .mutex
                .state
                .consistency
                .store(MutexConsistency::NotRecoverable as u32, Ordering::Relaxed);
        }
        // Dropping the inner guard releases the lock; a not-recoverable release wakes everyone.
    }
}

impl Drop for MutexGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.release(self.tid);
    }
}

impl Mutex {
    /// A mutex on the heap: the same algorithm, shared between the threads of this process.
    pub fn new_local() -> Mutex {
        Mutex {
            state: StateRef::heap(MutexState::new()),
        }
    }

    pub(crate) fn from_state(state: StateRef<MutexState>) -> Mutex {
        Mutex { state }
    }

    /// Offset of the mutex in its segment (`None` for a local mutex).
    pub fn offset(&self) -> Option<u64> {
        self.state.offset()
    }

    /// Locks, waiting at most [`DEFAULT_LOCK_TIMEOUT`] (60 s).
    #[inline]
    pub fn lock(&self) -> Result<Acquired<'_>, LockError> {
        self.lock_timeout(DEFAULT_LOCK_TIMEOUT)
    }

    /// Locks, waiting at most `timeout`.
    #[inline]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Acquired<'_>, LockError> {
        self.acquire(Patience::Until(Deadline::after(timeout)), timeout)
    }

    /// Locks, waiting as long as it takes. A dead holder is still detected and recovered.
    pub fn lock_forever(&self) -> Result<Acquired<'_>, LockError> {
        self.acquire(Patience::Until(Deadline::NEVER), Duration::MAX)
    }

    /// Locks only if no live thread holds the mutex; never sleeps.
    pub fn try_lock(&self) -> Result<Acquired<'_>, LockError> {
        self.acquire(Patience::Try, Duration::ZERO)
    }

    /// The current holder, if any.
    pub fn owner(&self) -> Option<OwnerInfo> {
        let w = self.state.raw_word();
        (w & shm_layout::MUTEX_TID_MASK != 0).then(|| self.state.snapshot(w).into())
    }

    #[inline]
    fn acquire(&self, patience: Patience, timeout: Duration) -> Result<Acquired<'_>, LockError> {
        let me = current_thread();
        let state = &*self.state;
        let guard = MutexGuard {
            mutex: self,
            tid: me.tid,
            _not_send: PhantomData,
        };
        let previous = match state.raw_lock(&me, patience) {
            Ok(RawAcquire::Fresh) => None,
            Ok(RawAcquire::Reentered) => {
                let depth = state.count.load(Ordering::Relaxed);
                if depth == u32::MAX {
                    std::mem::forget(guard);
                    return Err(LockError::TooDeep);
                }
                state.count.store(depth + 1, Ordering::Relaxed);
                return Ok(Acquired::Locked(guard));
            }
            Ok(RawAcquire::Recovered(previous)) => {
                state
                    .consistency
                    .store(MutexConsistency::Inconsistent as u32, Ordering::Relaxed);
                return Ok(Acquired::OwnerDied(OwnerDiedGuard {
                    guard: Some(guard),
                    previous: Some(previous.into()),
                }));
            }
            Err(RawFailure::Held(owner)) => {
                std::mem::forget(guard);
                let owner = owner.into();
                return Err(match patience {
                    Patience::Try => LockError::WouldBlock { owner },
                    Patience::Until(_) => LockError::Timeout {
                        waited: timeout,
                        owner,
                    },
                });
            }
        };
        match MutexConsistency::from_raw(state.consistency.load(Ordering::Relaxed)) {
            Some(MutexConsistency::Consistent) => Ok(Acquired::Locked(guard)),
            Some(MutexConsistency::Inconsistent) => Ok(Acquired::OwnerDied(OwnerDiedGuard {
                guard: Some(guard),
                previous,
            })),
            Some(MutexConsistency::NotRecoverable) => {
                drop(guard);
                Err(LockError::NotRecoverable)
            }
            None => {
                drop(guard);
                Err(LockError::Corrupt {
                    what: "consistency word holds an unknown value",
                })
            }
        }
    }

    #[inline]
    fn release(&self, tid: u32) {
        let state = &*self.state;
        let depth = state.count.load(Ordering::Relaxed);
        if depth > 0 {
            state.count.store(depth - 1, Ordering::Relaxed);
            return;
        }
        let wake_all =
            state.consistency.load(Ordering::Relaxed) == MutexConsistency::NotRecoverable as u32;
        // A `false` here means the lock was taken from us (corrupt segment); Drop cannot
        // report it, and there is nothing left to release.
        let _ = state.raw_unlock(tid, wake_all);
    }
}

/// Locks every mutex in `mutexes` in one global order (by address), so that two callers
/// locking overlapping sets in different orders cannot deadlock. Returns the outcomes in the
/// caller's order. On failure the locks taken so far are released, and an owner-died outcome
/// among them is left for the next locker to see (not marked unrecoverable).
pub fn lock_all<'a>(
    mutexes: &[&'a Mutex],
    timeout: Duration,
) -> Result<Vec<Acquired<'a>>, LockError> {
    let deadline = Deadline::after(timeout);
    let mut order: Vec<usize> = (0..mutexes.len()).collect();
    order.sort_by_key(|&i| &*mutexes[i].state as *const MutexState as usize);
    let mut taken: Vec<Option<Acquired<'a>>> = (0..mutexes.len()).map(|_| None).collect();
    for i in order {
        match mutexes[i].acquire(Patience::Until(deadline), timeout) {
            Ok(a) => taken[i] = Some(a),
            Err(e) => {
                for a in taken.into_iter().flatten() {
                    if let Acquired::OwnerDied(g) = a {
                        g.release_inconsistent();
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(taken
        .into_iter()
        .map(|a| a.expect("every index was locked"))
        .collect())
}

#[cfg(test)]
mod tests;
