//! Rings that move data between processes through the segment: the zero-copy [`FrameRing`]
//! (one writer, many readers; a held frame never changes).

mod frame;
pub(crate) mod slot_word;

pub use frame::{
    Frame, FrameReader, FrameRing, FrameSpec, FrameWriter, Pixel, ReadMode, RingError, RingStats,
    WriteSlot,
};
pub use shm_layout::ElemType;

#[cfg(all(test, not(miri)))]
mod tests;
