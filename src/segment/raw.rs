//! The caller's own memory in a segment: zeroed bytes reached as atomic words.
//!
//! Not an object: no name, no kind, no validation beyond "these words lie inside a block the
//! allocator handed out as raw bytes". It is what a test harness or a benchmark shares between
//! its processes (a flag, a counter, a start signal) when a [`Shared`](crate::Shared) value,
//! whose every access takes its mutex, would change what is being measured. Objects are
//! reached by name or by offset through [`Segment`]'s object methods, never through here.

use super::{image, Segment, SegmentError};
use shm_layout::BlockKind;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Raw bytes in a segment (see the module documentation): from [`Segment::raw`].
#[derive(Debug, Clone, Copy)]
pub struct RawMemory<'a> {
    segment: &'a Segment,
}

impl Segment {
    /// The segment's raw bytes: allocate zeroed words for the caller's own use and reach them
    /// as atomics from any process (see [`RawMemory`]).
    pub fn raw(&self) -> RawMemory<'_> {
        RawMemory { segment: self }
    }
}

impl<'a> RawMemory<'a> {
    /// Reserves `size` zeroed bytes aligned to `align` (16..=4096); returns their offset,
    /// which any process passes to [`atomic_u64`](Self::atomic_u64) or
    /// [`atomic_u32`](Self::atomic_u32).
    pub fn alloc(self, size: u64, align: u64) -> Result<u64, SegmentError> {
        self.segment.allocate(BlockKind::Bytes, size, align, |_| {})
    }

    /// The `AtomicU64` at `offset`, which must lie inside a block from
    /// [`alloc`](Self::alloc) and be 8-aligned. Checking walks the blocks: look it up once,
    /// then keep the reference.
    pub fn atomic_u64(self, offset: u64) -> Result<&'a AtomicU64, SegmentError> {
        let ptr = self.word(offset, 8)?;
        // SAFETY: `word` checked that the 8 bytes are in bounds, 8-aligned and inside a bytes
        // block; the mapping lives as long as the segment handle borrowed for 'a; atomics are
        // valid for any bytes.
        Ok(unsafe { AtomicU64::from_ptr(ptr.as_ptr().cast()) })
    }

    /// The `AtomicU32` at `offset`, inside a block from [`alloc`](Self::alloc) and 4-aligned.
    pub fn atomic_u32(self, offset: u64) -> Result<&'a AtomicU32, SegmentError> {
        let ptr = self.word(offset, 4)?;
        // SAFETY: as in `atomic_u64`, for 4 bytes.
        Ok(unsafe { AtomicU32::from_ptr(ptr.as_ptr().cast()) })
    }

    /// The `width`-byte word at `offset`: inside one bytes block and aligned to its width.
    fn word(self, offset: u64, width: u64) -> Result<NonNull<u8>, SegmentError> {
        let seg = self.segment;
        let blocks = image::walk_blocks(&*seg.map, seg.info.data_start, seg.allocated_end())?;
        let inside = blocks.iter().any(|b| {
            b.kind == BlockKind::Bytes
                && offset >= b.offset
                && offset
                    .checked_add(width)
                    .is_some_and(|e| e <= b.offset + b.size)
        });
        if !inside {
            return Err(SegmentError::BadOffset {
                offset,
                reason: "not inside a bytes block",
            });
        }
        seg.map
            .ptr_at(offset, width, width)
            .ok_or(SegmentError::BadOffset {
                offset,
                reason: "misaligned",
            })
    }
}
