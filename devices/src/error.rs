//! What can go wrong between a client and a device.

use shmkit::primitives::LockError;
use shmkit::process::ProcessError;
use shmkit::rings::{CommandError, RingError};
use shmkit::segment::SegmentError;
use shmkit::shared::SharedError;
use std::time::Duration;

/// Why a device operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Device names are 1 to 32 ASCII letters, digits, `_` or `-`.
    #[error("invalid device name {0:?}: use 1 to 32 ASCII letters, digits, '_' or '-'")]
    InvalidName(String),
    /// The device's `open` failed; the message is the device's own.
    #[error("device {device:?} failed to open: {message}")]
    OpenFailed {
        /// The device.
        device: String,
        /// Its error message.
        message: String,
    },
    /// The server died (killed, crashed) without closing the device.
    #[error("device {device:?}: its server (pid {pid}) died{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Crashed {
        /// The device.
        device: String,
        /// The dead server's pid.
        pid: u32,
        /// What is known of the death.
        message: String,
    },
    /// The server did not reach `running` in time (it was killed).
    #[error("device {device:?} did not start within {waited:?}")]
    StartTimeout {
        /// The device.
        device: String,
        /// How long the start was waited for.
        waited: Duration,
    },
    /// The device is closed (or closing) and was not started again.
    #[error("device {device:?} is closed{}", if reason.is_empty() { String::new() } else { format!(": {reason}") })]
    Closed {
        /// The device.
        device: String,
        /// Why, when its server recorded it (the error it stopped with).
        reason: String,
    },
    /// The device is in its fail-safe state and refuses commands.
    #[error("device {device:?} is in its fail-safe state")]
    FailSafe {
        /// The device.
        device: String,
    },
    /// The device handled the command and failed it.
    #[error("device {device:?} failed the command: {message}")]
    Failed {
        /// The device.
        device: String,
        /// Its error message.
        message: String,
    },
    /// The encoded command is larger than the device's message limit (its `MAX_MESSAGE`): it
    /// was not sent. Large data travels through the device's frame rings instead.
    #[error("device {device:?}: the command is {size} bytes, over the device's {limit}-byte message limit; it was not sent (send large arrays through the device's frame rings)")]
    RequestTooLarge {
        /// The device.
        device: String,
        /// The encoded command's size in bytes.
        size: u64,
        /// The device's message limit in bytes.
        limit: u32,
    },
    /// The device ran the command, but its reply is larger than the device's message limit:
    /// it was dropped. The command's effects happened; do not retry it blindly.
    #[error("device {device:?}: the command ran, but its reply of {size} bytes did not fit the device's {limit}-byte message limit (send large arrays through the device's frame rings)")]
    ReplyTooLarge {
        /// The device.
        device: String,
        /// The encoded reply's size in bytes.
        size: u64,
        /// The device's message limit in bytes.
        limit: u32,
    },
    /// A client died holding the device's mutex (inside a multi-command section). The
    /// command did not run; the mutex was made consistent again (the device's state lives in
    /// its server, so there is nothing in the segment to repair), and a retry runs. The
    /// device itself may be left mid-sequence by the dead client: put it in a known state.
    #[error("device {device:?}: a client ({}) died holding the device's mutex; the command did not run (retry; the device may be mid-sequence)", match previous { Some(p) => p.to_string(), None => "unknown".into() })]
    OwnerDied {
        /// The device's name.
        device: String,
        /// The client that died holding the mutex.
        previous: Option<shmkit::primitives::OwnerInfo>,
    },
    /// No answer in time (the call was withdrawn: no late answer will surface).
    #[error("device {device:?} did not answer within {waited:?}")]
    Timeout {
        /// The device.
        device: String,
        /// How long the call waited.
        waited: Duration,
    },
    /// The caller's interrupt (Ctrl+C in a binding) ended a wait for the device: starting or
    /// closing it goes on without the caller.
    #[error("waiting for device {device:?} was interrupted")]
    Interrupted {
        /// The device.
        device: String,
    },
    /// The device exists under another type than the one asked for.
    #[error("device {device:?} is a {actual}, not a {asked}")]
    WrongKind {
        /// The device.
        device: String,
        /// The type its server runs.
        actual: String,
        /// The type asked for.
        asked: &'static str,
    },
    /// A command or reply could not be encoded or decoded.
    #[error("device {device:?}: a message could not be encoded or decoded")]
    Codec {
        /// The device.
        device: String,
        /// What failed, with postcard's error as its source.
        #[source]
        source: shmkit::codec::CodecError,
    },
    /// The segment refused an object.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// Starting or reaping a server failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The status record could not be read or written.
    #[error("reading the device status failed")]
    Status(#[from] SharedError),
    /// The device's mutex could not be taken.
    #[error("the device mutex failed")]
    Lock(#[from] LockError),
    /// The command ring failed in a way not listed above.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A frame ring failed.
    #[error(transparent)]
    Ring(#[from] RingError),
}
