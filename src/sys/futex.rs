//! Futex wait and wake on a 32-bit word in (possibly shared) memory.
//!
//! The words live in a `MAP_SHARED` mapping used by several processes, so the operations are
//! the shared (not `FUTEX_PRIVATE_FLAG`) variants. Waits take an absolute `CLOCK_MONOTONIC`
//! deadline through `FUTEX_WAIT_BITSET`, so a wait that is interrupted and restarted never
//! extends its deadline.

use super::clock::Deadline;
use std::sync::atomic::AtomicU32;

pub use super::futex_types::FutexWait;

/// Sleeps while `*word == expected`, until woken or until `deadline`.
pub fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> FutexWait {
    let ts;
    let ts_ptr = match deadline.as_ns() {
        Some(ns) => {
            ts = libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            };
            &ts as *const libc::timespec
        }
        None => std::ptr::null(),
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call (it is borrowed);
    // `ts_ptr` is null or points to `ts`, which lives until the call returns. FUTEX_WAIT_BITSET
    // without FUTEX_CLOCK_REALTIME interprets the timeout as absolute CLOCK_MONOTONIC.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    if rc == 0 {
        return FutexWait::Woken;
    }
    match super::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => FutexWait::Changed,
        Some(libc::ETIMEDOUT) => FutexWait::TimedOut,
        Some(libc::EINTR) => FutexWait::Interrupted,
        // EFAULT/EINVAL cannot happen for a borrowed aligned word; treat as spurious so the
        // caller re-checks its condition and its deadline.
        _ => FutexWait::Woken,
    }
}

/// Wakes up to `count` threads (in any process) sleeping on `word`; returns how many woke.
pub fn wake(word: &AtomicU32, count: u32) -> usize {
    let count = count.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only uses its address as a key.
    let rc = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, count) };
    rc.max(0) as usize
}
