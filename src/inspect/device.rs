//! A device server's status record as a reader sees it: the one reading that inspection
//! (`shmkit ls`) and the devices crate's clients share.
//!
//! The record itself (`shm_layout::DeviceStatus`, named `dev/NAME/status`) is written by the
//! device servers of the `shmkit-devices` crate; the core only reads it, as it reads a bridge's
//! link records, so that a segment's devices show up in inspection without the core knowing
//! how devices run.

use crate::sys::clock::monotonic_ns;
use crate::sys::identity::Record;
use shm_layout::{
    DeviceStatus, DEVICE_CLOSED, DEVICE_CLOSING, DEVICE_CRASHED, DEVICE_ERROR_MAX,
    DEVICE_FAIL_SAFE, DEVICE_OPENING, DEVICE_RUNNING,
};
use std::time::Duration;

/// A heartbeat older than this marks a live server unresponsive.
pub const UNRESPONSIVE_AFTER: Duration = Duration::from_secs(1);

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

/// The message stored in the record (lossy: the bytes are shared memory).
pub fn message(s: &DeviceStatus) -> String {
    let len = (s.error_len as usize).min(DEVICE_ERROR_MAX);
    String::from_utf8_lossy(&s.error[..len]).into_owned()
}

/// Is the record's server alive?
pub fn server_alive(s: &DeviceStatus) -> bool {
    !Record::from_raw(s.server).process_dead()
}

/// The public reading of a record.
pub fn info(s: &DeviceStatus) -> DeviceStatusInfo {
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
        pid: Record::from_raw(s.server).id(),
        starts: s.starts,
        heartbeat_age: age,
        message: message(s),
    }
}
