//! Signals as flags: a handler that only records that a signal arrived, for loops that poll.
//!
//! signal-hook's async-signal-safe handler serves every caught signal by setting its flag;
//! the testbed (SIGINT) and device servers (SIGTERM) poll their flag between steps and stop
//! cooperatively instead of dying mid-operation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

const SIGNALS: usize = 65;

/// One flag per signal number; each is registered with signal-hook at most once.
static CAUGHT: [OnceLock<Arc<AtomicBool>>; SIGNALS] = [const { OnceLock::new() }; SIGNALS];

fn flag(signal: i32) -> Option<&'static Arc<AtomicBool>> {
    let slot = CAUGHT.get(usize::try_from(signal).ok()?)?;
    Some(slot.get_or_init(|| Arc::new(AtomicBool::new(false))))
}

/// From now on, `signal` sets its flag instead of its default action (through signal-hook,
/// whose handler is one async-signal-safe atomic store). Signals that cannot be caught
/// (`SIGKILL`, `SIGSTOP`, and the fault signals signal-hook refuses) are left alone.
pub fn catch(signal: i32) {
    static REGISTERED: [AtomicBool; SIGNALS] = [const { AtomicBool::new(false) }; SIGNALS];
    let (Some(flag), Some(done)) = (
        flag(signal),
        usize::try_from(signal).ok().and_then(|s| REGISTERED.get(s)),
    ) else {
        return;
    };
    if !done.swap(true, Ordering::AcqRel) {
        let _ = signal_hook::flag::register(signal, Arc::clone(flag));
    }
}

/// Did `signal` arrive since the last `take`? Clears the flag.
pub fn take(signal: i32) -> bool {
    flag(signal).is_some_and(|flag| flag.swap(false, Ordering::Relaxed))
}

/// Did `signal` arrive (flag left set)?
pub fn caught(signal: i32) -> bool {
    flag(signal).is_some_and(|flag| flag.load(Ordering::Relaxed))
}

/// From now on, `signal` is ignored.
pub fn ignore(signal: i32) {
    // SAFETY: setting a disposition to "ignore" has no memory preconditions (neither
    // rustix nor signal-hook offers a safe form of `SIG_IGN`).
    unsafe { libc::signal(signal, libc::SIG_IGN) };
}

/// Makes this thread's timed waits end on time rather than up to 50 µs late (the default
/// timer slack): for servers whose waits are frame periods.
pub fn precise_timers() {
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn a_caught_signal_sets_its_flag_once() {
        catch(libc::SIGUSR2);
        assert!(!take(libc::SIGUSR2));
        signal_hook::low_level::raise(libc::SIGUSR2).unwrap();
        assert!(caught(libc::SIGUSR2));
        assert!(take(libc::SIGUSR2));
        assert!(!take(libc::SIGUSR2), "take clears the flag");
    }
}
