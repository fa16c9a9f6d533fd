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

use super::{StateRef, DEFAULT_LOCK_TIMEOUT};
use crate::sync::Pad;
use crate::sync::{AtomicU32, AtomicU64, Interrupt, NoInterrupt, Ordering, Timeout};
use crate::sys::clock::Deadline;
use crate::sys::identity::{current_thread, Liveness};
use raw::{OwnerSnapshot, Patience, RawAcquire, RawFailure};
use shm_layout::{MutexConsistency, MUTEX_CONSISTENCY_SHIFT, MUTEX_DEPTH_MASK};
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::num::NonZeroU32;
use std::time::Duration;

pub use raw::DEATH_CHECK_INTERVAL;

/// The mutex's shared state; byte-for-byte [`shm_layout::MutexLayout`].
#[repr(C, align(64))]
pub(crate) struct MutexState {
    word: AtomicU32,
    meta: AtomicU32,
    owner: AtomicU64,
    owner_pid: AtomicU32,
    _reserved0: Pad<4>,
    died: AtomicU64,
    _reserved: Pad<32>,
}

#[cfg(not(loom))]
const _: () = {
    use shm_layout::MutexLayout;
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<MutexState>() == size_of::<MutexLayout>());
    assert!(align_of::<MutexState>() == align_of::<MutexLayout>());
    assert!(offset_of!(MutexState, word) == offset_of!(MutexLayout, word));
    assert!(offset_of!(MutexState, meta) == offset_of!(MutexLayout, meta));
    assert!(offset_of!(MutexState, owner) == offset_of!(MutexLayout, owner));
    assert!(offset_of!(MutexState, died) == offset_of!(MutexLayout, died));
    assert!(offset_of!(MutexState, owner_pid) == offset_of!(MutexLayout, owner_pid));
};

// SAFETY: atomics and `Pad` only, laid out as `MutexLayout` (asserted above).
unsafe impl crate::sync::SharedWord for MutexState {
    type Plain = shm_layout::MutexLayout;
    fn load_plain(&self) -> shm_layout::MutexLayout {
        shm_layout::MutexLayout {
            word: self.word.load_plain(),
            meta: self.meta.load_plain(),
            owner: self.owner.load_plain(),
            owner_pid: self.owner_pid.load_plain(),
            reserved0: 0,
            died: self.died.load_plain(),
            reserved: [0; 4],
        }
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
            _reserved0: Pad::new(),
            died: AtomicU64::new(0),
            _reserved: Pad::new(),
        }
    }

    /// Sets the consistency bits of `meta`, keeping the depth. Only the holder calls this,
    /// and only the holder writes `meta`, so a load and a store suffice.
    fn set_consistency(&self, c: MutexConsistency) {
        let depth = self.meta.load(Ordering::Relaxed) & MUTEX_DEPTH_MASK;
        self.meta.store(
            depth | (c as u32) << MUTEX_CONSISTENCY_SHIFT,
            Ordering::Relaxed,
        );
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

/// Why a guard-free release (or [`Mutex::make_consistent`]) was refused.
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
    guard: ManuallyDrop<MutexGuard<'a>>,
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
    fn into_guard(self) -> MutexGuard<'a> {
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

    /// Locks, waiting at most `timeout` (zero tries once, as [`try_lock`](Self::try_lock)).
    #[inline]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Acquired<'_>, LockError> {
        match self.lock_fast() {
            Some(done) => done,
            None => self.lock_slow(Patience::of(Timeout::After(timeout)), &NoInterrupt),
        }
    }

    /// Locks, waiting as long as it takes. A dead holder is still detected and recovered.
    pub fn lock_forever(&self) -> Result<Acquired<'_>, LockError> {
        match self.lock_fast() {
            Some(done) => done,
            None => self.lock_slow(Patience::Until(Deadline::NEVER), &NoInterrupt),
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
    fn undo_fresh(&self, tid: u32) {
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
    fn forget_into_held(&self, acquired: Acquired<'_>) -> Held {
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
    fn release_checked(&self) -> Result<(), UnlockError> {
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
    fn check_owner(&self) -> Result<u32, UnlockError> {
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

    /// The uncontended path, small enough to inline into the caller: one compare-and-swap, the
    /// owner record, one load of `meta`. `None` if the lock is held (nothing was changed).
    #[inline(always)]
    fn lock_fast(&self) -> Option<Result<Acquired<'_>, LockError>> {
        let me = current_thread();
        let state = &*self.state;
        if !state.raw_try_fresh(&me) {
            return None;
        }
        let guard = MutexGuard {
            mutex: self,
            tid: me.tid,
            _not_send: PhantomData,
        };
        let meta = state.meta.load(Ordering::Relaxed);
        if meta == 0 {
            return Some(Ok(Acquired::Locked(guard)));
        }
        Some(self.finish_fresh(guard, meta))
    }

    /// Locks only if no live thread holds the mutex; never sleeps. When the mutex is held it
    /// checks the holder's liveness (one `/proc` read, ~10 µs), so that a dead holder is
    /// recovered here too: poll with `lock_timeout` rather than a tight `try_lock` loop.
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
    fn lock_slow(
        &self,
        patience: Patience,
        interrupt: &dyn Interrupt,
    ) -> Result<Acquired<'_>, LockError> {
        let me = current_thread();
        let state = &*self.state;
        let guard = MutexGuard {
            mutex: self,
            tid: me.tid,
            _not_send: PhantomData,
        };
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
    fn finish_fresh<'a>(
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
    fn release_level(&self, tid: u32) {
        let state = &*self.state;
        if state.meta.load(Ordering::Relaxed) != 0 || !state.raw_unlock_fast(tid) {
            self.release_slow(tid);
        }
    }

    #[cold]
    fn release_slow(&self, tid: u32) {
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

#[cfg(test)]
mod tests;
