//! The streams' clock. ImageStreamIO stamps `atime` and `writetime` on `CLOCK_TAI` (its
//! `CLOCK_ISIO`); shmkit rings stamp frames on `CLOCK_MONOTONIC`. Crossing over uses the
//! offset between the two clocks sampled at the crossing, so a frame's acquisition time keeps
//! its meaning on the other side (to the sampling's few hundred nanoseconds).

use super::layout::Timespec;
use super::sys::{now_ns, Clock};

/// Now on `CLOCK_TAI`, in nanoseconds.
pub fn tai_ns() -> u64 {
    now_ns(Clock::Tai)
}

/// Now on `CLOCK_TAI`, as the header's `timespec`.
pub fn tai_now() -> Timespec {
    Timespec::from_ns(tai_ns())
}

/// `CLOCK_TAI` minus `CLOCK_MONOTONIC` now, in nanoseconds (TAI is the later clock: it counts
/// from 1970, monotonic from boot).
pub fn tai_minus_monotonic() -> u64 {
    let mono = now_ns(Clock::Monotonic);
    tai_ns().saturating_sub(mono)
}

/// A `CLOCK_MONOTONIC` instant as a `CLOCK_TAI` one.
pub fn monotonic_to_tai(mono_ns: u64) -> Timespec {
    Timespec::from_ns(mono_ns.saturating_add(tai_minus_monotonic()))
}

/// A `CLOCK_TAI` instant (nanoseconds) as a `CLOCK_MONOTONIC` one (0 if before boot).
pub fn tai_to_monotonic(tai_ns: u64) -> u64 {
    tai_ns.saturating_sub(tai_minus_monotonic())
}

/// A `CLOCK_TAI` instant (nanoseconds) on `CLOCK_BOOTTIME` (the clock process start times
/// are kept on), 0 if before boot.
pub fn tai_to_boot(tai_ns: u64) -> u64 {
    let boot = now_ns(Clock::Boot);
    tai_ns.saturating_sub(self::tai_ns().saturating_sub(boot))
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn a_monotonic_instant_crosses_to_tai_and_back() {
        let mono = shmkit::os::clock::monotonic_ns();
        let tai = monotonic_to_tai(mono).as_ns();
        assert!(tai > mono, "TAI counts from 1970");
        let back = tai_to_monotonic(tai);
        assert!(back.abs_diff(mono) < 1_000_000, "{back} vs {mono}");
    }
}
