//! The bench behind the `closed_loop` example (also run by `tests/closed_loop.rs`): a
//! simulated adaptive-optics bench correcting moving turbulence through shmkit.
//!
//! One testbed process starts a physical Shack-Hartmann camera (24 × 24 sub-apertures of 8 px
//! on an 8 m pupil, frozen-flow von Kármán turbulence, photon and read noise) and a 25 × 25
//! deformable mirror, each in its own server process, with a safety test on the mirror's
//! stroke. Two experiments run in their own processes: the controller calibrates without
//! turbulence (push-pull on every active actuator, truncated-SVD reconstructor), measures
//! the loop's latency in frames with a poke test, watches the open loop, then on every frame
//! reads the image in place, centroids, multiplies by the reconstructor and runs a leaky
//! integrator into the mirror; a second experiment reads the same frames for image
//! statistics. Both verify every frame's checksum. Afterwards the testbed process rebuilds the
//! same atmosphere for the error budget and writes the report (text, JSON, SVG plots).
//!
//! Files: `options.rs` (parameters), `controller.rs` and `statistics.rs` (the experiments),
//! `linalg.rs` (centroids, reconstructor, MVM), `rtf.rs` (rejection transfer function),
//! `budget.rs` (error budget), `telemetry.rs` (what the experiments send back),
//! `summary.rs` (every number of a run), `report.rs` (text), `plots.rs` (SVG), `stats.rs`
//! (percentiles); this file registers the processes and orchestrates a run.

#![allow(clippy::needless_range_loop)]

mod budget;
mod controller;
pub mod latency;
mod linalg;
mod options;
mod plots;
mod replay;
mod report;
mod rtf;
mod statistics;
mod stats;
mod summary;
mod telemetry;

pub use budget::Budget;
pub use controller::Controller;
pub use options::Options;
pub use report::{print_report, write_report};
pub use statistics::Statistics;
pub use summary::Summary;
pub use telemetry::{ControllerReport, StatsReport};

use shmkit::process::Entries;
use shmkit::rings::FrameRing;
use shmkit::SegmentObjects;
use shmkit_devices::DeviceCache;
use shmkit_devices::DeviceEntries;
use shmkit_sim::stroke_test;
use shmkit_sim::{SimCamera, SimDm};
use shmkit_testbed::ExperimentEntries;
use shmkit_testbed::TestbedBuilder;
use std::time::{Duration, Instant};

/// The CPUs this process may run on, in order.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity writes at most its size
    // into it; CPU_ISSET reads inside it for cpu < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
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

/// Moves the calling process to `SCHED_IDLE`: it runs only when no normal or real-time task
/// wants the CPU, so a reader of every frame cannot delay the loop's processes on a shared
/// CPU (the completely fair scheduler would otherwise favour it for using less CPU than the
/// controller). Needs no privilege.
pub(crate) fn background() -> std::io::Result<()> {
    // SAFETY: sched_setscheduler reads the param struct we pass and nothing else; policy 0
    // priority is the only valid one for SCHED_IDLE.
    let rc = unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
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
    /// The error budget over the end of the closed loop (`None` if the loop did not run).
    pub budget: Option<Budget>,
    /// The recording's manifest, when the run recorded the camera and the mirror.
    pub recording: Option<shmkit_record::Manifest>,
    /// What a replay published, when the run replayed a recorded camera.
    pub replayed: Option<shmkit_record::Replayed>,
    /// The closed loop's stages from the shared histograms (µs): frame -> controller,
    /// computation, MVM, command -> mirror.
    pub stages: [stats::Percentiles; 4],
    /// Events written to the `--trace` file.
    pub traced: Option<usize>,
    /// Mirror commands the library's stage histograms counted (the controller sends each
    /// closed-loop command with its frame's cause).
    pub caused_commands: Option<u64>,
    /// The camera's frames counted late (more than four periods after the one before) and
    /// its stalls, over the whole run (`dev/Camera/frames/late`, `…/stalls`).
    pub camera_late: Option<(u64, u64)>,
}

/// What the camera's ring is held to (see `run`).
fn camera_cadence(options: &Options) -> shmkit_testbed::CadenceCheck {
    let period = Duration::from_secs_f64(1.0 / options.rate_hz);
    shmkit_testbed::CadenceCheck {
        cadence: shmkit::rings::Cadence {
            period,
            deadline: 4 * period,
        },
        max_late: (options.rate_hz / 10.0).ceil() as u64,
        window: Duration::from_secs(1),
        stalled_after: Duration::from_secs(5),
    }
}

/// Runs the bench; `progress` prints a live line. With `options.replay`, the bench runs with
/// the recorded session's parameters and camera frames (see `replay.rs`).
pub fn run(options: &Options, progress: bool) -> Result<Report, Box<dyn std::error::Error>> {
    // A replay's parameters, read once: the testbed's options and where the replay starts.
    let calibration = match &options.replay {
        Some(dir) => Some(replay::calibration(dir).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut options = match (&options.replay, &calibration) {
        // The recorded run's geometry, turbulence and gains; this run's waits, pinning,
        // priorities, tracing, view and report.
        (Some(dir), Some(calibration)) => Options {
            view: options.view,
            wait: options.wait.clone(),
            pin: options.pin,
            realtime: options.realtime,
            report_dir: options.report_dir.clone(),
            segment: options.segment.clone(),
            replay: Some(dir.clone()),
            record: None,
            tracing: options.tracing,
            trace: options.trace.clone(),
            controller_cpu: options.controller_cpu,
            ..calibration.options.clone()
        },
        _ => options.clone(),
    };
    let cpus = allowed_cpus();
    // The device servers, the statistics reader and the recorder on the first CPU (they
    // inherit this process's pin); the controller alone on the last, or on the one the
    // options name (then the servers on the first other). Chosen here: a child asking how
    // many CPUs it may use would see only the pin it inherited (that bug kept the
    // controller beside the camera).
    if let Some(cpu) = options.controller_cpu {
        if !cpus.contains(&cpu) {
            return Err(format!(
                "the controller's CPU {cpu} is not one of this process's {cpus:?}"
            )
            .into());
        }
    }
    let controller_cpu = options.controller_cpu.or(cpus.last().copied());
    let servers_cpu = match (options.pin, controller_cpu) {
        (true, Some(controller)) => match cpus.iter().find(|&&c| c != controller) {
            Some(&servers) => {
                pin_to(servers);
                options.controller_cpu = Some(controller);
                Some(servers)
            }
            None => None,
        },
        _ => None,
    };
    let options = &options;
    let stroke = options.dm().stroke;
    let mut builder = TestbedBuilder::new(&options.segment)
        .size(options.segment_bytes())
        .devices(if options.replay.is_some() {
            &["Dm"]
        } else {
            &["Dm", "Camera"]
        })
        .safety_check_interval(Duration::from_millis(100))
        .safety_test(stroke_test("Dm", stroke, 0.8));
    if options.replay.is_none() {
        // The camera held to its cadence: its server counts the frames more than four periods
        // after the one before (`dev/Camera/frames/late`, which `shmkit watch` shows); a tenth
        // of a second's frames late, or 5 s without one (the phase screens are drawn before
        // the first), stops the bench.
        builder = builder.safety_test(shmkit_testbed::ring_cadence(
            replay::CAMERA_FRAMES,
            camera_cadence(options),
        ));
    }
    let tb = builder.start()?;
    let devices: &DeviceCache = tb.devices();
    devices.get::<SimDm>("Dm", &options.dm())?;
    if progress {
        eprintln!("drawing the phase screens, starting the camera and the mirror ...");
    }
    // The camera: its server, or the ring a replay publishes into (made before the
    // experiments open it, with the recorded spec).
    let camera = match &options.replay {
        None => Some(devices.get::<SimCamera>("Camera", &options.camera())?),
        Some(dir) => {
            let manifest = shmkit_record::Manifest::read(dir)?;
            let ring = manifest
                .rings
                .iter()
                .find(|r| r.ring == replay::CAMERA_FRAMES)
                .ok_or_else(|| format!("{}: no camera ring recorded", dir.display()))?;
            let elem = shmkit::rings::ElemType::from_name(&ring.dtype)
                .ok_or_else(|| format!("{}: unknown dtype {}", dir.display(), ring.dtype))?;
            let spec = shmkit::rings::FrameSpec::new(ring.slots, elem, &ring.shape);
            tb.segment().frame_ring(replay::CAMERA_FRAMES, &spec)?;
            None
        }
    };
    // Started before the experiments so the whole loop is recorded; at idle priority and
    // on CPU 0 with the servers, never beside the controller.
    let recorder = match &options.record {
        Some(dir) => Some(shmkit_record::Recorder::start(
            tb.segment(),
            &[replay::CAMERA_FRAMES, replay::MIRROR_SHAPES],
            &shmkit_record::RecordOptions {
                idle: true,
                cpu: servers_cpu,
                ..shmkit_record::RecordOptions::new(dir)
            },
        )?),
        None => None,
    };
    // Made here, not by the controller, so it outlives the experiment for the file below.
    let trace = match options.tracing {
        true => Some(
            tb.segment()
                .trace_buffer(latency::TRACE_BUFFER, &shmkit::shared::TraceSpec::default())?,
        ),
        false => None,
    };
    if progress {
        let seg = &options.segment;
        eprintln!(
            "segment {seg}: while the loop runs, `shmkit watch {seg}` shows it live and \
             `shmkit trace {seg} --duration 5 --out trace.json` captures a trace"
        );
    }
    // Started on this process's CPU (the servers'), its threads at nice 10; stopped when
    // the bench returns.
    let _viewer = match options.view {
        true => {
            let viewer = shmkit_viewer::Viewer::start(
                &options.segment,
                &shmkit_viewer::ViewOptions::default(),
            )?;
            eprintln!("live view: {}", viewer.url());
            Some(viewer)
        }
        false => None,
    };
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
    let camera_ring: FrameRing = tb.segment().open(replay::CAMERA_FRAMES)?;
    let (frames_before, t_before) = (camera_ring.stats().total_written, Instant::now());
    drop(camera);
    // The controller ends the run; the limit only guards against a stuck one.
    let limit = Duration::from_secs_f64(options.duration_s + 60.0);
    let stop_replay = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut replaying: Option<std::thread::JoinHandle<Result<shmkit_record::Replayed, String>>> =
        None;
    let mut replayed = None;
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let phase: String = progress_dict.get("phase")?.unwrap_or_default();
        if phase == "done" || tb.stopping() || started.elapsed() > limit {
            break;
        }
        // The controller is reading: replay the closed loop's frames at their pace.
        if let (Some(dir), Some(calibration), true, None, None) = (
            &options.replay,
            &calibration,
            phase == "closed loop",
            &replaying,
            &replayed,
        ) {
            let replay_options = shmkit_record::ReplayOptions {
                rings: vec![replay::CAMERA_FRAMES.into()],
                start: shmkit_record::ReplayStart::AtMonoNs(calibration.closed_from_ns),
                ..shmkit_record::ReplayOptions::new(shmkit_record::Pace::Speed(1.0))
            };
            let (dir, segment, stop) = (dir.clone(), options.segment.clone(), stop_replay.clone());
            replaying = Some(std::thread::spawn(move || {
                let segment = shmkit::Segment::open(&segment).map_err(|e| e.to_string())?;
                shmkit_record::replay(&dir, &segment, &replay_options, &stop)
                    .map_err(|e| e.to_string())
            }));
        }
        if replaying.as_ref().is_some_and(|r| r.is_finished()) {
            if let Some(r) = replaying.take() {
                replayed = Some(r.join().map_err(|_| "the replay thread panicked")??);
            }
            progress_dict.insert("replay", &"done")?;
        }
        if progress {
            let frames: u64 = progress_dict.get("frames")?.unwrap_or(0);
            let residual: f64 = progress_dict.get("residual")?.unwrap_or(0.0);
            let missed: u64 = progress_dict.get("missed")?.unwrap_or(0);
            let rate = (frames.saturating_sub(last_frames)) as f64 / last_t.elapsed().as_secs_f64();
            (last_frames, last_t) = (frames, Instant::now());
            if phase == "closed loop" {
                eprint!(
                    "\r{:>6.1} s  {phase:<12} loop {rate:>7.0} Hz  frames {frames:>7}  missed {missed:>4}  residual {residual:>6.1} nm  Strehl(H) {:.2}   ",
                    started.elapsed().as_secs_f64(),
                    shmkit_sim::ao::strehl(residual, options.science_nm)
                );
            } else {
                eprint!(
                    "\r{:>6.1} s  {phase:<12} {frames:>7}                                                              ",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    if progress {
        eprintln!();
    }
    stop_replay.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(r) = replaying.take() {
        replayed = Some(r.join().map_err(|_| "the replay thread panicked")??);
    }
    let camera_hz = camera_ring
        .stats()
        .total_written
        .saturating_sub(frames_before) as f64
        / t_before.elapsed().as_secs_f64();
    tb.request_finish();
    tb.wait_experiments(Duration::from_secs(3));
    let results = options.results(tb.segment())?;
    let stages = latency::Stages::open(tb.segment())?.percentiles();
    // The library's count of the controller's caused mirror commands (shmkit_devices::Cause).
    // The camera's cadence: late frames and stalls the library counted (not in a replay).
    let camera_late = shmkit::rings::Cadence::declared(tb.segment(), replay::CAMERA_FRAMES)
        .ok()
        .flatten()
        .map(|c| (c.late.snapshot().count(), c.stalls.snapshot().count()));
    let caused_commands = tb
        .segment()
        .open::<shmkit::Histogram>(&shmkit_devices::stage_histogram("Dm", "publish-to-applied"))
        .ok()
        .map(|h| h.snapshot().count());
    let controller: ControllerReport = results.get("controller")?.unwrap_or_default();
    let statistics: StatsReport = results.get("statistics")?.unwrap_or_default();
    let recording = recorder.map(shmkit_record::Recorder::stop).transpose()?;
    let traced = match (&options.trace, &trace) {
        (Some(path), Some(buffer)) => {
            let capture = shmkit_record::TraceCapture::newest(buffer, Some(latency::TRACE_WINDOW));
            capture.write_chrome(path)?;
            Some(capture.records.len())
        }
        _ => None,
    };
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
    // The budget over the last seconds of closed loop (at most 4: it replays every frame).
    // (Not for a replay: its frames saw the recorded run's mirror.)
    let budget = if options.replay.is_none() && controller.t_end > controller.t_close + 0.5 {
        if progress {
            eprintln!("error budget: replaying the turbulence ...");
        }
        let t1 = controller.t_end;
        let t0 = (t1 - 4.0).max(controller.t_close + 0.3);
        Some(budget::error_budget(options, t0, t1, &controller.residual)?)
    } else {
        None
    };
    Ok(Report {
        controller,
        statistics,
        camera_hz,
        failures,
        budget,
        recording,
        replayed,
        stages,
        traced,
        caused_commands,
        camera_late,
    })
}
