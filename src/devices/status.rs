//! The status record's access rules and its public reading.
//!
//! Every read and write goes through [`Status::with`], which takes the record's own robust
//! mutex and, if a writer died holding it, accepts the record as it is: each update writes
//! whole fields and every state is one word, so a half-finished update leaves a state that a
//! later reader can still act on (a dead server's state is judged by its liveness anyway).

use super::{object_name, DeviceError};
use crate::segment::Segment;
use crate::shared::{Shared, SharedAcquired};
use crate::sys::clock::monotonic_ns;
use crate::sys::identity::Record;
use shm_layout::{
    DeviceStatus, DEVICE_CLOSED, DEVICE_CLOSING, DEVICE_CRASHED, DEVICE_ERROR_MAX,
    DEVICE_FAIL_SAFE, DEVICE_OPENING, DEVICE_RUNNING,
};
use std::time::Duration;
use zerocopy::FromZeros;

/// A heartbeat older than this marks a live server unresponsive.
pub(crate) const UNRESPONSIVE_AFTER: Duration = Duration::from_secs(1);

/// A device's state as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// No server: never started, closed, or its open failed.
    Closed,
    /// A server is opening the device.
    Opening,
    /// Open and answering.
    Running,
    /// Closing the device.
    Closing,
    /// The server died without closing the device.
    Crashed,
    /// The server lives but its heartbeat is older than a second.
    Unresponsive,
    /// Put in its safe state after a failure; refuses commands.
    FailSafe,
    /// A state word no shmkit process writes (a corrupt record).
    Unknown(u32),
}

impl DeviceState {
    /// The state's name as the `shmkit` tool prints it (`closed`, `fail_safe`, `unknown(N)`).
    pub fn name(self) -> String {
        match self {
            DeviceState::Closed => "closed".into(),
            DeviceState::Opening => "opening".into(),
            DeviceState::Running => "running".into(),
            DeviceState::Closing => "closing".into(),
            DeviceState::Crashed => "crashed".into(),
            DeviceState::Unresponsive => "unresponsive".into(),
            DeviceState::FailSafe => "fail_safe".into(),
            DeviceState::Unknown(raw) => format!("unknown({raw})"),
        }
    }
}

/// A snapshot of a device's status record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatusInfo {
    /// The state, with a dead server shown as [`DeviceState::Crashed`] even before anyone
    /// recorded it.
    pub state: DeviceState,
    /// The server's pid (0 when none).
    pub pid: u32,
    /// Servers started for this device so far.
    pub starts: u32,
    /// Age of the last heartbeat, if a server ever beat.
    pub heartbeat_age: Option<Duration>,
    /// The last open failure's or crash's message (empty when none).
    pub message: String,
}

/// The status record of one device.
#[derive(Clone)]
pub(crate) struct Status {
    shared: Shared<DeviceStatus>,
}

impl Status {
    pub(crate) fn attach(segment: &Segment, device: &str) -> Result<Status, DeviceError> {
        let shared = segment
            .shared(&object_name(device, "status"), DeviceStatus::new_zeroed())?
            .with_lock_timeout(Duration::from_secs(5));
        Ok(Status { shared })
    }

    /// Runs `f` on the record under its mutex (recovering it from a dead writer).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut DeviceStatus) -> R) -> Result<R, DeviceError> {
        let mut guard = match self.shared.lock()? {
            SharedAcquired::Locked(g) => g,
            SharedAcquired::OwnerDied(g) => g.make_consistent(),
        };
        Ok(f(&mut guard))
    }

    pub(crate) fn read(&self) -> Result<DeviceStatus, DeviceError> {
        self.with(|s| *s)
    }

    /// Records that the server `record` died, unless the record moved on meanwhile.
    pub(crate) fn mark_crashed(&self, record: u64, message: &str) -> Result<(), DeviceError> {
        self.with(|s| {
            if s.server == record
                && matches!(s.state, DEVICE_OPENING | DEVICE_RUNNING | DEVICE_CLOSING)
            {
                s.state = DEVICE_CRASHED;
                set_message(s, message);
            }
        })
    }
}

/// Stores `message` in the record, cut at a character boundary to fit.
pub(crate) fn set_message(s: &mut DeviceStatus, message: &str) {
    let mut end = message.len().min(DEVICE_ERROR_MAX);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    s.error = [0; DEVICE_ERROR_MAX];
    s.error[..end].copy_from_slice(&message.as_bytes()[..end]);
    s.error_len = end as u32;
}

/// The message stored in the record (lossy: the bytes are shared memory).
pub(crate) fn message(s: &DeviceStatus) -> String {
    let len = (s.error_len as usize).min(DEVICE_ERROR_MAX);
    String::from_utf8_lossy(&s.error[..len]).into_owned()
}

/// Is the record's server alive?
pub(crate) fn server_alive(s: &DeviceStatus) -> bool {
    !Record::from_raw(s.server).process_dead()
}

/// The public reading of a record.
pub(crate) fn info(s: &DeviceStatus) -> DeviceStatusInfo {
    let alive = server_alive(s);
    let age = (s.heartbeat_ns != 0)
        .then(|| Duration::from_nanos(monotonic_ns().saturating_sub(s.heartbeat_ns)));
    let state = match s.state {
        DEVICE_OPENING | DEVICE_RUNNING | DEVICE_CLOSING if !alive => DeviceState::Crashed,
        DEVICE_RUNNING if age.is_some_and(|a| a > UNRESPONSIVE_AFTER) => DeviceState::Unresponsive,
        DEVICE_OPENING => DeviceState::Opening,
        DEVICE_RUNNING => DeviceState::Running,
        DEVICE_CLOSING => DeviceState::Closing,
        DEVICE_CRASHED => DeviceState::Crashed,
        DEVICE_FAIL_SAFE => DeviceState::FailSafe,
        DEVICE_CLOSED => DeviceState::Closed,
        other => DeviceState::Unknown(other),
    };
    DeviceStatusInfo {
        state,
        pid: crate::sys::identity::Record::from_raw(s.server).id(),
        starts: s.starts,
        heartbeat_age: age,
        message: message(s),
    }
}
