//! The bench behind the `closed_loop` example (also run by `tests/closed_loop.rs`): a
//! simulated adaptive-optics loop closing through shmkit.
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
//! Files: `options.rs` (parameters), `controller.rs` and `statistics.rs` (the experiments),
//! `linalg.rs` (slopes and reconstructor), `stats.rs` (percentiles), `report.rs`; this file
//! registers the processes and orchestrates a run.

#![allow(clippy::needless_range_loop)]

mod controller;
mod linalg;
mod options;
mod report;
mod statistics;
mod stats;

pub use controller::Controller;
pub use options::Options;
pub use report::{print_report, ControllerReport, StatsReport};
pub use statistics::Statistics;

use shmkit::devices::sim::{SimCamera, SimDm};
use shmkit::devices::DeviceCache;
use shmkit::process::Entries;
use shmkit::rings::FrameRing;
use shmkit::testbed::{stroke_test, TestbedBuilder};
use shmkit::SegmentObjects;
use std::time::{Duration, Instant};

/// CPUs this process may run on.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins the calling process (and the children it starts later) to `cpu`.
pub(crate) fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays inside it for cpu < CPU_SETSIZE;
    // sched_setaffinity reads the set we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % libc::CPU_SETSIZE as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Registers the bench's device servers and experiments.
pub fn entries(entries: Entries) -> Entries {
    entries
        .device::<SimCamera>()
        .device::<SimDm>()
        .experiment::<Controller>()
        .experiment::<Statistics>()
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The controller's measurements.
    pub controller: ControllerReport,
    /// The statistics reader's.
    pub statistics: StatsReport,
    /// Frames the camera published per second.
    pub camera_hz: f64,
    /// Experiments that failed, with their errors.
    pub failures: Vec<String>,
}

/// Runs the bench; `progress` prints a live line.
pub fn run(options: &Options, progress: bool) -> Result<Report, Box<dyn std::error::Error>> {
    if options.pin && cpus() >= 2 {
        // Device servers and the statistics reader inherit CPU 0; the controller moves itself.
        pin_to(0);
    }
    let stroke = options.dm().stroke;
    let tb = TestbedBuilder::new(&options.segment)
        .devices(&["Dm", "Camera"])
        .safety_check_interval(Duration::from_millis(100))
        .safety_test(stroke_test("Dm", stroke, 0.8))
        .start()?;
    let devices: &DeviceCache = tb.devices();
    devices.get::<SimDm>("Dm", &options.dm())?;
    let camera = devices.get::<SimCamera>("Camera", &options.camera())?;
    tb.start_experiment(&Controller {
        options: options.clone(),
    })?;
    tb.start_experiment(&Statistics {
        options: options.clone(),
    })?;
    let progress_dict = tb.segment().dict("closed-loop/progress", 16)?;
    let started = Instant::now();
    let (mut last_frames, mut last_t) = (0u64, Instant::now());
    // The camera's rate from its ring's counters: readable even after a safety trip closed
    // the camera.
    let camera_ring: FrameRing = tb.segment().open("dev/Camera/frames")?;
    let (frames_before, t_before) = (camera_ring.stats().total_written, Instant::now());
    drop(camera);
    // The controller ends the run; the limit only guards against a stuck one.
    let limit = Duration::from_secs_f64(options.duration_s + 60.0);
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let phase: String = progress_dict.get("phase")?.unwrap_or_default();
        if phase == "done" || tb.stopping() || started.elapsed() > limit {
            break;
        }
        if progress {
            let frames: u64 = progress_dict.get("frames")?.unwrap_or(0);
            let residual: f64 = progress_dict.get("residual")?.unwrap_or(0.0);
            let missed: u64 = progress_dict.get("missed")?.unwrap_or(0);
            let rate = (frames.saturating_sub(last_frames)) as f64 / last_t.elapsed().as_secs_f64();
            (last_frames, last_t) = (frames, Instant::now());
            eprint!(
                "\r{:>6.1} s  {phase:<12} loop {rate:>7.0} Hz  frames {frames:>7}  missed {missed:>4}  residual {residual:.4} px   ",
                started.elapsed().as_secs_f64()
            );
        }
    }
    if progress {
        eprintln!();
    }
    let camera_hz = camera_ring
        .stats()
        .total_written
        .saturating_sub(frames_before) as f64
        / t_before.elapsed().as_secs_f64();
    tb.request_finish();
    tb.wait_experiments(Duration::from_secs(3));
    let results = tb.segment().dict("closed-loop/results", 8)?;
    let controller: ControllerReport = results.get("controller")?.unwrap_or_default();
    let statistics: StatsReport = results.get("statistics")?.unwrap_or_default();
    let trip = tb.trip();
    let outcome = tb.close();
    let mut failures: Vec<String> = outcome
        .experiments
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e}", o.name)))
        .collect();
    if let Some(trip) = trip {
        failures.push(format!("safety trip {}: {}", trip.test, trip.message));
    }
    Ok(Report {
        controller,
        statistics,
        camera_hz,
        failures,
    })
}
