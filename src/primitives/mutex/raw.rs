//! The raw robust lock: one futex word holding the owner's tid, plus the owner's record.
//!
//! State table (`shm-layout/src/mutex.rs` has the authoritative one):
//!
//! | `word`               | meaning                                  |
//! |----------------------|------------------------------------------|
//! | `0`                  | free                                     |
//! | `tid`                | held by `tid`, nobody asleep             |
//! | `tid \| WAITERS`     | held by `tid`, someone may be asleep     |
//!
//! Locking is one compare-and-swap `0 → tid`; unlocking is one compare-and-swap back to 0 and,
//! only if `WAITERS` was set, one `FUTEX_WAKE`. No system call on the uncontended path.
//!
//! # How a dead owner is detected
//! shmkit does not use the kernel's robust-futex list: glibc owns the one list head a thread
//! can register, and sharing it would mean forging glibc's private mutex layout. Instead a
//! blocked waiter wakes every [`DEATH_CHECK_INTERVAL`] (and once more at its deadline) and
//! checks the owner named by `word` through a pidfd (`sys/identity.rs`). The cost: a few system calls (about
//! 10 µs) per waiter per 20 ms of blocking, nothing on the uncontended or the handed-off path,
//! and a detection latency of at most one interval (the kernel's list would be immediate).
//!
//! The owner *record* ([`Record`]: the tid and the thread's exact identity token) tells a
//! dead owner from a new thread that was given the same tid. It is written by the holder right after
//! it wins `word` and cleared right before it releases `word`, so a record that names the tid in
//! `word` was written by that tid. Verdicts, for the tid `T` in `word` and the record `R`:
//!
//! | task `T`                          | `R`                           | verdict |
//! |-----------------------------------|-------------------------------|---------|
//! | missing, zombie                   | anything                      | dead    |
//! | a thread with token `S`           | `(T, S)`                      | alive   |
//! | a thread with token `S`           | `(T, S')`, `S' ≠ S`           | dead (tid recycled) |
//! | a thread                          | 0 or another tid              | alive (the holder is between its CAS and its record store) |
//! | unreadable                        | anything                      | alive (cannot prove death) |
//!
//! A thread that finds its *own* tid in `word` but not its own record is looking at a dead
//! predecessor that had the same tid.
//!
//! Recovery is claimed by clearing the dead record with a compare-and-swap (only one survivor
//! wins it), then the winner swaps its tid into `word`, keeping `WAITERS` set because others
//! may be asleep.

use super::MutexState;
use crate::sync::{
    futex_wait, futex_wake, spin_hint, AtomicU32, Interrupt, Ordering, Stop, Timeout, Waiting,
};
use crate::sys::clock::{monotonic_ns, Deadline};
use crate::sys::identity::{holder_liveness, tid_liveness, Liveness, Record, ThreadIdentity};
use shm_layout::{MUTEX_TID_MASK, MUTEX_WAITERS};
use std::time::Duration;

/// How often a blocked waiter checks whether the owner is still alive.
pub const DEATH_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// Polls before a contended locker goes to sleep: long enough to catch a short critical
/// section on another core, short enough not to matter when the holder was descheduled.
const SPIN_LIMIT: u32 = if cfg!(loom) { 1 } else { 200 };

/// The holder as seen from `word` and the record, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnerSnapshot {
    pub tid: u32,
    pub pid: u32,
    pub liveness: Liveness,
}

/// How the raw lock was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawAcquire {
    /// A fresh acquisition of a free (or just released) lock.
    Fresh,
    /// The caller already held it (reentrant acquisition).
    Reentered,
    /// The previous owner died holding it; the caller now holds it.
    Recovered(OwnerSnapshot),
}

/// Why the raw lock was not obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawFailure {
    /// The deadline passed (or, for `try`, the lock was held) while this thread held it.
    Held(OwnerSnapshot),
    /// The caller's interrupt check said stop while this thread held it.
    Interrupted(OwnerSnapshot),
}

/// Whether to wait for the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Patience {
    /// Return at once if held by a live owner.
    Try,
    /// Wait at most this long. The deadline is computed only when the fast path fails, so an
    /// uncontended `lock()` never reads the clock.
    Within(Duration),
    /// Wait until the deadline.
    Until(Deadline),
}

impl Patience {
    /// The patience a [`Timeout`] asks for: zero tries once.
    pub(crate) fn of(timeout: Timeout) -> Patience {
        match timeout {
            Timeout::After(d) if d.is_zero() => Patience::Try,
            Timeout::After(d) => Patience::Within(d),
            Timeout::Forever => Patience::Until(Deadline::NEVER),
        }
    }
}

impl MutexState {
    fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// The uncontended acquisition: `0 → tid`, then the owner record. False if the word was
    /// not 0 (nothing changed).
    #[inline(always)]
    pub(crate) fn raw_try_fresh(&self, me: &ThreadIdentity) -> bool {
        // Acquire: pairs with the Release in `raw_unlock`, so the previous critical section's
        // writes are visible to ours.
        let won = self
            .word
            .compare_exchange(0, me.tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if won {
            self.claim(me);
        }
        won
    }

    /// The uncontended release: clear the record, `tid → 0`. False if the word was not
    /// exactly `tid` (waiters, or taken from us): nothing changed but the record, and the
    /// caller takes the slow path, which clears the record again and handles both.
    #[inline(always)]
    pub(crate) fn raw_unlock_fast(&self, tid: u32) -> bool {
        self.owner.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire of the next locker's CAS.
        self.word
            .compare_exchange(tid, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Acquires the raw lock for `me`.
    #[inline]
    pub(crate) fn raw_lock(
        &self,
        me: &ThreadIdentity,
        patience: Patience,
        interrupt: &dyn Interrupt,
    ) -> Result<RawAcquire, RawFailure> {
        if self.raw_try_fresh(me) {
            return Ok(RawAcquire::Fresh);
        }
        self.raw_lock_slow(me, patience, interrupt)
    }

    /// Writes the holder's record; called right after winning `word`.
    #[inline(always)]
    fn claim(&self, me: &ThreadIdentity) {
        // Relaxed: observers read these only after an Acquire load of `word` that reads our
        // CAS or a later value, and judge a record that is not yet ours as "maybe alive".
        self.owner.store(me.owner_record().raw(), Ordering::Relaxed);
        // Usually the same process locks again: a load is cheaper than a store here, because
        // every store must drain before the unlock's locked instruction.
        if self.owner_pid.load(Ordering::Relaxed) != me.pid {
            self.owner_pid.store(me.pid, Ordering::Relaxed);
        }
    }

    #[cold]
    fn raw_lock_slow(
        &self,
        me: &ThreadIdentity,
        patience: Patience,
        interrupt: &dyn Interrupt,
    ) -> Result<RawAcquire, RawFailure> {
        let deadline = match patience {
            Patience::Try => None,
            Patience::Within(timeout) => Some(Deadline::after(timeout)),
            Patience::Until(deadline) => Some(deadline),
        };
        // The clock (and the interrupt schedule) is read only once a waiter must wait.
        let mut waiting = deadline.map(|d| Waiting::new(d, interrupt));
        let my_record = me.owner_record().raw();
        let mut spins = 0;
        let mut slept = false;
        let mut next_check = 0u64;
        loop {
            let w = self.word.load(Ordering::Relaxed);
            let holder = w & MUTEX_TID_MASK;
            if holder == 0 {
                // A thread that slept cannot know whether others still sleep: it keeps WAITERS
                // so its own unlock wakes the next one (Drepper, "Futexes are tricky", mutex2).
                let waiters = if slept {
                    MUTEX_WAITERS
                } else {
                    w & MUTEX_WAITERS
                };
                if self
                    .word
                    .compare_exchange(w, me.tid | waiters, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.claim(me);
                    return Ok(RawAcquire::Fresh);
                }
                continue;
            }
            if holder == me.tid {
                if self.owner.load(Ordering::Relaxed) == my_record {
                    return Ok(RawAcquire::Reentered);
                }
                // Our tid but not our record: a dead predecessor that had our tid.
                if let Ok(got) = self.try_recover(w, me) {
                    return Ok(got);
                }
                continue;
            }
            let Some(waiting) = waiting.as_mut() else {
                return self.try_recover(w, me).map_err(RawFailure::Held);
            };
            if spins < SPIN_LIMIT {
                spins += 1;
                spin_hint();
                continue;
            }
            let now = monotonic_ns();
            if let Err(stop) = waiting.check_at(now) {
                // One last look: a dead owner is recovered even by a waiter whose deadline
                // is shorter than the check interval.
                let got = self.try_recover(w, me);
                if got.is_err() && slept {
                    // A wake-up meant for the next locker may have reached us: pass it on.
                    futex_wake(self.word(), 1);
                }
                return got.map_err(|owner| match stop {
                    Stop::TimedOut => RawFailure::Held(owner),
                    Stop::Interrupted => RawFailure::Interrupted(owner),
                });
            }
            if next_check == 0 {
                next_check = now.saturating_add(DEATH_CHECK_INTERVAL.as_nanos() as u64);
            } else if now >= next_check {
                next_check = now.saturating_add(DEATH_CHECK_INTERVAL.as_nanos() as u64);
                if let Ok(got) = self.try_recover(w, me) {
                    return Ok(got);
                }
            }
            if w & MUTEX_WAITERS == 0
                && self
                    .word
                    .compare_exchange(w, w | MUTEX_WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            slept = true;
            let outcome = futex_wait(
                self.word(),
                w | MUTEX_WAITERS,
                waiting.sleep_deadline_capped(DEATH_CHECK_INTERVAL),
            );
            waiting.slept(outcome);
        }
    }

    /// If the holder named by `w` is dead, takes the lock over and returns how; otherwise
    /// returns the holder as it was judged (a few system calls either way).
    #[cold]
    fn try_recover(&self, w: u32, me: &ThreadIdentity) -> Result<RawAcquire, OwnerSnapshot> {
        let holder = w & MUTEX_TID_MASK;
        // Acquire: pairs with the recoverer's or holder's writes of the record.
        let record = self.owner.load(Ordering::Acquire);
        let liveness = holder_liveness(holder, Record::from_raw(record), me);
        let dead_pid = self.owner_pid.load(Ordering::Relaxed);
        let judged = OwnerSnapshot {
            tid: holder,
            pid: dead_pid,
            liveness,
        };
        if liveness != Liveness::Dead {
            return Err(judged);
        }
        if record != 0
            && self
                .owner
                .compare_exchange(record, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            // Another survivor is recovering it.
            return Err(judged);
        }
        loop {
            let cur = self.word.load(Ordering::Relaxed);
            if cur & MUTEX_TID_MASK != holder {
                return Err(judged);
            }
            // Keep WAITERS: other survivors may be asleep and must be woken at our unlock.
            if self
                .word
                .compare_exchange(
                    cur,
                    me.tid | MUTEX_WAITERS,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                self.claim(me);
                return Ok(RawAcquire::Recovered(judged));
            }
            spin_hint();
        }
    }

    /// The holder named by `w`, for an error message.
    pub(crate) fn snapshot(&self, w: u32) -> OwnerSnapshot {
        let tid = w & MUTEX_TID_MASK;
        let record = self.owner.load(Ordering::Relaxed);
        let record = Record::from_raw(record);
        let liveness = if !record.is_none() && record.id() == tid {
            record.thread_liveness()
        } else {
            tid_liveness(tid)
        };
        OwnerSnapshot {
            tid,
            pid: self.owner_pid.load(Ordering::Relaxed),
            liveness,
        }
    }

    /// Releases the raw lock held by `tid`. Returns false (and changes nothing) if `word` no
    /// longer names `tid`: the lock was taken from us, which only a corrupt segment or a
    /// survivor that wrongly judged us dead can do.
    #[inline]
    pub(crate) fn raw_unlock(&self, tid: u32, wake_all: bool) -> bool {
        self.owner.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire of the next locker's CAS.
        match self
            .word
            .compare_exchange(tid, 0, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) if !wake_all => true,
            _ => self.raw_unlock_slow(tid, wake_all),
        }
    }

    #[cold]
    fn raw_unlock_slow(&self, tid: u32, wake_all: bool) -> bool {
        let mut cur = self.word.load(Ordering::Relaxed);
        loop {
            if cur & MUTEX_TID_MASK != tid {
                if cur == 0 && wake_all {
                    // Released by our fast-path CAS above; still owe the broadcast.
                    futex_wake(self.word(), u32::MAX);
                    return true;
                }
                return false;
            }
            match self
                .word
                .compare_exchange_weak(cur, 0, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur & MUTEX_WAITERS != 0 || wake_all {
            futex_wake(self.word(), if wake_all { u32::MAX } else { 1 });
        }
        true
    }

    /// The current word, for inspection.
    pub(crate) fn raw_word(&self) -> u32 {
        self.word.load(Ordering::Relaxed)
    }
}
