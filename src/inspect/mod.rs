//! Read-only inspection of segments, for the `shmkit` command-line tool and for monitoring.
//!
//! Everything here but [`blocks`] and [`snapshot`] (which read a segment this process has
//! mapped) works on a *copy* of a segment's bytes, read with `read(2)` from
//! `/dev/shm`: it never maps a segment writably, never takes a lock, and never changes a byte.
//! A copy taken while processes run may catch a multi-word structure mid-update; single words
//! are what they were at some instant, and every value is checked like hostile input. A
//! structure that does not make sense is reported as corrupt, naming the field, and the rest
//! of the segment is still inspected. The JSON form of [`Inspection`] and [`SegmentListing`]
//! is the tool's `--json` schema (see `cli/SCHEMA.md`).

pub mod device;
mod error;
mod mapped;
mod objects;
mod paged;
mod scan;
mod watch;

pub use error::InspectError;
pub use mapped::{blocks, snapshot};
pub use objects::{
    inspect_image, DeviceInfo, Inspection, LinkInfo, ObjectInfo, ObjectState, SlotSummary,
};
pub use scan::{
    clean, inspect, list, mapped_by_live_process, mappers, CleanAction, Mappers, SegmentListing,
    SHM_DIR,
};
pub use watch::{Refresh, Watcher};

// These map real shared memory, which Miri cannot do.
#[cfg(all(test, not(miri)))]
mod tests;
