//! The guards a lock hands out, generic over the data the lock protects (as lock_api's): an
//! ordinary hold, an owner-died hold that must be repaired or given up, and locking several
//! mutexes in one global order.

use super::raw::Patience;
use crate::sync::{NoInterrupt, Ordering};
use crate::sys::clock::Deadline;
use crate::sys::identity::{current_thread, Liveness};
use shm_layout::{MutexConsistency, MUTEX_DEPTH_MASK};
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::Duration;

use super::*;

/// The result of a successful lock: either a plain guard, or a guard telling the caller that
/// the previous holder died inside its critical section. `T` is the data the lock protects:
/// `()` for a bare [`Mutex`], the value for a [`Shared`](crate::Shared).
#[must_use = "dropping an `OwnerDied` outcome without `make_consistent` makes the mutex unrecoverable"]
#[derive(Debug)]
pub enum Acquired<'a, T = ()> {
    /// The mutex was free (or already held by this thread).
    Locked(MutexGuard<'a, T>),
    /// The previous holder died holding it; the data it protects may be half-updated.
    OwnerDied(OwnerDiedGuard<'a, T>),
}

impl<'a, T> Acquired<'a, T> {
    /// The guard, after calling `repair` first if the previous holder died (then the mutex is
    /// made consistent). For callers whose repair is the same wherever they lock; `repair`
    /// reaches the protected data through the guard (`**guard = fixed`).
    pub fn recover_with(
        self,
        repair: impl FnOnce(&mut OwnerDiedGuard<'a, T>),
    ) -> MutexGuard<'a, T> {
        match self {
            Acquired::Locked(g) => g,
            Acquired::OwnerDied(mut g) => {
                repair(&mut g);
                g.make_consistent()
            }
        }
    }

    /// True if the previous holder died.
    pub fn owner_died(&self) -> bool {
        matches!(self, Acquired::OwnerDied(_))
    }
}

/// Holds the mutex and derefs to the data it protects (`()` for a bare mutex); releases one
/// level of the mutex when dropped. Not `Send`: a mutex is owned by a thread.
///
/// A guard over data (from [`Shared::lock`](crate::Shared::lock)) is always the thread's only
/// hold on the mutex, so its `&mut T` can never alias; if the thread panics while holding it
/// (and `T` is not zero-sized), the data is marked inconsistent and the next locker gets `OwnerDied`, as if this holder had
/// died half-way through an update.
#[must_use = "the mutex is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T = ()> {
    pub(super) mutex: &'a Mutex,
    pub(super) tid: u32,
    /// The protected data: a dangling `()` for a bare mutex, the value for a shared one.
    data: NonNull<T>,
    pub(super) _not_send: PhantomData<(*const (), &'a mut T)>,
}

impl<T> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("tid", &self.tid)
            .finish()
    }
}

impl<'a> MutexGuard<'a> {
    /// A guard over nothing, for a lock this thread just took (at `tid`).
    #[inline(always)]
    pub(super) fn bare(mutex: &'a Mutex, tid: u32) -> MutexGuard<'a> {
        MutexGuard {
            mutex,
            tid,
            data: NonNull::dangling(),
            _not_send: PhantomData,
        }
    }

    /// This guard over `data`, which the mutex protects.
    ///
    /// # Safety
    ///
    /// `data` must be valid for reads and writes for `'a`, reached by no one but a holder of
    /// this mutex, and this guard must be the thread's only hold on the mutex (so the `&mut T`
    /// it hands out is unique in this process; other processes follow the same protocol).
    pub(crate) unsafe fn over<T>(self, data: NonNull<T>) -> MutexGuard<'a, T> {
        let this = ManuallyDrop::new(self);
        MutexGuard {
            mutex: this.mutex,
            tid: this.tid,
            data,
            _not_send: PhantomData,
        }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a bare guard's `()` is a dangling pointer to a zero-sized type, valid to
        // read; a guard over data was built by `over`, whose caller vouched that the data is
        // valid for the guard's life and reached only by this sole holder.
        unsafe { self.data.as_ref() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes this borrow unique.
        unsafe { self.data.as_mut() }
    }
}

/// Holds a mutex whose previous holder died, and derefs to the (possibly half-updated) data
/// for repair. Repair it, then call [`make_consistent`](Self::make_consistent); dropping it
/// instead marks the mutex not recoverable (and releases it).
#[must_use = "dropping this guard without make_consistent makes the mutex unrecoverable"]
pub struct OwnerDiedGuard<'a, T = ()> {
    pub(super) guard: ManuallyDrop<MutexGuard<'a, T>>,
}

impl<T> fmt::Debug for OwnerDiedGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDiedGuard")
            .field("previous", &self.previous_owner())
            .finish()
    }
}

impl<'a> OwnerDiedGuard<'a> {
    /// This guard over `data` (see [`MutexGuard::over`]).
    ///
    /// # Safety
    ///
    /// As for [`MutexGuard::over`].
    pub(crate) unsafe fn over<T>(self, data: NonNull<T>) -> OwnerDiedGuard<'a, T> {
        let guard = self.into_guard();
        OwnerDiedGuard {
            // SAFETY: the caller's promise, passed on.
            guard: ManuallyDrop::new(unsafe { guard.over(data) }),
        }
    }
}

impl<'a, T> OwnerDiedGuard<'a, T> {
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
    pub fn guard(&self) -> &MutexGuard<'a, T> {
        &self.guard
    }

    /// Releases the mutex leaving it inconsistent: the next locker is told the owner died.
    pub fn release_inconsistent(self) {
        // The inconsistency is already recorded: a panic now must not re-record it.
        self.into_guard().release_unmarked();
    }

    /// Declares the protected data consistent again and returns an ordinary guard.
    pub fn make_consistent(self) -> MutexGuard<'a, T> {
        let guard = self.into_guard();
        guard
            .mutex
            .state
            .set_consistency(MutexConsistency::Consistent);
        guard
    }

    /// The inner guard, without running this guard's `Drop` (which would mark the mutex not
    /// recoverable).
    pub(super) fn into_guard(self) -> MutexGuard<'a, T> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the guard is moved out once.
        unsafe { ManuallyDrop::take(&mut this.guard) }
    }
}

impl<T> Deref for OwnerDiedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for OwnerDiedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for OwnerDiedGuard<'_, T> {
    fn drop(&mut self) {
        self.guard
            .mutex
            .state
            .set_consistency(MutexConsistency::NotRecoverable);
        // SAFETY: this is the guard's only drop: `into_guard` forgets `self` before it runs,
        // so the inner guard is moved out once. Released without the panic marking (which
        // would turn not-recoverable back into inconsistent); a not-recoverable release
        // wakes everyone.
        unsafe { ManuallyDrop::take(&mut self.guard) }.release_unmarked();
    }
}

impl<'a, T> MutexGuard<'a, T> {
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

impl<T> MutexGuard<'_, T> {
    /// Does this guard protect data the library hands out (a shared value), which a panic
    /// while it is held leaves half-updated? Known at compile time: no field, no branch, for
    /// a bare mutex's guard.
    const GUARDS_DATA: bool = std::mem::size_of::<T>() != 0;

    /// Releases one level of the mutex without the panic marking of `drop`.
    fn release_unmarked(self) {
        let this = ManuallyDrop::new(self);
        this.mutex.release_level(this.tid);
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        if Self::GUARDS_DATA && std::thread::panicking() {
            self.mark_inconsistent();
        }
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
