//! Signals as flags: a handler that only records that a signal arrived, for loops that poll.
//!
//! One async-signal-safe handler serves every caught signal by setting that signal's flag;
//! the testbed (SIGINT) and device servers (SIGTERM) poll their flag between steps and stop
//! cooperatively instead of dying mid-operation.

use std::sync::atomic::{AtomicBool, Ordering};

const SIGNALS: usize = 65;

static CAUGHT: [AtomicBool; SIGNALS] = [const { AtomicBool::new(false) }; SIGNALS];

extern "C" fn record(signal: libc::c_int) {
    // Async-signal-safe: one atomic store.
    if let Some(flag) = usize::try_from(signal).ok().and_then(|s| CAUGHT.get(s)) {
        flag.store(true, Ordering::Relaxed);
    }
}

/// From now on, `signal` sets its flag instead of its default action.
pub fn catch(signal: libc::c_int) {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only
    // stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = record as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut());
    }
}

/// Did `signal` arrive since the last `take`? Clears the flag.
pub fn take(signal: libc::c_int) -> bool {
    usize::try_from(signal)
        .ok()
        .and_then(|s| CAUGHT.get(s))
        .is_some_and(|flag| flag.swap(false, Ordering::Relaxed))
}

/// Did `signal` arrive (flag left set)?
pub fn caught(signal: libc::c_int) -> bool {
    usize::try_from(signal)
        .ok()
        .and_then(|s| CAUGHT.get(s))
        .is_some_and(|flag| flag.load(Ordering::Relaxed))
}

/// From now on, `signal` is ignored.
pub fn ignore(signal: libc::c_int) {
    // SAFETY: setting a disposition to "ignore" has no memory preconditions.
    unsafe { libc::signal(signal, libc::SIG_IGN) };
}

/// Makes this thread's timed waits end on time rather than up to 50 µs late (the default
/// timer slack): for servers whose waits are frame periods.
pub fn precise_timers() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and affects only the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn a_caught_signal_sets_its_flag_once() {
        catch(libc::SIGUSR2);
        assert!(!take(libc::SIGUSR2));
        // SAFETY: raising a signal we catch.
        unsafe { libc::raise(libc::SIGUSR2) };
        assert!(caught(libc::SIGUSR2));
        assert!(take(libc::SIGUSR2));
        assert!(!take(libc::SIGUSR2), "take clears the flag");
    }
}
