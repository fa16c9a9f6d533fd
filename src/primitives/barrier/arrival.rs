//! The arrival algorithm: claiming a party slot, arriving, leading a generation's end (with
//! the action), waiting for it, and watching the next party's slot for a death.

use super::error::{BarrierAction, BarrierError, BarrierWait};
use super::state::{tag, tag_generation, Packed, PartySlot};
use super::Barrier;
use crate::primitives::DEATH_CHECK_INTERVAL;
use crate::sync::{futex_wait, futex_wake, spin_hint, Ordering, SpinCounter, Stop, Waiting};
use crate::sys::clock::monotonic_ns;
use crate::sys::identity::{current_thread, Liveness, Record};
use shm_layout::BARRIER_MAX_PARTIES;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Where a waiting party stands in its generation.
#[derive(Clone, Copy)]
pub(super) struct Arrival {
    pub(super) index: u32,
    pub(super) generation: u32,
    pub(super) parties: u32,
}

impl Barrier {
    pub(super) fn checked_parties(&self) -> Result<u32, BarrierError> {
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

    pub(super) fn load(&self) -> Packed {
        // Acquire: pairs with the AcqRel of every transition, so a party's slot tag (written
        // before its arrival CAS) is visible to whoever sees the arrival.
        Packed::decode(self.state.state.load(Ordering::Acquire))
    }

    /// Swaps `state` from `from` to `to` without waking anyone (an arrival).
    pub(super) fn swap_quietly(&self, from: Packed, to: Packed) -> bool {
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
    pub(super) fn transition(&self, from: Packed, to: Packed) -> bool {
        let ok = self.swap_quietly(from, to);
        if ok {
            // Release: a waiter that reads the new `seq` (Acquire) then reads the new `state`.
            self.state.seq.fetch_add(1, Ordering::Release);
            futex_wake(&self.state.seq, u32::MAX);
        }
        ok
    }

    pub(super) fn wait_inner(
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
    pub(super) fn claim_slot(
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
    pub(super) fn arrive_and_wait(
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
    pub(super) fn lead(
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
    pub(super) fn await_next_generation(
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
    pub(super) fn wait_for_end(
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
    pub(super) fn watched_party_gone(&self, arrival: Arrival, cur: Packed) -> Option<u32> {
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

    /// Applies `next` to the state until the transition wins (or changes nothing).
    pub(super) fn update(&self, next: impl Fn(Packed) -> Packed) {
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
