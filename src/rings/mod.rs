//! Rings that move data between processes through the segment: the zero-copy [`FrameRing`]
//! (one writer, many readers; a held frame never changes) and the [`CommandRing`] (many
//! clients, one server, exactly one answer per request).

mod cmd_state;
mod command;
mod frame;
pub(crate) mod hold_count;
pub(crate) mod slot_word;

pub use command::{CommandError, CommandRing, CommandServer, CommandSpec, Outcome, Request};

pub use frame::{
    Cadence, Frame, FrameReader, FrameRing, FrameSpec, FrameWriter, OwnedFrame, OwnedFrameReader,
    OwnedWriteSlot, Pixel, ReadMode, RingCadence, RingError, RingStats, WriteSlot,
};
pub use shm_layout::ElemType;

#[cfg(all(test, not(miri)))]
mod tests;
