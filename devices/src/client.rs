//! A typed client of one device: commands through its command ring, frames through its frame
//! rings, and the device's mutex for multi-command critical sections.

use super::cause::{Cause, CauseWriter};
use super::server::{command_spec, Fault, Outcome};
use super::status::Status;
use super::{object_name, Device, DeviceError};
use shmkit::codec::{CodecError, Direction};
use shmkit::os::clock::monotonic_ns;
use shmkit::primitives::{Acquired, Mutex};
use shmkit::rings::FrameRing;
use shmkit::rings::{CommandError, CommandRing, FrameReader, ReadMode};
use shmkit::segment::{Segment, SegmentError, SegmentObjects};
use shmkit::{Interrupt, NoInterrupt, Timeout, WaitStrategy};
use std::marker::PhantomData;
use std::time::Duration;

/// Encoded commands up to this size are built on the stack.
const STACK_MESSAGE: usize = 256;

/// A client of device `D`. Cheap to clone.
pub struct DeviceClient<D: Device> {
    name: String,
    segment: Segment,
    ring: CommandRing,
    lock: Mutex,
    status: Status,
    causes: CauseWriter,
    timeout: Duration,
    _device: PhantomData<fn() -> D>,
}

impl<D: Device> Clone for DeviceClient<D> {
    fn clone(&self) -> Self {
        DeviceClient {
            name: self.name.clone(),
            segment: self.segment.clone(),
            ring: self.ring.clone(),
            lock: self.lock.clone(),
            status: self.status.clone(),
            causes: self.causes.clone(),
            timeout: self.timeout,
            _device: PhantomData,
        }
    }
}

impl<D: Device> std::fmt::Debug for DeviceClient<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClient")
            .field("name", &self.name)
            .field("kind", &D::KIND)
            .finish()
    }
}

impl<D: Device> DeviceClient<D> {
    pub(crate) fn attach(segment: &Segment, name: &str) -> Result<DeviceClient<D>, DeviceError> {
        let ring = segment
            .command_ring(&object_name(name, "cmd"), &command_spec::<D>())
            .map_err(|e| match e {
                shmkit::segment::SegmentError::ParamMismatch { .. }
                | shmkit::segment::SegmentError::KindMismatch { .. } => DeviceError::WrongKind {
                    device: name.into(),
                    actual: e.to_string(),
                    asked: D::KIND,
                },
                other => other.into(),
            })?
            .with_strategy(WaitStrategy::SpinThenBlock);
        Ok(DeviceClient {
            name: name.to_owned(),
            segment: segment.clone(),
            ring,
            lock: segment.mutex(&object_name(name, "lock"))?,
            status: Status::attach(segment, name)?,
            causes: CauseWriter::open(segment, name)?,
            timeout: Duration::from_secs(5),
            _device: PhantomData,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This client with another call timeout (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// This client waiting for answers with `strategy` (default: spin briefly, then sleep).
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.ring = self.ring.with_strategy(strategy);
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
        self.call_interruptible(command, Timeout::After(self.timeout), &NoInterrupt)
    }

    /// As [`call`](Self::call), waiting at most `timeout` for the mutex and for the reply
    /// each, and giving up when `interrupt` says so (a binding's Ctrl+C): the mutex wait ends
    /// with [`DeviceError::Lock`]`(`[`LockError::Interrupted`](shmkit::LockError)`)`, the reply
    /// wait with [`DeviceError::Command`]`(`[`CommandError::Interrupted`]` { outcome })`
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
            Timeout::After(self.timeout),
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
        let _guard = match self.lock.lock_interruptible(timeout, interrupt)? {
            Acquired::Locked(g) => g,
            Acquired::OwnerDied(g) => {
                // The one owner-died contract (ARCHITECTURE.md): a one-shot call does not run
                // after a death; it repairs what it can (here: nothing lives under the mutex)
                // and says so.
                let previous = g.previous_owner();
                drop(g.make_consistent());
                return Err(DeviceError::OwnerDied {
                    device: self.name.clone(),
                    previous,
                });
            }
        };
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
        if bytes.len() > D::MAX_MESSAGE as usize {
            return Err(DeviceError::RequestTooLarge {
                device: self.name.clone(),
                size: bytes.len() as u64,
                limit: D::MAX_MESSAGE,
            });
        }
        // Filed under the device's mutex, just before sending: the server pairs it with the
        // next command it handles (see `cause.rs`).
        if let Some(cause) = cause {
            self.causes.file(cause, monotonic_ns())?;
        }
        let answer = self
            .ring
            .call_interruptible_with(bytes, timeout, interrupt, |reply| {
                postcard::from_bytes::<Outcome<D::Reply>>(reply)
            });
        if cause.is_some() && answer.is_err() {
            self.causes.withdraw();
        }
        match answer {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(Fault::Failed(message)))) => Err(DeviceError::Failed {
                device: self.name.clone(),
                message,
            }),
            Ok(Ok(Err(Fault::ReplyTooLarge { size, limit }))) => Err(DeviceError::ReplyTooLarge {
                device: self.name.clone(),
                size,
                limit,
            }),
            Ok(Err(e)) => Err(self.codec(Direction::Decode, "the reply", e)),
            Err(e) => Err(self.ring_error(e)),
        }
    }

    /// Takes the device's mutex for a multi-command critical section (re-entrant; calls made
    /// while holding it do not wait for it). As for any mutex, a previous holder that died
    /// inside its section is reported as [`Acquired::OwnerDied`]: the device may be
    /// mid-sequence; put it in a known state, then `make_consistent`.
    pub fn lock(&self) -> Result<Acquired<'_>, DeviceError> {
        self.lock_interruptible(Timeout::After(self.timeout), &NoInterrupt)
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
        Ok(self.lock.lock_interruptible(timeout, interrupt)?)
    }

    /// The call timeout this client uses (see [`with_timeout`](Self::with_timeout)).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A reader of the device's frame ring `suffix` (e.g. a camera's `"frames"`).
    pub fn frames(&self, suffix: &str, mode: ReadMode) -> Result<FrameReader, DeviceError> {
        let ring: FrameRing = match self.segment.open(&object_name(&self.name, suffix)) {
            Err(SegmentError::ObjectNotFound { .. }) => {
                return Err(DeviceError::Closed {
                    device: self.name.clone(),
                    reason: format!("it has no frame ring {suffix:?}"),
                })
            }
            other => other?,
        };
        Ok(ring.reader(mode)?)
    }

    /// The device's status.
    pub fn status(&self) -> Result<super::DeviceStatusInfo, DeviceError> {
        Ok(super::status::info(&self.status.read()?))
    }

    fn codec(&self, direction: Direction, what: &'static str, e: postcard::Error) -> DeviceError {
        DeviceError::Codec {
            device: self.name.clone(),
            source: CodecError::new(direction, what, e),
        }
    }

    fn ring_error(&self, e: CommandError) -> DeviceError {
        let device = self.name.clone();
        match e {
            CommandError::ServerDied { pid, outcome } => {
                let record = self.status.read().map(|s| s.server).unwrap_or(0);
                if record != 0 && shmkit::os::identity::Record::from_raw(record).id() == pid {
                    let _ = self
                        .status
                        .mark_crashed(record, "the server died during a call");
                }
                DeviceError::Crashed {
                    device,
                    pid,
                    message: format!("the server died during a call ({outcome})"),
                }
            }
            CommandError::NoServer => DeviceError::Closed {
                device,
                reason: self
                    .status
                    .read()
                    .map(|s| super::status::message(&s))
                    .unwrap_or_default(),
            },
            CommandError::Timeout { waited } => DeviceError::Timeout { device, waited },
            CommandError::Failed(message) => {
                let fail_safe = self
                    .status
                    .read()
                    .is_ok_and(|s| s.state == shm_layout::DEVICE_FAIL_SAFE);
                if fail_safe {
                    DeviceError::FailSafe { device }
                } else {
                    DeviceError::Failed { device, message }
                }
            }
            other => DeviceError::Command(other),
        }
    }
}
