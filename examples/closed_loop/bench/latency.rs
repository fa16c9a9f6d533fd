//! The loop's latencies as shared histograms in the testbed's segment: the controller
//! records each stage of every frame into them, `shmkit watch SEGMENT` shows them while the
//! loop runs, and the report's latency table is read from them at the end.

use super::stats::Percentiles;
use shmkit::shared::{TraceBuffer, TraceName, TraceSpec};
use shmkit::{Histogram, HistogramSnapshot, Segment, SegmentError};
use std::time::Duration;

/// The trace buffer `--trace` records the loop into: the one device servers record their
/// commands and polls into too (the default size: 65 536 events, about 4 s of the loop's four
/// spans, the camera's poll and the mirror's command a frame at 2 kHz).
pub const TRACE_BUFFER: &str = shmkit_devices::TRACE_BUFFER;
/// How far back the `--trace` file reaches from the loop's end.
pub const TRACE_WINDOW: Duration = Duration::from_secs(4);

/// The controller's spans per frame, from the timestamps it takes for the histograms anyway
/// (no clock read of its own): "frame wait" (from the frame's publish, or from the end of the
/// previous command if the frame was out before it, to the controller holding it: spans on
/// one thread must nest, and the frame's whole age is in the histograms), "compute" (held ->
/// command sent) enclosing "mvm", and "command" (sent -> the mirror applied it); each carries
/// the frame id. The counter "frame age (µs)" is each frame's whole age when the controller
/// held it (what the histogram `closed-loop/frame-to-controller` counts), so a trace shows
/// which frames make the tail.
pub struct LoopTrace {
    buffer: TraceBuffer,
    idle_since: std::cell::Cell<u64>,
    wait: TraceName,
    compute: TraceName,
    mvm: TraceName,
    command: TraceName,
    age: TraceName,
    bookkeeping: TraceName,
}

impl LoopTrace {
    /// Opens (or creates) the bench's trace buffer and names this process and thread.
    pub fn open(segment: &Segment) -> Result<LoopTrace, Box<dyn std::error::Error + Send + Sync>> {
        let buffer = segment.trace_buffer(TRACE_BUFFER, &TraceSpec::default())?;
        buffer.name_process("controller")?;
        buffer.name_thread("control loop")?;
        Ok(LoopTrace {
            wait: buffer.name("frame wait")?,
            compute: buffer.name("compute")?,
            mvm: buffer.name("mvm")?,
            command: buffer.name("command")?,
            age: buffer.name("frame age (µs)")?,
            bookkeeping: buffer.name("bookkeeping")?,
            buffer,
            idle_since: std::cell::Cell::new(0),
        })
    }

    /// A frame held at `held`, commanded or not: its age.
    pub fn held(&self, published: u64, held: u64) {
        let age_us = held.saturating_sub(published) as f64 / 1e3;
        self.buffer.record_counter(self.age, held, age_us);
    }

    /// A commanded frame's wait and computation (`CLOCK_MONOTONIC` ns).
    pub fn frame(&self, id: u64, published: u64, held: u64, mvm: (u64, u64), sent: u64) {
        let span = |name, from: u64, to: u64| {
            let d = Duration::from_nanos(to.saturating_sub(from));
            self.buffer.record_span(name, from, d, Some(id));
        };
        span(self.wait, published.max(self.idle_since.get()), held);
        span(self.compute, held, sent);
        self.idle_since.set(sent);
        span(self.mvm, mvm.0, mvm.1);
    }

    /// The loop's own accounting after a command (the report's series, the modal
    /// projections, the progress record), from `from` to now.
    pub fn bookkeeping(&self, id: u64, from: u64) {
        let now = shmkit::clock::monotonic_ns();
        let d = Duration::from_nanos(now.saturating_sub(from));
        self.buffer.record_span(self.bookkeeping, from, d, Some(id));
        self.idle_since.set(now);
    }

    /// A command's way to the mirror.
    pub fn command(&self, id: u64, sent: u64, applied: u64) {
        let d = Duration::from_nanos(applied.saturating_sub(sent));
        self.buffer.record_span(self.command, sent, d, Some(id));
        self.idle_since.set(applied);
    }
}

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
