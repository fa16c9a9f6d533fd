//! The zero-copy frame ring: one writer fills frames in place, any number of readers (up to
//! 16 at once) read them in place, and a frame a reader holds never changes under it.
//!
//! Layout and the slot word protocol: `shm-layout/src/frame.rs` and `super::slot_word`.
//! Counters in the header (`last_id`, `total_written`, `last_ts_ns`, `rate_mhz`) are written
//! only by the writer: `last_id` with Release after the frame's slot is published, the others
//! Relaxed (they are statistics).
//!
//! Files: `spec.rs` (what users name: spec, pixels, modes, errors), `view.rs` (the shared
//! words), this file (the handle and its roles), `writer.rs`, `reader.rs`, `attach.rs`
//! (creating and attaching, through the segment's one object path), `cadence.rs` (a ring's
//! declared period and deadline, and its late frames).

mod attach;
mod cadence;
mod owned_reader;
mod reader;
mod spec;
mod view;
mod writer;

pub use cadence::{Cadence, RingCadence};
pub use owned_reader::{OwnedFrame, OwnedFrameReader};
pub use reader::{Frame, FrameReader};
pub use spec::{FrameSpec, Pixel, ReadMode, RingError};
pub use writer::{FrameWriter, OwnedWriteSlot, WriteSlot};

use super::slot_word;
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering};
use crate::sys::identity::ProcessIdentity;
use shm_layout::validate::FrameGeometry;
use shm_layout::{ElemType, FRAME_MAX_READERS};
use std::ptr::NonNull;
use view::{HeaderView, SlotView};

/// A frame ring in a segment. Cheap to clone.
#[derive(Clone)]
pub struct FrameRing {
    _segment: Segment,
    offset: u64,
    /// The ring's block: header, then `slots` metadata entries, then the frames.
    base: NonNull<u8>,
    geometry: FrameGeometry,
}

// SAFETY: the ring's shared words are atomics, and frame bytes are only touched under the
// slot protocol; the segment handle keeps the mapping alive.
unsafe impl Send for FrameRing {}
// SAFETY: as above.
unsafe impl Sync for FrameRing {}

impl std::fmt::Debug for FrameRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameRing")
            .field("slots", &self.geometry.slots)
            .field("elem", &self.geometry.elem)
            .field("shape", &self.geometry.dims())
            .finish()
    }
}

/// Counters kept in the ring's header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RingStats {
    /// Frames published so far.
    pub total_written: u64,
    /// Id of the newest frame (0: none yet).
    pub last_id: u64,
    /// Estimated frame rate.
    pub rate_hz: f64,
    /// Timestamp of the newest frame (CLOCK_MONOTONIC, ns).
    pub last_ts_ns: u64,
    /// Period jitter, ns: a moving average of each period's distance from the mean period.
    pub jitter_ns: u64,
    /// Frames oldest-first readers missed because the writer lapped them (all readers).
    pub overruns: u64,
}

impl FrameRing {
    /// The header's shared words.
    #[inline]
    pub(super) fn header(&self) -> &HeaderView {
        // SAFETY: attach checked that the block at `base` holds the whole ring (`geometry.size`
        // bytes, at least the header) at a 4096-aligned offset; the view is atomics only, valid
        // for any bytes; `self.segment` keeps the mapping alive as long as `&self`.
        unsafe { self.base.cast::<HeaderView>().as_ref() }
    }

    /// Slot `slot`'s metadata. Panics (a bug, never UB) if `slot` is not a slot of this ring.
    #[inline]
    fn slot(&self, slot: u32) -> &SlotView {
        assert!(slot < self.geometry.slots, "slot {slot} out of range");
        // SAFETY: the metadata array follows the header, `slots` entries of 64 bytes, inside
        // the block attach checked; `slot < slots`; atomics only; kept alive by `segment`.
        unsafe {
            self.base
                .cast::<HeaderView>()
                .add(1)
                .cast::<SlotView>()
                .add(slot as usize)
                .as_ref()
        }
    }

    /// The slot word of `slot`.
    #[inline]
    pub(super) fn word(&self, slot: u32) -> &AtomicU64 {
        &self.slot(slot).word
    }

    /// Where frame `slot`'s bytes start (`max_bytes` of them belong to it).
    #[inline]
    fn frame_ptr(&self, slot: u32) -> *mut u8 {
        assert!(slot < self.geometry.slots, "slot {slot} out of range");
        let at = self.geometry.frame_offset + u64::from(slot) * self.geometry.frame_stride;
        // SAFETY: attach checked `frame_offset + slots × frame_stride <= block size`, so frame
        // `slot` (< slots) starts inside the block.
        unsafe { self.base.as_ptr().add(at as usize) }
    }

    /// Offset of the ring in its segment: another process attaches with
    /// `Segment::attach::<FrameRing>(offset)`.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The ring's spec, as read from the segment.
    pub fn spec(&self) -> FrameSpec {
        FrameSpec::of(&self.geometry)
    }

    /// Slots in the ring.
    pub fn slots(&self) -> u32 {
        self.geometry.slots
    }

    /// Element type of the frames.
    pub fn elem(&self) -> ElemType {
        self.geometry.elem
    }

    /// Shape of the frames.
    pub fn shape(&self) -> &[u32] {
        self.geometry.dims()
    }

    /// Largest frame in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.geometry.max_bytes
    }

    /// The header's counters.
    pub fn stats(&self) -> RingStats {
        let h = self.header();
        RingStats {
            total_written: h.total_written.load(Ordering::Relaxed),
            // Acquire: pairs with the writer's Release store of `last_id`.
            last_id: h.last_id.load(Ordering::Acquire),
            rate_hz: h.rate_mhz.load(Ordering::Relaxed) as f64 / 1000.0,
            last_ts_ns: h.last_ts_ns.load(Ordering::Relaxed),
            jitter_ns: h.jitter_ns.load(Ordering::Relaxed),
            overruns: h.overruns.load(Ordering::Relaxed),
        }
    }

    /// Whether the ring's writer is alive: `None` when it has none (never had, or it let go),
    /// `Some(false)` when the process that holds the role died (the next [`writer`]
    /// call takes the role over).
    ///
    /// [`writer`]: Self::writer
    pub fn writer_liveness(&self) -> Option<bool> {
        let writer = self.header().writer.load();
        if writer.is_none() {
            return None;
        }
        Some(writer.process_liveness() != crate::sys::identity::Liveness::Dead)
    }

    /// Becomes the ring's writer. A dead writer's role is taken over (its half-written slot
    /// discarded); a live one's is [`RingError::WriterBusy`].
    pub fn writer(&self) -> Result<FrameWriter, RingError> {
        let me = ProcessIdentity::current().record();
        let previous = self
            .header()
            .writer
            .claim_if_dead(me)
            .map_err(|held| RingError::WriterBusy { pid: held.0.id() })?;
        if !previous.is_none() {
            // The dead writer may have died mid-frame: that slot holds no frame.
            for slot in 0..self.geometry.slots {
                if slot_word::writing(self.word(slot).load(Ordering::Relaxed)) {
                    slot_word::abandon(self.word(slot));
                }
            }
        }
        Ok(FrameWriter::new(self.clone(), me))
    }

    /// Registers a reader. It sees frames published from now on.
    pub fn reader(&self, mode: ReadMode) -> Result<FrameReader, RingError> {
        let me = ProcessIdentity::current().record();
        for pass in 0..2 {
            for (index, record) in self.header().readers.iter().enumerate() {
                if record.claim_free(me) {
                    return Ok(FrameReader::new(self.clone(), index as u32, mode));
                }
            }
            if pass == 0 {
                self.reclaim_dead_readers();
            }
        }
        Err(RingError::TooManyReaders)
    }

    /// Frees the registrations and holds of readers whose process died. Returns how many.
    pub fn reclaim_dead_readers(&self) -> u32 {
        let me = ProcessIdentity::current().record().raw();
        let mut freed = 0;
        for (index, record) in self.header().readers.iter().enumerate() {
            let r = record.load();
            // The protocol (claim the index, clear, free) is loom-checked in `slot_word`.
            if !r.is_none()
                && r.process_liveness() == crate::sys::identity::Liveness::Dead
                && slot_word::reclaim_reader(
                    record.atomic(),
                    r.raw(),
                    me,
                    index as u32,
                    (0..self.geometry.slots).map(|s| self.word(s)),
                )
            {
                freed += 1;
            }
        }
        freed
    }

    /// Checks that frames may be viewed as `T`.
    fn view<T: Pixel>(&self) -> Result<(), RingError> {
        if T::ELEM != self.geometry.elem {
            return Err(RingError::WrongElemType {
                ring: self.geometry.elem,
                asked: T::ELEM,
            });
        }
        Ok(())
    }
}

const _: () = assert!(
    FRAME_MAX_READERS <= 16,
    "reader bits are 48..64 of the slot word"
);
