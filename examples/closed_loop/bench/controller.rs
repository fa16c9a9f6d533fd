//! The controller experiment: calibrate, then close the loop on every frame.

use super::linalg::{reconstructor, rms, slopes};
use super::options::Options;
use super::report::ControllerReport;
use super::stats::percentiles;
use super::{cpus, pin_to};
use serde::{Deserialize, Serialize};
use shmkit::devices::sim::{checksum, DmCommand, DmReply, SimCamera, SimDm};
use shmkit::rings::{FrameReader, ReadMode, RingError};
use shmkit::testbed::{Experiment, ExperimentContext, ExperimentFailure};
use std::time::{Duration, Instant};

/// The controller experiment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Controller {
    /// Run parameters.
    pub options: Options,
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
        if o.realtime {
            match shmkit::realtime::enter(50) {
                Ok(r) => eprintln!("controller: real-time mode, SCHED_FIFO {}", r.priority),
                Err(e) => eprintln!("controller: running without real-time mode: {e}"),
            }
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
        let (rec, dropped) = reconstructor(&m, nslopes, nact);
        let mut command = vec![0f32; nact];
        let (shape, _) = set(&command, 0)?;
        fresh_slopes(&mut frames, shape, subs, pix, &mut s)?;
        let open_loop_residual = rms(&s);

        // Closed loop.
        progress.insert("phase", &"closed loop")?;
        let mut report = ControllerReport {
            open_loop_residual,
            modes_dropped: dropped as u64,
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
