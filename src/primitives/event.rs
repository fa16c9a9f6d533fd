//! The event: a flag that waiters in any process can sleep on (Python's `threading.Event`).
//!
//! One futex word (table in `shm-layout/src/event.rs`): a set/clear counter that is odd while
//! the event is set, and bit `WAITERS` that a waiter sets before it sleeps so that `set` only
//! pays for `FUTEX_WAKE` when somebody may be asleep.
//!
//! A waiter remembers the counter it found when it started waiting and returns as soon as the
//! counter differs: from an even (clear) value the only way on is a `set`, so a waiter present
//! at a `set` is released even if `clear` follows before it runs again. `set` is one
//! `fetch_or` (no system call unless `WAITERS` was there); when it wakes, it first drops
//! `WAITERS` from the set word so later `set`s stay free of system calls, and wakes after
//! that, so a waiter that set the bit meanwhile is either asleep (woken) or sees the changed
//! word (its futex wait returns at once).

use super::StateRef;
use crate::sync::{
    futex_wait, futex_wake, spin_hint, AtomicU32, Interrupt, NoInterrupt, Ordering, SpinCounter,
    Stop, Timeout, WaitStrategy, Waiting,
};
use crate::sync::{shared_view, Reserved};
use shm_layout::{EventLayout, EVENT_COUNTER_MASK, EVENT_SET, EVENT_WAITERS};
use std::fmt;

shared_view! {
    /// The event's shared state; byte-for-byte [`shm_layout::EventLayout`].
    pub(crate) struct EventState mirrors EventLayout, align(64) {
        word: AtomicU32,
        reserved0: Reserved<u32>,
        reserved: Reserved<[u64; 7]>,
    }
}

impl EventState {
    pub(crate) fn new() -> Self {
        EventState {
            word: AtomicU32::new(0),
            reserved0: Reserved::new(),
            reserved: Reserved::new(),
        }
    }
}

/// Why an interruptible event wait returned without an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The caller's interrupt check said stop before the event was set.
    #[error("interrupted while waiting for the event to be set")]
    Interrupted,
}

/// A process-shared event, as `threading.Event`: `set` wakes every waiter in every process
/// (even one that finds the event cleared again by the time it runs), and
/// [`wait`](Self::wait) returns whether the event was set (`false` only on timeout; a zero
/// timeout polls).
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

    /// Sets the event and wakes every waiter, including those that will see it cleared
    /// again by the time they run. Setting a set event does nothing.
    #[inline]
    pub fn set(&self) {
        let word = &self.state.word;
        // Release: pairs with the Acquire loads in `wait`, publishing what was written before.
        // An odd (set) counter is left as it is; an even one becomes the next odd value. Only
        // the set bit of the old value is used, so this is one `lock bts` on x86: a single
        // cache-line transfer, where a full old value would cost a load and a CAS loop.
        if word.fetch_or(EVENT_SET, Ordering::Release) & EVENT_SET == 0 {
            // The same word right after our RMW reads our value or a later one. A waiter's
            // CAS that sets WAITERS expects an even word, so it cannot succeed after our RMW
            // until a `clear`: the bit, if a sleeper of ours set it, is in what we read.
            let w = word.load(Ordering::Relaxed);
            if w & EVENT_WAITERS != 0 {
                self.wake_all(w);
            }
        }
    }

    #[cold]
    fn wake_all(&self, seen: u32) {
        let word = &self.state.word;
        // Drop the bit only from a set word: an even (cleared since) word's bit may belong to
        // a new waiter of the next `set`. Relaxed: the Release that matters was the `fetch_or`.
        // Waking after the CAS covers every sleeper of the old value: asleep, it is woken;
        // not yet asleep, its futex wait finds another value and returns.
        if seen & EVENT_SET != 0 {
            let _ = word.compare_exchange(
                seen,
                seen & !EVENT_WAITERS,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        futex_wake(word, u32::MAX);
    }

    /// Clears the event; waiters that arrive later wait for the next `set`.
    #[inline]
    pub fn clear(&self) {
        let word = &self.state.word;
        let mut w = word.load(Ordering::Relaxed);
        // The odd counter becomes the next even one; `WAITERS` is kept (those waiters still
        // sleep and the next `set` must wake them).
        while w & EVENT_SET != 0 {
            let next = (w & EVENT_WAITERS) | (w.wrapping_add(1) & EVENT_COUNTER_MASK);
            match word.compare_exchange_weak(w, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => w = now,
            }
        }
    }

    /// Is the event set?
    #[inline]
    pub fn is_set(&self) -> bool {
        self.state.word.load(Ordering::Acquire) & EVENT_SET != 0
    }

    /// Waits until the event is set, at most `timeout` (a [`Duration`](std::time::Duration), or
    /// [`Timeout::Forever`]), with this handle's strategy. True if it was set (as
    /// `threading.Event.wait`); a zero timeout only polls.
    #[must_use = "false means the timeout passed with the event clear"]
    pub fn wait(&self, timeout: impl Into<Timeout>) -> bool {
        match self.arm() {
            Ok(()) => true,
            Err(ticket) => {
                let mut waiting = Waiting::new(timeout.into().deadline(), &NoInterrupt);
                self.wait_armed(ticket, self.strategy, &mut waiting).is_ok()
            }
        }
    }

    /// Waits within `timeout` and gives up with [`EventError::Interrupted`] within 100 ms of
    /// `interrupt` saying stop. `Ok(true)` if the event was set, `Ok(false)` on timeout.
    pub fn wait_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<bool, EventError> {
        match self.arm() {
            Ok(()) => Ok(true),
            Err(ticket) => {
                let mut waiting = Waiting::new(timeout.deadline(), interrupt);
                match self.wait_armed(ticket, self.strategy, &mut waiting) {
                    Ok(()) => Ok(true),
                    Err(Stop::TimedOut) => Ok(false),
                    Err(Stop::Interrupted) => Err(EventError::Interrupted),
                }
            }
        }
    }

    /// Starts a wait: `Ok` if the event is set now, else the ticket [`fired`](Self::fired)
    /// compares against.
    #[inline]
    pub(crate) fn arm(&self) -> Result<(), u32> {
        // Acquire: pairs with the Release `fetch_or` in `set`.
        let w = self.state.word.load(Ordering::Acquire);
        if w & EVENT_SET != 0 {
            Ok(())
        } else {
            Err(w & EVENT_COUNTER_MASK)
        }
    }

    /// Has a `set` happened since [`arm`](Self::arm) returned `ticket`? The counter moves
    /// away from an even value only through a `set`. Also returns the word it read.
    #[inline]
    fn fired(word: &AtomicU32, ticket: u32) -> (bool, u32) {
        // Acquire: pairs with the Release `fetch_or` in `set` (a `clear` after it continues
        // its release sequence, so a cleared-again word still publishes the setter's writes).
        let w = word.load(Ordering::Acquire);
        (w & EVENT_COUNTER_MASK != ticket, w)
    }

    /// The wait after [`arm`](Self::arm): until the counter leaves `ticket`, the deadline, or
    /// the interrupt.
    pub(crate) fn wait_armed(
        &self,
        ticket: u32,
        strategy: WaitStrategy,
        waiting: &mut Waiting<'_>,
    ) -> Result<(), Stop> {
        let word = &self.state.word;
        let mut spins = SpinCounter::new();
        loop {
            let (fired, w) = Self::fired(word, ticket);
            if fired {
                return Ok(());
            }
            let spinning = strategy.keeps_spinning(spins.count());
            if spinning {
                if spins.tick() {
                    waiting.check()?;
                }
                spin_hint();
                continue;
            }
            waiting.check()?;
            if w & EVENT_WAITERS == 0
                && word
                    .compare_exchange(w, w | EVENT_WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let outcome = futex_wait(word, w | EVENT_WAITERS, waiting.sleep_deadline());
            waiting.slept(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::clock::Deadline;
    use std::sync::Arc;
    use std::time::Duration;

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
            assert!(e.clone().with_strategy(s).wait(Duration::ZERO));
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
            assert!(!e.clone().with_strategy(s).wait(Duration::from_millis(5)));
            assert!(
                !e.clone().with_strategy(s).wait(Duration::ZERO),
                "a zero timeout polls"
            );
        }
    }

    /// Starts one waiting thread per strategy, lets the blocking ones fall asleep, sets the
    /// event (and clears it at once if `clear_at_once`), and checks every waiter returned `Ok`.
    fn wake_a_thread_per_strategy(clear_at_once: bool, round: u32) {
        let e = Arc::new(Event::new_local());
        let strategies = [
            WaitStrategy::Block,
            WaitStrategy::Spin,
            WaitStrategy::SpinThenBlock,
            WaitStrategy::Block,
        ];
        let armed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waiters: Vec<_> = strategies
            .into_iter()
            .map(|s| {
                let e = Event::clone(&e);
                let armed = Arc::clone(&armed);
                std::thread::spawn(move || {
                    // A thread is waiting from the moment it holds its ticket; counting that
                    // moment (not guessing it with a sleep) keeps a thread that only starts
                    // after the clear, and rightly sleeps on, out of the test.
                    let Err(ticket) = e.arm() else { return true };
                    armed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let mut waiting =
                        Waiting::new(Deadline::after(Duration::from_secs(30)), &NoInterrupt);
                    e.wait_armed(ticket, s, &mut waiting).is_ok()
                })
            })
            .collect();
        while armed.load(std::sync::atomic::Ordering::SeqCst) < strategies.len() {
            std::thread::yield_now();
        }
        // Time for the blocking ones to fall asleep in the futex (the test holds without it,
        // but then it would only exercise the spinning hand-over).
        std::thread::sleep(Duration::from_millis(20));
        e.set();
        if clear_at_once {
            e.clear();
            assert!(!e.is_set());
        }
        for (i, w) in waiters.into_iter().enumerate() {
            assert!(w.join().unwrap(), "round {round}, waiter {i} slept on");
        }
    }

    /// Python's `threading.Event`: every thread waiting when `set()` is called is awakened,
    /// even if `clear()` follows at once, with every strategy.
    #[cfg(not(miri))]
    #[test]
    fn set_then_clear_at_once_wakes_every_thread_waiting() {
        for round in 0..20 {
            wake_a_thread_per_strategy(true, round);
        }
    }

    #[test]
    fn a_wait_that_starts_after_set_then_clear_waits_for_the_next_set() {
        let e = Event::new_local();
        e.set();
        e.clear();
        assert!(!e.wait(Duration::from_millis(5)));
        e.set();
        assert!(e.wait(Duration::ZERO));
    }

    #[test]
    fn the_counter_wraps_without_losing_the_flag_or_the_waiters_bit() {
        let e = Event::new_local();
        e.state
            .word
            .store((EVENT_COUNTER_MASK - 1) | EVENT_WAITERS, Ordering::Relaxed);
        assert!(!e.is_set());
        e.set();
        assert!(e.is_set());
        assert_eq!(e.state.word.load(Ordering::Relaxed), EVENT_COUNTER_MASK);
        e.state
            .word
            .store(EVENT_COUNTER_MASK | EVENT_WAITERS, Ordering::Relaxed);
        e.clear();
        assert!(!e.is_set());
        assert_eq!(e.state.word.load(Ordering::Relaxed), EVENT_WAITERS);
    }

    #[test]
    fn set_wakes_every_thread_waiting() {
        wake_a_thread_per_strategy(false, 0);
    }
}
