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

mod error;
mod guard;
mod held;
mod raw;

pub use error::{LockError, OwnerInfo, UnlockError};
pub use guard::{lock_all, Acquired, MutexGuard, OwnerDiedGuard};
pub use held::{Held, SavedHold};

use super::StateRef;
use crate::sync::{shared_view, Reserved};
use crate::sync::{AtomicU32, AtomicU64, Interrupt, NoInterrupt, Ordering, Timeout};
use crate::sys::identity::current_thread;
use raw::{Patience, RawAcquire, RawFailure};
use shm_layout::{MutexConsistency, MutexLayout, MUTEX_CONSISTENCY_SHIFT, MUTEX_DEPTH_MASK};
use std::fmt;
use std::mem::ManuallyDrop;
use std::time::Duration;

pub use raw::DEATH_CHECK_INTERVAL;

shared_view! {
    /// The mutex's shared state; byte-for-byte [`shm_layout::MutexLayout`].
    pub(crate) struct MutexState mirrors MutexLayout, align(64) {
        pub(super) word: AtomicU32,
        pub(super) meta: AtomicU32,
        pub(super) owner: AtomicU64,
        pub(super) owner_pid: AtomicU32,
        pub(super) reserved0: Reserved<u32>,
        pub(super) died: AtomicU64,
        pub(super) reserved: Reserved<[u64; 4]>,
    }
}

impl MutexState {
    /// A free, consistent mutex.
    pub(crate) fn new() -> Self {
        MutexState {
            word: AtomicU32::new(0),
            meta: AtomicU32::new(0),
            owner: AtomicU64::new(0),
            owner_pid: AtomicU32::new(0),
            reserved0: Reserved::new(),
            died: AtomicU64::new(0),
            reserved: Reserved::new(),
        }
    }

    /// Sets the consistency bits of `meta`, keeping the depth. Only the holder calls this,
    /// and only the holder writes `meta`, so a load and a store suffice.
    pub(super) fn set_consistency(&self, c: MutexConsistency) {
        let depth = self.meta.load(Ordering::Relaxed) & MUTEX_DEPTH_MASK;
        self.meta.store(
            depth | (c as u32) << MUTEX_CONSISTENCY_SHIFT,
            Ordering::Relaxed,
        );
    }
}

/// A robust, reentrant, process-shared mutex.
///
/// It behaves as `threading.RLock`: the owner may re-acquire it, only the owner may release
/// it, the hold depth can be read ([`recursion_count`](Self::recursion_count)) and saved and
/// restored whole ([`release_save`](Self::release_save) /
/// [`acquire_restore`](Self::acquire_restore)). Two ways to hold it: a guard
/// ([`lock`](Self::lock) and friends), released on drop; or guard-free
/// ([`acquire`](Self::acquire) / [`release`](Self::release)) for callers in another language
/// that cannot keep a Rust guard across calls. Both count in the same depth.
///
/// It protects no data itself (data in a segment is reached by offset): hold the guard while
/// touching what it protects. Cloning the handle gives another handle to the same mutex.
#[derive(Clone)]
pub struct Mutex {
    pub(super) state: StateRef<MutexState>,
}

impl fmt::Debug for Mutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("offset", &self.state.offset())
            .field("owner", &self.owner())
            .finish()
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

    /// Locks, waiting at most `timeout`: a [`Duration`](std::time::Duration) ([`DEFAULT_LOCK_TIMEOUT`](crate::DEFAULT_LOCK_TIMEOUT) is 60 s;
    /// zero tries once, as [`try_lock`](Self::try_lock)) or [`Timeout::Forever`]. A dead
    /// holder is detected and recovered either way.
    #[inline]
    pub fn lock(&self, timeout: impl Into<Timeout>) -> Result<Acquired<'_>, LockError> {
        match self.lock_fast() {
            Some(done) => done,
            None => self.lock_slow(Patience::of(timeout.into()), &NoInterrupt),
        }
    }

    /// Locks within `timeout`, giving up with [`LockError::Interrupted`] within 100 ms of
    /// `interrupt` saying stop (it is consulted only while this thread sleeps).
    #[inline]
    pub fn lock_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Acquired<'_>, LockError> {
        match self.lock_fast() {
            Some(done) => done,
            None => self.lock_slow(Patience::of(timeout), interrupt),
        }
    }

    /// The uncontended path, small enough to inline into the caller: one compare-and-swap, the
    /// owner record, one load of `meta`. `None` if the lock is held (nothing was changed).
    #[inline(always)]
    pub(super) fn lock_fast(&self) -> Option<Result<Acquired<'_>, LockError>> {
        let me = current_thread();
        let state = &*self.state;
        if !state.raw_try_fresh(&me) {
            return None;
        }
        let guard = MutexGuard::bare(self, me.tid);
        let meta = state.meta.load(Ordering::Relaxed);
        if meta == 0 {
            return Some(Ok(Acquired::Locked(guard)));
        }
        Some(self.finish_fresh(guard, meta))
    }

    /// Locks only if no live thread holds the mutex; never sleeps. When the mutex is held it
    /// checks the holder's liveness (one `/proc` read, ~10 µs), so that a dead holder is
    /// recovered here too: poll with `lock(timeout)` rather than a tight `try_lock` loop.
    pub fn try_lock(&self) -> Result<Acquired<'_>, LockError> {
        self.lock_slow(Patience::Try, &NoInterrupt)
    }

    /// Is this the same mutex as `other` (another handle to the same bytes)?
    pub fn same_as(&self, other: &Mutex) -> bool {
        std::ptr::eq(&*self.state, &*other.state)
    }

    /// Does the calling thread hold this mutex? (`threading.RLock._is_owned`: two loads and
    /// the thread's cached identity, no system call.)
    #[inline]
    pub fn held_by_current_thread(&self) -> bool {
        let me = current_thread();
        self.state.raw_word() & shm_layout::MUTEX_TID_MASK == me.tid
            && self.state.owner.load(Ordering::Relaxed) == me.owner_record().raw()
    }

    /// The current holder, if any.
    pub fn owner(&self) -> Option<OwnerInfo> {
        let w = self.state.raw_word();
        (w & shm_layout::MUTEX_TID_MASK != 0).then(|| self.state.snapshot(w).into())
    }

    #[cold]
    pub(super) fn lock_slow(
        &self,
        patience: Patience,
        interrupt: &dyn Interrupt,
    ) -> Result<Acquired<'_>, LockError> {
        let me = current_thread();
        let state = &*self.state;
        let guard = MutexGuard::bare(self, me.tid);
        match state.raw_lock(&me, patience, interrupt) {
            Ok(RawAcquire::Fresh) => {}
            Ok(RawAcquire::Reentered) => {
                let meta = state.meta.load(Ordering::Relaxed);
                if meta & MUTEX_DEPTH_MASK == MUTEX_DEPTH_MASK {
                    std::mem::forget(guard);
                    return Err(LockError::TooDeep);
                }
                state.meta.store(meta + 1, Ordering::Relaxed);
                return Ok(Acquired::Locked(guard));
            }
            Ok(RawAcquire::Recovered(previous)) => {
                state.died.store(
                    u64::from(previous.pid) << 32 | u64::from(previous.tid),
                    Ordering::Relaxed,
                );
                // Depth 0: the dead holder's levels died with it.
                state.meta.store(
                    (MutexConsistency::Inconsistent as u32) << MUTEX_CONSISTENCY_SHIFT,
                    Ordering::Relaxed,
                );
                return Ok(Acquired::OwnerDied(OwnerDiedGuard {
                    guard: ManuallyDrop::new(guard),
                }));
            }
            Err(failure) => {
                std::mem::forget(guard);
                return Err(match (failure, patience) {
                    (RawFailure::Interrupted(owner), _) => LockError::Interrupted {
                        owner: owner.into(),
                    },
                    (RawFailure::Held(owner), Patience::Try) => LockError::WouldBlock {
                        owner: owner.into(),
                    },
                    (RawFailure::Held(owner), Patience::Within(waited)) => LockError::Timeout {
                        waited,
                        owner: owner.into(),
                    },
                    (RawFailure::Held(owner), Patience::Until(_)) => LockError::Timeout {
                        waited: Duration::MAX,
                        owner: owner.into(),
                    },
                });
            }
        };
        let meta = state.meta.load(Ordering::Relaxed);
        if meta == 0 {
            return Ok(Acquired::Locked(guard));
        }
        self.finish_fresh(guard, meta)
    }

    /// A fresh acquisition found `meta` non-zero: the mutex is inconsistent, unrecoverable,
    /// or its bytes are corrupt.
    #[cold]
    pub(super) fn finish_fresh<'a>(
        &'a self,
        guard: MutexGuard<'a>,
        meta: u32,
    ) -> Result<Acquired<'a>, LockError> {
        let state = &*self.state;
        // A fresh acquisition finds depth 0 unless the bytes are corrupt; reset it so our own
        // release unlocks.
        if meta & MUTEX_DEPTH_MASK != 0 {
            state
                .meta
                .store(meta & !MUTEX_DEPTH_MASK, Ordering::Relaxed);
        }
        match MutexConsistency::from_raw(meta >> MUTEX_CONSISTENCY_SHIFT) {
            Some(MutexConsistency::Consistent) => Ok(Acquired::Locked(guard)),
            Some(MutexConsistency::Inconsistent) => Ok(Acquired::OwnerDied(OwnerDiedGuard {
                guard: ManuallyDrop::new(guard),
            })),
            Some(MutexConsistency::NotRecoverable) => {
                drop(guard);
                Err(LockError::NotRecoverable)
            }
            None => {
                // Two bits: the fourth value. Make it not recoverable rather than guess.
                state.set_consistency(MutexConsistency::NotRecoverable);
                drop(guard);
                Err(LockError::Corrupt {
                    what: "consistency bits hold an unknown value; mutex marked not recoverable",
                })
            }
        }
    }

    #[inline(always)]
    pub(super) fn release_level(&self, tid: u32) {
        let state = &*self.state;
        if state.meta.load(Ordering::Relaxed) != 0 || !state.raw_unlock_fast(tid) {
            self.release_slow(tid);
        }
    }

    #[cold]
    pub(super) fn release_slow(&self, tid: u32) {
        let state = &*self.state;
        let meta = state.meta.load(Ordering::Relaxed);
        if meta & MUTEX_DEPTH_MASK > 0 {
            state.meta.store(meta - 1, Ordering::Relaxed);
            return;
        }
        // Last level: an unrecoverable mutex wakes everyone, so every waiter learns it at
        // once. A `false` from raw_unlock means the lock was taken from us (corrupt segment);
        // Drop cannot report it, and there is nothing left to release.
        let not_recoverable =
            meta >> MUTEX_CONSISTENCY_SHIFT == MutexConsistency::NotRecoverable as u32;
        let _ = state.raw_unlock(tid, not_recoverable);
    }
}

#[cfg(test)]
impl Mutex {
    /// Makes the mutex look held by a thread that died: tid `0x3FFF_FFFE` is above
    /// `PID_MAX_LIMIT`, so no thread can have it and liveness checks call it dead.
    pub(crate) fn abandon_to_a_dead_owner(&self) {
        let dead = 0x3FFF_FFFE;
        self.state.word.store(dead, Ordering::Relaxed);
        self.state
            .owner
            .store((u64::from(dead) << 32) | 5, Ordering::Relaxed);
        self.state.owner_pid.store(4242, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
