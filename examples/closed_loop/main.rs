//! A simulated adaptive-optics bench correcting moving turbulence through shmkit — the
//! README's main demo.
//!
//! ```text
//! cargo run --release --example closed_loop            # 10 s at 2 kHz, report under target/
//! cargo run --release --example closed_loop -- --help  # durations, turbulence, gains, waits
//! ```
//!
//! A physical Shack-Hartmann camera (8 m pupil, 24 × 24 sub-apertures of 8 px, frozen-flow
//! von Kármán turbulence, photon and read noise) and a 25 × 25 Gaussian-influence mirror run
//! in their own server processes; a controller calibrates, measures its latency in frames,
//! closes a leaky-integrator loop on every frame, and a statistics reader checks the same
//! frames. The report gives the IPC latencies, the computation time, missed and torn frames,
//! residual and Strehl open and closed loop, the error budget, the measured rejection
//! transfer function beside the model, and writes plots and a JSON file to `--report DIR`.
//!
//! This file is the command line; the bench itself is in `bench/`.

mod bench;

use bench::{entries, print_report, run, write_report, Options, Summary};
use clap::{Parser, ValueEnum};
use shmkit::process::Entries;

/// How the experiments wait for frames.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Wait {
    /// Sleep on the ring's futex.
    Block,
    /// Busy-poll (needs a core per waiter).
    Spin,
    /// Spin briefly, then sleep.
    SpinThenBlock,
}

/// closed_loop: a simulated adaptive-optics bench closing its loop through shmkit.
#[derive(Debug, Parser)]
#[command(name = "closed_loop")]
struct Args {
    /// Closed-loop time, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    duration: f64,
    /// Camera frame rate.
    #[arg(long, value_name = "HZ", default_value_t = 2000.0)]
    rate: f64,
    /// Sub-apertures per side (the mirror has one more actuator per side).
    #[arg(long, value_name = "N", default_value_t = 24, value_parser = clap::value_parser!(u32).range(2..=64))]
    subapertures: u32,
    /// Pixels per sub-aperture side.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(4..=32))]
    pixels: u32,
    /// Pupil diameter, metres.
    #[arg(long, value_name = "M", default_value_t = 8.0)]
    diameter: f64,
    /// Fried parameter at 500 nm, metres.
    #[arg(long, value_name = "M", default_value_t = 0.16)]
    r0: f64,
    /// Outer scale, metres.
    #[arg(long, value_name = "M", default_value_t = 25.0)]
    outer_scale: f64,
    /// Wind speed, m/s.
    #[arg(long, value_name = "M/S", default_value_t = 10.0)]
    wind: f64,
    /// Wind direction, degrees.
    #[arg(long, value_name = "DEG", default_value_t = 0.0)]
    wind_direction: f64,
    /// Turbulent layers (equal shares; the wind turns 40° and speeds up 50 % per layer).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    layers: u32,
    /// Seed of the turbulence and of the noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Photo-electrons per sub-aperture per frame.
    #[arg(long, value_name = "E", default_value_t = 500.0)]
    photons: f64,
    /// Integrator gain.
    #[arg(long, value_name = "G", default_value_t = 0.5)]
    gain: f32,
    /// Integrator leak.
    #[arg(long, value_name = "L", default_value_t = 0.995)]
    leak: f32,
    /// How the experiments wait for frames.
    #[arg(long, value_enum, default_value = "block")]
    wait: Wait,
    /// Let the scheduler place every process (default: the controller alone on the last
    /// CPU, everything else on CPU 0).
    #[arg(long)]
    no_pin: bool,
    /// The controller's CPU when pinned (default: the last one this process may use); the
    /// servers go to the first other. On a machine whose disk interrupts one CPU, record
    /// with the controller on another (`/proc/interrupts`).
    #[arg(long, value_name = "CPU", conflicts_with = "no_pin")]
    controller_cpu: Option<usize>,
    /// The loop's processes in real-time mode: memory locked, SCHED_FIFO priorities 50
    /// (controller), 45 (mirror server), 40 (camera server); needs CAP_SYS_NICE /
    /// `ulimit -r` and CAP_IPC_LOCK / `ulimit -l`, and says so when refused.
    #[arg(long)]
    realtime: bool,
    /// Folder for the report (plots, JSON, frames); default `target/closed-loop/<time>`.
    #[arg(long, value_name = "DIR")]
    report: Option<std::path::PathBuf>,
    /// Record the camera's and the mirror's frames into this session directory (FITS files
    /// and manifest.json, as `shmkit record` writes them) while the loop runs, with what a
    /// replay needs (closed_loop.json, reconstructor.fits).
    #[arg(long, value_name = "DIR", conflicts_with = "replay")]
    record: Option<std::path::PathBuf>,
    /// Run the controller against the camera frames a `--record DIR` run recorded, at their
    /// pace, with its reconstructor and parameters (no camera server; the geometry,
    /// turbulence and gain options are the recorded run's), and check that every command is
    /// the recorded one.
    #[arg(long, value_name = "DIR")]
    replay: Option<std::path::PathBuf>,
    /// Write the closed loop's last seconds of trace (each frame's wait, computation, MVM and
    /// command as spans, its age as a counter, the servers' commands and polls) to FILE in
    /// the Chrome trace-event format (open it in Perfetto).
    #[arg(long, value_name = "FILE", conflicts_with = "no_trace")]
    trace: Option<std::path::PathBuf>,
    /// Do not trace: the controller and the servers record no spans (the segment holds no
    /// trace buffer; by default it does, for `shmkit trace` to follow while the loop runs).
    #[arg(long)]
    no_trace: bool,
    /// Serve the live view in a browser while the bench runs (camera, mirror, latencies,
    /// health): prints a loopback URL with its token, as `shmkit view` does.
    #[arg(long)]
    view: bool,
}

impl Args {
    fn options(&self) -> Options {
        let mut o = Options {
            duration_s: self.duration,
            rate_hz: self.rate,
            subapertures: self.subapertures,
            pixels: self.pixels,
            gain: self.gain,
            leak: self.leak,
            pin: !self.no_pin,
            controller_cpu: self.controller_cpu,
            realtime: self.realtime,
            record: self.record.clone(),
            replay: self.replay.clone(),
            tracing: !self.no_trace,
            trace: self.trace.clone(),
            view: self.view,
            ..Options::default()
        };
        o.ao.diameter = self.diameter;
        o.ao.r0 = self.r0;
        o.ao.outer_scale = self.outer_scale;
        o.ao.seed = self.seed;
        o.ao.photons = self.photons;
        o.ao.layers = (0..self.layers)
            .map(|k| shmkit_sim::ao::WindLayer {
                fraction: 1.0 / f64::from(self.layers),
                speed: self.wind * 1.5f64.powi(k as i32),
                direction_deg: self.wind_direction + 40.0 * f64::from(k),
            })
            .collect();
        o.wait = match self.wait {
            Wait::Block => "block",
            Wait::Spin => "spin",
            Wait::SpinThenBlock => "spin-then-block",
        }
        .into();
        o.report_dir = Some(self.report.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            std::path::PathBuf::from(format!("target/closed-loop/{secs}"))
        }));
        o
    }
}

fn main() {
    // Child processes (device servers, experiments) start here and never return.
    entries(Entries::new()).dispatch();
    let options = Args::parse().options();
    match run(&options, true) {
        Ok(report) => {
            let summary = Summary::of(&options, &report);
            print_report(&options, &summary);
            if let (Some(dir), Some(m)) = (&options.record, &report.recording) {
                for r in &m.rings {
                    println!(
                        "recorded {}: published {}, recorded {}, dropped {} ({} file(s) in {})",
                        r.ring,
                        r.published.unwrap_or(0),
                        r.recorded,
                        r.dropped,
                        r.files.len(),
                        dir.display()
                    );
                }
            }
            if let Some((late, stalls)) = report.camera_late {
                println!(
                    "camera cadence over the run: {late} frames late (more than four periods after the one before), {stalls} stalls (dev/Camera/frames/late, …/stalls)"
                );
            }
            if let Some(n) = report.caused_commands {
                println!(
                    "mirror commands sent with their frame's cause: {n} (the library's stages in dev/Dm/latency/*)"
                );
            }
            if let (Some(path), Some(events)) = (&options.trace, report.traced) {
                println!(
                    "trace: {} ({events} events, the loop's last {} s; open it in ui.perfetto.dev)",
                    path.display(),
                    bench::latency::TRACE_WINDOW.as_secs()
                );
            }
            if let Some(dir) = &options.report_dir {
                match write_report(dir, &options, &report, &summary) {
                    Ok(files) => {
                        let png = files
                            .iter()
                            .any(|f| f.extension().is_some_and(|e| e == "png"));
                        println!(
                            "report: {} ({} files: report.json, SVG plots{}, PGM frames)",
                            dir.display(),
                            files.len(),
                            if png {
                                " with PNG copies"
                            } else {
                                " (no PNG: rsvg-convert is not installed)"
                            }
                        );
                    }
                    Err(e) => {
                        eprintln!("closed_loop: writing the report to {}: {e}", dir.display());
                        std::process::exit(1);
                    }
                }
            }
            // The demo's own claims: no torn frame, no frame the controller missed; a replay
            // commands what the recording did.
            let replay_differs = summary
                .replay
                .as_ref()
                .is_some_and(|(_, c)| c.identical != c.compared || c.compared == 0);
            if summary.torn.0 + summary.torn.1 > 0
                || summary.missed > 0
                || !summary.failures.is_empty()
                || replay_differs
            {
                eprintln!(
                    "closed_loop: FAILED: {} + {} torn, {} missed, failures {:?}, replay {:?}",
                    summary.torn.0,
                    summary.torn.1,
                    summary.missed,
                    summary.failures,
                    summary.replay
                );
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("closed_loop: {}", shmkit::error_chain(&*e));
            std::process::exit(1);
        }
    }
}
