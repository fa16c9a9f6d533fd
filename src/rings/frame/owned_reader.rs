//! The owning reader: frames that own their hold, `'static + Send`, any number at a time.
//!
//! What a binding gives a garbage-collected array. The registration (shared with the
//! borrowing reader's code in `reader.rs`) lives as long as the reader or any of its frames;
//! several frames may hold one slot, counted per slot by the protocol in
//! `rings/hold_count.rs` (loom-checked there), which sets the slot word's bit on the first
//! hold and clears it on the last. The same counts decide the core's lifetime (no reference
//! count per frame): the reader retires its core when dropped, and whichever of it and its
//! frames settles last frees it.

use super::reader::{frame_accessors, Cursor, Registration};
use super::{FrameRing, Pixel, RingError};
use crate::rings::hold_count;
use crate::sync::{AtomicU32, Interrupt, NoInterrupt, Ordering, Timeout, WaitStrategy, Waiting};
use std::mem::size_of;
use std::ptr::NonNull;
use std::time::Duration;

/// The registration an owned reader and its frames share, with the local hold counts.
/// Heap-allocated once; freed by the last of the reader and its frames to settle (see
/// `hold_count::retire`).
struct OwnedCore {
    reg: Registration,
    /// Frames of this reader holding each slot (with `hold_count`'s flags).
    holds: Box<[AtomicU32]>,
    /// Units still owed once the reader is gone (`hold_count::retire`).
    remaining: AtomicU32,
}

impl OwnedCore {
    /// Takes one more hold of `slot` for frame `id` (see `hold_count::hold`); the reader's
    /// `&mut` methods serialise the calls.
    #[inline]
    fn hold(&self, slot: u32, id: u64, likely: bool) -> bool {
        let word = self.reg.ring.word(slot);
        hold_count::hold(&self.holds[slot as usize], word, id, self.reg.index, likely)
    }
}

/// Gives one hold of `slot` back (see `hold_count::release`), freeing the core if the
/// reader is gone and this was the last hold of all.
///
/// # Safety
/// `core` is live and the caller holds `slot` (one of its frames, which is not used again).
#[inline]
unsafe fn release(core: NonNull<OwnedCore>, slot: u32) {
    // SAFETY: live by the caller's promise: its hold is an unsettled unit of the core, and
    // `hold_count::release` touches the core no more once it has given that unit up.
    let c = unsafe { core.as_ref() };
    let word = c.reg.ring.word(slot);
    if hold_count::release(&c.holds[slot as usize], word, c.reg.index, &c.remaining) {
        // SAFETY: this settled the last unit: every other party is done with the core, which
        // came from `Box::into_raw` in `OwnedFrameReader::new`.
        drop(unsafe { Box::from_raw(core.as_ptr()) });
    }
}

/// A registered reader whose frames own their hold: `'static + Send`, any number at a time.
/// The registration stays until the reader and all its frames are dropped.
pub struct OwnedFrameReader {
    /// From `Box::into_raw`; retired (and maybe freed) by `Drop`.
    core: NonNull<OwnedCore>,
    cursor: Cursor,
}

// SAFETY: the core is shared only through atomics (`hold_count`) and the ring, which is
// `Send + Sync`; holds go through `&mut self`.
unsafe impl Send for OwnedFrameReader {}
// SAFETY: `&self` methods only read the ring.
unsafe impl Sync for OwnedFrameReader {}

impl Drop for OwnedFrameReader {
    fn drop(&mut self) {
        let freed = {
            let core = self.core();
            hold_count::retire(&core.holds, &core.remaining)
        };
        if freed {
            // SAFETY: no frame holds a slot and every unit is settled: nobody else touches
            // the core, which came from `Box::into_raw` in `new`.
            drop(unsafe { Box::from_raw(self.core.as_ptr()) });
        }
    }
}

impl std::fmt::Debug for OwnedFrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedFrameReader")
            .field("index", &self.core().reg.index)
            .field("mode", &self.cursor.mode)
            .field("last_seen", &self.cursor.last_seen)
            .finish()
    }
}

/// A frame held in place that owns its hold: its bytes do not change until it is dropped,
/// on whichever thread that happens.
pub struct OwnedFrame {
    /// Live while this frame holds `slot` (its count's unit keeps it).
    core: NonNull<OwnedCore>,
    slot: u32,
    id: u64,
}

// SAFETY: the frame reads its slot under the pin and releases it through atomics, on any
// thread (`hold_count`); the core it points to is `Send + Sync` in all it shares.
unsafe impl Send for OwnedFrame {}
// SAFETY: `&self` methods only read the pinned slot and the ring.
unsafe impl Sync for OwnedFrame {}

impl std::fmt::Debug for OwnedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedFrame")
            .field("id", &self.id)
            .field("len", &self.len())
            .finish()
    }
}

impl Drop for OwnedFrame {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this frame holds `slot` and is gone after this.
        unsafe { release(self.core, self.slot) }
    }
}

impl OwnedFrame {
    /// The ring the frame is in.
    #[inline]
    pub fn ring(&self) -> &FrameRing {
        // SAFETY: the frame's hold keeps the core live while `self` does.
        &unsafe { self.core.as_ref() }.reg.ring
    }

    frame_accessors!();
}

impl OwnedFrameReader {
    /// The owned reader of `reg`, at `cursor` (from [`FrameReader::into_owned`]).
    pub(super) fn new(reg: Registration, cursor: Cursor) -> OwnedFrameReader {
        let slots = reg.ring.geometry.slots as usize;
        let core = Box::new(OwnedCore {
            holds: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            remaining: AtomicU32::new(0),
            reg,
        });
        OwnedFrameReader {
            core: NonNull::from(Box::leak(core)),
            cursor,
        }
    }

    fn core(&self) -> &OwnedCore {
        // SAFETY: the reader's own unit keeps the core live until its `Drop`.
        unsafe { self.core.as_ref() }
    }

    /// The ring this reader reads.
    pub fn ring(&self) -> &FrameRing {
        &self.core().reg.ring
    }

    /// This reader with another wait strategy.
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> OwnedFrameReader {
        self.set_strategy(strategy);
        self
    }

    /// Changes how this reader waits from its next wait on.
    pub fn set_strategy(&mut self, strategy: WaitStrategy) {
        self.cursor.strategy = strategy;
    }

    #[inline]
    fn frame(&self, (slot, id): (u32, u64)) -> OwnedFrame {
        OwnedFrame {
            core: self.core,
            slot,
            id,
        }
    }

    /// The newest frame, without waiting (`None` before the first publish).
    pub fn latest(&mut self) -> Result<Option<OwnedFrame>, RingError> {
        // SAFETY: the reader's own unit keeps the core live; the reference is not tied to
        // `self`, so the cursor can be borrowed beside it.
        let core = unsafe { self.core.as_ref() };
        let got = core
            .reg
            .latest(&mut self.cursor, |s, id, likely| core.hold(s, id, likely))?;
        Ok(got.map(|held| self.frame(held)))
    }

    /// The next frame (per the reader's mode), waiting up to `timeout`.
    #[inline]
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

    #[inline]
    fn next_waiting(
        &mut self,
        waiting: &mut Waiting<'_>,
        timeout: Duration,
    ) -> Result<OwnedFrame, RingError> {
        // SAFETY: as in `latest`.
        let core = unsafe { self.core.as_ref() };
        let held = core
            .reg
            .next(&mut self.cursor, waiting, timeout, |s, id, likely| {
                core.hold(s, id, likely)
            })?;
        Ok(self.frame(held))
    }
}
