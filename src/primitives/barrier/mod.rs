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
//! (table in `shm-layout`). Each waiter checks, every [`DEATH_CHECK_INTERVAL`](crate::primitives::DEATH_CHECK_INTERVAL), the slot of the
//! party that arrived right after it (the last arrival checks the first), so every party is
//! watched by one other and a dead one breaks the generation within one interval, not at the
//! others' deadlines. A party that dies while *entering* (between claiming its slot and its
//! arrival) breaks it too, once a party waits at its arrival index: it cannot be told from one
//! that died just after.

mod arrival;
mod error;
mod state;
#[cfg(test)]
mod tests;

pub use error::{BarrierAction, BarrierError, BarrierWait};
pub(crate) use state::{BarrierState, PartySlot};

use crate::primitives::{StateRef, StateSlice};
use crate::sync::{Interrupt, NoInterrupt, Ordering, Timeout, WaitStrategy, Waiting};
use shm_layout::BARRIER_MAX_PARTIES;
use state::Packed;
use std::fmt;
use std::sync::Arc;

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

    /// Waits for all parties, at most `timeout` (a [`Duration`](std::time::Duration), or [`Timeout::Forever`]:
    /// until they come, or another party breaks it).
    pub fn wait(&self, timeout: impl Into<Timeout>) -> Result<BarrierWait, BarrierError> {
        let timeout = timeout.into();
        let mut waiting = Waiting::new(timeout.deadline(), &NoInterrupt);
        self.wait_inner(&mut waiting, timeout.as_duration())
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
}
