//! Futex wait and wake on a 32-bit word in (possibly shared) memory, through rustix's safe
//! wrappers.
//!
//! The words live in a `MAP_SHARED` mapping used by several processes, so the operations are
//! the shared (not `FUTEX_PRIVATE_FLAG`) variants. Waits take an absolute `CLOCK_MONOTONIC`
//! deadline through `FUTEX_WAIT_BITSET`, so a wait that is interrupted and restarted never
//! extends its deadline.

use super::clock::Deadline;
use rustix::io::Errno;
use rustix::thread::futex::{self, Flags, Timespec};
use std::num::NonZeroU32;
use std::sync::atomic::AtomicU32;

pub use super::futex_types::FutexWait;

/// `FUTEX_BITSET_MATCH_ANY`: wake-ups of any bitset reach this waiter.
const MATCH_ANY: NonZeroU32 = NonZeroU32::MAX;

/// Sleeps while `*word == expected`, until woken or until `deadline`.
pub fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> FutexWait {
    let ts = deadline.as_ns().map(|ns| Timespec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as _,
    });
    // FUTEX_WAIT_BITSET without FUTEX_CLOCK_REALTIME reads the timeout as absolute
    // CLOCK_MONOTONIC.
    match futex::wait_bitset(word, Flags::empty(), expected, ts.as_ref(), MATCH_ANY) {
        Ok(()) => FutexWait::Woken,
        Err(Errno::AGAIN) => FutexWait::Changed,
        Err(Errno::TIMEDOUT) => FutexWait::TimedOut,
        Err(Errno::INTR) => FutexWait::Interrupted,
        // EFAULT/EINVAL cannot happen for a borrowed aligned word; treat as spurious so the
        // caller re-checks its condition and its deadline.
        Err(_) => FutexWait::Woken,
    }
}

/// Wakes up to `count` threads (in any process) sleeping on `word`; returns how many woke.
pub fn wake(word: &AtomicU32, count: u32) -> usize {
    futex::wake(word, Flags::empty(), count.min(i32::MAX as u32)).unwrap_or(0)
}
