//! What the experiments measured: the controller's telemetry (latencies, residuals, the poke
//! test, spectra, snapshots) and the statistics reader's counts, sent through the testbed's
//! results dictionary.

use super::replay::ReplayCheck;
use super::stats::Percentiles;
use serde::{Deserialize, Serialize};

/// What the controller measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ControllerReport {
    /// The CPUs the controller's loop was allowed to run on.
    #[serde(default)]
    pub cpus: Vec<usize>,
    /// Against a replayed camera: how its commands compared with the recorded run's.
    #[serde(default)]
    pub replay: Option<ReplayCheck>,
    /// Frames the controller read in closed loop.
    pub frames: u64,
    /// Mirror commands sent (one per frame read, except telemetry-only ones).
    pub commands: u64,
    /// Frames read with a newer one already published: used for telemetry only.
    pub telemetry_only: u64,
    /// Frames the controller never saw (overruns and id gaps).
    pub missed: u64,
    /// Times another task took the controller's CPU while it was runnable during the closed
    /// loop (its thread's involuntary context switches, `getrusage(RUSAGE_THREAD)`).
    #[serde(default)]
    pub preempted: u64,
    /// Loop iterations per second.
    pub loop_hz: f64,
    /// The camera's rate over the closed loop: frame ids published per second of their
    /// timestamps.
    pub camera_hz: f64,
    /// Frames whose checksum matched (every frame read, calibration included).
    pub verified: u64,
    /// Frames whose checksum did not (torn).
    pub torn: u64,
    /// Frame publish → controller holds it, µs, one per closed-loop frame.
    pub frame_latency_us: Vec<f32>,
    /// Command sent → mirror applied it, µs.
    pub command_latency_us: Vec<f32>,
    /// Frame held → command sent (slopes, MVM, integrator), µs.
    pub compute_us: Vec<f32>,
    /// The reconstructor's matrix–vector product alone, µs.
    pub mvm_us: Vec<f32>,
    /// Publish-to-publish interval of consecutive frames, µs.
    pub frame_period_us: Vec<f32>,
    /// True residual wavefront RMS (nm, from the camera's truth word) per frame read, with
    /// its simulated time (s): the open-loop stretch, then closed loop.
    pub residual: Vec<(f32, f32)>,
    /// Simulated time the loop closed, s.
    pub t_close: f64,
    /// Simulated time of the last closed-loop frame, s.
    pub t_end: f64,
    /// Mirror modes corrected / in all.
    pub modes: (u64, u64),
    /// Valid sub-apertures and active actuators.
    pub sizes: (u64, u64),
    /// Calibration's wall-clock time, s.
    pub calibration_s: f64,
    /// Latency of each poke-test step, frames (0: never seen).
    pub poke_frames: Vec<u32>,
    /// Measured rejection transfer function: `(frequency Hz, |RTF|)`.
    pub rtf: Vec<(f64, f64)>,
    /// The open-loop camera frame (row-major u16).
    pub frame_open: Vec<u16>,
    /// The last closed-loop camera frame.
    pub frame_closed: Vec<u16>,
    /// The last mirror command, µm (`actuators²`, row-major; inactive actuators 0).
    pub mirror: Vec<f32>,
}

/// What the statistics reader measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatsReport {
    /// Frames read.
    pub frames: u64,
    /// Frames whose checksum matched.
    pub verified: u64,
    /// Frames whose checksum did not.
    pub torn: u64,
    /// Mean pixel value over the frames read.
    pub mean_intensity: f64,
}

impl ControllerReport {
    /// Percentiles of one of the latency series.
    pub fn percentiles(series: &[f32]) -> Percentiles {
        super::stats::percentiles(
            series
                .iter()
                .map(|&v| (f64::from(v) * 1000.0) as u64)
                .collect(),
        )
    }
}
