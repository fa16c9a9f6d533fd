//! Rings that move data between processes through the segment: the zero-copy [`FrameRing`]
//! (one writer, many readers; a held frame never changes) and the [`CommandRing`] (many
//! clients, one server, exactly one answer per request).

mod cmd_state;
mod command;
mod frame;
pub(crate) mod slot_word;

pub use command::{CommandError, CommandRing, CommandServer, CommandSpec, Outcome, Request};

pub use frame::{
    Frame, FrameReader, FrameRing, FrameSpec, FrameWriter, Pixel, ReadMode, RingError, RingStats,
    WriteSlot,
};
pub use shm_layout::ElemType;

use crate::sys::identity::{Liveness, Record};

/// Is the process holding a ring role (writer, reader, server, client) under the stored
/// record `raw` dead?
pub(crate) fn record_dead(raw: u64) -> bool {
    Record::from_raw(raw).process_liveness() == Liveness::Dead
}

/// The pid in a stored process record.
pub(crate) fn record_pid(raw: u64) -> u32 {
    Record::from_raw(raw).id()
}

#[cfg(all(test, not(miri)))]
mod tests;
