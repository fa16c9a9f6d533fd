//! A typed client of one device: commands through its command ring, frames through its frame
//! rings, and the device's mutex for multi-command critical sections. The typed layer encodes
//! and decodes the device's `Command` and `Reply` with postcard; everything else is the
//! untyped [`RawDeviceClient`] underneath (`raw_client.rs`).

use super::cause::Cause;
use super::raw_client::RawDeviceClient;
use super::server::command_spec;
use super::{Device, DeviceError};
use shmkit::codec::{CodecError, Direction};
use shmkit::primitives::Acquired;
use shmkit::rings::{FrameReader, ReadMode};
use shmkit::segment::Segment;
use shmkit::{Interrupt, NoInterrupt, Timeout, WaitStrategy};
use std::marker::PhantomData;
use std::time::Duration;

/// Encoded commands up to this size are built on the stack.
const STACK_MESSAGE: usize = 256;

/// A client of device `D`. Cheap to clone.
pub struct DeviceClient<D: Device> {
    raw: RawDeviceClient,
    _device: PhantomData<fn() -> D>,
}

impl<D: Device> Clone for DeviceClient<D> {
    fn clone(&self) -> Self {
        DeviceClient {
            raw: self.raw.clone(),
            _device: PhantomData,
        }
    }
}

impl<D: Device> std::fmt::Debug for DeviceClient<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClient")
            .field("name", &self.raw.name())
            .field("kind", &D::KIND)
            .finish()
    }
}

impl<D: Device> DeviceClient<D> {
    pub(crate) fn attach(segment: &Segment, name: &str) -> Result<DeviceClient<D>, DeviceError> {
        let ring = segment
            .command_ring(&super::object_name(name, "cmd"), &command_spec::<D>())
            .map_err(|e| match e {
                shmkit::segment::SegmentError::ParamMismatch { .. }
                | shmkit::segment::SegmentError::KindMismatch { .. } => DeviceError::WrongKind {
                    device: name.into(),
                    actual: e.to_string(),
                    asked: D::KIND,
                },
                other => other.into(),
            })?;
        Ok(DeviceClient {
            raw: RawDeviceClient::with_ring(segment, name, ring)?,
            _device: PhantomData,
        })
    }

    /// The untyped client underneath: the same device, commands as bytes.
    pub fn raw(&self) -> &RawDeviceClient {
        &self.raw
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        self.raw.name()
    }

    /// This client with another call timeout (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.raw = self.raw.with_timeout(timeout);
        self
    }

    /// This client waiting for answers with `strategy` (default: spin briefly, then sleep).
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.raw = self.raw.with_strategy(strategy);
        self
    }

    /// Sends `command` and waits for the device's reply. Holds the device's mutex for the
    /// call (a re-entrant hold when the caller already has it from [`lock`](Self::lock)), so a
    /// multi-command section elsewhere is never interleaved with.
    ///
    /// Waits at most this client's [`timeout`](Self::timeout) for the mutex and for the reply
    /// each: a device client carries its call timeout, as a catkit device does (another one:
    /// [`with_timeout`](Self::with_timeout), or `call_interruptible` with its own).
    pub fn call(&self, command: &D::Command) -> Result<D::Reply, DeviceError> {
        self.call_interruptible(command, Timeout::After(self.timeout()), &NoInterrupt)
    }

    /// As [`call`](Self::call), waiting at most `timeout` for the mutex and for the reply
    /// each, and giving up when `interrupt` says so (a binding's Ctrl+C): the mutex wait ends
    /// with [`DeviceError::Lock`]`(`[`LockError::Interrupted`](shmkit::LockError)`)`, the reply
    /// wait with [`DeviceError::Command`]`(`[`CommandError::Interrupted`](shmkit::rings::CommandError)` { outcome })`
    /// saying whether the command ran.
    pub fn call_interruptible(
        &self,
        command: &D::Command,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<D::Reply, DeviceError> {
        self.call_with(command, timeout, interrupt, None)
    }

    /// As [`call`](Self::call), for a command computed from the frame `cause` names: the
    /// server records this call's stages (frame publish → held → sent → applied) in the
    /// device's latency histograms `dev/NAME/latency/...` and the frame id in its trace span
    /// (see [`Cause`]).
    pub fn call_caused(
        &self,
        command: &D::Command,
        cause: &Cause,
    ) -> Result<D::Reply, DeviceError> {
        self.call_with(
            command,
            Timeout::After(self.timeout()),
            &NoInterrupt,
            Some(cause),
        )
    }

    /// As [`call_caused`](Self::call_caused), waiting and giving up as
    /// [`call_interruptible`](Self::call_interruptible) does.
    pub fn call_caused_interruptible(
        &self,
        command: &D::Command,
        cause: &Cause,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<D::Reply, DeviceError> {
        self.call_with(command, timeout, interrupt, Some(cause))
    }

    fn call_with(
        &self,
        command: &D::Command,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
        cause: Option<&Cause>,
    ) -> Result<D::Reply, DeviceError> {
        let mut stack = [0u8; STACK_MESSAGE];
        let heap;
        let bytes: &[u8] = match postcard::to_slice(command, &mut stack) {
            Ok(b) => b,
            Err(_) => {
                heap = postcard::to_allocvec(command)
                    .map_err(|e| self.codec(Direction::Encode, "the command", e))?;
                &heap
            }
        };
        self.raw
            .call_encoded(bytes, timeout, interrupt, cause, |reply| {
                postcard::from_bytes::<D::Reply>(reply)
                    .map_err(|e| self.codec(Direction::Decode, "the reply", e))
            })?
    }

    /// Takes the device's mutex for a multi-command critical section (re-entrant; calls made
    /// while holding it do not wait for it). As for any mutex, a previous holder that died
    /// inside its section is reported as [`Acquired::OwnerDied`]: the device may be
    /// mid-sequence; put it in a known state, then `make_consistent`.
    pub fn lock(&self) -> Result<Acquired<'_>, DeviceError> {
        self.raw.lock()
    }

    /// [`lock`](Self::lock) within `timeout`, giving up with [`LockError::Interrupted`]
    /// (as [`DeviceError::Lock`]) within 100 ms of `interrupt` saying stop.
    ///
    /// [`LockError::Interrupted`]: shmkit::LockError::Interrupted
    pub fn lock_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Acquired<'_>, DeviceError> {
        self.raw.lock_interruptible(timeout, interrupt)
    }

    /// The call timeout this client uses (see [`with_timeout`](Self::with_timeout)).
    pub fn timeout(&self) -> Duration {
        self.raw.timeout()
    }

    /// A reader of the device's frame ring `suffix` (e.g. a camera's `"frames"`).
    pub fn frames(&self, suffix: &str, mode: ReadMode) -> Result<FrameReader, DeviceError> {
        self.raw.frames(suffix, mode)
    }

    /// The device's status.
    pub fn status(&self) -> Result<super::DeviceStatusInfo, DeviceError> {
        self.raw.status()
    }

    fn codec(&self, direction: Direction, what: &'static str, e: postcard::Error) -> DeviceError {
        DeviceError::Codec {
            device: self.name().to_owned(),
            source: CodecError::new(direction, what, e),
        }
    }
}
