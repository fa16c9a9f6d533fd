//! A simulated adaptive-optics bench closing its loop through shmkit — the README's main demo.
//!
//! ```text
//! cargo run --release --example closed_loop            # 10 s, camera at 2 kHz, blocking waits
//! cargo run --release --example closed_loop -- --help  # durations, rates, sizes, wait strategy
//! ```
//!
//! One testbed process starts a simulated wavefront-sensor camera (16×16 sub-apertures) and a
//! simulated 12×12 deformable mirror, each in its own server process, with a safety test on
//! the mirror's stroke. Two experiments run in their own processes: the controller calibrates
//! (pushes and pulls every actuator), then on every frame reads the image in place, computes
//! the slopes, multiplies by the reconstructor and integrates into the mirror command; a
//! second experiment reads the same frames at the same time for image statistics. Both verify
//! every frame's checksum. The report gives rates, missed frames, both IPC latencies
//! (p50/p99/p99.9/max), torn frames (0) and the residual per second (it converges).
//!
//! This file is the command line; the bench itself is in `bench/`.

mod bench;

use bench::{entries, print_report, run, Options};
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

/// closed_loop: a simulated adaptive-optics loop through shmkit.
#[derive(Debug, Parser)]
#[command(name = "closed_loop")]
struct Args {
    /// Closed-loop time after calibration, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    duration: f64,
    /// Camera frame rate.
    #[arg(long, value_name = "HZ", default_value_t = 2000.0)]
    rate: f64,
    /// Sub-apertures per side.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=64))]
    subapertures: u32,
    /// Pixels per sub-aperture side.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=64))]
    pixels: u32,
    /// Mirror actuators per side.
    #[arg(long, value_name = "N", default_value_t = 12, value_parser = clap::value_parser!(u32).range(2..=64))]
    actuators: u32,
    /// Integrator gain.
    #[arg(long, value_name = "G", default_value_t = 0.4)]
    gain: f32,
    /// How the experiments wait for frames.
    #[arg(long, value_enum, default_value = "block")]
    wait: Wait,
    /// Controller alone on the last CPU, everything else on CPU 0.
    #[arg(long)]
    pin: bool,
    /// The controller in real-time mode: memory locked, SCHED_FIFO priority 50 (needs
    /// CAP_SYS_NICE / `ulimit -r`, CAP_IPC_LOCK / `ulimit -l`; says so when refused).
    #[arg(long)]
    realtime: bool,
}

impl Args {
    fn options(&self) -> Options {
        Options {
            duration_s: self.duration,
            rate_hz: self.rate,
            subapertures: self.subapertures,
            pixels: self.pixels,
            actuators: self.actuators,
            gain: self.gain,
            wait: match self.wait {
                Wait::Block => "block",
                Wait::Spin => "spin",
                Wait::SpinThenBlock => "spin-then-block",
            }
            .into(),
            pin: self.pin,
            realtime: self.realtime,
            ..Options::default()
        }
    }
}

fn main() {
    // Child processes (device servers, experiments) start here and never return.
    entries(Entries::new()).dispatch();
    let options = Args::parse().options();
    match run(&options, true) {
        Ok(report) => {
            print_report(&options, &report);
            let torn = report.controller.torn + report.statistics.torn;
            if torn > 0 || !report.failures.is_empty() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("closed_loop: {}", shmkit::error_chain(&*e));
            std::process::exit(1);
        }
    }
}
