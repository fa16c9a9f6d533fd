//! The segment's state as the page reads it: one JSON text message per refresh, built once
//! and shared by every browser.
//!
//! ```json
//! { "type": "state", "segment": "NAME", "error": null,
//!   "inspection": { … as `shmkit inspect --json` … },
//!   "window_s": 5.0, "rates": { "RING": 2000.0, … },
//!   "histograms": { "NAME": { "count", "p50", "p99", "p999", "max", "mean",
//!                             "buckets": [[low, high, count], …] }, … },
//!   "testbed": { "state": "running" | "finishing" | "stopped" | "safety tripped",
//!                "stop", "finish", "safety" } | null,
//!   "alarms": [ { "name", "set" }, … ],
//!   "problems": { "RING": "why the viewer cannot read it", … } }
//! ```
//!
//! `histograms` are each histogram's samples over the sliding window (absent for one reset
//! within it); `error` (with everything else null or empty) says why the segment cannot be
//! read right now.

use crate::frames::Feeds;
use serde_json::{json, Value};
use shm_layout::{histogram_bucket_high, histogram_bucket_low};
use shmkit::inspect::{Inspection, ObjectState, Refresh, Watcher};
use shmkit::shared::HistogramSnapshot;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Refreshes the state every `period` until `stop`, publishing it to `tx`.
pub(crate) fn run(
    mut watcher: Watcher,
    period: Duration,
    feeds: &Arc<Feeds>,
    tx: &watch::Sender<Arc<str>>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let state = match watcher.refresh() {
            Ok(refresh) => state(&refresh, feeds),
            Err(e) => json!({
                "type": "state",
                "segment": watcher.name(),
                "error": shmkit::error_chain(&e),
            }),
        };
        tx.send_replace(Arc::from(state.to_string()));
        // Sleep in short steps so a stop is seen promptly.
        while !stop.load(Ordering::Relaxed) && started.elapsed() < period {
            std::thread::sleep(
                period
                    .saturating_sub(started.elapsed())
                    .min(Duration::from_millis(50)),
            );
        }
    }
}

/// The state message for one refresh.
pub(crate) fn state(refresh: &Refresh, feeds: &Feeds) -> Value {
    let inspection = &refresh.inspection;
    let histograms: serde_json::Map<String, Value> = refresh
        .histogram_windows
        .iter()
        .map(|(name, h)| (name.clone(), histogram(h)))
        .collect();
    json!({
        "type": "state",
        "segment": inspection.name,
        "error": null,
        "inspection": inspection,
        "window_s": refresh.window_s,
        "rates": refresh.rates,
        "histograms": histograms,
        "testbed": testbed(inspection),
        "alarms": alarms(inspection),
        "problems": feeds.problems(),
    })
}

/// A histogram window: its quantiles and its non-empty buckets.
fn histogram(h: &HistogramSnapshot) -> Value {
    let buckets: Vec<[u64; 3]> = h
        .buckets()
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(i, &n)| [histogram_bucket_low(i), histogram_bucket_high(i), n])
        .collect();
    json!({
        "count": h.count(),
        "p50": h.quantile(0.5),
        "p99": h.quantile(0.99),
        "p999": h.quantile(0.999),
        "max": h.max(),
        "mean": h.mean(),
        "buckets": buckets,
    })
}

/// Whether event `name` exists and is set (`None`: no such event).
fn event(inspection: &Inspection, name: &str) -> Option<bool> {
    inspection.objects.iter().find_map(|o| match &o.state {
        ObjectState::Event { set, .. } if o.name == name => Some(*set),
        _ => None,
    })
}

/// The testbed's state from its three events (`null` when the segment has no testbed).
fn testbed(inspection: &Inspection) -> Value {
    let Some(stop) = event(inspection, "testbed/STOP") else {
        return Value::Null;
    };
    let finish = event(inspection, "testbed/FINISH").unwrap_or(false);
    let safety = event(inspection, "testbed/SAFETY").unwrap_or(false);
    let state = if safety {
        "safety tripped"
    } else if stop {
        "stopped"
    } else if finish {
        "finishing"
    } else {
        "running"
    };
    json!({ "state": state, "stop": stop, "finish": finish, "safety": safety })
}

/// The health tests' alarms (`alarm/NAME` events).
fn alarms(inspection: &Inspection) -> Vec<Value> {
    inspection
        .objects
        .iter()
        .filter_map(|o| match &o.state {
            ObjectState::Event { set, .. } => {
                let name = o.name.strip_prefix("alarm/")?;
                Some(json!({ "name": name, "set": set }))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmkit::segment::{CreateOptions, Segment};

    #[test]
    fn the_testbed_state_alarms_and_histogram_windows_are_read_from_the_segment() {
        let name = format!("shmkit-view-state-{}", std::process::id());
        let seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
        let stop = seg.event("testbed/STOP").unwrap();
        seg.event("testbed/FINISH").unwrap();
        let safety = seg.event("testbed/SAFETY").unwrap();
        let alarm = seg.event("alarm/cam stalled").unwrap();
        let h = seg.histogram("lat").unwrap();
        let feeds = Feeds::default();
        let mut watcher = Watcher::new(&name, Duration::from_secs(60));
        let first = state(&watcher.refresh().unwrap(), &feeds);
        assert_eq!(first["testbed"]["state"], "running");
        assert_eq!(
            first["alarms"],
            json!([{ "name": "cam stalled", "set": false }])
        );
        h.record(1000);
        h.record(1000);
        alarm.set();
        stop.set();
        let second = state(&watcher.refresh().unwrap(), &feeds);
        assert_eq!(second["testbed"]["state"], "stopped");
        assert_eq!(second["alarms"][0]["set"], true);
        let window = &second["histograms"]["lat"];
        assert_eq!(window["count"], 2);
        let buckets = window["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 1);
        assert_eq!(buckets[0][2], 2);
        assert!(buckets[0][0].as_u64().unwrap() <= 1000 && buckets[0][1].as_u64().unwrap() >= 1000);
        safety.set();
        let third = state(&watcher.refresh().unwrap(), &feeds);
        let _ = Segment::unlink(&name);
        assert_eq!(third["testbed"]["state"], "safety tripped");
    }

    #[test]
    fn a_segment_without_a_testbed_has_none() {
        let name = format!("shmkit-view-notestbed-{}", std::process::id());
        let _seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
        let s = state(
            &Watcher::new(&name, Duration::ZERO).refresh().unwrap(),
            &Feeds::default(),
        );
        let _ = Segment::unlink(&name);
        assert!(s["testbed"].is_null());
        assert_eq!(s["alarms"], json!([]));
    }
}
