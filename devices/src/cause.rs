//! Causality carried with a command: a client says which frame a command was computed from
//! ([`Cause`]: its id, when it was published, when the client held it), the server notes when
//! it applied the command, and the library turns the four instants into per-stage latencies
//! in shared histograms, for every device alike:
//!
//! | histogram | stage |
//! |---|---|
//! | `dev/NAME/latency/publish-to-held` | the frame's publish → the client holds it |
//! | `dev/NAME/latency/held-to-sent` | held → the command is sent (the client's computation) |
//! | `dev/NAME/latency/sent-to-applied` | sent → the device has applied it (the server's `handle` returned) |
//! | `dev/NAME/latency/publish-to-applied` | the whole way |
//!
//! The cause travels beside the request, not in it: a call holds the device's mutex, so the
//! client writes its cause into the device's record `dev/NAME/cause` (a shared value) under
//! that hold, numbered, just before it sends; the server reads the record after handling the
//! command and takes a cause it has not seen, written no later than the command arrived, as
//! this command's. A call that fails before it is sent withdraws its cause. The wire format of
//! commands is unchanged, so bridges and older clients are unaffected; a client that bypasses
//! the device's mutex (a raw command-ring caller) carries no cause.

use super::object_name;
use shmkit::segment::Segment;
use shmkit::shared::{Histogram, Shared};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The stages, as their histograms are named under `dev/NAME/latency/`.
pub const CAUSE_STAGES: [&str; 4] = [
    "publish-to-held",
    "held-to-sent",
    "sent-to-applied",
    "publish-to-applied",
];

/// The name of device `device`'s histogram for `stage` (one of [`CAUSE_STAGES`]).
pub fn stage_histogram(device: &str, stage: &str) -> String {
    object_name(device, &format!("latency/{stage}"))
}

/// The frame a command was computed from (`CLOCK_MONOTONIC` nanoseconds, as
/// [`Frame::ts_ns`](shmkit::rings::Frame::ts_ns) and
/// [`monotonic_ns`](shmkit::os::clock::monotonic_ns) give them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    /// The frame's id.
    pub frame_id: u64,
    /// When its writer published it.
    pub published_ns: u64,
    /// When the caller held it (started working on it).
    pub held_ns: u64,
}

/// The record `dev/NAME/cause`: the newest cause a client attached to a call.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub(crate) struct CauseRecord {
    /// Incremented by every caused call; 0 for none yet.
    seq: u64,
    frame_id: u64,
    published_ns: u64,
    held_ns: u64,
    /// When the client sent the command; 0 when it withdrew the cause.
    sent_ns: u64,
}

fn record(segment: &Segment, device: &str) -> Result<Shared<CauseRecord>, shmkit::SegmentError> {
    segment.shared(&object_name(device, "cause"), CauseRecord::default())
}

/// A client's side: writes its causes into the device's record.
#[derive(Clone)]
pub(crate) struct CauseWriter {
    record: Shared<CauseRecord>,
}

impl CauseWriter {
    pub(crate) fn open(segment: &Segment, device: &str) -> Result<Self, shmkit::SegmentError> {
        Ok(CauseWriter {
            record: record(segment, device)?,
        })
    }

    /// Files `cause` for the call about to be sent at `sent_ns` (the caller holds the
    /// device's mutex).
    pub(crate) fn file(&self, cause: &Cause, sent_ns: u64) -> Result<(), shmkit::SharedError> {
        self.record.update(|r| {
            *r = CauseRecord {
                seq: r.seq.wrapping_add(1),
                frame_id: cause.frame_id,
                published_ns: cause.published_ns,
                held_ns: cause.held_ns,
                sent_ns,
            }
        })
    }

    /// Withdraws the filed cause (its call was never sent).
    pub(crate) fn withdraw(&self) {
        let _ = self.record.update(|r| r.sent_ns = 0);
    }
}

/// A server's side: pairs causes with the commands it handles and records the stages.
pub(crate) struct CauseReader {
    record: Shared<CauseRecord>,
    seen: u64,
    stages: [Histogram; 4],
}

impl CauseReader {
    pub(crate) fn open(segment: &Segment, device: &str) -> Result<Self, shmkit::SegmentError> {
        let histogram = |stage: &str| segment.histogram(&stage_histogram(device, stage));
        let record = record(segment, device)?;
        let seen = record.read().map_or(0, |r| r.seq);
        Ok(CauseReader {
            record,
            seen,
            stages: [
                histogram(CAUSE_STAGES[0])?,
                histogram(CAUSE_STAGES[1])?,
                histogram(CAUSE_STAGES[2])?,
                histogram(CAUSE_STAGES[3])?,
            ],
        })
    }

    /// After a command that arrived at `received_ns` was applied at `applied_ns`: records its
    /// cause's stages if it had one, and returns the frame id.
    pub(crate) fn applied(&mut self, received_ns: u64, applied_ns: u64) -> Option<u64> {
        let r = self.record.read().ok()?;
        if r.seq == self.seen {
            return None;
        }
        self.seen = r.seq;
        // A withdrawn cause, or one filed after this command arrived (another call's).
        if r.sent_ns == 0 || r.sent_ns > received_ns {
            return None;
        }
        let stages = [
            r.held_ns.saturating_sub(r.published_ns),
            r.sent_ns.saturating_sub(r.held_ns),
            applied_ns.saturating_sub(r.sent_ns),
            applied_ns.saturating_sub(r.published_ns),
        ];
        for (h, v) in self.stages.iter().zip(stages) {
            h.record(v);
        }
        Some(r.frame_id)
    }
}
