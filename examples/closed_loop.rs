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

#![allow(clippy::needless_range_loop)]

use serde::{Deserialize, Serialize};
use shmkit::devices::sim::{
    checksum, DmCommand, DmReply, SimCamera, SimCameraConfig, SimDm, SimDmConfig,
};
use shmkit::devices::DeviceCache;
use shmkit::process::Entries;
use shmkit::rings::{FrameReader, FrameRing, ReadMode, RingError};
use shmkit::testbed::{
    stroke_test, Experiment, ExperimentContext, ExperimentFailure, TestbedBuilder,
};
use shmkit::SegmentObjects;
use shmkit::WaitStrategy;
use std::time::{Duration, Instant};

/// The run's parameters (sent to both experiments).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// Seconds of closed loop after calibration.
    pub duration_s: f64,
    /// Camera frames per second.
    pub rate_hz: f64,
    /// Sub-apertures per side.
    pub subapertures: u32,
    /// Pixels per sub-aperture side.
    pub pixels: u32,
    /// Mirror actuators per side.
    pub actuators: u32,
    /// Integrator gain.
    pub gain: f32,
    /// How the experiments wait for frames: "block", "spin" or "spin-then-block".
    pub wait: String,
    /// Testbed segment name.
    pub segment: String,
    /// Pin the controller to the last CPU and everything else to CPU 0 (on 2+ CPUs). Off by
    /// default: on the 2-vCPU VM this was measured on, a controller alone on a CPU that halts
    /// between frames wakes later (p99 59–79 µs) than one the scheduler places (p99 ~49 µs).
    pub pin: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration_s: 10.0,
            rate_hz: 2000.0,
            subapertures: 16,
            pixels: 8,
            actuators: 12,
            gain: 0.4,
            wait: "block".into(),
            segment: format!("shmkit-closed-loop-{}", std::process::id()),
            pin: false,
        }
    }
}

impl Options {
    fn strategy(&self) -> WaitStrategy {
        match self.wait.as_str() {
            "spin" => WaitStrategy::Spin,
            "spin-then-block" => WaitStrategy::SpinThenBlock,
            _ => WaitStrategy::Block,
        }
    }

    fn camera(&self) -> SimCameraConfig {
        SimCameraConfig {
            subapertures: self.subapertures,
            pixels: self.pixels,
            rate_hz: self.rate_hz,
            slots: 16,
            gain: 1.0,
            dm: Some("Dm".into()),
            dm_actuators: self.actuators,
        }
    }

    fn dm(&self) -> SimDmConfig {
        SimDmConfig {
            actuators: self.actuators,
            stroke: 1.0,
            fail_open: None,
            hard_limit: None,
        }
    }
}

/// Latency percentiles, µs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

fn percentiles(mut ns: Vec<u64>) -> Percentiles {
    if ns.is_empty() {
        return Percentiles::default();
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    Percentiles {
        n: ns.len(),
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: *ns.last().unwrap_or(&0) as f64 / 1000.0,
    }
}

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

/// The controller experiment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Controller {
    /// Run parameters.
    pub options: Options,
}

/// The image-statistics experiment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Statistics {
    /// Run parameters.
    pub options: Options,
}

/// Slopes (x for every sub-aperture, then y) of one image, in pixels from each centre.
fn slopes(image: &[u16], subs: usize, pix: usize, out: &mut [f32]) {
    let width = subs * pix;
    let centre = pix as f32 / 2.0 - 0.5;
    for sy in 0..subs {
        for sx in 0..subs {
            let (mut sum, mut mx, mut my) = (0.0f32, 0.0f32, 0.0f32);
            for y in 0..pix {
                let row = &image[(sy * pix + y) * width + sx * pix..][..pix];
                for (x, &v) in row.iter().enumerate() {
                    let v = (f32::from(v) - 100.0).max(0.0);
                    sum += v;
                    mx += v * x as f32;
                    my += v * y as f32;
                }
            }
            let k = sy * subs + sx;
            if sum > 0.0 {
                out[k] = mx / sum - centre;
                out[subs * subs + k] = my / sum - centre;
            } else {
                out[k] = 0.0;
                out[subs * subs + k] = 0.0;
            }
        }
    }
}

fn rms(v: &[f32]) -> f64 {
    (v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

/// `(MᵀM + αI)⁻¹ Mᵀ` for `m` of `rows × cols` (row-major), by Cholesky: `cols × rows`.
fn reconstructor(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut a = vec![0f64; cols * cols];
    for i in 0..cols {
        for j in 0..=i {
            let mut s = 0.0;
            for r in 0..rows {
                s += f64::from(m[r * cols + i]) * f64::from(m[r * cols + j]);
            }
            a[i * cols + j] = s;
            a[j * cols + i] = s;
        }
    }
    let trace: f64 = (0..cols).map(|i| a[i * cols + i]).sum();
    let alpha = 1e-3 * trace / cols as f64;
    for i in 0..cols {
        a[i * cols + i] += alpha;
    }
    // Cholesky: a = L Lᵀ, L in the lower triangle.
    for j in 0..cols {
        let mut d = a[j * cols + j];
        for k in 0..j {
            d -= a[j * cols + k] * a[j * cols + k];
        }
        let d = d.max(1e-12).sqrt();
        a[j * cols + j] = d;
        for i in j + 1..cols {
            let mut s = a[i * cols + j];
            for k in 0..j {
                s -= a[i * cols + k] * a[j * cols + k];
            }
            a[i * cols + j] = s / d;
        }
    }
    // Solve (L Lᵀ) X = Mᵀ, one column of Mᵀ (= one row of M) at a time.
    let mut r = vec![0f32; cols * rows];
    let mut y = vec![0f64; cols];
    for row in 0..rows {
        for i in 0..cols {
            let mut s = f64::from(m[row * cols + i]);
            for k in 0..i {
                s -= a[i * cols + k] * y[k];
            }
            y[i] = s / a[i * cols + i];
        }
        for i in (0..cols).rev() {
            let mut s = y[i];
            for k in i + 1..cols {
                s -= a[k * cols + i] * y[k];
            }
            y[i] = s / a[i * cols + i];
        }
        for i in 0..cols {
            r[i * rows + row] = y[i] as f32;
        }
    }
    r
}

/// The slopes of the next frame rendered with mirror shape `dm_frame` or a later one (the
/// camera stamps the shape it used in user word 2).
fn fresh_slopes(
    reader: &mut FrameReader,
    dm_frame: u64,
    subs: usize,
    pix: usize,
    out: &mut [f32],
) -> Result<(), ExperimentFailure> {
    loop {
        let frame = match reader.next(Duration::from_secs(2)) {
            Ok(f) => f,
            Err(RingError::Overrun { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if frame.user(2) >= dm_frame {
            slopes(frame.typed::<u16>()?, subs, pix, out);
            return Ok(());
        }
    }
}

impl Experiment for Controller {
    const NAME: &'static str = "controller";

    fn experiment(&mut self, ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        let o = &self.options;
        let (subs, pix, n) = (
            o.subapertures as usize,
            o.pixels as usize,
            o.actuators as usize,
        );
        let (nslopes, nact) = (2 * subs * subs, n * n);
        let seg = ctx.segment();
        if o.pin {
            pin_to(cpus().saturating_sub(1));
        }
        // The mirror's replies are waited for the same way as frames: with blocking waits,
        // the controller never spins on a CPU the mirror's server may need.
        let dm = ctx
            .devices()
            .get::<SimDm>("Dm", &o.dm())?
            .with_strategy(o.strategy());
        let camera = ctx.devices().get::<SimCamera>("Camera", &o.camera())?;
        // Oldest-first: every frame is seen (telemetry, checksum); a frame with a newer one
        // already behind it only feeds telemetry, so the mirror is never commanded from a
        // backlog (stale slopes make an integrator unstable).
        let mut frames = camera
            .frames("frames", ReadMode::OldestFirst)?
            .with_strategy(o.strategy());
        let progress = seg.dict("closed-loop/progress", 16)?;
        let mut s = vec![0f32; nslopes];
        let mut s_minus = vec![0f32; nslopes];
        // Returns the mirror's shape frame id and when it was applied.
        let set = |values: &[f32], tag: u64| -> Result<(u64, u64), ExperimentFailure> {
            match dm.call(&DmCommand::Set {
                values: values.to_vec(),
                tag,
            })? {
                DmReply::Applied {
                    frame, applied_ns, ..
                } => Ok((frame, applied_ns)),
                other => Err(format!("unexpected mirror reply {other:?}").into()),
            }
        };

        // Calibration: push-pull every actuator.
        progress.insert("phase", &"calibrating")?;
        let delta = 0.05f32;
        let mut m = vec![0f32; nslopes * nact];
        let mut poke = vec![0f32; nact];
        for k in 0..nact {
            if ctx.should_stop() {
                return Ok(());
            }
            poke[k] = delta;
            let (shape, _) = set(&poke, 0)?;
            fresh_slopes(&mut frames, shape, subs, pix, &mut s)?;
            poke[k] = -delta;
            let (shape, _) = set(&poke, 0)?;
            fresh_slopes(&mut frames, shape, subs, pix, &mut s_minus)?;
            poke[k] = 0.0;
            for r in 0..nslopes {
                m[r * nact + k] = (s[r] - s_minus[r]) / (2.0 * delta);
            }
        }
        let rec = reconstructor(&m, nslopes, nact);
        let mut command = vec![0f32; nact];
        let (shape, _) = set(&command, 0)?;
        fresh_slopes(&mut frames, shape, subs, pix, &mut s)?;
        let open_loop_residual = rms(&s);

        // Closed loop.
        progress.insert("phase", &"closed loop")?;
        let mut report = ControllerReport {
            open_loop_residual,
            ..ControllerReport::default()
        };
        let (mut frame_lat, mut cmd_lat) = (Vec::new(), Vec::new());
        let start = Instant::now();
        let mut second = (0.0f64, 0u64);
        let mut last_id = 0u64;
        let mut delta_c = vec![0f32; nact];
        while !ctx.should_stop() && start.elapsed().as_secs_f64() < o.duration_s {
            let frame = match frames.next(Duration::from_secs(1)) {
                Ok(f) => f,
                Err(RingError::Overrun { missed }) => {
                    report.missed += missed;
                    continue;
                }
                Err(RingError::Timeout { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let held = shmkit::clock::monotonic_ns();
            frame_lat.push(held.saturating_sub(frame.ts_ns()));
            if last_id != 0 && frame.id() > last_id + 1 {
                report.missed += frame.id() - last_id - 1;
            }
            last_id = frame.id();
            if checksum(frame.bytes()) == frame.user(1) {
                report.verified += 1;
            } else {
                report.torn += 1;
            }
            slopes(frame.typed::<u16>()?, subs, pix, &mut s);
            let id = frame.id();
            drop(frame);
            report.frames += 1;
            if frames.ring().stats().last_id > id {
                report.telemetry_only += 1;
                continue;
            }
            // Integrator: c -= g R s.
            for (i, d) in delta_c.iter_mut().enumerate() {
                let row = &rec[i * nslopes..][..nslopes];
                *d = row.iter().zip(&s).map(|(r, x)| r * x).sum();
            }
            for (c, d) in command.iter_mut().zip(&delta_c) {
                *c = (*c - o.gain * d).clamp(-1.0, 1.0);
            }
            let sent = shmkit::clock::monotonic_ns();
            let (_, applied) = set(&command, id)?;
            cmd_lat.push(applied.saturating_sub(sent));
            report.commands += 1;
            let residual = rms(&s);
            if [1, 2, 3, 5, 10, 20, 50, 100].contains(&report.commands) {
                report.first_frames.push((report.commands, residual));
            }
            second.0 += residual;
            second.1 += 1;
            if start.elapsed().as_secs_f64() >= (report.residual_per_second.len() + 1) as f64 {
                report
                    .residual_per_second
                    .push(second.0 / second.1.max(1) as f64);
                second = (0.0, 0);
            }
            if report.frames % 200 == 0 {
                progress.insert("frames", &report.frames)?;
                progress.insert("residual", &residual)?;
                progress.insert("missed", &report.missed)?;
            }
        }
        if second.1 > 0 {
            report.residual_per_second.push(second.0 / second.1 as f64);
        }
        report.loop_hz = report.frames as f64 / start.elapsed().as_secs_f64().max(1e-9);
        report.frame_latency = percentiles(frame_lat);
        report.command_latency = percentiles(cmd_lat);
        seg.dict("closed-loop/results", 8)?
            .insert("controller", &report)?;
        progress.insert("phase", &"done")?;
        Ok(())
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins the calling process (and the children it starts later) to `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays inside it for cpu < CPU_SETSIZE;
    // sched_setaffinity reads the set we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % libc::CPU_SETSIZE as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

impl Experiment for Statistics {
    const NAME: &'static str = "statistics";

    fn experiment(&mut self, ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        let o = &self.options;
        let camera = ctx.devices().get::<SimCamera>("Camera", &o.camera())?;
        let mut frames = camera
            .frames("frames", ReadMode::NewestOnly)?
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
        ctx.segment()
            .dict("closed-loop/results", 8)?
            .insert("statistics", &report)?;
        Ok(())
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

fn print_report(o: &Options, r: &Report) {
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

const HELP: &str = "closed_loop: a simulated adaptive-optics loop through shmkit

options:
  --duration SECONDS      closed-loop time after calibration (default 10)
  --rate HZ               camera frame rate (default 2000)
  --subapertures N        sub-apertures per side (default 16)
  --pixels N              pixels per sub-aperture side (default 8)
  --actuators N           mirror actuators per side (default 12)
  --gain G                integrator gain (default 0.4)
  --wait block|spin|spin-then-block   how experiments wait for frames (default block)
  --pin                   controller alone on the last CPU, everything else on CPU 0";

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--help" || flag == "-h" {
            return Err(HELP.into());
        }
        if flag == "--pin" {
            o.pin = true;
            i += 1;
            continue;
        }
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("{flag} needs a value\n\n{HELP}"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag {
            "--duration" => o.duration_s = num(value)?,
            "--rate" => o.rate_hz = num(value)?,
            "--subapertures" => o.subapertures = num(value)? as u32,
            "--pixels" => o.pixels = num(value)? as u32,
            "--actuators" => o.actuators = num(value)? as u32,
            "--gain" => o.gain = num(value)? as f32,
            "--wait" => o.wait = value.clone(),
            _ => return Err(format!("unknown option {flag}\n\n{HELP}")),
        }
        i += 2;
    }
    Ok(o)
}

#[allow(dead_code)]
fn main() {
    entries(Entries::new()).dispatch();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(o) => o,
        Err(message) => {
            println!("{message}");
            std::process::exit(if args.iter().any(|a| a == "--help" || a == "-h") {
                0
            } else {
                2
            });
        }
    };
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
