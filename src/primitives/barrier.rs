//! The barrier: `parties` callers meet, then all go on (Python's `threading.Barrier`).
//!
//! All decisions are one compare-and-swap on the packed 64-bit `state` (see
//! `shm-layout/src/barrier.rs`): arriving, completing a generation, breaking it, resetting. A
//! generation ends by completion or by breaking, and the ending CAS shifts its outcome into
//! `history`, so a waiter that wakes late still learns how *its* generation ended even if the
//! barrier has been reset and reused since. Waiters sleep on the 32-bit `seq` word, which every
//! state change increments before waking them.
//!
//! A timeout, [`Barrier::abort`] or [`Barrier::reset`] breaks the current generation: every
//! waiter gets [`BarrierError::Broken`] (the one that timed out gets `Timeout`). After a timeout
//! or abort the barrier stays broken until `reset`. A party that dies while others wait cannot
//! keep them past their deadline: the first deadline to pass breaks the barrier for all.

use super::StateRef;
use crate::sync::Pad;
use crate::sync::{
    futex_wait, futex_wake, spin_hint, AtomicU32, AtomicU64, Ordering, SpinCounter, WaitStrategy,
};
use crate::sys::clock::Deadline;
use shm_layout::{
    BARRIER_ARRIVED_MASK, BARRIER_BROKEN, BARRIER_GENERATION_SHIFT, BARRIER_HISTORY_LEN,
    BARRIER_HISTORY_SHIFT, BARRIER_MAX_PARTIES,
};
use std::fmt;
use std::time::Duration;

/// The barrier's shared state; byte-for-byte [`shm_layout::BarrierLayout`].
#[repr(C, align(64))]
pub(crate) struct BarrierState {
    seq: AtomicU32,
    parties: AtomicU32,
    state: AtomicU64,
    _reserved: Pad<48>,
}

#[cfg(not(loom))]
const _: () = {
    use shm_layout::BarrierLayout;
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<BarrierState>() == size_of::<BarrierLayout>());
    assert!(align_of::<BarrierState>() == align_of::<BarrierLayout>());
    assert!(offset_of!(BarrierState, seq) == offset_of!(BarrierLayout, seq));
    assert!(offset_of!(BarrierState, parties) == offset_of!(BarrierLayout, parties));
    assert!(offset_of!(BarrierState, state) == offset_of!(BarrierLayout, state));
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
    /// Arrival order in this generation, `0..parties` (`parties - 1` arrived last).
    pub index: u32,
    /// The generation that was completed.
    pub generation: u32,
}

impl BarrierWait {
    /// Exactly one caller per generation is the leader: the last to arrive.
    pub fn is_leader(&self, parties: u32) -> bool {
        self.index + 1 == parties
    }
}

/// Why a barrier wait failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarrierError {
    /// The barrier was broken (by another party's timeout, `abort` or `reset`); call `reset`
    /// before using it again.
    #[error("barrier is broken (a party timed out, or it was aborted or reset)")]
    Broken,
    /// This caller's deadline passed; the barrier is now broken for every party.
    #[error("timed out after {waited:?} with {arrived} of {parties} parties arrived; the barrier is now broken")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
        /// Parties that had arrived.
        arrived: u32,
        /// Parties expected.
        parties: u32,
    },
    /// The barrier's bytes hold values no shmkit process writes.
    #[error("corrupt barrier: {what}")]
    Corrupt {
        /// Which field.
        what: &'static str,
    },
}

/// A process-shared, reusable barrier for a fixed number of parties.
#[derive(Clone)]
pub struct Barrier {
    state: StateRef<BarrierState>,
    strategy: WaitStrategy,
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
            .finish()
    }
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
        Barrier::from_state(StateRef::heap(BarrierState::new(parties)))
    }

    pub(crate) fn from_state(state: StateRef<BarrierState>) -> Barrier {
        Barrier {
            state,
            strategy: WaitStrategy::Block,
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

    /// Number of parties, as stored in the barrier.
    pub fn parties(&self) -> u32 {
        self.state.parties.load(Ordering::Relaxed)
    }

    /// Parties waiting in the current generation.
    pub fn arrived(&self) -> u32 {
        Packed::decode(self.state.state.load(Ordering::Relaxed)).arrived
    }

    /// Is the barrier broken?
    pub fn is_broken(&self) -> bool {
        Packed::decode(self.state.state.load(Ordering::Acquire)).broken
    }

    fn checked_parties(&self) -> Result<u32, BarrierError> {
        let parties = self.parties();
        if !(1..=BARRIER_MAX_PARTIES).contains(&parties) {
            return Err(BarrierError::Corrupt {
                what: "party count outside 1..=65535",
            });
        }
        Ok(parties)
    }

    /// Swaps `state` from `from` to `to`; on success bumps `seq` and wakes every waiter.
    fn transition(&self, from: Packed, to: Packed) -> bool {
        // AcqRel: the winner publishes its transition and sees every earlier one.
        let ok = self
            .state
            .state
            .compare_exchange(
                from.encode(),
                to.encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if ok {
            // Release: a waiter that reads the new `seq` (Acquire) then reads the new `state`.
            self.state.seq.fetch_add(1, Ordering::Release);
            futex_wake(&self.state.seq, u32::MAX);
        }
        ok
    }

    /// Waits for all parties, at most `timeout`.
    pub fn wait(&self, timeout: Duration) -> Result<BarrierWait, BarrierError> {
        self.wait_until(Deadline::after(timeout), timeout)
    }

    /// Waits for all parties as long as it takes (until they come, or another party breaks it).
    pub fn wait_forever(&self) -> Result<BarrierWait, BarrierError> {
        self.wait_until(Deadline::NEVER, Duration::MAX)
    }

    fn wait_until(
        &self,
        deadline: Deadline,
        timeout: Duration,
    ) -> Result<BarrierWait, BarrierError> {
        let parties = self.checked_parties()?;
        // Arrive.
        let (generation, index) = loop {
            let cur = Packed::decode(self.state.state.load(Ordering::Acquire));
            if cur.broken {
                return Err(BarrierError::Broken);
            }
            if cur.arrived >= parties {
                return Err(BarrierError::Corrupt {
                    what: "more parties arrived than the barrier has",
                });
            }
            if cur.arrived + 1 == parties {
                if self.transition(cur, cur.end_generation(false)) {
                    return Ok(BarrierWait {
                        index: cur.arrived,
                        generation: cur.generation,
                    });
                }
            } else {
                let next = Packed {
                    arrived: cur.arrived + 1,
                    ..cur
                };
                if self.transition(cur, next) {
                    break (cur.generation, cur.arrived);
                }
            }
        };
        // Wait for our generation to end.
        let mut spins = SpinCounter::new();
        loop {
            // Acquire both: `seq` first, so a change after our read of `state` makes the futex
            // wait return at once (it compares `seq`).
            let seq = self.state.seq.load(Ordering::Acquire);
            let cur = Packed::decode(self.state.state.load(Ordering::Acquire));
            if cur.generation != generation {
                return match cur.outcome_of(generation) {
                    Some(false) | None => Ok(BarrierWait { index, generation }),
                    Some(true) => Err(BarrierError::Broken),
                };
            }
            if deadline.expired() {
                // Break our generation for everyone. If the CAS loses, something changed:
                // look again (maybe we were released just in time).
                if self.transition(
                    cur,
                    Packed {
                        broken: true,
                        ..cur
                    }
                    .end_generation(true),
                ) {
                    return Err(BarrierError::Timeout {
                        waited: timeout,
                        arrived: cur.arrived,
                        parties,
                    });
                }
                continue;
            }
            let spinning = self.strategy.keeps_spinning(spins.count());
            if spinning {
                spins.tick();
                spin_hint();
                continue;
            }
            futex_wait(&self.state.seq, seq, deadline);
        }
    }

    /// Breaks the barrier: current waiters get [`BarrierError::Broken`], and so does every
    /// arrival until [`reset`](Self::reset).
    pub fn abort(&self) {
        self.update(|cur| {
            let broken = Packed {
                broken: true,
                ..cur
            };
            if cur.arrived > 0 {
                broken.end_generation(true)
            } else {
                broken
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
            let cur = Packed::decode(self.state.state.load(Ordering::Acquire));
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
    use std::sync::Arc;

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
}
