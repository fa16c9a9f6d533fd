//! How long a blocking call may wait, and what may cut it short.
//!
//! Every blocking call in shmkit (mutex lock, event and barrier wait, frame `next`, command
//! `call` and `recv`, child `join`) takes a [`Timeout`] and, in its `_interruptible` form, an
//! [`Interrupt`]: a check the caller supplies (a language binding checks for Ctrl+C there).
//! A waiter that has to sleep sleeps in slices of at most [`INTERRUPT_POLL`] when it has a
//! check, and looks at the check at once when a signal interrupts its sleep (`EINTR`: the
//! signal's handler may be the very thing that set the flag the check reads). The fast path —
//! the condition already holds — never reads the clock and never calls the check.
//!
//! [`Waiting`] is the per-call state the algorithms use: the deadline, the check, and when the
//! check is next due.

use crate::sys::clock::{monotonic_ns, Deadline};
use crate::sys::futex_types::FutexWait;
use std::fmt;
use std::time::Duration;

/// The longest a waiter with an [`Interrupt`] sleeps between two looks at it. Half the
/// 100 ms a caller may take to notice Ctrl+C, so a wake-up that lands just after a look still
/// leaves margin.
pub const INTERRUPT_POLL: Duration = Duration::from_millis(50);

/// How long a blocking call may wait.
///
/// `After(Duration::ZERO)` tries once without sleeping (as `threading`'s `timeout=0`);
/// "forever" is spelled out as [`Timeout::Forever`] rather than hidden in a magic value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeout {
    /// Give up once this much time has passed.
    After(Duration),
    /// Wait as long as it takes (dead peers are still detected where the call can detect them).
    Forever,
}

impl Timeout {
    /// Try once, never sleep.
    pub const ZERO: Timeout = Timeout::After(Duration::ZERO);

    /// A timeout from a number of seconds, as a language binding receives it. Negative, NaN
    /// and infinite values are refused: "forever" is [`Timeout::Forever`], never a sentinel.
    pub fn from_secs_f64(secs: f64) -> Result<Timeout, InvalidTimeout> {
        if !secs.is_finite() || secs < 0.0 {
            return Err(InvalidTimeout { secs });
        }
        // Finite and non-negative: only values beyond ~584 years overflow a Duration.
        Duration::try_from_secs_f64(secs)
            .map(Timeout::After)
            .map_err(|_| InvalidTimeout { secs })
    }

    /// Is this "try once"?
    pub fn is_zero(self) -> bool {
        self == Timeout::ZERO
    }

    /// The duration, `Duration::MAX` for forever (for error messages: "waited ...").
    pub fn as_duration(self) -> Duration {
        match self {
            Timeout::After(d) => d,
            Timeout::Forever => Duration::MAX,
        }
    }

    /// The absolute deadline this timeout gives when it starts now.
    pub(crate) fn deadline(self) -> Deadline {
        match self {
            Timeout::After(d) => Deadline::after(d),
            Timeout::Forever => Deadline::NEVER,
        }
    }
}

impl From<Duration> for Timeout {
    fn from(d: Duration) -> Timeout {
        Timeout::After(d)
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeout::After(d) => write!(f, "{d:?}"),
            Timeout::Forever => f.write_str("forever"),
        }
    }
}

/// A timeout that is not a finite number of seconds ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("invalid timeout {secs} s: a timeout must be a finite number of seconds >= 0 (wait without limit with Timeout::Forever)")]
pub struct InvalidTimeout {
    /// The value that was given.
    pub secs: f64,
}

/// A caller's "stop waiting" check, consulted while a blocking call sleeps.
///
/// Any `Fn() -> bool` is one (true = stop). It is called from the waiting thread at most every
/// [`INTERRUPT_POLL`] and right after a signal interrupts the sleep, never on the fast path.
pub trait Interrupt {
    /// Should the wait stop now?
    fn should_stop(&self) -> bool;

    /// False only for [`NoInterrupt`], so waits without a check sleep in one piece.
    fn is_active(&self) -> bool {
        true
    }
}

impl<F: Fn() -> bool> Interrupt for F {
    fn should_stop(&self) -> bool {
        self()
    }
}

/// The absent check: the wait ends only by its condition or its timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoInterrupt;

impl Interrupt for NoInterrupt {
    fn should_stop(&self) -> bool {
        false
    }

    fn is_active(&self) -> bool {
        false
    }
}

/// Why a wait stopped before its condition held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The deadline passed.
    TimedOut,
    /// The caller's check said stop.
    Interrupted,
}

/// One call's deadline and interrupt check, and when the check is next due.
pub(crate) struct Waiting<'a> {
    deadline: Deadline,
    interrupt: &'a dyn Interrupt,
    /// `monotonic_ns` at which the check is next called; `u64::MAX` without a check.
    next_poll: u64,
}

impl<'a> Waiting<'a> {
    /// Starts the wait's bookkeeping (reads the clock once if there is a check).
    pub(crate) fn new(deadline: Deadline, interrupt: &'a dyn Interrupt) -> Waiting<'a> {
        let next_poll = if interrupt.is_active() {
            monotonic_ns().saturating_add(INTERRUPT_POLL.as_nanos() as u64)
        } else {
            u64::MAX
        };
        Waiting {
            deadline,
            interrupt,
            next_poll,
        }
    }

    /// Drops the deadline (the interrupt check stays): the caller's condition no longer
    /// depends on it.
    pub(crate) fn waive_deadline(&mut self) {
        self.deadline = Deadline::NEVER;
    }

    /// Reads the clock and says whether to stop: the deadline first, then the check if due.
    /// A wait with neither a deadline nor a check never reads the clock.
    #[inline]
    pub(crate) fn check(&mut self) -> Result<(), Stop> {
        if self.next_poll == u64::MAX && self.deadline == Deadline::NEVER {
            return Ok(());
        }
        self.check_at(monotonic_ns())
    }

    /// [`check`](Self::check) with a clock reading the caller already has.
    pub(crate) fn check_at(&mut self, now: u64) -> Result<(), Stop> {
        if self.deadline.as_ns().is_some_and(|d| now >= d) {
            return Err(Stop::TimedOut);
        }
        if now >= self.next_poll {
            self.next_poll = now.saturating_add(INTERRUPT_POLL.as_nanos() as u64);
            if self.interrupt.should_stop() {
                return Err(Stop::Interrupted);
            }
        }
        Ok(())
    }

    /// The deadline for the next sleep: the call's, cut to the next due check.
    pub(crate) fn sleep_deadline(&self) -> Deadline {
        if self.next_poll == u64::MAX {
            return self.deadline;
        }
        match self.deadline.as_ns() {
            Some(d) if d <= self.next_poll => self.deadline,
            _ => Deadline::at_ns(self.next_poll),
        }
    }

    /// The deadline for the next sleep, also cut to `slice` from now (periodic liveness
    /// checks).
    pub(crate) fn sleep_deadline_capped(&self, slice: Duration) -> Deadline {
        self.sleep_deadline().capped(slice)
    }

    /// Notes how a sleep ended: a signal makes the check due at once, because its handler may
    /// be what the check looks at.
    pub(crate) fn slept(&mut self, outcome: FutexWait) {
        if outcome == FutexWait::Interrupted && self.next_poll != u64::MAX {
            self.next_poll = 0;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn from_secs_refuses_negative_and_non_finite_values() {
        for bad in [
            -1.0,
            -0.0001,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
        ] {
            assert!(Timeout::from_secs_f64(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(Timeout::from_secs_f64(0.0), Ok(Timeout::ZERO));
        assert_eq!(
            Timeout::from_secs_f64(1.5),
            Ok(Timeout::After(Duration::from_millis(1500)))
        );
        let e = Timeout::from_secs_f64(-2.0).unwrap_err();
        assert!(e.to_string().contains("-2"), "{e}");
    }

    #[test]
    fn the_check_is_called_only_when_due_and_at_once_after_a_signal() {
        let calls = Cell::new(0);
        let check = || {
            calls.set(calls.get() + 1);
            false
        };
        let mut w = Waiting::new(Deadline::NEVER, &check);
        let now = monotonic_ns();
        assert_eq!(w.check_at(now), Ok(()));
        assert_eq!(calls.get(), 0, "not due yet");
        w.slept(FutexWait::Interrupted);
        assert_eq!(w.check_at(now), Ok(()));
        assert_eq!(calls.get(), 1, "a signal makes it due");
        assert!(w.sleep_deadline().as_ns().unwrap() <= now + INTERRUPT_POLL.as_nanos() as u64);
    }

    #[test]
    fn no_interrupt_never_cuts_a_sleep() {
        let w = Waiting::new(Deadline::NEVER, &NoInterrupt);
        assert_eq!(w.sleep_deadline(), Deadline::NEVER);
        let stop = || true;
        let mut w = Waiting::new(Deadline::NEVER, &stop);
        assert_eq!(w.check_at(u64::MAX - 1), Err(Stop::Interrupted));
    }

    #[test]
    fn the_deadline_wins_over_the_check() {
        let stop = || true;
        let mut w = Waiting::new(Deadline::after(Duration::ZERO), &stop);
        assert_eq!(w.check_at(u64::MAX - 1), Err(Stop::TimedOut));
    }
}
