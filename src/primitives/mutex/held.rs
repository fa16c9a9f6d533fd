//! The reentrant layer without guards, for callers that cannot keep one (a language
//! binding): acquire and release by count, the uncontended fast paths a binding calls
//! directly, and saving / restoring a hold around a condition wait.

use crate::sync::{Interrupt, NoInterrupt, Ordering, Timeout};
use crate::sys::identity::current_thread;
use shm_layout::{MutexConsistency, MUTEX_CONSISTENCY_SHIFT, MUTEX_DEPTH_MASK};
use std::num::NonZeroU32;

use super::*;

/// How a guard-free [`Mutex::acquire`] got the mutex; the caller holds it and must
/// [`release`](Mutex::release) it from the same thread.
#[must_use = "the mutex is held until `release` is called"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The mutex was free: the caller holds it once.
    Once,
    /// The caller already held it; it now holds it `depth` times.
    Reentered {
        /// [`Mutex::recursion_count`] after this acquisition.
        depth: u32,
    },
    /// The previous holder died inside its critical section. The caller holds the mutex and
    /// it stays inconsistent: repair the data, then [`Mutex::make_consistent`]; releasing it
    /// before that makes it not recoverable (as `pthread_mutex_unlock` does).
    OwnerDied {
        /// The holder found dead.
        previous: Option<OwnerInfo>,
    },
}

/// A hold depth taken off a mutex by [`Mutex::release_save`], to be put back whole by
/// [`Mutex::acquire_restore`] (what `threading.Condition.wait` does with an `RLock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedHold {
    count: NonZeroU32,
}

impl SavedHold {
    /// A saved hold of `count` levels (a binding rebuilding what it handed out); `None` for 0.
    pub fn new(count: u32) -> Option<SavedHold> {
        NonZeroU32::new(count).map(|count| SavedHold { count })
    }

    /// How many levels were held.
    pub fn count(self) -> u32 {
        self.count.get()
    }
}

impl Mutex {
    /// Locks without a guard, for callers that cannot keep one (a language binding): the
    /// calling thread holds the mutex until it calls [`release`](Self::release) as many times
    /// as it acquired. Same outcomes as [`lock_interruptible`](Self::lock_interruptible).
    pub fn acquire(&self, timeout: Timeout, interrupt: &dyn Interrupt) -> Result<Held, LockError> {
        let acquired = self.lock_interruptible(timeout, interrupt)?;
        Ok(self.forget_into_held(acquired))
    }

    /// The common case of [`acquire`](Self::acquire), for a binding's hot path: one
    /// compare-and-swap taking a free, consistent mutex — held once, as `Held::Once` — with
    /// no result to build. `false`: nothing changed (it is held, or its state needs the full
    /// path); call `acquire` or [`try_acquire_uncontended`](Self::try_acquire_uncontended).
    #[inline]
    pub fn try_acquire_free(&self) -> bool {
        let me = current_thread();
        let state = &*self.state;
        if !state.raw_try_fresh(&me) {
            return false;
        }
        if state.meta.load(Ordering::Relaxed) == 0 {
            return true;
        }
        self.undo_fresh(me.tid);
        false
    }

    /// Gives back a fresh acquisition whose `meta` needs the full path (a dead owner's
    /// inconsistency, a not-recoverable mark): `meta` untouched, waiters woken as by any
    /// release, so the full path sees exactly the state this call found.
    #[cold]
    pub(super) fn undo_fresh(&self, tid: u32) {
        let _ = self.state.raw_unlock(tid, false);
    }

    /// The part of [`acquire`](Self::acquire) that needs no waiting: `Some` if the mutex was
    /// free (one compare-and-swap) or already held by the caller, `None` — nothing changed, no
    /// system call made — if another thread holds it. A binding calls this before it lets go
    /// of its interpreter lock to wait.
    #[inline]
    pub fn try_acquire_uncontended(&self) -> Option<Result<Held, LockError>> {
        match self.lock_fast() {
            // A fresh acquisition of a consistent mutex: held once (no depth to read).
            Some(Ok(Acquired::Locked(g))) => {
                std::mem::forget(g);
                return Some(Ok(Held::Once));
            }
            Some(done) => return Some(done.map(|a| self.forget_into_held(a))),
            None => {}
        }
        if self.held_by_current_thread() {
            return Some(self.acquire(Timeout::ZERO, &NoInterrupt));
        }
        None
    }

    /// Turns a guard into the guard-free outcome, leaving the mutex held.
    pub(super) fn forget_into_held(&self, acquired: Acquired<'_>) -> Held {
        match acquired {
            Acquired::Locked(g) => {
                std::mem::forget(g);
                match self.recursion_count() {
                    1 => Held::Once,
                    depth => Held::Reentered { depth },
                }
            }
            Acquired::OwnerDied(g) => {
                let previous = g.previous_owner();
                // Held, and inconsistent until `make_consistent`: skip the guard's drop,
                // which would release it as not recoverable.
                std::mem::forget(g.into_guard());
                Held::OwnerDied { previous }
            }
        }
    }

    /// Releases one level held through [`acquire`](Self::acquire) (or a guard's level, if
    /// the caller mixes both). A thread that does not hold the mutex gets
    /// [`UnlockError::NotOwner`] naming the holder, and nothing changes. Releasing the last
    /// level of a mutex whose previous owner died before [`make_consistent`](Self::make_consistent)
    /// makes it not recoverable.
    #[inline]
    pub fn release(&self) -> Result<(), UnlockError> {
        if self.try_release_fast() {
            return Ok(());
        }
        self.release_checked()
    }

    /// The common case of [`release`](Self::release), for a binding's hot path: the caller
    /// holds the mutex once, consistent, and nobody waits — two loads of its own lines and one
    /// compare-and-swap, no result to build. `false`: nothing changed; call `release`.
    #[inline]
    pub fn try_release_fast(&self) -> bool {
        let me = current_thread();
        let state = &*self.state;
        if state.raw_word() != me.tid
            || state.owner.load(Ordering::Relaxed) != me.owner_record().raw()
            || state.meta.load(Ordering::Relaxed) != 0
        {
            return false;
        }
        // A waiter that arrived since the first load set its bit: the record is cleared
        // already, the slow path wakes it.
        if !state.raw_unlock_fast(me.tid) {
            self.release_slow(me.tid);
        }
        true
    }

    #[cold]
    pub(super) fn release_checked(&self) -> Result<(), UnlockError> {
        let me = self.check_owner()?;
        let state = &*self.state;
        let meta = state.meta.load(Ordering::Relaxed);
        // `meta == 0` (one level, consistent) is the common case and needs nothing here.
        if meta != 0
            && meta & MUTEX_DEPTH_MASK == 0
            && MutexConsistency::from_raw(meta >> MUTEX_CONSISTENCY_SHIFT)
                == Some(MutexConsistency::Inconsistent)
        {
            state.set_consistency(MutexConsistency::NotRecoverable);
        }
        self.release_level(me);
        Ok(())
    }

    /// Releases the last level leaving the mutex inconsistent: the next locker is told the
    /// owner died and repairs (the guard-free twin of [`OwnerDiedGuard::release_inconsistent`]).
    pub fn release_inconsistent(&self) -> Result<(), UnlockError> {
        let me = self.check_owner()?;
        let state = &*self.state;
        let meta = state.meta.load(Ordering::Relaxed);
        // Still inconsistent from a death: the next locker is told about that holder, not us.
        if MutexConsistency::from_raw(meta >> MUTEX_CONSISTENCY_SHIFT)
            != Some(MutexConsistency::Inconsistent)
        {
            state.died.store(
                u64::from(current_thread().pid) << 32 | u64::from(me),
                Ordering::Relaxed,
            );
        }
        state.set_consistency(MutexConsistency::Inconsistent);
        self.release_level(me);
        Ok(())
    }

    /// Declares the data repaired after [`Held::OwnerDied`]; the caller must hold the mutex.
    pub fn make_consistent(&self) -> Result<(), UnlockError> {
        self.check_owner()?;
        self.state.set_consistency(MutexConsistency::Consistent);
        Ok(())
    }

    /// How many times the current holder holds the mutex (0 if it is free), as read now: for
    /// display (`repr`, the inspector), never for decisions — it may change at once.
    pub fn holder_count(&self) -> u32 {
        if self.owner().is_none() {
            return 0;
        }
        (self.state.meta.load(Ordering::Relaxed) & MUTEX_DEPTH_MASK) + 1
    }

    /// How many times the calling thread holds the mutex (0 if it does not):
    /// `threading.RLock._recursion_count`.
    pub fn recursion_count(&self) -> u32 {
        if !self.held_by_current_thread() {
            return 0;
        }
        (self.state.meta.load(Ordering::Relaxed) & MUTEX_DEPTH_MASK) + 1
    }

    /// Releases every level the calling thread holds and returns how many, for
    /// [`acquire_restore`](Self::acquire_restore) (`threading.RLock._release_save`). The
    /// consistency state is kept: a mutex saved inconsistent is restored inconsistent.
    pub fn release_save(&self) -> Result<SavedHold, UnlockError> {
        let me = self.check_owner()?;
        let state = &*self.state;
        let meta = state.meta.load(Ordering::Relaxed);
        let count = (meta & MUTEX_DEPTH_MASK) + 1;
        state
            .meta
            .store(meta & !MUTEX_DEPTH_MASK, Ordering::Relaxed);
        self.release_level(me);
        Ok(SavedHold {
            count: NonZeroU32::new(count).expect("depth + 1 is never 0"),
        })
    }

    /// Acquires the mutex and restores a depth saved by [`release_save`](Self::release_save)
    /// (`threading.RLock._acquire_restore`). A thread that holds it already adds the saved
    /// levels to its own. Outcomes as [`acquire`](Self::acquire); after
    /// [`Held::OwnerDied`] the saved levels are held too.
    pub fn acquire_restore(
        &self,
        saved: SavedHold,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Held, LockError> {
        let locked = self.acquire(timeout, interrupt)?;
        let state = &*self.state;
        let meta = state.meta.load(Ordering::Relaxed);
        let depth = meta & MUTEX_DEPTH_MASK;
        let Some(total) = depth
            .checked_add(saved.count() - 1)
            .filter(|&t| t <= MUTEX_DEPTH_MASK)
        else {
            self.release_level(current_thread().tid);
            return Err(LockError::TooDeep);
        };
        state
            .meta
            .store((meta & !MUTEX_DEPTH_MASK) | total, Ordering::Relaxed);
        Ok(match locked {
            Held::OwnerDied { previous } => Held::OwnerDied { previous },
            _ if total == 0 => Held::Once,
            _ => Held::Reentered { depth: total + 1 },
        })
    }

    /// The calling thread's tid if it holds the mutex, else who does.
    #[inline]
    pub(super) fn check_owner(&self) -> Result<u32, UnlockError> {
        let me = current_thread();
        if self.state.raw_word() & shm_layout::MUTEX_TID_MASK == me.tid
            && self.state.owner.load(Ordering::Relaxed) == me.owner_record().raw()
        {
            Ok(me.tid)
        } else {
            Err(UnlockError::NotOwner {
                owner: self.owner(),
            })
        }
    }
}
