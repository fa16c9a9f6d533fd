//! Ready-made safety tests on the health of the loop's streams, for
//! [`TestbedBuilder::safety_test`](crate::TestbedBuilder::safety_test): a frame ring that
//! stalls, a frame ring held to its declared cadence (stalls and late frames), a latency
//! histogram whose recent quantile is too high. Each sets the named event
//! `alarm/<test name>` in the segment while its condition holds (and clears it when it no
//! longer does), so any process can wait on the alarm, not only the testbed that trips on it.

use crate::safety::{safety_fn, SafetyContext, SafetyTest};
use shmkit::os::clock::monotonic_ns;
use shmkit::rings::{Cadence, FrameRing, RingCadence};
use shmkit::segment::{SegmentError, SegmentObjects};
use shmkit::shared::{Histogram, HistogramSnapshot};
use std::collections::VecDeque;
use std::time::Duration;

/// The event a health test named `test` sets while its alarm holds.
pub fn alarm_event(test: &str) -> String {
    format!("alarm/{test}")
}

/// Sets or clears the test's alarm event (best effort: an alarm that cannot be raised must
/// not hide the failure the check reports).
fn alarm(ctx: &SafetyContext<'_>, test: &str, on: bool) {
    if let Ok(event) = ctx.segment().event(&alarm_event(test)) {
        if on {
            event.set();
        } else if event.is_set() {
            event.clear();
        }
    }
}

/// Fails when frame ring `ring` has published nothing for longer than `max_gap`: measured
/// from its newest frame, or, before its first, from the test's first check (a ring that
/// does not exist yet counts as one that has published nothing). With the testbed's check
/// interval `i`, a writer that stalls trips it within `max_gap + i`. The message says how
/// long, and whether the writer is still alive.
pub fn ring_stalled(ring: &str, max_gap: Duration) -> impl SafetyTest {
    let name = format!("{ring} stalled");
    let mut silence = Silence::new(ring);
    let test_name = name.clone();
    safety_fn(&name, move |ctx| {
        let stall = silence.check(ctx, max_gap)?;
        alarm(ctx, &test_name, stall.is_some());
        stall.map_or(Ok(()), |(_, message)| Err(message))
    })
}

/// How long a frame ring has been silent, as [`ring_stalled`] and [`ring_cadence`] check it.
struct Silence {
    ring: String,
    first_check: Option<u64>,
    opened: Option<FrameRing>,
}

impl Silence {
    fn new(ring: &str) -> Silence {
        Silence {
            ring: ring.to_owned(),
            first_check: None,
            opened: None,
        }
    }

    /// `Some((silence in ns, message))` when the ring has been silent for longer than
    /// `limit`; `Err` when the ring cannot be opened.
    fn check(
        &mut self,
        ctx: &SafetyContext<'_>,
        limit: Duration,
    ) -> Result<Option<(u64, String)>, String> {
        let now = monotonic_ns();
        let since = *self.first_check.get_or_insert(now);
        if self.opened.is_none() {
            self.opened = match ctx.segment().open::<FrameRing>(&self.ring) {
                Ok(r) => Some(r),
                Err(SegmentError::ObjectNotFound { .. }) => None,
                Err(e) => return Err(e.to_string()),
            };
        }
        let stats = self.opened.as_ref().map(FrameRing::stats);
        let newest = stats
            .filter(|s| s.total_written > 0)
            .map_or(since, |s| s.last_ts_ns.max(since));
        let gap = now.saturating_sub(newest);
        let limit_ns = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        if gap <= limit_ns {
            return Ok(None);
        }
        let writer = match self.opened.as_ref().map(FrameRing::writer_liveness) {
            Some(Some(true)) => "its writer is alive",
            Some(Some(false)) => "its writer is dead",
            _ => "it has no writer",
        };
        Ok(Some((
            gap,
            format!(
                "ring {:?}: no frame for {:.1} ms (limit {:.1} ms); {writer}",
                self.ring,
                gap as f64 / 1e6,
                limit_ns as f64 / 1e6
            ),
        )))
    }
}

/// A histogram over a sliding window: the difference of its snapshot now and the newest one
/// taken at least a window ago (one snapshot kept per check); until a window has passed, all
/// of it.
struct Window {
    window_ns: u64,
    history: VecDeque<(u64, HistogramSnapshot)>,
}

impl Window {
    fn new(window: Duration) -> Window {
        Window {
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            history: VecDeque::new(),
        }
    }

    /// `histogram` over the last window, now.
    fn recent(&mut self, histogram: &Histogram) -> HistogramSnapshot {
        let now = monotonic_ns();
        let current = histogram.snapshot();
        while self.history.len() > 1 && now.saturating_sub(self.history[1].0) >= self.window_ns {
            self.history.pop_front();
        }
        let recent = self
            .history
            .front()
            .and_then(|(_, start)| current.since(start))
            .unwrap_or_else(|| current.clone());
        self.history.push_back((now, current));
        recent
    }
}

/// What [`ring_cadence`] holds a frame ring to.
#[derive(Debug, Clone, Copy)]
pub struct CadenceCheck {
    /// The ring's period and deadline, declared by the test at its first check.
    pub cadence: Cadence,
    /// Late frames tolerated over `window`.
    pub max_late: u64,
    /// The window late frames are counted over.
    pub window: Duration,
    /// Silence past which the writer counts as stalled (at least the deadline).
    pub stalled_after: Duration,
}

/// Declares frame ring `ring`'s [`Cadence`] (at the first check; a ring declared otherwise
/// must have been declared the same) and holds the ring to it: fails when more than
/// `max_late` frames came late (more than the deadline after the one before, as the writer
/// counts them in `RING/late`) over the last `window`, or when the ring has been silent for
/// longer than `stalled_after` (counting the stall, once, in `RING/stalls`). Sets the event
/// `alarm/RING cadence` while either holds. Device servers count their rings' late frames
/// once a cadence is declared (within a heartbeat, 1 s); another writer does with
/// [`FrameWriter::count_late`](shmkit::rings::FrameWriter::count_late).
pub fn ring_cadence(ring: &str, check: CadenceCheck) -> impl SafetyTest {
    let CadenceCheck {
        cadence,
        max_late,
        window,
        stalled_after,
    } = check;
    let stalled_after = stalled_after.max(cadence.deadline);
    let name = format!("{ring} cadence");
    let ring_name = ring.to_owned();
    let mut silence = Silence::new(ring);
    let mut declared: Option<RingCadence> = None;
    let mut stalled = false;
    let mut history = Window::new(window);
    let test_name = name.clone();
    safety_fn(&name, move |ctx| {
        let counters = match &declared {
            Some(c) => c,
            None => declared.insert(
                cadence
                    .declare(ctx.segment(), &ring_name)
                    .map_err(|e| e.to_string())?,
            ),
        };
        let stall = silence.check(ctx, stalled_after)?;
        if let (Some((gap, _)), false) = (&stall, stalled) {
            counters.stalls.record(*gap);
        }
        stalled = stall.is_some();
        let recent = history.recent(&counters.late);
        let too_late = recent.count() > max_late;
        alarm(ctx, &test_name, stalled || too_late);
        if let Some((_, message)) = stall {
            return Err(message);
        }
        if too_late {
            return Err(format!(
                "ring {ring_name:?}: {} frames late over the last {:.2} s (more than {:.1} ms after \
                 the one before; at most {max_late}), the latest {:.1} ms",
                recent.count(),
                window.as_secs_f64(),
                cadence.deadline.as_secs_f64() * 1e3,
                recent.max() as f64 / 1e6
            ));
        }
        Ok(())
    })
}

/// Fails when quantile `q` of histogram `histogram` (nanoseconds) over the last `window`
/// is above `limit`: "loop latency p99 over the last second above 500 µs". The window is the
/// difference of the histogram now and as it was one window ago (snapshots the test keeps,
/// one per check); until a window has passed, over what there is. Passes while the
/// histogram is missing or the window holds fewer than `min_samples` samples.
pub fn latency_above(
    histogram: &str,
    q: f64,
    limit: Duration,
    window: Duration,
    min_samples: u64,
) -> impl SafetyTest {
    let name = format!("{histogram} p{} above {limit:?}", q * 100.0);
    let hist_name = histogram.to_owned();
    let limit_ns = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
    let mut opened: Option<Histogram> = None;
    let mut history = Window::new(window);
    let test_name = name.clone();
    safety_fn(&name, move |ctx| {
        if opened.is_none() {
            opened = match ctx.segment().open::<Histogram>(&hist_name) {
                Ok(h) => Some(h),
                Err(SegmentError::ObjectNotFound { .. }) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
        }
        let Some(h) = &opened else { return Ok(()) };
        let recent = history.recent(h);
        let value = recent.quantile(q).filter(|_| recent.count() >= min_samples);
        let above = value.is_some_and(|v| v > limit_ns);
        alarm(ctx, &test_name, above);
        match value {
            Some(v) if above => Err(format!(
                "{hist_name:?}: p{} {:.1} µs over the last {:.2} s ({} samples), limit {:.1} µs",
                q * 100.0,
                v as f64 / 1e3,
                window.as_secs_f64(),
                recent.count(),
                limit_ns as f64 / 1e3
            )),
            _ => Ok(()),
        }
    })
}
