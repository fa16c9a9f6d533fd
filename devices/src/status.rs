//! The status record's access rules (its reading is the core's, `shmkit::inspect::device`).
//!
//! Every read and write goes through [`Status::with`], which takes the record's own robust
//! mutex and, if a writer died holding it, accepts the record as it is: each update writes
//! whole fields and every state is one word, so a half-finished update leaves a state that a
//! later reader can still act on (a dead server's state is judged by its liveness anyway).

use super::{object_name, DeviceError};
use shm_layout::{
    DeviceStatus, DEVICE_CLOSING, DEVICE_CRASHED, DEVICE_ERROR_MAX, DEVICE_OPENING, DEVICE_RUNNING,
};
pub(crate) use shmkit::inspect::device::{info, message, server_alive};
pub use shmkit::inspect::device::{DeviceState, DeviceStatusInfo};
use shmkit::segment::Segment;
use shmkit::shared::Shared;
use shmkit::Acquired;
use std::time::Duration;
use zerocopy::FromZeros;

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
            Acquired::Locked(g) => g,
            Acquired::OwnerDied(g) => g.make_consistent(),
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
