//! The untyped client of one device: commands and replies as the device's encoded bytes.
//!
//! Everything a device client does that does not depend on the device's Rust types lives
//! here — the device's mutex held around each call, the message limit, the causality record,
//! the server's answer frame (`Ok(reply)` or a `Fault`) and what a failed call means — so the
//! typed [`DeviceClient`](super::DeviceClient) is an encoder on top, and a client in another
//! language (the C API) speaks to a Rust device through the very same path. A command's bytes
//! are the device's `Command` in postcard's wire format; a reply's are its `Reply`.

use super::cause::{Cause, CauseWriter};
use super::server::Fault;
use super::status::Status;
use super::{object_name, DeviceError};
use shmkit::codec::{CodecError, Direction};
use shmkit::os::clock::monotonic_ns;
use shmkit::primitives::{Acquired, Mutex};
use shmkit::rings::{CommandError, CommandRing, FrameReader, FrameRing, ReadMode};
use shmkit::segment::{Segment, SegmentError, SegmentObjects};
use shmkit::{Interrupt, NoInterrupt, Timeout, WaitStrategy};
use std::time::Duration;

/// A client of a running device, whatever its type: commands as encoded bytes. Cheap to clone.
#[derive(Clone)]
pub struct RawDeviceClient {
    name: String,
    segment: Segment,
    ring: CommandRing,
    lock: Mutex,
    status: Status,
    causes: CauseWriter,
    timeout: Duration,
}

impl std::fmt::Debug for RawDeviceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDeviceClient")
            .field("name", &self.name)
            .finish()
    }
}

impl RawDeviceClient {
    /// The client of device `name`, which a server has already started in `segment`
    /// (its command ring is opened as it is, with the limits its server gave it).
    /// [`DeviceError::Closed`] if no server ever created it.
    pub fn open(segment: &Segment, name: &str) -> Result<RawDeviceClient, DeviceError> {
        super::check_name(name)?;
        let ring = match segment.open::<CommandRing>(&object_name(name, "cmd")) {
            Err(SegmentError::ObjectNotFound { .. }) => {
                return Err(DeviceError::Closed {
                    device: name.to_owned(),
                    reason: "no server ever started it in this segment".into(),
                })
            }
            other => other?,
        };
        RawDeviceClient::with_ring(segment, name, ring)
    }

    /// The client of device `name` over its command ring `ring`.
    pub(crate) fn with_ring(
        segment: &Segment,
        name: &str,
        ring: CommandRing,
    ) -> Result<RawDeviceClient, DeviceError> {
        Ok(RawDeviceClient {
            name: name.to_owned(),
            segment: segment.clone(),
            ring: ring.with_strategy(WaitStrategy::SpinThenBlock),
            lock: segment.mutex(&object_name(name, "lock"))?,
            status: Status::attach(segment, name)?,
            causes: CauseWriter::open(segment, name)?,
            timeout: Duration::from_secs(5),
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

    /// The call timeout this client uses (see [`with_timeout`](Self::with_timeout)).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The largest command, and the largest reply, the device takes, in bytes (its
    /// `MAX_MESSAGE`).
    pub fn max_message(&self) -> u32 {
        self.ring.spec().max_request
    }

    /// Sends the encoded `command` and returns the device's encoded reply, waiting at most
    /// this client's timeout for the device's mutex and for the reply each.
    pub fn call(&self, command: &[u8]) -> Result<Vec<u8>, DeviceError> {
        self.call_interruptible(command, Timeout::After(self.timeout), &NoInterrupt)
    }

    /// As [`call`](Self::call), waiting at most `timeout` for the mutex and for the reply
    /// each, and giving up when `interrupt` says so.
    pub fn call_interruptible(
        &self,
        command: &[u8],
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Vec<u8>, DeviceError> {
        self.call_interruptible_with(command, timeout, interrupt, <[u8]>::to_vec)
    }

    /// As [`call_interruptible`](Self::call_interruptible), handing the reply to `read` in
    /// place instead of copying it out.
    pub fn call_interruptible_with<R>(
        &self,
        command: &[u8],
        timeout: Timeout,
        interrupt: &dyn Interrupt,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, DeviceError> {
        self.call_encoded(command, timeout, interrupt, None, read)
    }

    /// The one call path: holds the device's mutex, files `cause`, sends `bytes`, and hands
    /// the device's reply to `read` in place (the answer frame removed).
    pub(crate) fn call_encoded<R>(
        &self,
        bytes: &[u8],
        timeout: Timeout,
        interrupt: &dyn Interrupt,
        cause: Option<&Cause>,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, DeviceError> {
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
        let limit = self.max_message();
        if bytes.len() > limit as usize {
            return Err(DeviceError::RequestTooLarge {
                device: self.name.clone(),
                size: bytes.len() as u64,
                limit,
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
                split_answer(reply).map(|ok| ok.map(read))
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
            Ok(Err(e)) => Err(DeviceError::Codec {
                device: self.name.clone(),
                source: CodecError::new(Direction::Decode, "the reply", e),
            }),
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

/// A server's answer frame (`server::Outcome`, postcard's `Result`): the device's reply bytes
/// after the `Ok` variant's index, or the `Fault` after the `Err` one's. Postcard writes a
/// variant index as a varint, so index 0 and 1 are the single bytes 0 and 1.
fn split_answer(answer: &[u8]) -> Result<Result<&[u8], Fault>, postcard::Error> {
    match answer.split_first() {
        Some((0, reply)) => Ok(Ok(reply)),
        Some((1, fault)) => postcard::from_bytes::<Fault>(fault).map(Err),
        _ => Err(postcard::Error::DeserializeBadEnum),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_answer_reads_the_servers_outcome_frame() {
        type Outcome = super::super::server::Outcome<(u32, String)>;
        let ok: Outcome = Ok((7, "seven".into()));
        let bytes = postcard::to_allocvec(&ok).unwrap();
        let reply = split_answer(&bytes).unwrap().unwrap();
        assert_eq!(
            postcard::from_bytes::<(u32, String)>(reply).unwrap(),
            (7, "seven".into())
        );
        let failed: Outcome = Err(Fault::Failed("no".into()));
        let bytes = postcard::to_allocvec(&failed).unwrap();
        assert!(matches!(split_answer(&bytes), Ok(Err(Fault::Failed(m))) if m == "no"));
        assert!(split_answer(&[]).is_err());
        assert!(split_answer(&[2, 0]).is_err());
    }
}
