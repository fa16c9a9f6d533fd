//! The barrier: `parties` callers meet, then all go on (Python's `threading.Barrier`).
//!
//! All decisions are one compare-and-swap on the packed 64-bit `state` (see
//! `shm-layout/src/barrier.rs`): arriving, completing a generation, breaking it, resetting. A
//! generation ends by completion or by breaking, and the ending CAS shifts its outcome into
//! `history`, so a waiter that wakes late still learns how *its* generation ended even if the
//! barrier has been reset and reused since. Waiters sleep on the 32-bit `seq` word, which every
//! generation end increments before waking them (arrivals change `state` quietly: nobody
//! waits for them).
//!
//! **The action.** As `threading.Barrier(action=)`: the last party to arrive moves `arrived` to
//! `parties` (nobody is released by that), runs the action of the handle it waits through, and
//! only then ends the generation — completed if the action returned `Ok`, broken if it failed or
//! panicked (the leader gets [`BarrierError::ActionFailed`] or the panic, the others
//! [`BarrierError::Broken`]). While the action runs, deadlines do not break the barrier
//! (everyone has arrived; in Python the waiters cannot even re-take the lock to time out).
//!
//! **Breaking.** A timeout, an interrupted wait, [`Barrier::abort`] or [`Barrier::reset`]
//! breaks the current generation: every waiter gets [`BarrierError::Broken`] (the caller that
//! timed out gets `Timeout`, the interrupted one `Interrupted`). After anything but a reset the
//! barrier stays broken until `reset`.
//!
//! **A party that dies.** Every party holds a slot with its thread's record while it waits
//! (table in `shm-layout`). Each waiter checks, every [`DEATH_CHECK_INTERVAL`], the slot of the
//! party that arrived right after it (the last arrival checks the first), so every party is
//! watched by one other and a dead one breaks the generation within one interval, not at the
//! others' deadlines. A party that dies while *entering* (between claiming its slot and its
//! arrival) breaks it too, once a party waits at its arrival index: it cannot be told from one
//! that died just after.

use super::{StateRef, StateSlice, DEATH_CHECK_INTERVAL};
use crate::sync::Pad;
use crate::sync::{
    futex_wait, futex_wake, spin_hint, AtomicU32, AtomicU64, Interrupt, NoInterrupt, Ordering,
    SpinCounter, Stop, Timeout, WaitStrategy, Waiting,
};
use crate::sys::clock::{monotonic_ns, Deadline};
use crate::sys::identity::{current_thread, Liveness, Record};
use shm_layout::{
    BARRIER_ARRIVED_MASK, BARRIER_BROKEN, BARRIER_GENERATION_SHIFT, BARRIER_HISTORY_LEN,
    BARRIER_HISTORY_SHIFT, BARRIER_MAX_PARTIES, BARRIER_TAG_GENERATION_SHIFT,
    BARRIER_TAG_INDEX_SHIFT, BARRIER_TAG_VALID,
};
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// The barrier's shared state; byte-for-byte [`shm_layout::BarrierLayout`].
#[repr(C, align(64))]
pub(crate) struct BarrierState {
    seq: AtomicU32,
    parties: AtomicU32,
    state: AtomicU64,
    _reserved: Pad<48>,
}

/// One party slot; byte-for-byte [`shm_layout::BarrierPartySlot`].
#[repr(C)]
pub(crate) struct PartySlot {
    record: AtomicU64,
    tag: AtomicU64,
}

#[cfg(not(loom))]
const _: () = {
    use shm_layout::{BarrierLayout, BarrierPartySlot};
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<BarrierState>() == size_of::<BarrierLayout>());
    assert!(align_of::<BarrierState>() == align_of::<BarrierLayout>());
    assert!(offset_of!(BarrierState, seq) == offset_of!(BarrierLayout, seq));
    assert!(offset_of!(BarrierState, parties) == offset_of!(BarrierLayout, parties));
    assert!(offset_of!(BarrierState, state) == offset_of!(BarrierLayout, state));
    assert!(size_of::<PartySlot>() == size_of::<BarrierPartySlot>());
    assert!(align_of::<PartySlot>() == align_of::<BarrierPartySlot>());
    assert!(offset_of!(PartySlot, record) == offset_of!(BarrierPartySlot, record));
    assert!(offset_of!(PartySlot, tag) == offset_of!(BarrierPartySlot, tag));
};

impl BarrierState {
    /// A barrier for `parties` (checked by the caller: 1..=`BARRIER_MAX_PARTIES`).
    pub(crate) fn new(parties: u32) -> Self {
        BarrierState {
            seq: AtomicU32::new(0),
            parties: AtomicU32::new(parties),
            state: AtomicU64::new(0),
            _reserved: Pad::new(),
        }
    }
}

impl BarrierState {
    /// The stored party count, unchecked (for the attach-time validator).
    pub(crate) fn parties_raw(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }
}

impl PartySlot {
    pub(crate) fn new() -> Self {
        PartySlot {
            record: AtomicU64::new(0),
            tag: AtomicU64::new(0),
        }
    }
}

/// The tag a party writes into its slot before it arrives at `index` of `generation`.
fn tag(generation: u32, index: u32) -> u64 {
    u64::from(generation) << BARRIER_TAG_GENERATION_SHIFT
        | u64::from(index) << BARRIER_TAG_INDEX_SHIFT
        | BARRIER_TAG_VALID
}

/// The generation a tag names, if it was ever written.
fn tag_generation(tag: u64) -> Option<u32> {
    (tag & BARRIER_TAG_VALID != 0).then_some((tag >> BARRIER_TAG_GENERATION_SHIFT) as u32)
}

/// The decoded `state` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed {
    arrived: u32,
    broken: bool,
    history: u32,
    generation: u32,
}

impl Packed {
    fn decode(raw: u64) -> Packed {
        Packed {
            arrived: (raw & BARRIER_ARRIVED_MASK) as u32,
            broken: raw & BARRIER_BROKEN != 0,
            history: ((raw >> BARRIER_HISTORY_SHIFT) & ((1 << BARRIER_HISTORY_LEN) - 1)) as u32,
            generation: (raw >> BARRIER_GENERATION_SHIFT) as u32,
        }
    }

    fn encode(self) -> u64 {
        u64::from(self.arrived)
            | if self.broken { BARRIER_BROKEN } else { 0 }
            | (u64::from(self.history) & ((1 << BARRIER_HISTORY_LEN) - 1)) << BARRIER_HISTORY_SHIFT
            | u64::from(self.generation) << BARRIER_GENERATION_SHIFT
    }

    /// This state with its generation ended (completed, or broken), nobody waiting.
    fn end_generation(self, broken: bool) -> Packed {
        Packed {
            arrived: 0,
            broken: self.broken,
            history: (self.history << 1) | u32::from(broken),
            generation: self.generation.wrapping_add(1),
        }
    }

    /// This state's generation ended broken, and the barrier broken until `reset`.
    fn broken_off(self) -> Packed {
        Packed {
            broken: true,
            ..self
        }
        .end_generation(true)
    }

    /// How generation `g` ended, if this state remembers it.
    fn outcome_of(self, g: u32) -> Option<bool> {
        let back = self.generation.wrapping_sub(g);
        (1..=BARRIER_HISTORY_LEN)
            .contains(&back)
            .then(|| self.history >> (back - 1) & 1 == 1)
    }
}

/// What a successful [`Barrier::wait`] tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWait {
    /// Arrival order in this generation, `0..parties` (`parties - 1` arrived last), as the
    /// value `threading.Barrier.wait` returns.
    pub index: u32,
    /// The generation that was completed.
    pub generation: u32,
}

impl BarrierWait {
    /// Exactly one caller per generation is the leader: the last to arrive (the one that ran
    /// the action).
    pub fn is_leader(&self, parties: u32) -> bool {
        self.index + 1 == parties
    }
}

/// Why a barrier wait failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarrierError {
    /// The barrier was broken (by another party's timeout, interrupt, death or failed action,
    /// or by `abort` or `reset`); call `reset` before using it again.
    #[error("barrier is broken (a party timed out, was interrupted or died, the action failed, or it was aborted or reset)")]
    Broken,
    /// This caller's deadline passed; the barrier is now broken for every party. (A caller
    /// that arrives while the last party runs the action waits for the next generation; if its
    /// deadline passes then, it gets this error and breaks nothing.)
    #[error("timed out after {waited:?} with {arrived} of {parties} parties arrived; the barrier is now broken")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
        /// Parties that had arrived.
        arrived: u32,
        /// Parties expected.
        parties: u32,
    },
    /// The caller's interrupt check said stop; the barrier is now broken for every party
    /// (the others will not wait for a party that left).
    #[error("interrupted while waiting at the barrier; the barrier is now broken")]
    Interrupted,
    /// The party that arrived after this caller died while waiting (or while arriving); this
    /// caller found it and broke the barrier for everyone.
    #[error("a party (thread {tid}) died while waiting at the barrier; the barrier is now broken")]
    PartyDied {
        /// The dead party's thread id (0 if its slot was gone).
        tid: u32,
    },
    /// This caller arrived last and the barrier's action returned an error; the barrier is
    /// broken for every party.
    #[error("the barrier action failed: {message}; the barrier is now broken")]
    ActionFailed {
        /// The action's error, as text.
        message: String,
    },
    /// The barrier's bytes hold values no shmkit process writes.
    #[error("corrupt barrier: {what}")]
    Corrupt {
        /// Which field.
        what: &'static str,
    },
}

/// What a barrier runs when its last party arrives: an error breaks the barrier.
pub type BarrierAction =
    dyn Fn() -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + Sync;

/// A process-shared, reusable barrier for a fixed number of parties.
///
/// As `threading.Barrier`: [`wait`](Self::wait) returns the caller's arrival index,
/// [`parties`](Self::parties), [`n_waiting`](Self::n_waiting) and
/// [`is_broken`](Self::is_broken) can be read at any time, an optional
/// [action](Self::with_action) runs in the last party to arrive before anyone is released,
/// and [`reset`](Self::reset) / [`abort`](Self::abort) behave as Python's.
#[derive(Clone)]
pub struct Barrier {
    state: StateRef<BarrierState>,
    slots: StateSlice<PartySlot>,
    strategy: WaitStrategy,
    action: Option<Arc<BarrierAction>>,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = Packed::decode(self.state.state.load(Ordering::Relaxed));
        f.debug_struct("Barrier")
            .field("offset", &self.state.offset())
            .field("parties", &self.state.parties.load(Ordering::Relaxed))
            .field("arrived", &p.arrived)
            .field("generation", &p.generation)
            .field("broken", &p.broken)
            .field("action", &self.action.is_some())
            .finish()
    }
}

/// Where a waiting party stands in its generation.
#[derive(Clone, Copy)]
struct Arrival {
    index: u32,
    generation: u32,
    parties: u32,
}

impl Barrier {
    /// A barrier on the heap for `parties` threads of this process.
    ///
    /// # Panics
    /// If `parties` is 0 or above 65535 (a programming error, as with `std::sync::Barrier`).
    pub fn new_local(parties: u32) -> Barrier {
        assert!(
            (1..=BARRIER_MAX_PARTIES).contains(&parties),
            "barrier parties must be 1..=65535"
        );
        let slots = StateSlice::heap(shm_layout::barrier_slots(parties) as usize, PartySlot::new);
        Barrier::from_parts(StateRef::heap(BarrierState::new(parties)), slots)
    }

    pub(crate) fn from_parts(
        state: StateRef<BarrierState>,
        slots: StateSlice<PartySlot>,
    ) -> Barrier {
        Barrier {
            state,
            slots,
            strategy: WaitStrategy::Block,
            action: None,
        }
    }

    /// Offset of the barrier in its segment (`None` for a local barrier).
    pub fn offset(&self) -> Option<u64> {
        self.state.offset()
    }

    /// This handle with another wait strategy.
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> Barrier {
        self.strategy = strategy;
        self
    }

    /// This handle with an action, run by the last party to arrive through this handle before
    /// any party is released (`threading.Barrier(action=)`). Each process gives its own
    /// handle the action: the one that runs is that of the handle the last party waits
    /// through. An `Err` or a panic breaks the barrier for every party.
    pub fn with_action<E>(
        mut self,
        action: impl Fn() -> Result<(), E> + Send + Sync + 'static,
    ) -> Barrier
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.action = Some(Arc::new(move || action().map_err(Into::into)));
        self
    }

    /// Number of parties, as stored in the barrier.
    pub fn parties(&self) -> u32 {
        self.state.parties.load(Ordering::Relaxed)
    }

    /// Parties waiting in the current generation (`threading.Barrier.n_waiting`; equal to
    /// `parties` while the last one runs the action).
    pub fn n_waiting(&self) -> u32 {
        Packed::decode(self.state.state.load(Ordering::Relaxed)).arrived
    }

    /// Parties waiting in the current generation (the same as [`n_waiting`](Self::n_waiting)).
    pub fn arrived(&self) -> u32 {
        self.n_waiting()
    }

    /// Is the barrier broken?
    pub fn is_broken(&self) -> bool {
        Packed::decode(self.state.state.load(Ordering::Acquire)).broken
    }

    fn checked_parties(&self) -> Result<u32, BarrierError> {
        let parties = self.parties();
        if !(1..=BARRIER_MAX_PARTIES).contains(&parties)
            || self.slots.len() < shm_layout::barrier_slots(parties) as usize
        {
            return Err(BarrierError::Corrupt {
                what: "party count outside 1..=65535 or larger than the barrier's slots",
            });
        }
        Ok(parties)
    }

    fn load(&self) -> Packed {
        // Acquire: pairs with the AcqRel of every transition, so a party's slot tag (written
        // before its arrival CAS) is visible to whoever sees the arrival.
        Packed::decode(self.state.state.load(Ordering::Acquire))
    }

    /// Swaps `state` from `from` to `to` without waking anyone (an arrival).
    fn swap_quietly(&self, from: Packed, to: Packed) -> bool {
        // AcqRel: the winner publishes its slot tag and sees every earlier transition.
        self.state
            .state
            .compare_exchange(
                from.encode(),
                to.encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Swaps `state` from `from` to `to`; on success bumps `seq` and wakes every waiter.
    fn transition(&self, from: Packed, to: Packed) -> bool {
        let ok = self.swap_quietly(from, to);
        if ok {
            // Release: a waiter that reads the new `seq` (Acquire) then reads the new `state`.
            self.state.seq.fetch_add(1, Ordering::Release);
            futex_wake(&self.state.seq, u32::MAX);
        }
        ok
    }

    /// Waits for all parties, at most `timeout`.
    pub fn wait(&self, timeout: Duration) -> Result<BarrierWait, BarrierError> {
        let mut waiting = Waiting::new(Deadline::after(timeout), &NoInterrupt);
        self.wait_inner(&mut waiting, timeout)
    }

    /// Waits for all parties as long as it takes (until they come, or another party breaks it).
    pub fn wait_forever(&self) -> Result<BarrierWait, BarrierError> {
        let mut waiting = Waiting::new(Deadline::NEVER, &NoInterrupt);
        self.wait_inner(&mut waiting, Duration::MAX)
    }

    /// Waits within `timeout`, giving up with [`BarrierError::Interrupted`] (and breaking the
    /// barrier) within 100 ms of `interrupt` saying stop.
    pub fn wait_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<BarrierWait, BarrierError> {
        let mut waiting = Waiting::new(timeout.deadline(), interrupt);
        self.wait_inner(&mut waiting, timeout.as_duration())
    }

    fn wait_inner(
        &self,
        waiting: &mut Waiting<'_>,
        timeout: Duration,
    ) -> Result<BarrierWait, BarrierError> {
        let parties = self.checked_parties()?;
        // The last arrival of a barrier without an action ends the generation in the same
        // compare-and-swap: nobody needs to watch it, so it needs no slot.
        if self.action.is_none() {
            let cur = self.load();
            if !cur.broken
                && cur.arrived + 1 == parties
                && self.transition(cur, cur.end_generation(false))
            {
                return Ok(BarrierWait {
                    index: cur.arrived,
                    generation: cur.generation,
                });
            }
        }
        let me = current_thread().owner_record();
        let slot = self.claim_slot(me, waiting, timeout, parties)?;
        let result = self.arrive_and_wait(&self.slots[slot], waiting, timeout, parties);
        // Release: our last reads of the barrier happen before a successor claims the slot.
        let _ = self.slots[slot].record.compare_exchange(
            me.raw(),
            0,
            Ordering::Release,
            Ordering::Relaxed,
        );
        result
    }

    /// Takes a free slot (or one whose holder died outside the current generation) for `me`.
    fn claim_slot(
        &self,
        me: Record,
        waiting: &mut Waiting<'_>,
        timeout: Duration,
        parties: u32,
    ) -> Result<usize, BarrierError> {
        let n = self.slots.len();
        let start = me.id() as usize % n;
        loop {
            for k in 0..n {
                let i = (start + k) % n;
                // AcqRel: Acquire pairs with the previous holder's Release when it freed it.
                if self.slots[i]
                    .record
                    .compare_exchange(0, me.raw(), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(i);
                }
            }
            // Every slot is held: by parties still on their way out of an ended generation
            // (they are running and free theirs soon), or by dead ones. A dead holder whose
            // tag names the current generation is evidence its watcher needs: left alone.
            let generation = self.load().generation;
            for (i, slot) in self.slots.iter().enumerate() {
                let held = slot.record.load(Ordering::Acquire);
                let stale = tag_generation(slot.tag.load(Ordering::Acquire)) != Some(generation);
                if held != 0
                    && stale
                    && Record::from_raw(held).thread_liveness() == Liveness::Dead
                    && slot
                        .record
                        .compare_exchange(held, me.raw(), Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    return Ok(i);
                }
            }
            match waiting.check() {
                Ok(()) => {}
                Err(Stop::TimedOut) => {
                    let cur = self.load();
                    return Err(BarrierError::Timeout {
                        waited: timeout,
                        arrived: cur.arrived,
                        parties,
                    });
                }
                Err(Stop::Interrupted) => return Err(BarrierError::Interrupted),
            }
            let seq = self.state.seq.load(Ordering::Acquire);
            let outcome = futex_wait(
                &self.state.seq,
                seq,
                waiting.sleep_deadline_capped(Duration::from_millis(1)),
            );
            waiting.slept(outcome);
        }
    }

    /// Arrives (holding `slot`) and waits for the generation to end.
    fn arrive_and_wait(
        &self,
        slot: &PartySlot,
        waiting: &mut Waiting<'_>,
        timeout: Duration,
        parties: u32,
    ) -> Result<BarrierWait, BarrierError> {
        loop {
            let cur = self.load();
            if cur.broken {
                return Err(BarrierError::Broken);
            }
            if cur.arrived > parties {
                return Err(BarrierError::Corrupt {
                    what: "more parties arrived than the barrier has",
                });
            }
            if cur.arrived == parties {
                // The last party of this generation runs the action; we belong to the next.
                self.await_next_generation(cur, waiting, timeout, parties)?;
                continue;
            }
            let index = cur.arrived;
            // Release: paired through the arrival CAS below with whoever reads our arrival
            // and then our tag (a watcher).
            slot.tag
                .store(tag(cur.generation, index), Ordering::Release);
            let arrival = Arrival {
                index,
                generation: cur.generation,
                parties,
            };
            if index + 1 < parties {
                let next = Packed {
                    arrived: index + 1,
                    ..cur
                };
                if self.swap_quietly(cur, next) {
                    return self.wait_for_end(arrival, waiting, timeout);
                }
            } else if let Some(action) = &self.action {
                let full = Packed {
                    arrived: parties,
                    ..cur
                };
                if self.swap_quietly(cur, full) {
                    return self.lead(&**action, full, arrival);
                }
            } else if self.transition(cur, cur.end_generation(false)) {
                return Ok(BarrierWait {
                    index,
                    generation: cur.generation,
                });
            }
        }
    }

    /// Runs the action as the last party, then ends the generation by its outcome.
    fn lead(
        &self,
        action: &BarrierAction,
        full: Packed,
        arrival: Arrival,
    ) -> Result<BarrierWait, BarrierError> {
        let outcome = catch_unwind(AssertUnwindSafe(action));
        let ok = matches!(outcome, Ok(Ok(())));
        // The action's writes are published by this AcqRel CAS to every waiter's Acquire.
        let ended = self.transition(
            full,
            if ok {
                full.end_generation(false)
            } else {
                full.broken_off()
            },
        );
        match outcome {
            Ok(Ok(())) if ended => Ok(BarrierWait {
                index: arrival.index,
                generation: arrival.generation,
            }),
            // Broken meanwhile (abort, reset, an interrupted or dead party).
            Ok(Ok(())) => Err(BarrierError::Broken),
            Ok(Err(e)) => Err(BarrierError::ActionFailed {
                message: e.to_string(),
            }),
            Err(panic) => resume_unwind(panic),
        }
    }

    /// A caller that arrived while the last party of `cur`'s generation runs the action waits
    /// for that generation to end. Its deadline ends the wait without breaking anything.
    fn await_next_generation(
        &self,
        cur: Packed,
        waiting: &mut Waiting<'_>,
        timeout: Duration,
        parties: u32,
    ) -> Result<(), BarrierError> {
        loop {
            let seq = self.state.seq.load(Ordering::Acquire);
            let now = self.load();
            if now.generation != cur.generation || now.broken {
                return Ok(());
            }
            match waiting.check() {
                Ok(()) => {}
                Err(Stop::TimedOut) => {
                    return Err(BarrierError::Timeout {
                        waited: timeout,
                        arrived: now.arrived,
                        parties,
                    })
                }
                Err(Stop::Interrupted) => return Err(BarrierError::Interrupted),
            }
            let outcome = futex_wait(
                &self.state.seq,
                seq,
                waiting.sleep_deadline_capped(DEATH_CHECK_INTERVAL),
            );
            waiting.slept(outcome);
        }
    }

    /// Waits until `arrival`'s generation ends, watching the next party for death.
    fn wait_for_end(
        &self,
        arrival: Arrival,
        waiting: &mut Waiting<'_>,
        timeout: Duration,
    ) -> Result<BarrierWait, BarrierError> {
        let mut spins = SpinCounter::new();
        let mut next_watch = 0u64;
        loop {
            // Acquire both: `seq` first, so a change after our read of `state` makes the futex
            // wait return at once (it compares `seq`).
            let seq = self.state.seq.load(Ordering::Acquire);
            let cur = self.load();
            if cur.generation != arrival.generation {
                return match cur.outcome_of(arrival.generation) {
                    Some(false) | None => Ok(BarrierWait {
                        index: arrival.index,
                        generation: arrival.generation,
                    }),
                    Some(true) => Err(BarrierError::Broken),
                };
            }
            let spinning = self.strategy.keeps_spinning(spins.count());
            if spinning && !spins.tick() {
                spin_hint();
                continue;
            }
            let now = monotonic_ns();
            match waiting.check_at(now) {
                Ok(()) => {}
                // Everyone has arrived and the last party runs the action: its outcome, not
                // our deadline, decides (as in Python, where the waiters cannot time out then).
                Err(Stop::TimedOut) if cur.arrived == arrival.parties => waiting.waive_deadline(),
                Err(stop) => {
                    // Break our generation for everyone. If the CAS loses, something changed:
                    // look again (maybe we were released just in time).
                    if self.transition(cur, cur.broken_off()) {
                        return Err(match stop {
                            Stop::TimedOut => BarrierError::Timeout {
                                waited: timeout,
                                arrived: cur.arrived,
                                parties: arrival.parties,
                            },
                            Stop::Interrupted => BarrierError::Interrupted,
                        });
                    }
                    continue;
                }
            }
            if next_watch == 0 {
                next_watch = now.saturating_add(DEATH_CHECK_INTERVAL.as_nanos() as u64);
            } else if now >= next_watch {
                next_watch = now.saturating_add(DEATH_CHECK_INTERVAL.as_nanos() as u64);
                if let Some(tid) = self.watched_party_gone(arrival, cur) {
                    if self.transition(cur, cur.broken_off()) {
                        return Err(BarrierError::PartyDied { tid });
                    }
                    continue;
                }
            }
            if spinning {
                spin_hint();
                continue;
            }
            let outcome = futex_wait(
                &self.state.seq,
                seq,
                waiting.sleep_deadline_capped(DEATH_CHECK_INTERVAL),
            );
            waiting.slept(outcome);
        }
    }

    /// Checks the party that arrived right after `arrival` (the last checks the first):
    /// its thread id if it died or its slot is gone. `cur` is the state read just before, so
    /// a generation that ended meanwhile makes the caller's breaking CAS fail harmlessly.
    #[cold]
    fn watched_party_gone(&self, arrival: Arrival, cur: Packed) -> Option<u32> {
        let n = cur.arrived.min(arrival.parties);
        if n < 2 {
            return None;
        }
        let want = tag(arrival.generation, (arrival.index + 1) % n);
        let mut found = false;
        for slot in self.slots.iter() {
            // Acquire: pairs with the holder's Release store of its tag; the record it claimed
            // before is visible with it.
            if slot.tag.load(Ordering::Acquire) != want {
                continue;
            }
            let held = Record::from_raw(slot.record.load(Ordering::Acquire));
            if held.is_none() {
                continue;
            }
            if held.thread_liveness() == Liveness::Dead {
                return Some(held.id());
            }
            found = true;
        }
        // Every party that arrived holds its slot, tagged, until its generation ends.
        (!found).then_some(0)
    }

    /// Breaks the barrier: current waiters get [`BarrierError::Broken`], and so does every
    /// arrival until [`reset`](Self::reset).
    pub fn abort(&self) {
        self.update(|cur| {
            if cur.arrived > 0 {
                cur.broken_off()
            } else {
                Packed {
                    broken: true,
                    ..cur
                }
            }
        });
    }

    /// Returns the barrier to its empty, unbroken state. Parties waiting now get
    /// [`BarrierError::Broken`].
    pub fn reset(&self) {
        self.update(|cur| {
            let ended = if cur.arrived > 0 {
                cur.end_generation(true)
            } else {
                cur
            };
            Packed {
                broken: false,
                ..ended
            }
        });
    }

    /// Applies `next` to the state until the transition wins (or changes nothing).
    fn update(&self, next: impl Fn(Packed) -> Packed) {
        loop {
            let cur = self.load();
            let to = next(cur);
            if cur == to || self.transition(cur, to) {
                return;
            }
            spin_hint();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_round_trips() {
        let p = Packed {
            arrived: 65535,
            broken: true,
            history: 0x5555,
            generation: u32::MAX,
        };
        assert_eq!(Packed::decode(p.encode()), p);
    }

    #[test]
    fn history_remembers_recent_outcomes_and_forgets_old_ones() {
        let mut p = Packed::decode(0);
        p = p.end_generation(true); // gen 0 broken
        p = p.end_generation(false); // gen 1 completed
        assert_eq!(p.outcome_of(0), Some(true));
        assert_eq!(p.outcome_of(1), Some(false));
        assert_eq!(
            p.outcome_of(2),
            None,
            "the current generation has not ended"
        );
        for _ in 0..BARRIER_HISTORY_LEN {
            p = p.end_generation(false);
        }
        assert_eq!(p.outcome_of(0), None);
    }

    #[test]
    fn a_single_party_barrier_never_blocks() {
        let b = Barrier::new_local(1);
        for g in 0..3 {
            let w = b.wait(Duration::ZERO).unwrap();
            assert_eq!(w.generation, g);
            assert!(w.is_leader(1));
        }
    }

    #[test]
    fn threads_meet_over_many_generations_with_one_leader_each() {
        const PARTIES: u32 = 4;
        let gens = if cfg!(miri) { 3 } else { 200 };
        let b = Arc::new(Barrier::new_local(PARTIES));
        let handles: Vec<_> = (0..PARTIES)
            .map(|i| {
                let b = Barrier::clone(&b).with_strategy(if i % 2 == 0 {
                    WaitStrategy::Block
                } else {
                    WaitStrategy::SpinThenBlock
                });
                std::thread::spawn(move || {
                    (0..gens)
                        .map(|_| b.wait(Duration::from_secs(30)).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<BarrierWait>> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        for g in 0..gens as usize {
            let mut indexes: Vec<u32> = results.iter().map(|r| r[g].index).collect();
            indexes.sort_unstable();
            assert_eq!(indexes, (0..PARTIES).collect::<Vec<_>>());
            assert!(results.iter().all(|r| r[g].generation == g as u32));
        }
    }

    #[test]
    fn a_timeout_breaks_the_barrier_for_everyone_until_reset() {
        let b = Arc::new(Barrier::new_local(3));
        let b2 = Barrier::clone(&b);
        let other = std::thread::spawn(move || b2.wait(Duration::from_secs(30)));
        while b.arrived() == 0 {
            std::thread::yield_now();
        }
        let mine = b.wait(Duration::from_millis(10));
        assert!(matches!(
            mine,
            Err(BarrierError::Timeout {
                arrived: 2,
                parties: 3,
                ..
            })
        ));
        assert_eq!(other.join().unwrap(), Err(BarrierError::Broken));
        assert!(b.is_broken());
        assert_eq!(b.wait(Duration::ZERO), Err(BarrierError::Broken));
        b.reset();
        assert!(!b.is_broken());
        assert_eq!(b.arrived(), 0);
    }

    #[test]
    fn abort_and_reset_release_waiters_as_broken() {
        for abort in [true, false] {
            let b = Arc::new(Barrier::new_local(2));
            let b2 = Barrier::clone(&b);
            let waiter = std::thread::spawn(move || b2.wait(Duration::from_secs(30)));
            while b.arrived() == 0 {
                std::thread::yield_now();
            }
            if abort {
                b.abort();
            } else {
                b.reset();
            }
            assert_eq!(waiter.join().unwrap(), Err(BarrierError::Broken));
            assert_eq!(b.is_broken(), abort);
        }
    }

    #[test]
    fn a_corrupt_party_count_is_an_error() {
        let b = Barrier::new_local(2);
        b.state.parties.store(0, Ordering::Relaxed);
        assert!(matches!(
            b.wait(Duration::ZERO),
            Err(BarrierError::Corrupt { .. })
        ));
        b.state.parties.store(2, Ordering::Relaxed);
        b.state.state.store(5, Ordering::Relaxed);
        assert!(matches!(
            b.wait(Duration::ZERO),
            Err(BarrierError::Corrupt { .. })
        ));
    }

    // ---- threading.Barrier semantics ----

    #[cfg(not(miri))]
    #[test]
    fn the_action_runs_once_per_generation_in_the_last_party_before_anyone_is_released() {
        use std::sync::atomic::{AtomicU32 as StdU32, Ordering as O};
        const PARTIES: u32 = 3;
        const GENERATIONS: u32 = 50;
        let runs = Arc::new(StdU32::new(0));
        let released = Arc::new(StdU32::new(0));
        let early = Arc::new(StdU32::new(0));
        let (r, rel, e) = (runs.clone(), released.clone(), early.clone());
        let b = Barrier::new_local(PARTIES).with_action(move || {
            let generation = r.fetch_add(1, O::SeqCst);
            // Every party of earlier generations has been released, none of this one.
            if rel.load(O::SeqCst) != generation * PARTIES {
                e.fetch_add(1, O::SeqCst);
            }
            Ok::<(), std::io::Error>(())
        });
        let handles: Vec<_> = (0..PARTIES)
            .map(|_| {
                let (b, runs, released) = (b.clone(), runs.clone(), released.clone());
                std::thread::spawn(move || {
                    let mut leaders = 0;
                    for g in 0..GENERATIONS {
                        let w = b.wait(Duration::from_secs(30)).unwrap();
                        assert!(runs.load(O::SeqCst) > g, "released before the action ran");
                        leaders += u32::from(w.is_leader(PARTIES));
                        released.fetch_add(1, O::SeqCst);
                        // Keep generations apart so the counter check above is exact.
                        while released.load(O::SeqCst) < (g + 1) * PARTIES {
                            std::thread::yield_now();
                        }
                    }
                    leaders
                })
            })
            .collect();
        let leaders: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(runs.load(O::SeqCst), GENERATIONS);
        assert_eq!(
            leaders, GENERATIONS,
            "one leader (the action's runner) per generation"
        );
        assert_eq!(
            early.load(O::SeqCst),
            0,
            "a party was released before the action"
        );
    }

    #[cfg(not(miri))]
    #[test]
    fn a_failing_action_breaks_the_barrier_for_everyone_and_tells_the_leader_why() {
        let b = Barrier::new_local(2).with_action(|| Err("calibration lost"));
        let other = {
            let b = b.clone();
            std::thread::spawn(move || b.wait(Duration::from_secs(30)))
        };
        while b.n_waiting() == 0 {
            std::thread::yield_now();
        }
        let mine = b.wait(Duration::from_secs(30));
        assert_eq!(
            mine,
            Err(BarrierError::ActionFailed {
                message: "calibration lost".into()
            })
        );
        assert_eq!(other.join().unwrap(), Err(BarrierError::Broken));
        assert!(b.is_broken());
        assert_eq!(b.n_waiting(), 0);
    }

    #[cfg(not(miri))]
    #[test]
    fn a_panicking_action_breaks_the_barrier_and_the_panic_reaches_the_leader() {
        let b = Barrier::new_local(2)
            .with_action(|| -> Result<(), std::io::Error> { panic!("action panicked") });
        let other = {
            let b = b.clone();
            std::thread::spawn(move || b.wait(Duration::from_secs(30)))
        };
        while b.n_waiting() == 0 {
            std::thread::yield_now();
        }
        let b2 = b.clone();
        let leader = std::thread::spawn(move || b2.wait(Duration::from_secs(30)));
        assert!(leader.join().is_err(), "the panic propagates in the leader");
        assert_eq!(other.join().unwrap(), Err(BarrierError::Broken));
        assert!(b.is_broken());
    }

    #[cfg(not(miri))]
    #[test]
    fn a_deadline_that_passes_while_the_action_runs_does_not_break_the_barrier() {
        let b = Barrier::new_local(2).with_action(|| {
            std::thread::sleep(Duration::from_millis(150));
            Ok::<(), std::io::Error>(())
        });
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || b.wait(Duration::from_millis(50)))
        };
        while b.n_waiting() == 0 {
            std::thread::yield_now();
        }
        let mine = b.wait(Duration::from_secs(30)).unwrap();
        assert!(mine.is_leader(2));
        assert_eq!(waiter.join().unwrap().map(|w| w.index), Ok(0));
        assert!(!b.is_broken());
    }

    #[test]
    fn parties_n_waiting_and_broken_are_readable_at_any_time() {
        let b = Barrier::new_local(3);
        assert_eq!((b.parties(), b.n_waiting(), b.is_broken()), (3, 0, false));
        b.abort();
        assert_eq!((b.parties(), b.n_waiting(), b.is_broken()), (3, 0, true));
        b.reset();
        assert!(!b.is_broken());
    }

    #[cfg(not(miri))]
    #[test]
    fn an_interrupted_wait_returns_within_100ms_and_breaks_the_barrier() {
        use std::sync::atomic::{AtomicBool, Ordering as O};
        let b = Barrier::new_local(3);
        let stop = Arc::new(AtomicBool::new(false));
        let other = {
            let b = b.clone();
            std::thread::spawn(move || b.wait(Duration::from_secs(30)))
        };
        let interrupted = {
            let (b, stop) = (b.clone(), stop.clone());
            std::thread::spawn(move || {
                let check = || stop.load(O::Relaxed);
                let r = b.wait_interruptible(Timeout::Forever, &check);
                (r, std::time::Instant::now())
            })
        };
        while b.n_waiting() < 2 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(80));
        let asked = std::time::Instant::now();
        stop.store(true, O::Relaxed);
        let (r, at) = interrupted.join().unwrap();
        assert_eq!(r, Err(BarrierError::Interrupted));
        assert!(at.duration_since(asked) < Duration::from_millis(100));
        assert_eq!(other.join().unwrap(), Err(BarrierError::Broken));
    }

    /// A party's slot naming a thread that has exited, at arrival index 0: the party that
    /// arrives next watches it and breaks the generation within a check interval or two.
    #[cfg(not(miri))]
    #[test]
    fn a_dead_party_is_found_by_its_watcher_and_breaks_the_barrier_at_once() {
        let b = Barrier::new_local(4);
        let dead = std::thread::spawn(|| current_thread().owner_record())
            .join()
            .unwrap();
        // As a party that claimed slot 0, tagged itself and arrived, then died.
        b.slots[0].record.store(dead.raw(), Ordering::Relaxed);
        b.slots[0].tag.store(tag(0, 0), Ordering::Relaxed);
        b.state.state.store(1, Ordering::Release);
        let other = {
            let b = b.clone();
            std::thread::spawn(move || b.wait(Duration::from_secs(30)))
        };
        let t0 = std::time::Instant::now();
        while b.n_waiting() < 2 {
            std::thread::yield_now();
        }
        // Our wait would never complete (one party is dead, one never comes); the watcher
        // breaks it.
        let mine = b.wait(Duration::from_secs(30));
        let took = t0.elapsed();
        let theirs = other.join().unwrap();
        assert!(
            [&mine, &theirs]
                .iter()
                .any(|r| matches!(r, Err(BarrierError::PartyDied { tid }) if *tid == dead.id())),
            "{mine:?} {theirs:?}"
        );
        assert!(took < Duration::from_millis(100), "took {took:?}");
        assert!(b.is_broken());
    }

    #[cfg(not(miri))]
    #[test]
    fn a_dead_partys_leftover_slot_is_reclaimed_once_its_generation_is_over() {
        let b = Barrier::new_local(1);
        let dead = std::thread::spawn(|| current_thread().owner_record())
            .join()
            .unwrap();
        for slot in b.slots.iter() {
            slot.record.store(dead.raw(), Ordering::Relaxed);
            slot.tag.store(tag(7, 0), Ordering::Relaxed);
        }
        let with_action = b.clone().with_action(|| Ok::<(), std::io::Error>(()));
        assert_eq!(
            with_action.wait(Duration::from_secs(5)).map(|w| w.index),
            Ok(0)
        );
    }
}
