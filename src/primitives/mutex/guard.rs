//! The guards a lock hands out: an ordinary hold, an owner-died hold that must be repaired
//! or given up, and locking several mutexes in one global order.

use super::raw::Patience;
use crate::sync::{NoInterrupt, Ordering};
use crate::sys::clock::Deadline;
use crate::sys::identity::{current_thread, Liveness};
use shm_layout::{MutexConsistency, MUTEX_DEPTH_MASK};
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::time::Duration;

use super::*;

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
    pub(super) mutex: &'a Mutex,
    pub(super) tid: u32,
    pub(super) _not_send: PhantomData<*const ()>,
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
    pub(super) guard: ManuallyDrop<MutexGuard<'a>>,
}

impl fmt::Debug for OwnerDiedGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDiedGuard")
            .field("previous", &self.previous_owner())
            .finish()
    }
}

impl<'a> OwnerDiedGuard<'a> {
    /// The holder found dead by the most recent recovery of this mutex (recorded in the
    /// segment, so it is known even when the survivor that found it died in turn). `None`
    /// only if the bytes were tampered with.
    pub fn previous_owner(&self) -> Option<OwnerInfo> {
        let died = self.guard.mutex.state.died.load(Ordering::Relaxed);
        (died != 0).then_some(OwnerInfo {
            pid: (died >> 32) as u32,
            tid: died as u32,
            liveness: Liveness::Dead,
        })
    }

    /// The guard inside (the mutex is held; it is still inconsistent).
    pub fn guard(&self) -> &MutexGuard<'a> {
        &self.guard
    }

    /// Releases the mutex leaving it inconsistent: the next locker is told the owner died.
    pub fn release_inconsistent(self) {
        drop(self.into_guard());
    }

    /// Declares the protected data consistent again and returns an ordinary guard.
    pub fn make_consistent(self) -> MutexGuard<'a> {
        let guard = self.into_guard();
        guard
            .mutex
            .state
            .set_consistency(MutexConsistency::Consistent);
        guard
    }

    /// The inner guard, without running this guard's `Drop` (which would mark the mutex not
    /// recoverable).
    pub(super) fn into_guard(self) -> MutexGuard<'a> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the guard is moved out once.
        unsafe { ManuallyDrop::take(&mut this.guard) }
    }
}

impl Drop for OwnerDiedGuard<'_> {
    fn drop(&mut self) {
        self.guard
            .mutex
            .state
            .set_consistency(MutexConsistency::NotRecoverable);
        // SAFETY: this is the guard's only drop: `into_guard` forgets `self` before it runs.
        // Dropping the inner guard releases the lock; a not-recoverable release wakes everyone.
        unsafe { ManuallyDrop::drop(&mut self.guard) };
    }
}

impl<'a> MutexGuard<'a> {
    /// The mutex this guard holds.
    pub fn mutex(&self) -> &'a Mutex {
        self.mutex
    }

    /// Marks the protected data as possibly inconsistent, as if this holder had died: the next
    /// locker gets [`Acquired::OwnerDied`] naming this thread. Used when a critical section
    /// unwinds from a panic half-way through an update.
    pub fn mark_inconsistent(&self) {
        let me = current_thread();
        let state = &*self.mutex.state;
        state.died.store(
            u64::from(me.pid) << 32 | u64::from(me.tid),
            Ordering::Relaxed,
        );
        state.set_consistency(MutexConsistency::Inconsistent);
    }

    /// True when this is the thread's only guard on the mutex (it was not locked
    /// reentrantly on top). Typed views hand out `&mut` only then, so two guards of one thread
    /// can never alias the protected value.
    pub fn is_sole(&self) -> bool {
        self.mutex.state.meta.load(Ordering::Relaxed) & MUTEX_DEPTH_MASK == 0
    }
}

impl Drop for MutexGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.mutex.release_level(self.tid);
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
        match mutexes[i].lock_slow(Patience::Until(deadline), &NoInterrupt) {
            Ok(a) => taken[i] = Some(a),
            Err(e) => {
                let e = match e {
                    LockError::Timeout { owner, .. } => LockError::Timeout {
                        waited: timeout,
                        owner,
                    },
                    other => other,
                };
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
