//! A simulated wavefront-sensor camera: a grid of sub-apertures, one spot in each, moved by
//! the local slope of the wavefront (the fixed aberration plus the mirror's latest shape,
//! read in place from the mirror's shape ring). Frames (u16 `[height, width]`) are rendered
//! straight into `dev/NAME/frames` at the configured rate; user word 0 is the frame's sequence
//! number, user word 1 its [`checksum`](super::checksum), so readers can prove it untorn, and
//! user word 2 the id of the mirror shape frame it was rendered with (causality for
//! calibration: a frame published after a mirror change may have been rendered before it).
//!
//! With [`SimCameraConfig::ao`] set the camera is a physical Shack-Hartmann sensor instead
//! ([`AoModel`]): moving turbulence, a Gaussian-influence mirror, noisy spots. Then user word 3
//! is the true residual wavefront RMS over the pupil (nm, `f64` bits) and user word 4 the
//! simulated time (ns) the frame shows — the truth a bench reports Strehl from and replays.

use super::ao::{AoConfig, AoModel};
use super::wavefront;
use serde::{Deserialize, Serialize};
use shmkit::os::clock::monotonic_ns;
use shmkit::rings::{ElemType, FrameReader, FrameRing, FrameSpec, ReadMode};
use shmkit::segment::SegmentObjects;
use shmkit_devices::{object_name, Device, DeviceContext, DeviceFailure};
use std::time::Duration;

/// Configuration of a [`SimCamera`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Missing fields take their defaults and unknown ones are refused when a config is read
// from a self-describing format (a binding's dict); the postcard wire format is unchanged.
#[serde(default, deny_unknown_fields)]
pub struct SimCameraConfig {
    /// Sub-apertures per side.
    pub subapertures: u32,
    /// Pixels per sub-aperture side.
    pub pixels: u32,
    /// Frames per second.
    pub rate_hz: f64,
    /// Slots in the frame ring.
    pub slots: u32,
    /// Spot shift in pixels per unit of wavefront slope (pupil units).
    pub gain: f32,
    /// The mirror whose shape the simulation sees (`None`: the aberration alone).
    pub dm: Option<String>,
    /// Actuators per side of that mirror.
    pub dm_actuators: u32,
    /// A physical adaptive-optics sensor (moving turbulence, Gaussian mirror, noisy spots;
    /// `dm_actuators` must be `subapertures + 1`) instead of the fixed-aberration toy.
    #[serde(default)]
    pub ao: Option<AoConfig>,
    /// Run the server's loop in real-time mode at this `SCHED_FIFO` priority (memory locked);
    /// when the system refuses, the server says why on stderr and runs without it.
    #[serde(default)]
    pub realtime: Option<i32>,
}

impl Default for SimCameraConfig {
    fn default() -> Self {
        SimCameraConfig {
            subapertures: 16,
            pixels: 8,
            rate_hz: 1000.0,
            slots: 8,
            gain: 1.0,
            dm: None,
            dm_actuators: 12,
            ao: None,
            realtime: None,
        }
    }
}

/// Commands of a [`SimCamera`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CameraCommand {
    /// Change the frame rate.
    SetRate(f64),
    /// Stop acquiring.
    Stop,
    /// Start acquiring again.
    Start,
    /// Frames published so far.
    Stats,
    /// Switch the turbulence on or off (AO mode; calibration is done without it). Simulated
    /// time keeps running either way.
    Turbulence(bool),
    /// Set the source's flux, photo-electrons per sub-aperture per frame (AO mode; a bench
    /// calibrates on a bright calibration source).
    Photons(f64),
}

/// Replies of a [`SimCamera`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CameraReply {
    /// Done.
    Ok,
    /// Frames published and the frame rate in use.
    Stats {
        /// Frames published.
        frames: u64,
        /// Frames per second.
        rate_hz: f64,
    },
}

/// The simulated camera.
pub struct SimCamera {
    config: SimCameraConfig,
    period_ns: u64,
    next_due: u64,
    running: bool,
    frames: u64,
    dm: Option<FrameReader>,
    dm_shape: Vec<f32>,
    /// Id of the mirror shape frame the next image is rendered with.
    dm_frame: u64,
    ao: Option<AoState>,
}

/// The physical sensor's model and scratch buffers.
struct AoState {
    model: AoModel,
    turbulence: bool,
    wavefront: Vec<f32>,
    slopes: Vec<f32>,
    /// Simulated time of the next frame, ns.
    t_ns: u64,
}

impl std::fmt::Debug for SimCamera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCamera")
            .field("config", &self.config)
            .field("frames", &self.frames)
            .finish()
    }
}

fn period_ns(rate_hz: f64) -> Result<u64, DeviceFailure> {
    if !(rate_hz.is_finite() && (0.1..=100_000.0).contains(&rate_hz)) {
        return Err(format!("frame rate {rate_hz} Hz; expected 0.1 to 100000").into());
    }
    Ok((1e9 / rate_hz) as u64)
}

impl SimCamera {
    /// The latest mirror shape, read in place (kept from before if none is newer).
    fn refresh_dm(&mut self, ctx: &DeviceContext) {
        if self.dm.is_none() {
            if let Some(dm) = &self.config.dm {
                let name = object_name(dm, "shape");
                self.dm = ctx
                    .segment()
                    .open::<FrameRing>(&name)
                    .ok()
                    .and_then(|r| r.reader(ReadMode::NewestOnly).ok());
            }
        }
        if let Some(reader) = self.dm.as_mut() {
            if let Ok(Some(frame)) = reader.latest() {
                if let Ok(values) = frame.typed::<f32>() {
                    if values.len() == self.dm_shape.len() {
                        self.dm_shape.copy_from_slice(values);
                        self.dm_frame = frame.id();
                    }
                }
            }
        }
    }

    /// Renders the physical sensor's frame into the next slot.
    fn render_ao(&mut self, ctx: &mut DeviceContext) -> Result<(), DeviceFailure> {
        self.refresh_dm(ctx);
        let period = self.period_ns;
        let ao = self.ao.as_mut().ok_or("not in AO mode")?;
        let t_ns = ao.t_ns;
        ao.t_ns += period;
        let t = t_ns as f64 * 1e-9;
        ao.model
            .wavefront(t, ao.turbulence, &self.dm_shape, &mut ao.wavefront);
        let residual = ao.model.geometry().rms(&ao.wavefront);
        ao.model.slopes(&ao.wavefront, &mut ao.slopes);
        let writer = ctx
            .frame_writer("frames")
            .ok_or("the frames ring is missing")?;
        let mut slot = writer.try_claim()?;
        ao.model.render(&ao.slopes, slot.typed_mut::<u16>()?);
        let sum = super::checksum(slot.bytes_mut());
        slot.set_user(0, self.frames);
        slot.set_user(1, sum);
        slot.set_user(2, self.dm_frame);
        slot.set_user(3, residual.to_bits());
        slot.set_user(4, t_ns);
        slot.publish();
        self.frames += 1;
        Ok(())
    }

    fn render(&mut self, ctx: &mut DeviceContext) -> Result<(), DeviceFailure> {
        if self.ao.is_some() {
            return self.render_ao(ctx);
        }
        self.refresh_dm(ctx);
        let (subs, pix) = (
            self.config.subapertures as usize,
            self.config.pixels as usize,
        );
        let width = subs * pix;
        let n = self.config.dm_actuators as usize;
        let gain = self.config.gain;
        let shape = &self.dm_shape;
        let writer = ctx
            .frame_writer("frames")
            .ok_or("the frames ring is missing")?;
        let mut slot = writer.try_claim()?;
        let image = slot.typed_mut::<u16>()?;
        image.fill(100);
        let h = 1.0 / subs as f32;
        let max_shift = pix as f32 / 2.0 - 1.5;
        for sy in 0..subs {
            for sx in 0..subs {
                let x = (sx as f32 + 0.5) / subs as f32 * 2.0 - 1.0;
                let y = (sy as f32 + 0.5) / subs as f32 * 2.0 - 1.0;
                let dx =
                    (wavefront(shape, n, x + h, y) - wavefront(shape, n, x - h, y)) / (2.0 * h);
                let dy =
                    (wavefront(shape, n, x, y + h) - wavefront(shape, n, x, y - h)) / (2.0 * h);
                let cx = (sx * pix) as f32 + pix as f32 / 2.0 - 0.5
                    + (gain * dx).clamp(-max_shift, max_shift);
                let cy = (sy * pix) as f32 + pix as f32 / 2.0 - 0.5
                    + (gain * dy).clamp(-max_shift, max_shift);
                // A spot spread bilinearly over the four pixels around its centre.
                let (px, py) = (cx.floor(), cy.floor());
                let (tx, ty) = (cx - px, cy - py);
                for (ox, oy, w) in [
                    (0, 0, (1.0 - tx) * (1.0 - ty)),
                    (1, 0, tx * (1.0 - ty)),
                    (0, 1, (1.0 - tx) * ty),
                    (1, 1, tx * ty),
                ] {
                    let (ix, iy) = (px as usize + ox, py as usize + oy);
                    if ix < width && iy < width {
                        image[iy * width + ix] += (4000.0 * w) as u16;
                    }
                }
            }
        }
        let sum = super::checksum(slot.bytes_mut());
        slot.set_user(0, self.frames);
        slot.set_user(1, sum);
        slot.set_user(2, self.dm_frame);
        slot.publish();
        self.frames += 1;
        Ok(())
    }
}

impl Device for SimCamera {
    type Config = SimCameraConfig;
    type Command = CameraCommand;
    type Reply = CameraReply;
    const KIND: &'static str = "shmkit.sim.camera";

    fn frame_rings(config: &SimCameraConfig) -> Vec<(String, FrameSpec)> {
        let side = config.subapertures.saturating_mul(config.pixels);
        vec![(
            "frames".into(),
            FrameSpec {
                slots: config.slots,
                elem: ElemType::U16,
                shape: vec![side, side],
            },
        )]
    }

    fn open(
        config: &SimCameraConfig,
        _ctx: &mut DeviceContext,
    ) -> Result<SimCamera, DeviceFailure> {
        if !(1..=128).contains(&config.subapertures) || !(4..=64).contains(&config.pixels) {
            return Err(format!(
                "{} sub-apertures of {} pixels; expected 1..=128 of 4..=64",
                config.subapertures, config.pixels
            )
            .into());
        }
        let period_ns = period_ns(config.rate_hz)?;
        let n = config.dm_actuators.max(2) as usize;
        super::enter_realtime(Self::KIND, config.realtime);
        let ao = match &config.ao {
            None => None,
            Some(physics) => {
                if config.dm_actuators != config.subapertures + 1 {
                    return Err(format!(
                        "an AO camera of {} sub-apertures needs a mirror of {} actuators per \
                         side (on the corners), not {}",
                        config.subapertures,
                        config.subapertures + 1,
                        config.dm_actuators
                    )
                    .into());
                }
                let model = AoModel::new(
                    physics,
                    config.subapertures as usize,
                    config.pixels as usize,
                )?;
                Some(AoState {
                    wavefront: model.grid_buffer(),
                    slopes: vec![0.0; 2 * model.geometry().valid().len()],
                    model,
                    turbulence: true,
                    t_ns: 0,
                })
            }
        };
        Ok(SimCamera {
            config: config.clone(),
            period_ns,
            next_due: monotonic_ns(),
            running: true,
            frames: 0,
            dm: None,
            dm_shape: vec![0.0; n * n],
            dm_frame: 0,
            ao,
        })
    }

    fn handle(
        &mut self,
        command: CameraCommand,
        _ctx: &mut DeviceContext,
    ) -> Result<CameraReply, DeviceFailure> {
        match command {
            CameraCommand::SetRate(rate) => {
                self.period_ns = period_ns(rate)?;
                self.config.rate_hz = rate;
                self.next_due = monotonic_ns();
            }
            CameraCommand::Stop => self.running = false,
            CameraCommand::Start => {
                self.running = true;
                self.next_due = monotonic_ns();
            }
            CameraCommand::Turbulence(on) => match self.ao.as_mut() {
                Some(ao) => ao.turbulence = on,
                None => return Err("turbulence needs the AO mode (`ao` in the config)".into()),
            },
            CameraCommand::Photons(photons) => match self.ao.as_mut() {
                Some(ao) => ao.model.set_photons(photons)?,
                None => return Err("photons need the AO mode (`ao` in the config)".into()),
            },
            CameraCommand::Stats => {
                return Ok(CameraReply::Stats {
                    frames: self.frames,
                    rate_hz: self.config.rate_hz,
                })
            }
        }
        Ok(CameraReply::Ok)
    }

    fn poll(&mut self, ctx: &mut DeviceContext) -> Option<Duration> {
        if !self.running {
            return None;
        }
        let now = monotonic_ns();
        if now >= self.next_due {
            // A frame that cannot be written (every slot held) is dropped, as a camera does.
            let _ = self.render(ctx);
            self.next_due += self.period_ns;
            // Fell more than a period behind: resume on the clock instead of bursting.
            if now > self.next_due + self.period_ns {
                self.next_due = now + self.period_ns;
            }
        }
        Some(Duration::from_nanos(
            self.next_due.saturating_sub(monotonic_ns()),
        ))
    }

    fn close(&mut self, _ctx: &mut DeviceContext) {
        self.running = false;
    }
}
