//! A simulated deformable mirror: `n × n` actuators, a stroke limit, and its applied shape
//! published as frames (`dev/NAME/shape`, f32 `[n, n]`) for the camera's simulation, safety
//! tests and anyone else to read in place.

use serde::{Deserialize, Serialize};
use shmkit::rings::{ElemType, FrameSpec};
use shmkit_devices::{Device, DeviceContext, DeviceFailure};

/// Configuration of a [`SimDm`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// As `SimCameraConfig`: defaults for missing fields, unknown ones refused.
#[serde(default, deny_unknown_fields)]
pub struct SimDmConfig {
    /// Actuators per side.
    pub actuators: u32,
    /// Largest command magnitude; larger values are clipped (a safety test should catch them
    /// first).
    pub stroke: f32,
    /// If set, `open` fails with this message (to exercise open failures).
    pub fail_open: Option<String>,
    /// A command beyond this magnitude puts the mirror in its fail-safe state (a hardware
    /// interlock); `None`: never.
    pub hard_limit: Option<f32>,
    /// Run the server's loop in real-time mode at this `SCHED_FIFO` priority (memory locked);
    /// when the system refuses, the server says why on stderr and runs without it.
    #[serde(default)]
    pub realtime: Option<i32>,
}

impl Default for SimDmConfig {
    fn default() -> Self {
        SimDmConfig {
            actuators: 12,
            stroke: 1.0,
            fail_open: None,
            hard_limit: None,
            realtime: None,
        }
    }
}

/// Commands of a [`SimDm`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DmCommand {
    /// Apply these actuator values (row-major, `n × n`); `tag` comes back in the shape
    /// frame's user word 0 (a controller's frame id, for latency accounting).
    Set {
        /// Actuator values.
        values: Vec<f32>,
        /// Caller's tag.
        tag: u64,
    },
    /// Flatten the mirror.
    Zero,
    /// The applied shape.
    Get,
}

/// Replies of a [`SimDm`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DmReply {
    /// Applied; the shape frame's id.
    Applied {
        /// Id of the published shape frame.
        frame: u64,
        /// Actuators clipped to the stroke.
        clipped: u32,
        /// When the shape was applied (CLOCK_MONOTONIC ns; the shape frame's timestamp).
        applied_ns: u64,
    },
    /// The applied shape.
    Shape(Vec<f32>),
}

/// The simulated deformable mirror.
#[derive(Debug)]
pub struct SimDm {
    n: usize,
    stroke: f32,
    hard_limit: Option<f32>,
    shape: Vec<f32>,
}

impl SimDm {
    /// Publishes the applied shape; returns its frame id and timestamp.
    fn apply(&mut self, ctx: &mut DeviceContext, tag: u64) -> Result<(u64, u64), DeviceFailure> {
        let writer = ctx
            .frame_writer("shape")
            .ok_or("the shape ring is missing")?;
        let mut slot = writer.try_claim()?;
        slot.typed_mut::<f32>()?.copy_from_slice(&self.shape);
        slot.set_user(0, tag);
        let id = slot.publish();
        Ok((id, writer.ring().stats().last_ts_ns))
    }
}

impl Device for SimDm {
    type Config = SimDmConfig;
    type Command = DmCommand;
    type Reply = DmReply;
    const KIND: &'static str = "shmkit.sim.dm";
    const MAX_MESSAGE: u32 = 64 * 1024;

    fn frame_rings(config: &SimDmConfig) -> Vec<(String, FrameSpec)> {
        vec![(
            "shape".into(),
            FrameSpec {
                slots: 8,
                elem: ElemType::F32,
                shape: vec![config.actuators, config.actuators],
            },
        )]
    }

    fn open(config: &SimDmConfig, ctx: &mut DeviceContext) -> Result<SimDm, DeviceFailure> {
        if let Some(message) = &config.fail_open {
            return Err(message.clone().into());
        }
        if !(2..=128).contains(&config.actuators) {
            return Err(
                format!("{} actuators per side; expected 2..=128", config.actuators).into(),
            );
        }
        let n = config.actuators as usize;
        super::enter_realtime(Self::KIND, config.realtime);
        let mut dm = SimDm {
            n,
            stroke: config.stroke,
            hard_limit: config.hard_limit,
            shape: vec![0.0; n * n],
        };
        dm.apply(ctx, 0)?;
        Ok(dm)
    }

    fn handle(
        &mut self,
        command: DmCommand,
        ctx: &mut DeviceContext,
    ) -> Result<DmReply, DeviceFailure> {
        match command {
            DmCommand::Set { values, tag } => {
                if values.len() != self.n * self.n {
                    return Err(format!(
                        "expected {} actuator values, got {}",
                        self.n * self.n,
                        values.len()
                    )
                    .into());
                }
                if let Some(limit) = self.hard_limit {
                    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| v.abs() > limit) {
                        let reason =
                            format!("actuator {i} commanded {v}, beyond the hard limit {limit}");
                        ctx.enter_fail_safe(&reason);
                        return Err(reason.into());
                    }
                }
                let mut clipped = 0;
                for (out, v) in self.shape.iter_mut().zip(values) {
                    let v = if v.is_finite() { v } else { 0.0 };
                    if v.abs() > self.stroke {
                        clipped += 1;
                    }
                    *out = v.clamp(-self.stroke, self.stroke);
                }
                let (frame, applied_ns) = self.apply(ctx, tag)?;
                Ok(DmReply::Applied {
                    frame,
                    clipped,
                    applied_ns,
                })
            }
            DmCommand::Zero => {
                self.shape.fill(0.0);
                let (frame, applied_ns) = self.apply(ctx, 0)?;
                Ok(DmReply::Applied {
                    frame,
                    clipped: 0,
                    applied_ns,
                })
            }
            DmCommand::Get => Ok(DmReply::Shape(self.shape.clone())),
        }
    }

    fn close(&mut self, ctx: &mut DeviceContext) {
        // The safe state is flat.
        self.shape.fill(0.0);
        let _ = self.apply(ctx, 0);
    }
}
