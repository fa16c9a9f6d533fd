//! Ready-made safety tests on the health of the loop's streams, for
//! [`TestbedBuilder::safety_test`](crate::TestbedBuilder::safety_test): a frame ring that
//! stalls, a latency histogram whose recent quantile is too high. Each sets the named event
//! `alarm/<test name>` in the segment while its condition holds (and clears it when it no
//! longer does), so any process can wait on the alarm, not only the testbed that trips on it.

use crate::safety::{safety_fn, SafetyContext, SafetyTest};
use shmkit::os::clock::monotonic_ns;
use shmkit::rings::FrameRing;
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
    let ring_name = ring.to_owned();
    let limit_ns = u64::try_from(max_gap.as_nanos()).unwrap_or(u64::MAX);
    let mut first_check: Option<u64> = None;
    let mut opened: Option<FrameRing> = None;
    let test_name = name.clone();
    safety_fn(&name, move |ctx| {
        let now = monotonic_ns();
        let since = *first_check.get_or_insert(now);
        if opened.is_none() {
            opened = match ctx.segment().open::<FrameRing>(&ring_name) {
                Ok(r) => Some(r),
                Err(SegmentError::ObjectNotFound { .. }) => None,
                Err(e) => return Err(e.to_string()),
            };
        }
        let stats = opened.as_ref().map(FrameRing::stats);
        let newest = stats
            .filter(|s| s.total_written > 0)
            .map_or(since, |s| s.last_ts_ns.max(since));
        let gap = now.saturating_sub(newest);
        let stalled = gap > limit_ns;
        alarm(ctx, &test_name, stalled);
        if !stalled {
            return Ok(());
        }
        let writer = match opened.as_ref().map(FrameRing::writer_liveness) {
            Some(Some(true)) => "its writer is alive",
            Some(Some(false)) => "its writer is dead",
            _ => "it has no writer",
        };
        Err(format!(
            "ring {ring_name:?}: no frame for {:.1} ms (limit {:.1} ms); {writer}",
            gap as f64 / 1e6,
            limit_ns as f64 / 1e6
        ))
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
    let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    let mut opened: Option<Histogram> = None;
    let mut history: VecDeque<(u64, HistogramSnapshot)> = VecDeque::new();
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
        let now = monotonic_ns();
        let current = h.snapshot();
        // Keep the newest snapshot at least a window old as the window's start.
        while history.len() > 1 && now.saturating_sub(history[1].0) >= window_ns {
            history.pop_front();
        }
        let recent = history
            .front()
            .and_then(|(_, start)| current.since(start))
            .unwrap_or_else(|| current.clone());
        history.push_back((now, current));
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
