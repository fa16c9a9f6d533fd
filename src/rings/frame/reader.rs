//! Readers and the frames they hold in place.
//!
//! A reader is a *registration* (an index into the ring's reader records, whose bit it sets in
//! a slot word to pin that slot) plus a cursor (mode, strategy, last frame seen). Two kinds:
//!
//! - [`FrameReader`] hands out [`Frame`]s that borrow it: one at a time, no bookkeeping beyond
//!   the slot word's bit — the fastest path, for Rust loops.
//! - [`OwnedFrameReader`] hands out [`OwnedFrame`]s: `'static + Send`, several at a time, each
//!   releasing its pin when dropped (on any thread) — for a binding that gives a frame to a
//!   garbage-collected array. The registration lives as long as the reader or any of its
//!   frames. One slot can be held by several of its frames, so the reader keeps a local hold
//!   count per slot and sets or clears the shared bit only on 0 ↔ 1 (the last release marks
//!   the count while it clears the bit, so a drop on another thread cannot clear a bit a new
//!   hold just relied on); the same counts tell the last of the reader and its frames to free
//!   the registration.
//!
//! The owned reader lives beside this file (`owned_reader.rs`), its hold protocol in
//! `rings/hold_count.rs` with its loom models. A dead process's pins are reclaimed by `FrameRing::reclaim_dead_readers` whichever kind
//! took them: both are one bit per registration in the slot words.

use super::owned_reader::OwnedFrameReader;
use super::{slot_word, FrameRing, Pixel, ReadMode, RingError};
use crate::sync::{
    futex_wait, spin_hint, Interrupt, NoInterrupt, Ordering, Stop, Timeout, WaitStrategy, Waiting,
};
use std::mem::size_of;
use std::time::Duration;

/// A claimed reader index of a ring; freeing it on drop.
pub(super) struct Registration {
    pub(super) ring: FrameRing,
    pub(super) index: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // No frame of this registration is held now (they borrow the reader or keep the
        // registration alive). Release: our unpins happen before the index is seen free.
        self.ring.header().readers[self.index as usize]
            .atomic()
            .store(0, Ordering::Release);
    }
}

/// Where a reader is and how it waits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    pub(super) mode: ReadMode,
    pub(super) strategy: WaitStrategy,
    pub(super) last_seen: u64,
}

impl Registration {
    /// Pins a frame with `try_slot` (which knows the id) if a slot holds it, trying the
    /// newest frame's slot first (the hint saves a scan of every slot's cache line when the
    /// reader keeps up).
    #[inline]
    fn pin(&self, mut try_slot: impl FnMut(u32, bool) -> bool) -> Option<u32> {
        let ring = &self.ring;
        let hint = ring.header().last_slot.load(Ordering::Relaxed);
        if let Ok(hint) = u32::try_from(hint) {
            if hint < ring.geometry.slots {
                // The frame's first line travels while the pin's CAS does.
                prefetch(ring.frame_ptr(hint));
                if try_slot(hint, true) {
                    return Some(hint);
                }
            }
        }
        (0..ring.geometry.slots).find(|&s| try_slot(s, false))
    }

    /// The newest frame, pinned with `try_slot`, without waiting.
    pub(super) fn latest(
        &self,
        cursor: &mut Cursor,
        mut try_slot: impl FnMut(u32, u64, bool) -> bool,
    ) -> Result<Option<(u32, u64)>, RingError> {
        for _ in 0..64 {
            let last = self.ring.stats().last_id;
            if last == 0 {
                return Ok(None);
            }
            if let Some(slot) = self.pin(|s, likely| try_slot(s, last, likely)) {
                cursor.last_seen = cursor.last_seen.max(last);
                return Ok(Some((slot, last)));
            }
        }
        Err(RingError::Corrupt(
            "the newest frame is never in its slot".into(),
        ))
    }

    /// The oldest frame id the ring still holds after `after`.
    fn oldest_after(&self, after: u64) -> Option<u64> {
        (0..self.ring.geometry.slots)
            .map(|s| self.ring.word(s).load(Ordering::Relaxed))
            .filter(|&w| !slot_word::writing(w))
            .map(slot_word::id_of)
            .filter(|&id| id > after)
            .min()
    }

    /// The next frame per `cursor`, pinned with `try_slot`; waits as `waiting` allows.
    #[inline]
    pub(super) fn next(
        &self,
        cursor: &mut Cursor,
        waiting: &mut Waiting<'_>,
        timeout: Duration,
        mut try_slot: impl FnMut(u32, u64, bool) -> bool,
    ) -> Result<(u32, u64), RingError> {
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the writer's store of `last_id` after the slot's publish.
            let last = self.ring.header().last_id.load(Ordering::Acquire);
            if last > cursor.last_seen {
                let target = match cursor.mode {
                    ReadMode::NewestOnly => last,
                    ReadMode::OldestFirst => cursor.last_seen.saturating_add(1),
                };
                if let Some(slot) = self.pin(|s, likely| try_slot(s, target, likely)) {
                    cursor.last_seen = target;
                    return Ok((slot, target));
                }
                if cursor.mode == ReadMode::OldestFirst {
                    // Overwritten before we got to it: resume at the oldest frame held.
                    let oldest = self.oldest_after(cursor.last_seen).unwrap_or(last);
                    let missed = oldest.saturating_sub(target).max(1);
                    cursor.last_seen = oldest.saturating_sub(1).max(target);
                    // Counted in the ring for whoever watches its health (a lapped reader
                    // is rare: a locked add here costs nothing on the reading path).
                    self.ring
                        .header()
                        .overruns
                        .fetch_add(missed, Ordering::Relaxed);
                    return Err(RingError::Overrun { missed });
                }
                // The newest frame was replaced between our two reads: look again, but never
                // past the deadline (a corrupt ring could name a frame no slot holds).
            }
            match waiting.check() {
                Ok(()) => {}
                Err(Stop::TimedOut) => return Err(RingError::Timeout { waited: timeout }),
                Err(Stop::Interrupted) => return Err(RingError::Interrupted),
            }
            if last <= cursor.last_seen {
                self.wait_for_publish(cursor.strategy, last, waiting, &mut spins);
            }
        }
    }

    fn wait_for_publish(
        &self,
        strategy: WaitStrategy,
        seen: u64,
        waiting: &mut Waiting<'_>,
        spins: &mut u32,
    ) {
        if strategy.keeps_spinning(*spins) {
            *spins += 1;
            spin_hint();
            return;
        }
        let h = self.ring.header();
        // The handshake with `slot_word::ring_doorbell` (loom-checked there).
        if slot_word::reader_prepares_to_sleep(&h.notify, &h.sleepers, seen) {
            let outcome = futex_wait(&h.notify, seen as u32, waiting.sleep_deadline());
            waiting.slept(outcome);
        }
        slot_word::reader_awake(&h.sleepers);
    }
}

/// The accessors every held frame has, over the ring, slot and id it holds.
macro_rules! frame_accessors {
    () => {
        /// The frame's id (1, 2, 3, ... in publish order).
        #[inline]
        pub fn id(&self) -> u64 {
            self.id
        }

        /// Publish time (CLOCK_MONOTONIC, ns).
        #[inline]
        pub fn ts_ns(&self) -> u64 {
            self.ring().slot(self.slot).ts_ns.load(Ordering::Relaxed)
        }

        /// Bytes in use.
        #[inline]
        pub fn len(&self) -> usize {
            let ring = self.ring();
            let len = ring.slot(self.slot).len.load(Ordering::Relaxed);
            len.min(ring.geometry.max_bytes) as usize
        }

        /// True for an empty frame.
        #[inline]
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Caller metadata word `i` (0..5; 0 for any other `i`).
        #[inline]
        pub fn user(&self, i: usize) -> u64 {
            self.ring()
                .slot(self.slot)
                .user
                .get(i)
                .map_or(0, |w| w.load(Ordering::Relaxed))
        }

        /// All five caller metadata words, read with one look-up of the slot.
        #[inline]
        pub fn user_words(&self) -> [u64; 5] {
            let user = &self.ring().slot(self.slot).user;
            std::array::from_fn(|i| user[i].load(Ordering::Relaxed))
        }

        /// The frame's bytes, in place.
        #[inline]
        pub fn bytes(&self) -> &[u8] {
            // SAFETY: the pin keeps the writer out of this slot while `self` lives; `len` is
            // capped at `max_bytes`, which lies inside the slot's frame.
            unsafe { std::slice::from_raw_parts(self.ring().frame_ptr(self.slot), self.len()) }
        }

        /// The frame as elements of `T`, in place.
        #[inline]
        pub fn typed<T: Pixel>(&self) -> Result<&[T], RingError> {
            self.ring().view::<T>()?;
            // SAFETY: as in `bytes`; frames are 64-aligned and any bytes are valid for `T`.
            Ok(unsafe {
                std::slice::from_raw_parts(
                    self.ring().frame_ptr(self.slot).cast::<T>(),
                    self.len() / size_of::<T>(),
                )
            })
        }
    };
}

// ---------------------------------------------------------------- borrowing reader

/// A registered reader. Frames it returns borrow it; dropping it deregisters.
pub struct FrameReader {
    reg: Registration,
    cursor: Cursor,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("index", &self.reg.index)
            .field("mode", &self.cursor.mode)
            .field("last_seen", &self.cursor.last_seen)
            .finish()
    }
}

/// A frame held in place; its bytes do not change until it is dropped.
pub struct Frame<'r> {
    reader: &'r FrameReader,
    slot: u32,
    id: u64,
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("id", &self.id)
            .field("len", &self.len())
            .finish()
    }
}

impl Drop for Frame<'_> {
    fn drop(&mut self) {
        slot_word::unpin(self.reader.reg.ring.word(self.slot), self.reader.reg.index);
    }
}

impl Frame<'_> {
    fn ring(&self) -> &FrameRing {
        &self.reader.reg.ring
    }

    frame_accessors!();
}

impl FrameReader {
    /// The reader role at `index`, already claimed.
    pub(super) fn new(ring: FrameRing, index: u32, mode: ReadMode) -> FrameReader {
        let last_seen = ring.stats().last_id;
        FrameReader {
            reg: Registration { ring, index },
            cursor: Cursor {
                mode,
                strategy: WaitStrategy::Block,
                last_seen,
            },
        }
    }

    /// The ring this reader reads (its counters tell how far behind the reader is).
    pub fn ring(&self) -> &FrameRing {
        &self.reg.ring
    }

    /// This reader with another wait strategy.
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> FrameReader {
        self.set_strategy(strategy);
        self
    }

    /// Changes how this reader waits from its next wait on.
    pub fn set_strategy(&mut self, strategy: WaitStrategy) {
        self.cursor.strategy = strategy;
    }

    /// This reader handing out owned frames instead (same registration and position).
    pub fn into_owned(self) -> OwnedFrameReader {
        OwnedFrameReader::new(self.reg, self.cursor)
    }

    fn frame(&self, (slot, id): (u32, u64)) -> Frame<'_> {
        Frame {
            reader: self,
            slot,
            id,
        }
    }

    /// The newest frame, without waiting (`None` before the first publish).
    pub fn latest(&mut self) -> Result<Option<Frame<'_>>, RingError> {
        let index = self.reg.index;
        let ring = &self.reg.ring;
        let got = self.reg.latest(&mut self.cursor, |s, id, likely| {
            slot_word::try_pin(ring.word(s), id, index, likely)
        })?;
        Ok(got.map(|held| self.frame(held)))
    }

    /// The next frame (per the reader's mode), waiting up to `timeout`.
    #[inline]
    pub fn next(&mut self, timeout: impl Into<Timeout>) -> Result<Frame<'_>, RingError> {
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
    ) -> Result<Frame<'_>, RingError> {
        let mut waiting = Waiting::new(timeout.deadline(), interrupt);
        self.next_waiting(&mut waiting, timeout.as_duration())
    }

    #[inline]
    fn next_waiting(
        &mut self,
        waiting: &mut Waiting<'_>,
        timeout: Duration,
    ) -> Result<Frame<'_>, RingError> {
        let index = self.reg.index;
        let ring = &self.reg.ring;
        let held = self
            .reg
            .next(&mut self.cursor, waiting, timeout, |s, id, likely| {
                slot_word::try_pin(ring.word(s), id, index, likely)
            })?;
        Ok(self.frame(held))
    }
}

/// Asks the CPU to start fetching the cache line at `ptr`; no effect on correctness.
#[inline]
fn prefetch(ptr: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: a prefetch is a hint: it reads nothing architecturally and cannot fault, for
    // any address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(ptr.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = ptr;
}

pub(super) use frame_accessors;
