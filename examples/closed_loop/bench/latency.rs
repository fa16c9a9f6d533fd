//! The loop's latencies as shared histograms in the testbed's segment: the controller
//! records each stage of every frame into them, `shmkit watch SEGMENT` shows them while the
//! loop runs, and the report's latency table is read from them at the end.

use super::stats::Percentiles;
use shmkit::{Histogram, HistogramSnapshot, Segment, SegmentError};

/// The stages, by histogram name: frame publish -> the controller holds it; the control
/// computation (held -> command sent); the MVM inside it; command sent -> mirror applied.
pub const STAGES: [&str; 4] = [
    "closed-loop/frame-to-controller",
    "closed-loop/compute",
    "closed-loop/mvm",
    "closed-loop/command-to-mirror",
];

/// The stages' histograms, in [`STAGES`] order.
pub struct Stages {
    /// Frame publish -> the controller holds it.
    pub frame: Histogram,
    /// Held -> command sent.
    pub compute: Histogram,
    /// The MVM.
    pub mvm: Histogram,
    /// Command sent -> mirror applied.
    pub command: Histogram,
}

impl Stages {
    /// Opens (or creates) the stages' histograms in `segment`.
    pub fn open(segment: &Segment) -> Result<Stages, SegmentError> {
        Ok(Stages {
            frame: segment.histogram(STAGES[0])?,
            compute: segment.histogram(STAGES[1])?,
            mvm: segment.histogram(STAGES[2])?,
            command: segment.histogram(STAGES[3])?,
        })
    }

    /// Starts every stage over (the closed loop's start: calibration is not the loop).
    pub fn reset(&self) {
        for h in [&self.frame, &self.compute, &self.mvm, &self.command] {
            h.reset();
        }
    }

    /// Each stage's percentiles, µs, in [`STAGES`] order.
    pub fn percentiles(&self) -> [Percentiles; 4] {
        [&self.frame, &self.compute, &self.mvm, &self.command].map(|h| of(&h.snapshot()))
    }
}

/// A snapshot's percentiles in µs (each within a bucket's 1/16 of an octave; the max exact).
pub fn of(s: &HistogramSnapshot) -> Percentiles {
    let us = |q: f64| s.quantile(q).map_or(0.0, |ns| ns as f64 / 1000.0);
    Percentiles {
        n: s.count() as usize,
        p50: us(0.5),
        p99: us(0.99),
        p999: us(0.999),
        max: s.max() as f64 / 1000.0,
    }
}
