//! Every number of a run, derived once from what the experiments measured: what the text
//! report prints, the JSON holds and the tests assert.

use super::budget::Budget;
use super::options::Options;
use super::replay::ReplayCheck;
use super::rtf;
use super::stats::Percentiles;
use super::telemetry::ControllerReport;
use super::Report;
use serde::{Deserialize, Serialize};
use shmkit_sim::ao::strehl;

/// The latency the model assumes, frames: the simulated camera renders the instant it
/// publishes, and a command computed from frame k is on the mirror before frame k + 1 is
/// rendered when the loop keeps up.
pub const MODEL_DELAY: u32 = 1;

/// Closed-loop frames after closing that are left out of the residual (convergence).
const SETTLE_S: f64 = 0.2;

/// The numbers of one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Frames per second the camera published during the closed loop.
    pub camera_hz: f64,
    /// Frames per second over the whole run (calibration, a safety trip included).
    pub camera_hz_run: f64,
    /// Loop iterations per second.
    pub loop_hz: f64,
    /// Closed-loop frames read, commands sent, frames used for telemetry only, frames missed.
    pub frames: u64,
    /// Mirror commands sent.
    pub commands: u64,
    /// Frames that arrived behind a newer one.
    pub telemetry_only: u64,
    /// Frames the controller never saw.
    pub missed: u64,
    /// Times another task took the controller's CPU during the closed loop.
    #[serde(default)]
    pub preempted: u64,
    /// Checksummed frames (controller, statistics reader).
    pub verified: (u64, u64),
    /// Torn frames (controller, statistics reader).
    pub torn: (u64, u64),
    /// Frame publish → controller holds it.
    pub frame_latency: Percentiles,
    /// Command sent → mirror applied it.
    pub command_latency: Percentiles,
    /// Frame held → command sent.
    pub compute: Percentiles,
    /// The reconstructor's matrix–vector product.
    pub mvm: Percentiles,
    /// Publish-to-publish interval.
    pub frame_period: Percentiles,
    /// |interval − nominal period|, µs.
    pub jitter: Percentiles,
    /// Residual RMS open loop, nm.
    pub open_loop_nm: f64,
    /// Residual RMS closed loop (after the first 0.2 s), nm.
    pub closed_loop_nm: f64,
    /// The wavelength of the Strehl ratios, nm.
    pub science_nm: f64,
    /// Maréchal Strehl open loop.
    pub strehl_open: f64,
    /// Maréchal Strehl closed loop.
    pub strehl_closed: f64,
    /// Poke-test latency of each step, frames.
    pub poke_frames: Vec<u32>,
    /// Their median.
    pub latency_frames: u32,
    /// The model's delay, frames.
    pub model_delay: u32,
    /// The model's rejection bandwidth, Hz.
    pub bandwidth_hz: f64,
    /// Measured / model |RTF| per fifth of a decade below the bandwidth.
    pub rtf_bands: Vec<(f64, f64)>,
    /// The largest |measured / model − 1| of those bands.
    pub rtf_max_deviation: f64,
    /// Mirror modes corrected / in all.
    pub modes: (u64, u64),
    /// Valid sub-apertures and active actuators.
    pub sizes: (u64, u64),
    /// Calibration time, s.
    pub calibration_s: f64,
    /// The error budget, and the measured residual over the same frames.
    pub budget: Option<Budget>,
    /// Measured residual / budget total.
    pub budget_ratio: f64,
    /// Experiments that failed and safety trips.
    pub failures: Vec<String>,
    /// Against a replayed camera: the frames republished, and how the commands compared
    /// with the recorded run's.
    pub replay: Option<(u64, ReplayCheck)>,
}

fn mean_rms(residual: &[(f32, f32)], from: f64, to: f64) -> f64 {
    let v: Vec<f64> = residual
        .iter()
        .filter(|&&(t, _)| f64::from(t) >= from && f64::from(t) <= to)
        .map(|&(_, r)| f64::from(r).powi(2))
        .collect();
    (v.iter().sum::<f64>() / v.len().max(1) as f64).sqrt()
}

impl Summary {
    /// The numbers of `report`, a run of `o`.
    pub fn of(o: &Options, report: &Report) -> Summary {
        let c: &ControllerReport = &report.controller;
        let p = ControllerReport::percentiles;
        let period_us = 1e6 / o.rate_hz;
        let jitter: Vec<f32> = c
            .frame_period_us
            .iter()
            .map(|&v| (v - period_us as f32).abs())
            .collect();
        let open = mean_rms(&c.residual, f64::NEG_INFINITY, c.t_close);
        let closed = mean_rms(&c.residual, c.t_close + SETTLE_S, c.t_end);
        let mut pokes = c.poke_frames.clone();
        pokes.sort_unstable();
        let (gain, leak) = (f64::from(o.gain), f64::from(o.leak));
        let bands = rtf::compare(&c.rtf, o.rate_hz, gain, leak, MODEL_DELAY);
        let budget_ratio = report
            .budget
            .as_ref()
            .map_or(0.0, |b| b.measured_nm / b.total_nm.max(1e-9));
        Summary {
            camera_hz: c.camera_hz,
            camera_hz_run: report.camera_hz,
            loop_hz: c.loop_hz,
            frames: c.frames,
            commands: c.commands,
            telemetry_only: c.telemetry_only,
            preempted: c.preempted,
            missed: c.missed,
            verified: (c.verified, report.statistics.verified),
            torn: (c.torn, report.statistics.torn),
            // The table from the shared histograms (what `shmkit watch` showed live).
            frame_latency: report.stages[0].clone(),
            command_latency: report.stages[3].clone(),
            compute: report.stages[1].clone(),
            mvm: report.stages[2].clone(),
            frame_period: p(&c.frame_period_us),
            jitter: p(&jitter),
            open_loop_nm: open,
            closed_loop_nm: closed,
            science_nm: o.science_nm,
            strehl_open: strehl(open, o.science_nm),
            strehl_closed: strehl(closed, o.science_nm),
            latency_frames: pokes.get(pokes.len() / 2).copied().unwrap_or(0),
            poke_frames: c.poke_frames.clone(),
            model_delay: MODEL_DELAY,
            bandwidth_hz: rtf::bandwidth(o.rate_hz, gain, leak, MODEL_DELAY),
            rtf_max_deviation: bands
                .iter()
                .map(|&(_, r)| (r - 1.0).abs())
                .fold(0.0, f64::max),
            rtf_bands: bands,
            modes: c.modes,
            sizes: c.sizes,
            calibration_s: c.calibration_s,
            budget: report.budget.clone(),
            budget_ratio,
            failures: report.failures.clone(),
            replay: report
                .replayed
                .as_ref()
                .map(|r| r.rings.iter().map(|(_, n)| n).sum())
                .zip(c.replay.clone()),
        }
    }
}
