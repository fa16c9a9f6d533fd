//! The controller experiment: calibrate without turbulence, measure the loop's latency in
//! frames with a poke test, watch the open loop, then close the loop on every frame and
//! record what an AO engineer judges it by.

use super::latency::{LoopTrace, Stages};
use super::linalg::{mvm, reconstructor, slopes};
use super::options::Options;
use super::replay::{self, Comparison, Recorded, RecordedCommands, CAMERA_FRAMES};
use super::rtf;
use super::telemetry::ControllerReport;
use super::{allowed_cpus, pin_to};
use serde::{Deserialize, Serialize};
use shmkit::rings::{Frame, FrameReader, FrameRing, ReadMode, RingError};
use shmkit::SegmentObjects;
use shmkit_devices::DeviceClient;
use shmkit_sim::ao::AoGeometry;
use shmkit_sim::{checksum, CameraCommand, DmCommand, DmReply, SimCamera, SimDm};
use shmkit_testbed::{Experiment, ExperimentContext, ExperimentFailure};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The controller experiment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Controller {
    /// Run parameters.
    pub options: Options,
}

/// The calibration source is this much brighter than the guide star (a fibre source at the
/// bench's focus), so the interaction matrix is measured with one frame per push and pull.
const CALIBRATION_FLUX: f64 = 300.0;

/// Low-order mirror patterns (tip, tilt, focus, two astigmatisms, two comas) on the active
/// actuators, each normalised so projecting a command on it gives its coefficient: the modes
/// the rejection transfer function is measured on (where the turbulence has its power).
fn low_order_modes(geometry: &AoGeometry) -> Vec<Vec<f32>> {
    let n = geometry.actuators();
    let half = (n - 1) as f64 / 2.0;
    let xy: Vec<(f64, f64)> = geometry
        .active()
        .iter()
        .map(|&k| {
            (
                ((k % n) as f64 - half) / half,
                ((k / n) as f64 - half) / half,
            )
        })
        .collect();
    let shapes: [fn(f64, f64) -> f64; 7] = [
        |x, _| x,
        |_, y| y,
        |x, y| 2.0 * (x * x + y * y) - 1.0,
        |x, y| x * x - y * y,
        |x, y| 2.0 * x * y,
        |x, y| (3.0 * (x * x + y * y) - 2.0) * x,
        |x, y| (3.0 * (x * x + y * y) - 2.0) * y,
    ];
    shapes
        .iter()
        .map(|f| {
            let v: Vec<f64> = xy.iter().map(|&(x, y)| f(x, y)).collect();
            let norm2: f64 = v.iter().map(|a| a * a).sum();
            v.iter().map(|a| (a / norm2.max(1e-12)) as f32).collect()
        })
        .collect()
}

/// The calling thread's involuntary context switches so far: how often another task took its
/// CPU while it could have run (the default mode's tail, see the README's loop table).
fn preemptions() -> u64 {
    // SAFETY: `getrusage` only writes the `rusage` we pass, which is plain data for which all
    // zeroes is a valid value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut usage) != 0 {
            return 0;
        }
        usage
    };
    u64::try_from(usage.ru_nivcsw).unwrap_or(0)
}

fn project(mode: &[f32], v: &[f32]) -> f32 {
    mode.iter().zip(v).map(|(a, b)| a * b).sum()
}

/// The frame reader with the accounting every read shares: checksums (torn frames counted,
/// never used) and overruns.
struct Frames {
    reader: FrameReader,
    verified: u64,
    torn: u64,
}

impl Frames {
    /// The next frame and when it was held (before its checksum was verified); `Ok(None)`
    /// on a timeout or an overrun (`missed` counts the frames lost), or on a torn frame.
    fn next_held(
        &mut self,
        timeout: Duration,
        missed: &mut u64,
    ) -> Result<Option<(Frame<'_>, u64)>, ExperimentFailure> {
        match self.reader.next(timeout) {
            Ok(frame) => {
                let held = shmkit::clock::monotonic_ns();
                if checksum(frame.bytes()) == frame.user(1) {
                    self.verified += 1;
                    Ok(Some((frame, held)))
                } else {
                    self.torn += 1;
                    Ok(None)
                }
            }
            Err(RingError::Overrun { missed: m }) => {
                *missed += m;
                Ok(None)
            }
            Err(RingError::Timeout { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The next frame (see [`next_held`](Self::next_held)).
    fn next(
        &mut self,
        timeout: Duration,
        missed: &mut u64,
    ) -> Result<Option<Frame<'_>>, ExperimentFailure> {
        Ok(self.next_held(timeout, missed)?.map(|(frame, _)| frame))
    }
}

/// The mirror, with the commands recently applied kept by their shape frame id (the camera
/// stamps the id it rendered with, so the loop knows which command each frame saw).
struct Mirror {
    client: DeviceClient<SimDm>,
    applied: VecDeque<(u64, Vec<f32>)>,
}

impl Mirror {
    /// Applies `values`; returns the shape frame id and when it was applied.
    fn set(&mut self, values: &[f32], tag: u64) -> Result<(u64, u64), ExperimentFailure> {
        self.set_caused(values, tag, None)
    }

    /// As `set`, for a command computed from the frame `cause` names: the library records the
    /// call's stages in the mirror's `dev/Dm/latency/...` histograms (shmkit_devices::Cause).
    fn set_caused(
        &mut self,
        values: &[f32],
        tag: u64,
        cause: Option<&shmkit_devices::Cause>,
    ) -> Result<(u64, u64), ExperimentFailure> {
        let command = DmCommand::Set {
            values: values.to_vec(),
            tag,
        };
        let reply = match cause {
            Some(cause) => self.client.call_caused(&command, cause)?,
            None => self.client.call(&command)?,
        };
        match reply {
            DmReply::Applied {
                frame, applied_ns, ..
            } => {
                if self.applied.len() == 64 {
                    self.applied.pop_front();
                }
                self.applied.push_back((frame, values.to_vec()));
                Ok((frame, applied_ns))
            }
            other => Err(format!("unexpected mirror reply {other:?}").into()),
        }
    }

    /// The command a frame rendered with shape frame `id` saw (`None`: older than kept, or
    /// the mirror's initial flat shape).
    fn seen(&self, id: u64) -> Option<&[f32]> {
        self.applied
            .iter()
            .rev()
            .find(|(f, _)| *f <= id)
            .map(|(_, v)| v.as_slice())
    }
}

impl Experiment for Controller {
    const NAME: &'static str = "controller";

    fn experiment(&mut self, ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        let o = &self.options;
        let geometry = AoGeometry::new(&o.ao, o.subapertures as usize, o.pixels as usize)?;
        let bg = o.ao.background as f32;
        let (nv, n) = (geometry.valid().len(), geometry.actuators());
        let nslopes = 2 * nv;
        let active = geometry.active().to_vec();
        let na = active.len();
        let seg = ctx.segment();
        if let Some(cpu) = o.controller_cpu {
            pin_to(cpu);
        }
        if o.realtime {
            match shmkit::realtime::enter(super::options::CONTROLLER_PRIORITY) {
                Ok(r) => eprintln!("controller: real-time mode, SCHED_FIFO {}", r.priority),
                Err(e) => eprintln!("controller: running without real-time mode: {e}"),
            }
        }
        // The mirror's replies are waited for the same way as frames: with blocking waits,
        // the controller never spins on a CPU the mirror's server may need.
        let mut mirror = Mirror {
            client: ctx
                .devices()
                .get::<SimDm>("Dm", &o.dm())?
                .with_strategy(o.strategy()),
            applied: VecDeque::new(),
        };
        // Against a replayed camera: no camera server; the recorded run's reconstructor, and
        // its commands to compare with.
        let replayed = match &o.replay {
            Some(dir) => Some((
                replay::load(dir)?,
                Comparison::new(RecordedCommands::read(dir)?),
            )),
            None => None,
        };
        let camera = match replayed {
            Some(_) => None,
            None => Some(ctx.devices().get::<SimCamera>("Camera", &o.camera())?),
        };
        // Oldest-first: every frame is seen (telemetry, checksum); a frame with a newer one
        // already behind it only feeds telemetry, so the mirror is never commanded from a
        // backlog (stale slopes make an integrator unstable).
        let reader = match &camera {
            Some(camera) => camera.frames("frames", ReadMode::OldestFirst)?,
            None => seg
                .open::<FrameRing>(CAMERA_FRAMES)?
                .reader(ReadMode::OldestFirst)?,
        };
        let mut frames = Frames {
            reader: reader.with_strategy(o.strategy()),
            verified: 0,
            torn: 0,
        };
        let progress = seg.dict("closed-loop/progress", 16)?;
        let mut report = ControllerReport {
            sizes: (nv as u64, na as u64),
            cpus: allowed_cpus(),
            ..ControllerReport::default()
        };
        let mut ignored_missed = 0u64;
        let mut s = vec![0f32; nslopes];
        let mut s_minus = vec![0f32; nslopes];
        let full = |values: &[f32]| -> Vec<f32> {
            let mut c = vec![0f32; n * n];
            for (&k, &v) in active.iter().zip(values) {
                c[k] = v;
            }
            c
        };

        // The slopes of the next frame rendered with mirror shape `shape` or a later one.
        let fresh = |frames: &mut Frames, shape: u64, out: &mut [f32], missed: &mut u64| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Some(frame) = frames.next(Duration::from_millis(500), missed)? {
                    if frame.user(2) >= shape {
                        slopes(frame.typed::<u16>()?, &geometry, bg, out);
                        return Ok(());
                    }
                }
            }
            Err::<(), ExperimentFailure>("no frame from the camera within 5 s".into())
        };

        // The modes once: the poke test's tilt, the RTF's projections in the loop.
        let modes = low_order_modes(&geometry);
        let (rec, t_last, mut comparison, replay_end) = match (replayed, &camera) {
            (Some(((calibration, rec), comparison)), _) => {
                if (calibration.slopes, calibration.actuators) != (nslopes, na) {
                    return Err(format!(
                        "the recorded reconstructor is {} x {}, this geometry needs {na} x {nslopes}",
                        calibration.actuators, calibration.slopes
                    )
                    .into());
                }
                (
                    rec,
                    0.0,
                    Some(comparison),
                    Some(calibration.closed_to_counter),
                )
            }
            (None, Some(camera)) => {
                // Calibration without turbulence: push-pull every active actuator.
                progress.insert("phase", &"calibrating")?;
                camera.call(&CameraCommand::Turbulence(false))?;
                camera.call(&CameraCommand::Photons(o.ao.photons * CALIBRATION_FLUX))?;
                let calibration = Instant::now();
                let delta = o.poke_um;
                let mut m = vec![0f32; nslopes * na];
                let mut poke = vec![0f32; na];
                for k in 0..na {
                    if ctx.should_stop() {
                        return Ok(());
                    }
                    poke[k] = delta;
                    let (shape, _) = mirror.set(&full(&poke), 0)?;
                    fresh(&mut frames, shape, &mut s, &mut ignored_missed)?;
                    poke[k] = -delta;
                    let (shape, _) = mirror.set(&full(&poke), 0)?;
                    fresh(&mut frames, shape, &mut s_minus, &mut ignored_missed)?;
                    poke[k] = 0.0;
                    for r in 0..nslopes {
                        m[r * na + k] = (s[r] - s_minus[r]) / (2.0 * delta);
                    }
                    if k % 50 == 0 {
                        progress.insert("frames", &(k as u64))?;
                    }
                }
                camera.call(&CameraCommand::Photons(o.ao.photons))?;
                let (rec, dropped) = reconstructor(&m, nslopes, na);
                report.modes = ((na - dropped) as u64, na as u64);
                report.calibration_s = calibration.elapsed().as_secs_f64();

                // Poke test, the way the loop runs: on a frame's arrival, command a step (a tilt of
                // the whole mirror), then count the frames until the sensor sees half of it.
                progress.insert("phase", &"poke test")?;
                let norm = modes[0].iter().map(|a| a * a).sum::<f32>().sqrt();
                let tilt: Vec<f32> = modes[0].iter().map(|&v| v / norm).collect();
                let mut expected = vec![0f32; nslopes];
                {
                    // The sensor's response to the step, from the calibration.
                    let step: Vec<f32> = tilt.iter().map(|&v| v * 4.0 * delta).collect();
                    mvm(&m, &step, &mut expected);
                }
                let expected_norm: f32 = expected.iter().map(|v| v * v).sum();
                let mut level = 0.0f32;
                for step in 0..o.poke_steps {
                    let target = if step % 2 == 0 { 1.0 } else { 0.0 };
                    let from = loop {
                        let id = match frames.next(Duration::from_secs(1), &mut ignored_missed)? {
                            Some(frame) => frame.id(),
                            None => continue,
                        };
                        if frames.reader.ring().stats().last_id == id {
                            break id;
                        }
                    };
                    let values: Vec<f32> = tilt.iter().map(|&v| v * 4.0 * delta * target).collect();
                    mirror.set(&full(&values), from)?;
                    let mut seen = 0u32;
                    for _ in 0..20 {
                        let Some(frame) =
                            frames.next(Duration::from_secs(1), &mut ignored_missed)?
                        else {
                            continue;
                        };
                        slopes(frame.typed::<u16>()?, &geometry, bg, &mut s);
                        let along = s.iter().zip(&expected).map(|(a, b)| a * b).sum::<f32>()
                            / expected_norm.max(1e-12);
                        if (along - level).abs() > 0.5 * (target - level).abs() {
                            seen = (frame.id() - from) as u32;
                            break;
                        }
                    }
                    level = target;
                    report.poke_frames.push(seen);
                    // Settle before the next step.
                    for _ in 0..3 {
                        frames.next(Duration::from_secs(1), &mut ignored_missed)?;
                    }
                }
                mirror.set(&vec![0f32; n * n], 0)?;

                // Open loop: turbulence on, mirror flat.
                progress.insert("phase", &"open loop")?;
                camera.call(&CameraCommand::Turbulence(true))?;
                let (shape, _) = mirror.set(&vec![0f32; n * n], 0)?;
                fresh(&mut frames, shape, &mut s, &mut ignored_missed)?;
                let open = Instant::now();
                let mut t_last = 0.0f64;
                while open.elapsed().as_secs_f64() < o.open_loop_s && !ctx.should_stop() {
                    if let Some(frame) = frames.next(Duration::from_secs(1), &mut ignored_missed)? {
                        t_last = frame.user(4) as f64 * 1e-9;
                        report
                            .residual
                            .push((t_last as f32, f64::from_bits(frame.user(3)) as f32));
                        if report.frame_open.is_empty() {
                            report.frame_open = frame.typed::<u16>()?.to_vec();
                        }
                    }
                }

                (rec, t_last, None, None)
            }
            (None, None) => return Err("no camera server and no recording to replay".into()),
        };

        // The stages' shared histograms, from the closed loop's first frame.
        let stages = Stages::open(seg)?;
        stages.reset();
        let trace = match o.tracing {
            true => Some(LoopTrace::open(seg)?),
            false => None,
        };
        let preempted_before = preemptions();

        // Closed loop.
        progress.insert("phase", &"closed loop")?;
        report.t_close = t_last;
        let mut modal_e: Vec<Vec<f32>> = vec![Vec::new(); modes.len()];
        let mut modal_p: Vec<Vec<f32>> = vec![Vec::new(); modes.len()];
        let mut command = vec![0f32; na];
        let mut e = vec![0f32; na];
        let mut pol = vec![0f32; na];
        let mut out = vec![0f32; n * n];
        let start = Instant::now();
        let (mut last_id, mut last_ts) = (0u64, 0u64);
        let mut first = (0u64, 0u64);
        let (gain, leak) = (o.gain, o.leak);
        let stroke = o.stroke;
        let mut missed = 0u64;
        // A replay ends the loop when its last frame is read (the testbed process says when
        // it published it); a live run after its duration.
        let timeout = Duration::from_millis(if comparison.is_some() { 100 } else { 1000 });
        let mut last_counter: Option<u64> = None;
        while !ctx.should_stop()
            && (comparison.is_some() || start.elapsed().as_secs_f64() < o.duration_s)
            && replay_end.is_none_or(|end| last_counter.is_none_or(|c| c < end))
        {
            let Some((frame, held)) = frames.next_held(timeout, &mut missed)? else {
                if comparison.is_some()
                    && progress.get::<String>("replay")?.as_deref() == Some("done")
                    && frames.reader.ring().stats().last_id <= last_id
                {
                    break;
                }
                continue;
            };
            let (id, ts) = (frame.id(), frame.ts_ns());
            stages.frame.record(held.saturating_sub(ts));
            if let Some(t) = &trace {
                t.held(ts, held);
            }
            report
                .frame_latency_us
                .push(held.saturating_sub(ts) as f32 / 1000.0);
            if last_id != 0 {
                if id > last_id + 1 {
                    missed += id - last_id - 1;
                }
                report
                    .frame_period_us
                    .push(ts.saturating_sub(last_ts) as f32 / 1000.0);
            }
            (last_id, last_ts) = (id, ts);
            if first.0 == 0 {
                first = (id, ts);
            }
            let t = frame.user(4) as f64 * 1e-9;
            report
                .residual
                .push((t as f32, f64::from_bits(frame.user(3)) as f32));
            report.t_end = t;
            let (shape_seen, counter) = (frame.user(2), frame.user(0));
            last_counter = Some(counter);
            slopes(frame.typed::<u16>()?, &geometry, bg, &mut s);
            if report.frames % 1000 == 999 || report.frame_closed.is_empty() {
                report.frame_closed = frame.typed::<u16>()?.to_vec();
            }
            drop(frame);
            report.frames += 1;
            // Live: telemetry only if a newer frame is already out. Replayed: what the
            // recorded run did (see replay::Comparison), while the recording can say.
            let newer = frames.reader.ring().stats().last_id > id;
            let telemetry_only = match comparison.as_mut().map(|c| c.recorded(counter)) {
                Some(Recorded::Commanded) => false,
                Some(Recorded::TelemetryOnly) => true,
                Some(Recorded::Unknown) | None => newer,
            };
            if telemetry_only {
                report.telemetry_only += 1;
                continue;
            }
            let mvm_start = shmkit::clock::monotonic_ns();
            mvm(&rec, &s, &mut e);
            let mvm_end = shmkit::clock::monotonic_ns();
            // Leaky integrator: c ← l c − g R s, clipped to the stroke.
            for (c, d) in command.iter_mut().zip(&e) {
                *c = (leak * *c - gain * d).clamp(-stroke, stroke);
            }
            for (&k, &v) in active.iter().zip(&command) {
                out[k] = v;
            }
            let sent = shmkit::clock::monotonic_ns();
            stages.compute.record(sent.saturating_sub(held));
            stages.mvm.record(mvm_end.saturating_sub(mvm_start));
            if let Some(t) = &trace {
                t.frame(id, ts, held, (mvm_start, mvm_end), sent);
            }
            report
                .compute_us
                .push(sent.saturating_sub(held) as f32 / 1000.0);
            report
                .mvm_us
                .push(mvm_end.saturating_sub(mvm_start) as f32 / 1000.0);
            // What the frame saw, for the pseudo-open loop: R s = R s_atm + c_seen (a replayed
            // frame saw the recorded run's mirror, not this one's).
            let seen = match comparison {
                Some(_) => None,
                None => mirror.seen(shape_seen).map(|c| c.to_vec()),
            };
            let cause = shmkit_devices::Cause {
                frame_id: id,
                published_ns: ts,
                held_ns: held,
            };
            let (_, applied) = mirror.set_caused(&out, id, Some(&cause))?;
            stages.command.record(applied.saturating_sub(sent));
            if let Some(t) = &trace {
                t.command(id, sent, applied);
            }
            report
                .command_latency_us
                .push(applied.saturating_sub(sent) as f32 / 1000.0);
            report.commands += 1;
            if let Some(c) = &mut comparison {
                c.command(counter, &out);
            }
            if let Some(seen) = seen {
                for ((p, &ek), &k) in pol.iter_mut().zip(&e).zip(&active) {
                    *p = ek - seen[k];
                }
                for (m, mode) in modes.iter().enumerate() {
                    modal_e[m].push(project(mode, &e));
                    modal_p[m].push(project(mode, &pol));
                }
            }
            if report.frames % 200 == 0 {
                progress.insert("frames", &report.frames)?;
                progress.insert(
                    "residual",
                    &f64::from(report.residual.last().map_or(0.0, |r| r.1)),
                )?;
                progress.insert("missed", &missed)?;
            }
            if let Some(t) = &trace {
                t.bookkeeping(id, applied);
            }
        }
        report.missed = missed;
        report.preempted = preemptions().saturating_sub(preempted_before);
        if last_ts > first.1 {
            report.camera_hz = (last_id - first.0) as f64 / ((last_ts - first.1) as f64 * 1e-9);
        }
        report.loop_hz = report.frames as f64 / start.elapsed().as_secs_f64().max(1e-9);
        report.rtf = rtf::measured(&modal_e, &modal_p, o.rate_hz);
        report.mirror = out;
        report.verified = frames.verified;
        report.torn = frames.torn;
        report.replay = comparison.map(|c| c.check);
        // What a replay of this run needs, beside its frames.
        if let (Some(dir), true) = (&o.record, report.frames > 0) {
            let calibration = replay::Calibration {
                options: o.clone(),
                closed_from_ns: first.1,
                closed_to_counter: last_counter.unwrap_or(0),
                slopes: nslopes,
                actuators: na,
            };
            replay::save(dir, &calibration, &rec)?;
        }
        o.results(seg)?.insert("controller", &report)?;
        progress.insert("phase", &"done")?;
        Ok(())
    }
}
