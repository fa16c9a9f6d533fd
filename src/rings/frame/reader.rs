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
//!   count per slot and sets or clears the shared bit only on 0 ↔ 1 (under a per-slot lock bit,
//!   so a drop on another thread cannot clear a bit a new hold just relied on).
//!
//! A dead process's pins are reclaimed by `FrameRing::reclaim_dead_readers` whichever kind
//! took them: both are one bit per registration in the slot words.

use super::{slot_word, FrameRing, Pixel, ReadMode, RingError};
use crate::sync::{
    futex_wait, spin_hint, AtomicU32, Interrupt, NoInterrupt, Ordering, Stop, Timeout,
    WaitStrategy, Waiting,
};
use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

/// A claimed reader index of a ring; freeing it on drop.
struct Registration {
    ring: FrameRing,
    index: u32,
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
struct Cursor {
    mode: ReadMode,
    strategy: WaitStrategy,
    last_seen: u64,
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
    fn latest(
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
    fn next(
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
        pub fn id(&self) -> u64 {
            self.id
        }

        /// Publish time (CLOCK_MONOTONIC, ns).
        pub fn ts_ns(&self) -> u64 {
            self.ring().slot(self.slot).ts_ns.load(Ordering::Relaxed)
        }

        /// Bytes in use.
        pub fn len(&self) -> usize {
            let ring = self.ring();
            let len = ring.slot(self.slot).len.load(Ordering::Relaxed);
            len.min(ring.geometry.max_bytes) as usize
        }

        /// True for an empty frame.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Caller metadata word `i` (0..5; 0 for any other `i`).
        pub fn user(&self, i: usize) -> u64 {
            self.ring()
                .slot(self.slot)
                .user
                .get(i)
                .map_or(0, |w| w.load(Ordering::Relaxed))
        }

        /// The frame's bytes, in place.
        pub fn bytes(&self) -> &[u8] {
            // SAFETY: the pin keeps the writer out of this slot while `self` lives; `len` is
            // capped at `max_bytes`, which lies inside the slot's frame.
            unsafe { std::slice::from_raw_parts(self.ring().frame_ptr(self.slot), self.len()) }
        }

        /// The frame as elements of `T`, in place.
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
        self.cursor.strategy = strategy;
        self
    }

    /// This reader handing out owned frames instead (same registration and position).
    pub fn into_owned(self) -> OwnedFrameReader {
        let slots = self.reg.ring.geometry.slots as usize;
        OwnedFrameReader {
            core: Arc::new(OwnedCore {
                holds: (0..slots).map(|_| AtomicU32::new(0)).collect(),
                reg: self.reg,
            }),
            cursor: self.cursor,
        }
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

// ---------------------------------------------------------------- owning reader

/// Set in a slot's local hold count while the shared bit is being set or cleared.
const HOLD_LOCK: u32 = 1 << 31;

/// The registration an owned reader and its frames share, with the local hold counts.
struct OwnedCore {
    reg: Registration,
    /// Frames of this reader holding each slot (with [`HOLD_LOCK`] during a bit change).
    holds: Box<[AtomicU32]>,
}

impl OwnedCore {
    /// Takes one more hold of `slot` for frame `id`: the first hold pins the slot word.
    fn hold(&self, slot: u32, id: u64, likely: bool) -> bool {
        let count = &self.holds[slot as usize];
        let word = self.reg.ring.word(slot);
        loop {
            let c = count.load(Ordering::Acquire);
            if c & HOLD_LOCK != 0 {
                spin_hint();
                continue;
            }
            if c > 0 {
                // Held by one of our frames: the slot's frame cannot change, so it is `id`
                // or not.
                if slot_word::id_of(word.load(Ordering::Relaxed)) != id {
                    return false;
                }
                if count
                    .compare_exchange(c, c + 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            // Acquire: pairs with the Release store that ended the last bit change.
            if count
                .compare_exchange(0, HOLD_LOCK, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let pinned = slot_word::try_pin(word, id, self.reg.index, likely);
            // Release: the bit change happens before any other thread's next look.
            count.store(u32::from(pinned), Ordering::Release);
            return pinned;
        }
    }

    /// Gives one hold of `slot` back: the last one unpins the slot word.
    fn release(&self, slot: u32) {
        let count = &self.holds[slot as usize];
        loop {
            let c = count.load(Ordering::Acquire);
            if c & HOLD_LOCK != 0 {
                spin_hint();
                continue;
            }
            match c {
                0 => return, // not held: a bug elsewhere, and nothing to release
                1 => {
                    if count
                        .compare_exchange(1, HOLD_LOCK, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        slot_word::unpin(self.reg.ring.word(slot), self.reg.index);
                        count.store(0, Ordering::Release);
                        return;
                    }
                }
                _ => {
                    if count
                        .compare_exchange(c, c - 1, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        return;
                    }
                }
            }
        }
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
