//! `CLOCK_MONOTONIC` time as nanoseconds, the unit every deadline in shmkit is kept in.
//!
//! `std::time::Instant` reads the same clock but does not expose its value, and the futex
//! needs an absolute `timespec` on this clock, so shmkit keeps its own nanosecond count.

use std::time::Duration;

/// Nanoseconds on `CLOCK_MONOTONIC` (time since boot, not counting suspend).
#[cfg(not(loom))]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // libc, not rustix: this is on every publish and every deadline, and libc's call into
    // the vDSO measured 15-25% faster frame hops than rustix's (`benches/rings.rs`,
    // `frame_latency_cross/shmkit_spin_64B`, same sitting).
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Under loom time does not advance: models must not depend on it.
#[cfg(loom)]
pub fn monotonic_ns() -> u64 {
    0
}

/// An absolute point on `CLOCK_MONOTONIC`, or "never".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Option<u64>);

impl Deadline {
    /// A deadline that never passes: waiting with it can only end by the awaited condition.
    pub const NEVER: Deadline = Deadline(None);

    /// `timeout` from now; a timeout too large to represent is treated as "never".
    pub fn after(timeout: Duration) -> Deadline {
        Deadline::after_from(monotonic_ns(), timeout)
    }

    /// `timeout` after `now` (a `monotonic_ns` reading the caller already has).
    pub fn after_from(now: u64, timeout: Duration) -> Deadline {
        let ns = u64::try_from(timeout.as_nanos()).ok();
        Deadline(ns.and_then(|ns| now.checked_add(ns)))
    }

    /// The deadline at `ns` on `CLOCK_MONOTONIC`.
    pub fn at_ns(ns: u64) -> Deadline {
        Deadline(Some(ns))
    }

    /// The deadline as nanoseconds on `CLOCK_MONOTONIC`; `None` for never.
    pub fn as_ns(self) -> Option<u64> {
        self.0
    }

    /// Has this deadline passed?
    pub fn expired(self) -> bool {
        matches!(self.0, Some(d) if monotonic_ns() >= d)
    }

    /// The earlier of this deadline and `slice` from now: used to wake up periodically.
    pub fn capped(self, slice: Duration) -> Deadline {
        let cap = Deadline::after(slice);
        match (self.0, cap.0) {
            (Some(a), Some(b)) => Deadline(Some(a.min(b))),
            (None, c) => Deadline(c),
            (a, None) => Deadline(a),
        }
    }
}
