//! The event: a flag that waiters in any process can sleep on (Python's `threading.Event`).
//!
//! One futex word: bit `SET`, and bit `WAITERS` that a waiter sets before it sleeps so that
//! `set` only pays for `FUTEX_WAKE` when somebody may be asleep. `set` swaps the word to exactly
//! `SET` (dropping `WAITERS`) and wakes everyone if `WAITERS` was there; a woken waiter that
//! must sleep again sets `WAITERS` again, so no wake-up is lost.

use super::{Pad, StateRef};
use crate::sync::{
    futex_wait, futex_wake, spin_hint, AtomicU32, Ordering, SpinCounter, WaitStrategy,
};
use crate::sys::clock::Deadline;
use shm_layout::{EVENT_SET, EVENT_WAITERS};
use std::fmt;
use std::time::Duration;

/// The event's shared state; byte-for-byte [`shm_layout::EventLayout`].
#[repr(C, align(64))]
pub(crate) struct EventState {
    word: AtomicU32,
    _reserved: Pad<60>,
}

#[cfg(not(loom))]
const _: () = {
    use shm_layout::EventLayout;
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<EventState>() == size_of::<EventLayout>());
    assert!(align_of::<EventState>() == align_of::<EventLayout>());
    assert!(offset_of!(EventState, word) == offset_of!(EventLayout, word));
};

impl EventState {
    pub(crate) fn new() -> Self {
        EventState {
            word: AtomicU32::new(0),
            _reserved: Pad::new(),
        }
    }
}

/// Why an event wait returned without the event being set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The deadline passed with the event still clear.
    #[error("timed out after {waited:?} waiting for the event to be set")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
    },
}

/// A process-shared event. `set` wakes every waiter in every process.
#[derive(Clone)]
pub struct Event {
    state: StateRef<EventState>,
    strategy: WaitStrategy,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("offset", &self.state.offset())
            .field("set", &self.is_set())
            .field("strategy", &self.strategy)
            .finish()
    }
}

impl Event {
    /// A clear event on the heap, shared between the threads of this process.
    pub fn new_local() -> Event {
        Event::from_state(StateRef::heap(EventState::new()))
    }

    pub(crate) fn from_state(state: StateRef<EventState>) -> Event {
        Event {
            state,
            strategy: WaitStrategy::Block,
        }
    }

    /// Offset of the event in its segment (`None` for a local event).
    pub fn offset(&self) -> Option<u64> {
        self.state.offset()
    }

    /// This handle with another wait strategy (each waiter chooses its own).
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> Event {
        self.strategy = strategy;
        self
    }

    /// The strategy [`wait`](Self::wait) uses through this handle.
    pub fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Sets the event and wakes every waiter.
    #[inline]
    pub fn set(&self) {
        // Release: pairs with the Acquire load in `wait`, publishing what was written before.
        let old = self.state.word.swap(EVENT_SET, Ordering::Release);
        if old & EVENT_WAITERS != 0 {
            futex_wake(&self.state.word, u32::MAX);
        }
    }

    /// Clears the event; waiters that arrive later wait for the next `set`.
    #[inline]
    pub fn clear(&self) {
        if self.state.word.load(Ordering::Relaxed) & EVENT_SET != 0 {
            self.state.word.fetch_and(!EVENT_SET, Ordering::Relaxed);
        }
    }

    /// Is the event set?
    #[inline]
    pub fn is_set(&self) -> bool {
        self.state.word.load(Ordering::Acquire) & EVENT_SET != 0
    }

    /// Waits until the event is set, at most `timeout`, with this handle's strategy.
    pub fn wait(&self, timeout: Duration) -> Result<(), EventError> {
        self.wait_until(self.strategy, Deadline::after(timeout), timeout)
    }

    /// Waits until the event is set, at most `timeout`, with `strategy`.
    pub fn wait_with(&self, strategy: WaitStrategy, timeout: Duration) -> Result<(), EventError> {
        self.wait_until(strategy, Deadline::after(timeout), timeout)
    }

    /// Waits as long as it takes for the event to be set.
    pub fn wait_forever(&self) {
        // A deadline of never cannot time out.
        let _ = self.wait_until(self.strategy, Deadline::NEVER, Duration::MAX);
    }

    #[inline]
    fn wait_until(
        &self,
        strategy: WaitStrategy,
        deadline: Deadline,
        timeout: Duration,
    ) -> Result<(), EventError> {
        let word = &self.state.word;
        // Acquire: pairs with the Release swap in `set`.
        if word.load(Ordering::Acquire) & EVENT_SET != 0 {
            return Ok(());
        }
        let mut spins = SpinCounter::new();
        loop {
            let w = word.load(Ordering::Acquire);
            if w & EVENT_SET != 0 {
                return Ok(());
            }
            let spinning = strategy.keeps_spinning(spins.count());
            if spinning {
                if spins.tick() && deadline.expired() {
                    return Err(EventError::Timeout { waited: timeout });
                }
                spin_hint();
                continue;
            }
            if deadline.expired() {
                return Err(EventError::Timeout { waited: timeout });
            }
            if w & EVENT_WAITERS == 0
                && word
                    .compare_exchange(w, w | EVENT_WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            futex_wait(word, w | EVENT_WAITERS, deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn set_clear_and_is_set() {
        let e = Event::new_local();
        assert!(!e.is_set());
        e.set();
        assert!(e.is_set());
        e.set();
        assert!(e.is_set());
        e.clear();
        assert!(!e.is_set());
    }

    #[test]
    fn wait_on_a_set_event_returns_at_once_with_every_strategy() {
        let e = Event::new_local();
        e.set();
        for s in [
            WaitStrategy::Block,
            WaitStrategy::Spin,
            WaitStrategy::SpinThenBlock,
        ] {
            assert_eq!(e.wait_with(s, Duration::ZERO), Ok(()));
        }
    }

    #[test]
    fn wait_times_out_on_a_clear_event() {
        let e = Event::new_local();
        for s in [
            WaitStrategy::Block,
            WaitStrategy::Spin,
            WaitStrategy::SpinThenBlock,
        ] {
            assert_eq!(
                e.wait_with(s, Duration::from_millis(5)),
                Err(EventError::Timeout {
                    waited: Duration::from_millis(5)
                })
            );
        }
    }

    #[test]
    fn set_wakes_every_thread_waiting() {
        let e = Arc::new(Event::new_local());
        let strategies = [
            WaitStrategy::Block,
            WaitStrategy::Spin,
            WaitStrategy::SpinThenBlock,
            WaitStrategy::Block,
        ];
        let waiters: Vec<_> = strategies
            .into_iter()
            .map(|s| {
                let e = Event::clone(&e);
                std::thread::spawn(move || e.wait_with(s, Duration::from_secs(30)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        e.set();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Ok(()));
        }
    }
}
