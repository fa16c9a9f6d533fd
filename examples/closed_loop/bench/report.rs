//! The printed report, and the report folder: `report.json` (the configuration with its seed
//! and every number), the SVG plots (and PNG copies where `rsvg-convert` is installed) and
//! the two camera frames as PGM images.

use super::options::Options;
use super::plots;
use super::stats::Percentiles;
use super::summary::Summary;
use super::Report;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Prints the run's report.
pub fn print_report(o: &Options, s: &Summary) {
    let lat = |name: &str, p: &Percentiles| {
        println!(
            "  {name:<36} p50 {:>7.1} µs  p99 {:>7.1} µs  p99.9 {:>7.1} µs  max {:>8.1} µs  (n = {})",
            p.p50, p.p99, p.p999, p.max, p.n
        );
    };
    println!(
        "AO bench: {:.1} m pupil, {}×{} sub-apertures of {} px ({} valid), {}×{} actuators ({} active), waits: {}",
        o.ao.diameter,
        o.subapertures,
        o.subapertures,
        o.pixels,
        s.sizes.0,
        o.actuators(),
        o.actuators(),
        s.sizes.1,
        o.wait
    );
    let layer = &o.ao.layers[0];
    println!(
        "  turbulence: r0 {:.3} m at {:.0} nm, L0 {:.0} m, {} layer(s), wind {:.1} m/s at {:.0}°; seed {}",
        o.ao.r0, o.ao.r0_wavelength_nm, o.ao.outer_scale, o.ao.layers.len(), layer.speed, layer.direction_deg, o.ao.seed
    );
    println!(
        "  camera {:>8.1} Hz in closed loop (asked {:.0}; {:.1} over the run); loop {:>8.1} Hz: {} frames, {} missed, {} commands, {} telemetry only",
        s.camera_hz, o.rate_hz, s.camera_hz_run, s.loop_hz, s.frames, s.missed, s.commands, s.telemetry_only
    );
    println!(
        "  controller preempted {} times in closed loop (another task took its CPU while it could run{})",
        s.preempted,
        if o.realtime { "" } else { "; --realtime prevents it" }
    );
    lat("frame publish -> controller holds it", &s.frame_latency);
    lat("command sent -> mirror applied it", &s.command_latency);
    lat("control computation (frame -> command)", &s.compute);
    lat("  of which the MVM", &s.mvm);
    lat("frame-period jitter |dt - period|", &s.jitter);
    println!(
        "  checksums: controller {} verified, {} torn; statistics reader {} verified, {} torn",
        s.verified.0, s.torn.0, s.verified.1, s.torn.1
    );
    if let (Some(dir), Some((frames, check))) = (&o.replay, &s.replay) {
        // The rest describes the optics of a live loop; a replayed camera saw the recorded
        // run's mirror.
        println!(
            "  replay of {}: {frames} camera frames republished at their recorded pace",
            dir.display()
        );
        println!(
            "  commands identical to the recorded run's, bit for bit: {} of {} compared{}",
            check.identical,
            check.compared,
            match check.unknown_from {
                None => String::new(),
                Some(id) => format!(
                    " (from frame {id} the recording dropped frames: its run's commands there are unknown)"
                ),
            }
        );
        for f in &s.failures {
            println!("  FAILURE: {f}");
        }
        return;
    }
    println!(
        "  reconstructor: truncated SVD, {} of {} mirror modes corrected; calibration {:.1} s",
        s.modes.0, s.modes.1, s.calibration_s
    );
    println!(
        "  latency (poke test): {} frame(s) median, model {} — steps {:?}",
        s.latency_frames, s.model_delay, s.poke_frames
    );
    println!(
        "  residual: open loop {:.0} nm (Strehl {:.3} at {:.2} µm), closed loop {:.1} nm (Strehl {:.3})",
        s.open_loop_nm,
        s.strehl_open,
        s.science_nm / 1000.0,
        s.closed_loop_nm,
        s.strehl_closed
    );
    if let Some(b) = &s.budget {
        println!(
            "  error budget over t = {:.1}..{:.1} s: fitting {:.1}, aliasing {:.1}, temporal {:.1}, noise {:.1} -> {:.1} nm; measured {:.1} nm ({:.2} x budget)",
            b.window.0, b.window.1, b.fitting_nm, b.aliasing_nm, b.temporal_nm, b.noise_nm, b.total_nm, b.measured_nm, s.budget_ratio
        );
    }
    println!(
        "  rejection: model bandwidth {:.0} Hz (gain {}, leak {}, delay {} frame); measured / model below it: {} (max deviation {:.0} %)",
        s.bandwidth_hz,
        o.gain,
        o.leak,
        s.model_delay,
        s.rtf_bands
            .iter()
            .map(|(f, r)| format!("{f:.0} Hz {r:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * s.rtf_max_deviation
    );
    for f in &s.failures {
        println!("  FAILURE: {f}");
    }
}

#[derive(Serialize)]
struct Json<'a> {
    options: &'a Options,
    summary: &'a Summary,
    /// Measured |RTF| per frequency.
    rtf: &'a [(f64, f64)],
    /// Residual (t s, nm), every 10th frame.
    residual: Vec<(f32, f32)>,
    /// The last mirror command, µm.
    mirror: &'a [f32],
}

/// A PGM image of a u16 frame.
fn pgm(path: &Path, frame: &[u16], side: usize) -> std::io::Result<()> {
    let mut bytes = format!("P5\n{side} {side}\n65535\n").into_bytes();
    for &v in frame.iter().take(side * side) {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    std::fs::write(path, bytes)
}

/// Writes the report folder; returns the files written.
pub fn write_report(
    dir: &Path,
    o: &Options,
    r: &Report,
    s: &Summary,
) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let c = &r.controller;
    let json = Json {
        options: o,
        summary: s,
        rtf: &c.rtf,
        residual: c.residual.iter().step_by(10).copied().collect(),
        mirror: &c.mirror,
    };
    let mut files = vec![dir.join("report.json")];
    std::fs::write(&files[0], serde_json::to_string_pretty(&json)?)?;
    let side = (o.subapertures * o.pixels) as usize;
    for (name, frame) in [
        ("frame-open-loop.pgm", &c.frame_open),
        ("frame-closed-loop.pgm", &c.frame_closed),
    ] {
        if !frame.is_empty() {
            let path = dir.join(name);
            pgm(&path, frame, side)?;
            files.push(path);
        }
    }
    if o.replay.is_some() {
        // The plots are the optics of a live loop (see print_report).
        return Ok(files);
    }
    let svgs = plots::write_all(dir, o, r, s)?;
    files.extend(pngs(&svgs));
    files.extend(svgs);
    Ok(files)
}

/// PNG copies of the SVGs where the system can render them with its fonts (`rsvg-convert`,
/// librsvg); none otherwise — plotters' own bitmap backend would need a font backend built
/// in, the SVGs need none.
fn pngs(svgs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for svg in svgs {
        let png = svg.with_extension("png");
        match std::process::Command::new("rsvg-convert")
            .arg("-o")
            .arg(&png)
            .arg(svg)
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(status) if status.success() => out.push(png),
            // Not installed, or it failed: the SVGs are the report.
            _ => break,
        }
    }
    out
}
