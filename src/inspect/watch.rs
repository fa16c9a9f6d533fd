//! Watching a segment: successive inspections and what changed between them — frame and call
//! rates, and each histogram's samples over a sliding window. `shmkit watch` and the browser
//! viewer both refresh through a [`Watcher`], so both show the same numbers.

use super::{inspect, InspectError, Inspection, ObjectState};
use crate::shared::HistogramSnapshot;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One inspection, and the counters a later one is compared with.
struct Sample {
    at: Instant,
    /// Frames written per frame ring, calls made per command ring.
    counters: HashMap<String, u64>,
    histograms: HashMap<String, HistogramSnapshot>,
}

/// A refresh: the segment as it is now, and what happened over the window before it.
#[derive(Debug, Clone)]
pub struct Refresh {
    /// The segment now.
    pub inspection: Inspection,
    /// Seconds from the inspection the window starts at to this one (`None` for the first
    /// refresh, which has nothing to compare with).
    pub window_s: Option<f64>,
    /// Frames per second of each frame ring and calls per second of each command ring over
    /// the window, by object name (`None` for the first refresh).
    pub rates: Option<HashMap<String, f64>>,
    /// Each histogram's samples over the window, by name; a histogram reset within the
    /// window, or new in it, has none.
    pub histogram_windows: HashMap<String, HistogramSnapshot>,
}

/// Successive inspections of one segment. Each [`refresh`](Self::refresh) is compared with
/// the oldest earlier one at most `window` old (or, when none is, the one just before).
pub struct Watcher {
    name: String,
    window: Duration,
    history: VecDeque<Sample>,
}

impl Watcher {
    /// Watches segment `name`, comparing over `window` (`Duration::ZERO`: with the previous
    /// refresh, as `shmkit watch` does).
    pub fn new(name: &str, window: Duration) -> Watcher {
        Watcher {
            name: name.to_owned(),
            window,
            history: VecDeque::new(),
        }
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Inspects the segment again (see [`inspect`]) and compares it with the window's start.
    pub fn refresh(&mut self) -> Result<Refresh, InspectError> {
        let inspection = inspect(&self.name)?;
        let now = Instant::now();
        Ok(self.compare(inspection, now))
    }

    /// Compares `inspection`, taken at `now`, with the window's start, and keeps it.
    fn compare(&mut self, inspection: Inspection, now: Instant) -> Refresh {
        let sample = Sample {
            at: now,
            counters: counters(&inspection),
            histograms: histograms(&inspection),
        };
        let start = self
            .history
            .iter()
            .find(|s| now.duration_since(s.at) <= self.window)
            .or(self.history.back());
        let (window_s, rates, histogram_windows) = match start {
            None => (None, None, HashMap::new()),
            Some(start) => {
                let seconds = now.duration_since(start.at).as_secs_f64();
                let rates = sample
                    .counters
                    .iter()
                    .map(|(name, &n)| {
                        let before = start.counters.get(name).copied().unwrap_or(n);
                        (
                            name.clone(),
                            n.saturating_sub(before) as f64 / seconds.max(1e-6),
                        )
                    })
                    .collect();
                let windows = sample
                    .histograms
                    .iter()
                    .filter_map(|(name, h)| {
                        Some((name.clone(), h.since(start.histograms.get(name)?)?))
                    })
                    .collect();
                (Some(seconds), Some(rates), windows)
            }
        };
        self.history.push_back(sample);
        // Keep what a later window may start at: everything younger than the window, and
        // always the newest.
        while self.history.len() > 1
            && self
                .history
                .front()
                .is_some_and(|s| now.duration_since(s.at) > self.window)
        {
            self.history.pop_front();
        }
        Refresh {
            inspection,
            window_s,
            rates,
            histogram_windows,
        }
    }
}

fn counters(inspection: &Inspection) -> HashMap<String, u64> {
    inspection
        .objects
        .iter()
        .filter_map(|o| match &o.state {
            ObjectState::FrameRing { frames_written, .. } => {
                Some((o.name.clone(), *frames_written))
            }
            ObjectState::CommandRing { calls, .. } => Some((o.name.clone(), *calls)),
            _ => None,
        })
        .collect()
}

fn histograms(inspection: &Inspection) -> HashMap<String, HistogramSnapshot> {
    inspection
        .objects
        .iter()
        .filter_map(|o| match &o.state {
            ObjectState::Histogram { snapshot, .. } => Some((o.name.clone(), snapshot.clone())),
            _ => None,
        })
        .collect()
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::segment::{CreateOptions, Segment};

    #[test]
    fn rates_and_histogram_windows_cover_the_window_not_the_whole_history() {
        let name = format!("shmkit-watcher-{}", std::process::id());
        let seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
        let h = seg.histogram("lat").unwrap();
        let mut watcher = Watcher::new(&name, Duration::from_secs(10));
        let t0 = Instant::now();
        let first = watcher.compare(inspect(&name).unwrap(), t0);
        assert!(first.rates.is_none() && first.window_s.is_none());
        assert!(first.histogram_windows.is_empty());
        for v in [1_000, 2_000] {
            h.record(v);
        }
        let second = watcher.compare(inspect(&name).unwrap(), t0 + Duration::from_secs(2));
        assert_eq!(second.window_s, Some(2.0));
        assert_eq!(second.histogram_windows["lat"].count(), 2);
        h.record(3_000);
        // 11 s after the first: the window starts at the second refresh (9 s before).
        let third = watcher.compare(inspect(&name).unwrap(), t0 + Duration::from_secs(11));
        let _ = Segment::unlink(&name);
        assert_eq!(third.window_s, Some(9.0));
        assert_eq!(third.histogram_windows["lat"].count(), 1);
    }

    #[test]
    fn a_zero_window_compares_with_the_previous_refresh() {
        let name = format!("shmkit-watcher-zero-{}", std::process::id());
        let seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
        let ring = seg
            .frame_ring(
                "cam",
                &crate::rings::FrameSpec::new(4, crate::rings::ElemType::U8, &[8]),
            )
            .unwrap();
        let mut w = ring.writer().unwrap();
        let mut watcher = Watcher::new(&name, Duration::ZERO);
        let t0 = Instant::now();
        watcher.compare(inspect(&name).unwrap(), t0);
        for _ in 0..4 {
            w.try_claim().unwrap().publish();
        }
        let second = watcher.compare(inspect(&name).unwrap(), t0 + Duration::from_secs(2));
        w.try_claim().unwrap().publish();
        let third = watcher.compare(inspect(&name).unwrap(), t0 + Duration::from_secs(3));
        let _ = Segment::unlink(&name);
        assert_eq!(second.rates.unwrap()["cam"], 2.0);
        assert_eq!(third.window_s, Some(1.0));
        assert_eq!(third.rates.unwrap()["cam"], 1.0);
    }
}
