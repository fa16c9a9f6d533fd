//! The owning reader: frames that own their hold, `'static + Send`, any number at a time.
//!
//! What a binding gives a garbage-collected array. The registration (shared with the
//! borrowing reader's code in `reader.rs`) lives as long as the reader or any of its frames;
//! several frames may hold one slot, counted per slot by the protocol in
//! `rings/hold_count.rs` (loom-checked there), which sets the slot word's bit on the first
//! hold and clears it on the last.

use super::reader::{frame_accessors, Cursor, Registration};
use super::{FrameRing, Pixel, RingError};
use crate::rings::hold_count;
use crate::sync::{AtomicU32, Interrupt, NoInterrupt, Ordering, Timeout, WaitStrategy, Waiting};
use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

/// The registration an owned reader and its frames share, with the local hold counts.
struct OwnedCore {
    reg: Registration,
    /// Frames of this reader holding each slot (with `hold_count::HOLD_LOCK` during a bit
    /// change).
    holds: Box<[AtomicU32]>,
}

impl OwnedCore {
    /// Takes one more hold of `slot` for frame `id` (see `hold_count::hold`).
    fn hold(&self, slot: u32, id: u64, likely: bool) -> bool {
        let word = self.reg.ring.word(slot);
        hold_count::hold(&self.holds[slot as usize], word, id, self.reg.index, likely)
    }

    /// Gives one hold of `slot` back (see `hold_count::release`).
    fn release(&self, slot: u32) {
        let word = self.reg.ring.word(slot);
        hold_count::release(&self.holds[slot as usize], word, self.reg.index);
    }
}

/// A registered reader whose frames own their hold: `'static + Send`, any number at a time.
/// The registration stays until the reader and all its frames are dropped.
pub struct OwnedFrameReader {
    core: Arc<OwnedCore>,
    cursor: Cursor,
}

impl std::fmt::Debug for OwnedFrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedFrameReader")
            .field("index", &self.core.reg.index)
            .field("mode", &self.cursor.mode)
            .field("last_seen", &self.cursor.last_seen)
            .finish()
    }
}

/// A frame held in place that owns its hold: its bytes do not change until it is dropped,
/// on whichever thread that happens.
pub struct OwnedFrame {
    core: Arc<OwnedCore>,
    slot: u32,
    id: u64,
}

impl std::fmt::Debug for OwnedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedFrame")
            .field("id", &self.id)
            .field("len", &self.len())
            .finish()
    }
}

impl Drop for OwnedFrame {
    fn drop(&mut self) {
        self.core.release(self.slot);
    }
}

impl OwnedFrame {
    /// The ring the frame is in.
    pub fn ring(&self) -> &FrameRing {
        &self.core.reg.ring
    }

    frame_accessors!();
}

impl OwnedFrameReader {
    /// The owned reader of `reg`, at `cursor` (from [`FrameReader::into_owned`]).
    pub(super) fn new(reg: Registration, cursor: Cursor) -> OwnedFrameReader {
        let slots = reg.ring.geometry.slots as usize;
        OwnedFrameReader {
            core: Arc::new(OwnedCore {
                holds: (0..slots).map(|_| AtomicU32::new(0)).collect(),
                reg,
            }),
            cursor,
        }
    }

    /// The ring this reader reads.
    pub fn ring(&self) -> &FrameRing {
        &self.core.reg.ring
    }

    /// This reader with another wait strategy.
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> OwnedFrameReader {
        self.cursor.strategy = strategy;
        self
    }

    fn frame(&self, (slot, id): (u32, u64)) -> OwnedFrame {
        OwnedFrame {
            core: Arc::clone(&self.core),
            slot,
            id,
        }
    }

    /// The newest frame, without waiting (`None` before the first publish).
    pub fn latest(&mut self) -> Result<Option<OwnedFrame>, RingError> {
        let core = &*self.core;
        let got = core
            .reg
            .latest(&mut self.cursor, |s, id, likely| core.hold(s, id, likely))?;
        Ok(got.map(|held| self.frame(held)))
    }

    /// The next frame (per the reader's mode), waiting up to `timeout`.
    pub fn next(&mut self, timeout: impl Into<Timeout>) -> Result<OwnedFrame, RingError> {
        let timeout = timeout.into();
        let mut waiting = Waiting::new(timeout.deadline(), &NoInterrupt);
        self.next_waiting(&mut waiting, timeout.as_duration())
    }

    /// The next frame within `timeout`, giving up with [`RingError::Interrupted`] within
    /// 100 ms of `interrupt` saying stop.
    pub fn next_interruptible(
        &mut self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<OwnedFrame, RingError> {
        let mut waiting = Waiting::new(timeout.deadline(), interrupt);
        self.next_waiting(&mut waiting, timeout.as_duration())
    }

    fn next_waiting(
        &mut self,
        waiting: &mut Waiting<'_>,
        timeout: Duration,
    ) -> Result<OwnedFrame, RingError> {
        let core = &*self.core;
        let held = core
            .reg
            .next(&mut self.cursor, waiting, timeout, |s, id, likely| {
                core.hold(s, id, likely)
            })?;
        Ok(self.frame(held))
    }
}
