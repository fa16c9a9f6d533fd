//! How spawning, joining or a child itself failed: the process module's errors.

use super::report::ChildReport;
use crate::segment::SegmentError;
use std::time::Duration;

/// Why spawning or joining failed (a child's own failure is a [`ChildError`]).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Every exception slot is in use by a running or unjoined child.
    #[error("all {slots} exception slots are in use; join children, or create the segment with more exception_slots")]
    SlotsFull {
        /// Slots in the segment.
        slots: u32,
    },
    /// The child's slot was taken by someone else before the child started.
    #[error("exception slot {slot} no longer belongs to this child")]
    SlotStolen {
        /// The slot.
        slot: u32,
    },
    /// A slot holds bytes no shmkit process writes.
    #[error("corrupt exception slot {slot}: {detail}")]
    CorruptSlot {
        /// The slot.
        slot: u32,
        /// What is wrong.
        detail: String,
    },
    /// `join` already collected this child's end.
    #[error("child {name:?} was already joined")]
    AlreadyJoined {
        /// The child's name.
        name: String,
    },
    /// The arguments could not be serialised.
    #[error(transparent)]
    Encode(crate::codec::CodecError),
    /// The OS refused to start or wait for the child.
    #[error("cannot {op} child {name:?}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The child's name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The segment failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
}

/// How a child ended, when it did not simply succeed.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The entry returned an error.
    #[error("child {name:?} (pid {pid}) failed: {report}")]
    Failed {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// Type, message, cause chain, backtrace.
        report: Box<ChildReport>,
    },
    /// The entry panicked.
    #[error("child {name:?} (pid {pid}) panicked: {report}")]
    Panicked {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// Message, location, backtrace.
        report: Box<ChildReport>,
    },
    /// A signal ended it.
    #[error("child {name:?} (pid {pid}) was killed by signal {signal} ({signal_name}){}", if *core_dumped { ", core dumped" } else { "" })]
    Signaled {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The signal number.
        signal: i32,
        /// Its name (`SIGKILL`, ...).
        signal_name: &'static str,
        /// Whether it dumped core.
        core_dumped: bool,
    },
    /// It exited with a non-zero code without writing a report.
    #[error("child {name:?} (pid {pid}) exited with code {code} without a report")]
    Exited {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The exit code.
        code: i32,
    },
    /// The caller's interrupt check said stop while the child ran (it keeps running; join
    /// again or kill it).
    #[error("interrupted while joining child {name:?} (pid {pid}), which is still running")]
    Interrupted {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
    },
    /// It was still running at the deadline (it keeps running; join again or kill it).
    #[error("child {name:?} (pid {pid}) is still running after {waited:?}")]
    StillRunning {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// How long `join` waited.
        waited: Duration,
    },
    /// Waiting for it or reading its slot failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
}
