//! The device server: a child process hosting one device.
//!
//! Its loop waits for a command until the device's next `poll` or the next heartbeat is due,
//! whichever comes first; every heartbeat (50 ms) it checks whether it was asked to close,
//! got SIGTERM, or lost its owner. Every way out except SIGKILL closes the device.

use super::status::{set_message, Status};
use super::{object_name, Device, DeviceError};
use crate::cause::CauseReader;
use crate::trace::ServerTrace;
use serde::{Deserialize, Serialize};
use shm_layout::{DEVICE_CLOSED, DEVICE_CLOSING, DEVICE_FAIL_SAFE, DEVICE_OPENING, DEVICE_RUNNING};
use shmkit::os::clock::monotonic_ns;
use shmkit::os::identity::ProcessIdentity;
use shmkit::os::identity::Record;
use shmkit::os::signals;
use shmkit::process::ChildContext;
use shmkit::process::Entries;
use shmkit::rings::{Cadence, CommandError, CommandSpec, FrameWriter};
use shmkit::segment::Segment;
use std::collections::HashMap;
use std::time::Duration;

/// How often the server beats and checks for a close request, SIGTERM or a dead owner.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(50);
/// Request slots of a device's command ring.
pub(crate) const COMMAND_SLOTS: u32 = 16;

/// What a server is started with.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ServerArgs {
    /// The device's name.
    pub name: String,
    /// The configuration, postcard-encoded.
    pub config: Vec<u8>,
    /// The record of the process whose death closes the device (the cache's owner, or the
    /// process that started the server).
    pub owner: u64,
}

/// The command ring spec of a device type.
pub(crate) fn command_spec<D: Device>() -> CommandSpec {
    CommandSpec {
        slots: COMMAND_SLOTS,
        max_request: D::MAX_MESSAGE,
        max_reply: D::MAX_MESSAGE,
    }
}

/// Why the server answered a command without the device's reply: the wire form of the
/// failures a client reports as [`DeviceError::Failed`] and [`DeviceError::ReplyTooLarge`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum Fault {
    /// The device failed the command (or it could not be decoded): the message.
    Failed(String),
    /// The device handled the command, but its encoded reply of `size` bytes exceeds the
    /// device's `MAX_MESSAGE` (`limit`): the command ran, so a retry would run it again.
    ReplyTooLarge {
        /// The encoded reply's size in bytes.
        size: u64,
        /// The device's message limit in bytes.
        limit: u32,
    },
}

/// What a server sends back for each command: the reply, or why there is none.
pub(crate) type Outcome<R> = Result<R, Fault>;

/// What a device sees of its server: the segment, its name, its frame writers.
pub struct DeviceContext {
    segment: Segment,
    name: String,
    writers: HashMap<String, FrameWriter>,
    fail_safe: Option<String>,
}

impl std::fmt::Debug for DeviceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceContext")
            .field("name", &self.name)
            .field("frame_rings", &self.writers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DeviceContext {
    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Puts the device in its fail-safe state after the current command: the server closes
    /// it (its safe state), records `reason`, and refuses every later command until the
    /// device is closed and started again.
    pub fn enter_fail_safe(&mut self, reason: &str) {
        self.fail_safe.get_or_insert_with(|| reason.to_owned());
    }

    /// The writer of frame ring `suffix` (one the device listed in `frame_rings`).
    pub fn frame_writer(&mut self, suffix: &str) -> Option<&mut FrameWriter> {
        self.writers.get_mut(suffix)
    }

    /// Takes the writer of frame ring `suffix` out of the context, for a device that keeps it
    /// itself (an acquisition thread, a binding's device object). The role stays with this
    /// process for as long as the writer lives.
    pub fn take_frame_writer(&mut self, suffix: &str) -> Option<FrameWriter> {
        self.writers.remove(suffix)
    }
}

/// Has every frame writer the context still holds count its late frames once its ring's
/// cadence is declared (`shmkit::rings::Cadence`; a declaration may come after the server
/// started: this runs at start and at every heartbeat, a table lookup per ring until found).
fn count_late_frames(ctx: &mut DeviceContext) {
    for (suffix, writer) in &mut ctx.writers {
        if writer.counts_late() {
            continue;
        }
        let ring = object_name(&ctx.name, suffix);
        if let Ok(Some(c)) = Cadence::declared(&ctx.segment, &ring) {
            writer.count_late(c.cadence.deadline, c.late);
        }
    }
}

/// Why a server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The device failed to open (its own message).
    #[error("{0}")]
    Open(String),
    /// The server could not set itself up.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// Registering device servers as child entries: `Entries::new().device::<Camera>()`.
pub trait DeviceEntries {
    /// Registers the server entry of device type `D` (under [`Device::KIND`]). Devices listed
    /// with [`devices!`](crate::devices!) are registered by their `entries` function.
    fn device<D: Device>(self) -> Entries;
}

impl DeviceEntries for Entries {
    fn device<D: Device>(self) -> Entries {
        self.entry(D::KIND, serve::<D>)
    }
}

/// The server's main: open, serve, close.
fn serve<D: Device>(ctx: &ChildContext, args: ServerArgs) -> Result<(), ServerError> {
    // SIGTERM closes the device like a close request; Ctrl+C in the testbed's terminal is the
    // testbed's to handle (it reaches the whole process group).
    signals::catch(libc::SIGTERM);
    signals::ignore(libc::SIGINT);
    signals::precise_timers();
    let segment = ctx.segment().clone();
    let status = Status::attach(&segment, &args.name)?;
    let me = ProcessIdentity::current().record().raw();
    status.with(|s| {
        s.state = DEVICE_OPENING;
        s.server = me;
        s.heartbeat_ns = monotonic_ns();
        s.close_requested = 0;
    })?;
    let result = open_and_run::<D>(&segment, &status, &args);
    let message = match &result {
        Err(e) => e.to_string(),
        Ok(()) => String::new(),
    };
    status.with(|s| {
        if s.server == me {
            s.state = DEVICE_CLOSED;
            s.server = 0;
            set_message(s, &message);
        }
    })?;
    result
}

fn open_and_run<D: Device>(
    segment: &Segment,
    status: &Status,
    args: &ServerArgs,
) -> Result<(), ServerError> {
    let device_err = |e: DeviceError| ServerError::Device(e);
    let config: D::Config = shmkit::codec::decode(&args.config, "the device configuration")
        .map_err(|source| {
            ServerError::Device(DeviceError::Codec {
                device: args.name.clone(),
                source,
            })
        })?;
    let ring = segment
        .command_ring(&object_name(&args.name, "cmd"), &command_spec::<D>())
        .map_err(|e| device_err(e.into()))?
        .with_strategy(D::SERVER_STRATEGY);
    let server = ring.server().map_err(|e| device_err(e.into()))?;
    let mut ctx = DeviceContext {
        segment: segment.clone(),
        name: args.name.clone(),
        writers: HashMap::new(),
        fail_safe: None,
    };
    for (suffix, spec) in D::frame_rings(&config) {
        let ring = segment
            .frame_ring(&object_name(&args.name, &suffix), &spec)
            .map_err(|e| device_err(e.into()))?;
        let writer = ring.writer().map_err(|e| device_err(e.into()))?;
        ctx.writers.insert(suffix, writer);
    }
    count_late_frames(&mut ctx);
    let mut device = D::open(&config, &mut ctx).map_err(|e| ServerError::Open(e.to_string()))?;
    status.with(|s| {
        s.state = DEVICE_RUNNING;
        s.heartbeat_ns = monotonic_ns();
    })?;
    let outcome = run(&mut device, &mut ctx, &server, status, args);
    status.with(|s| s.state = DEVICE_CLOSING)?;
    if ctx.fail_safe.is_none() {
        device.close(&mut ctx);
    }
    outcome.map_err(ServerError::Device)
}

/// If the device asked for its fail-safe state: closes it and records the reason. True then.
fn apply_fail_safe<D: Device>(
    device: &mut D,
    ctx: &mut DeviceContext,
    status: &Status,
) -> Result<bool, DeviceError> {
    let Some(reason) = ctx.fail_safe.clone() else {
        return Ok(false);
    };
    device.close(ctx);
    status.with(|s| {
        s.state = DEVICE_FAIL_SAFE;
        set_message(s, &reason);
    })?;
    Ok(true)
}

fn run<D: Device>(
    device: &mut D,
    ctx: &mut DeviceContext,
    server: &shmkit::rings::CommandServer,
    status: &Status,
    args: &ServerArgs,
) -> Result<(), DeviceError> {
    let mut trace = ServerTrace::new(&args.name, &ctx.segment);
    let mut causes = CauseReader::open(&ctx.segment, &args.name)?;
    let mut next_poll = device
        .poll(ctx)
        .map(|d| monotonic_ns() + d.as_nanos() as u64);
    let mut next_beat = monotonic_ns() + HEARTBEAT.as_nanos() as u64;
    let mut reply_buf = vec![0u8; D::MAX_MESSAGE as usize];
    let mut safe = false;
    loop {
        let now = monotonic_ns();
        let until = next_poll.map_or(next_beat, |p| p.min(next_beat));
        match server.recv(Duration::from_nanos(until.saturating_sub(now))) {
            Ok(request) if safe => {
                let reason = ctx.fail_safe.as_deref().unwrap_or_default();
                request.fail(&format!("fail-safe: {reason}"))?;
            }
            Ok(request) => {
                // A command may change what the device wants to do in the background (a
                // camera told to start): poll it again in this iteration.
                next_poll = Some(0);
                let started = monotonic_ns();
                let outcome: Outcome<D::Reply> = match request.decode::<D::Command>() {
                    Ok(command) => device
                        .handle(command, ctx)
                        .map_err(|e| Fault::Failed(e.to_string())),
                    Err(e) => Err(Fault::Failed(format!("undecodable command: {e}"))),
                };
                let applied = monotonic_ns();
                let frame = causes.applied(started, applied);
                trace.command(started, applied, frame);
                // Safe first, recorded before the caller hears back.
                safe = apply_fail_safe(device, ctx, status)?;
                // An answer that does not fit is answered with its size, not dropped: the
                // caller must learn that the command ran (a blind retry would run it again).
                match postcard::to_slice(&outcome, &mut reply_buf).map(|b| b.len()) {
                    Ok(len) => {
                        request.reply(&reply_buf[..len])?;
                    }
                    Err(_) => {
                        let size =
                            postcard::to_allocvec(&outcome).map_or(u64::MAX, |v| v.len() as u64);
                        let too_large: Outcome<D::Reply> = Err(Fault::ReplyTooLarge {
                            size,
                            limit: D::MAX_MESSAGE,
                        });
                        match postcard::to_slice(&too_large, &mut reply_buf).map(|b| b.len()) {
                            Ok(len) => {
                                request.reply(&reply_buf[..len])?;
                            }
                            Err(e) => {
                                request.fail(&format!(
                                    "reply does not fit {} bytes: {e}",
                                    D::MAX_MESSAGE
                                ))?;
                            }
                        }
                    }
                }
            }
            Err(CommandError::Timeout { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let now = monotonic_ns();
        if safe {
            next_poll = None;
        }
        if next_poll.is_some_and(|p| now >= p) {
            let again = device.poll(ctx);
            let polled = monotonic_ns();
            trace.poll(now, polled);
            next_poll = again.map(|d| polled + d.as_nanos() as u64);
            safe = apply_fail_safe(device, ctx, status)?;
        }
        if now >= next_beat {
            next_beat = now + HEARTBEAT.as_nanos() as u64;
            trace.look(&ctx.segment);
            count_late_frames(ctx);
            let asked = status.with(|s| {
                s.heartbeat_ns = now;
                s.close_requested != 0
            })?;
            if asked
                || signals::caught(libc::SIGTERM)
                || Record::from_raw(args.owner).process_dead()
            {
                return Ok(());
            }
        }
    }
}
