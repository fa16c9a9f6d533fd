//! How a waiter waits: the futex (or its loom model), spinning, and the per-waiter strategy.

use super::AtomicU32;
use crate::sys::clock::Deadline;
use crate::sys::futex_types::FutexWait;

/// How a thread waits for an event or a barrier.
///
/// Blocking costs a system call on each side (a few microseconds to wake up) but no CPU while
/// waiting; spinning answers within a cache-line transfer but burns a core. Real-time loops on
/// dedicated cores spin; everything else blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitStrategy {
    /// Sleep in the kernel (futex) until woken.
    #[default]
    Block,
    /// Poll the shared word without sleeping until the condition holds or the deadline passes.
    Spin,
    /// Poll for a short while (about [`WaitStrategy::SPIN_ITERATIONS`] polls), then sleep.
    SpinThenBlock,
}

impl WaitStrategy {
    /// Polls made by [`WaitStrategy::SpinThenBlock`] before it sleeps: a count, not a time —
    /// from a few µs to ~65 µs (measured on a CPU whose pause instruction takes ~16 ns).
    pub const SPIN_ITERATIONS: u32 = 4_000;

    /// Should a waiter that has polled `spins` times poll again rather than sleep?
    pub(crate) fn keeps_spinning(self, spins: u32) -> bool {
        match self {
            WaitStrategy::Spin => true,
            WaitStrategy::SpinThenBlock => spins < Self::SPIN_ITERATIONS,
            WaitStrategy::Block => false,
        }
    }
}

/// Counts polls and decides when a spinning waiter should look at the clock: reading
/// `CLOCK_MONOTONIC` (tens of nanoseconds) on every poll would dominate a spin loop.
pub(crate) struct SpinCounter(u32);

impl SpinCounter {
    pub(crate) fn new() -> Self {
        SpinCounter(0)
    }

    /// Records one poll; true every 64th, when the caller should check its deadline.
    pub(crate) fn tick(&mut self) -> bool {
        self.0 = self.0.wrapping_add(1);
        self.0 % 64 == 0
    }

    /// Polls made so far.
    pub(crate) fn count(&self) -> u32 {
        self.0
    }
}

/// One polite pause inside a spin loop (yields to loom's scheduler when model checking).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Sleeps while `word == expected`, until woken or `deadline`. May return spuriously.
#[cfg(not(loom))]
#[inline]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> FutexWait {
    crate::sys::futex::wait(word, expected, deadline)
}

/// Wakes up to `count` waiters on `word`.
#[cfg(not(loom))]
#[inline]
pub(crate) fn futex_wake(word: &AtomicU32, count: u32) {
    crate::sys::futex::wake(word, count);
}

/// loom model of a futex wait: re-check the word, then let another thread run.
#[cfg(loom)]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, _deadline: Deadline) -> FutexWait {
    if word.load(super::Ordering::SeqCst) != expected {
        return FutexWait::Changed;
    }
    loom::thread::yield_now();
    FutexWait::Woken
}

/// loom model of a futex wake: waiters poll, so there is nothing to do.
#[cfg(loom)]
pub(crate) fn futex_wake(_word: &AtomicU32, _count: u32) {}
