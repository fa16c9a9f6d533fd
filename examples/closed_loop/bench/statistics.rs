//! The image-statistics experiment: a second reader of the same frames.

use super::options::Options;
use super::replay::CAMERA_FRAMES;
use super::telemetry::StatsReport;
use serde::{Deserialize, Serialize};
use shmkit::rings::{FrameRing, ReadMode, RingError};
use shmkit::SegmentObjects;
use shmkit_sim::checksum;
use shmkit_testbed::{Experiment, ExperimentContext, ExperimentFailure};
use std::time::Duration;

/// The image-statistics experiment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Statistics {
    /// Run parameters.
    pub options: Options,
}
impl Experiment for Statistics {
    const NAME: &'static str = "statistics";

    fn experiment(&mut self, ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        let o = &self.options;
        // A background consumer: it must never delay the controller on a shared CPU.
        if let Err(e) = super::background() {
            eprintln!("statistics: staying at normal priority: {e}");
        }
        // The camera's ring by name: a replayed camera has no server.
        let mut frames = ctx
            .segment()
            .open::<FrameRing>(CAMERA_FRAMES)?
            .reader(ReadMode::NewestOnly)?
            .with_strategy(o.strategy());
        let mut report = StatsReport::default();
        let mut total = 0f64;
        while !ctx.should_stop() {
            let frame = match frames.next(Duration::from_millis(200)) {
                Ok(f) => f,
                Err(RingError::Timeout { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            if checksum(frame.bytes()) == frame.user(1) {
                report.verified += 1;
            } else {
                report.torn += 1;
            }
            let pixels = frame.typed::<u16>()?;
            total += pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / pixels.len() as f64;
            report.frames += 1;
        }
        report.mean_intensity = total / report.frames.max(1) as f64;
        o.results(ctx.segment())?.insert("statistics", &report)?;
        Ok(())
    }
}
