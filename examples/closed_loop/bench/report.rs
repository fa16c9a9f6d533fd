//! What the experiments measured, and the printed report.

use super::options::Options;
use super::stats::Percentiles;
use super::Report;
use serde::{Deserialize, Serialize};

/// What the controller measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ControllerReport {
    /// Frames the controller read.
    pub frames: u64,
    /// Mirror commands sent (one per frame read, except telemetry-only ones).
    pub commands: u64,
    /// Frames read with a newer one already published: used for telemetry only.
    pub telemetry_only: u64,
    /// Frames the controller never saw (overruns and id gaps).
    pub missed: u64,
    /// Loop iterations per second.
    pub loop_hz: f64,
    /// Frame publish → controller holds it.
    pub frame_latency: Percentiles,
    /// Command sent → mirror applied it.
    pub command_latency: Percentiles,
    /// Frames whose checksum matched.
    pub verified: u64,
    /// Frames whose checksum did not (torn).
    pub torn: u64,
    /// Mean RMS slope (pixels) per second of closed loop.
    pub residual_per_second: Vec<f64>,
    /// RMS slope before closing the loop.
    pub open_loop_residual: f64,
    /// RMS slope after the first 1, 2, 3, 5, 10, 20, 50 and 100 closed-loop frames.
    pub first_frames: Vec<(u64, f64)>,
    /// Mirror modes the truncated-SVD reconstructor leaves uncorrected, of `actuators²`.
    pub modes_dropped: u64,
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
/// Prints the run's report.
pub fn print_report(o: &Options, r: &Report) {
    let c = &r.controller;
    let lat = |name: &str, p: &Percentiles| {
        println!(
            "  {name:<34} p50 {:>7.1} µs   p99 {:>7.1} µs   p99.9 {:>7.1} µs   max {:>8.1} µs   (n = {})",
            p.p50, p.p99, p.p999, p.max, p.n
        );
    };
    println!(
        "closed loop: {}×{} sub-apertures of {} px, {}×{} actuators, waits: {}",
        o.subapertures, o.subapertures, o.pixels, o.actuators, o.actuators, o.wait
    );
    println!(
        "  camera rate {:>10.1} Hz (asked {:.0})",
        r.camera_hz, o.rate_hz
    );
    println!(
        "  loop rate   {:>10.1} Hz: {} frames read, {} missed by the controller; {} mirror commands ({} frames arrived behind a newer one: telemetry only)",
        c.loop_hz, c.frames, c.missed, c.commands, c.telemetry_only
    );
    lat("frame publish -> controller holds it", &c.frame_latency);
    lat("command sent -> mirror applied it", &c.command_latency);
    println!(
        "  checksums: controller {} verified, {} torn; statistics reader {} verified, {} torn (mean intensity {:.1})",
        c.verified, c.torn, r.statistics.verified, r.statistics.torn, r.statistics.mean_intensity
    );
    println!(
        "  reconstructor: truncated SVD, {} of {} mirror modes corrected",
        (o.actuators * o.actuators) as u64 - c.modes_dropped,
        o.actuators * o.actuators
    );
    println!(
        "  residual (RMS slope, px): open loop {:.4}",
        c.open_loop_residual
    );
    for (frame, v) in &c.first_frames {
        println!("    after frame {frame:>4}: {v:.4}");
    }
    for (i, v) in c.residual_per_second.iter().enumerate() {
        println!("    second {:>3}: {v:.4}", i + 1);
    }
    for f in &r.failures {
        println!("  FAILURE: {f}");
    }
}
