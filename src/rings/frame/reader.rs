//! A registered reader and the frames it holds in place.

use super::{slot_word, FrameRing, Pixel, ReadMode, RingError};
use crate::sync::{futex_wait, spin_hint, Ordering, WaitStrategy};
use crate::sys::clock::Deadline;
use std::mem::size_of;
use std::time::Duration;

/// A registered reader. Frames it returns borrow it; dropping it deregisters.
pub struct FrameReader {
    ring: FrameRing,
    index: u32,
    mode: ReadMode,
    strategy: WaitStrategy,
    last_seen: u64,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("index", &self.index)
            .field("mode", &self.mode)
            .field("last_seen", &self.last_seen)
            .finish()
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        // Frames borrow the reader, so none is held now. Release: our unpins happen before
        // the index is seen free.
        self.ring.header().readers[self.index as usize]
            .atomic()
            .store(0, Ordering::Release);
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
        slot_word::unpin(self.reader.ring.word(self.slot), self.reader.index);
    }
}

impl Frame<'_> {
    /// The frame's id (1, 2, 3, ... in publish order).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Publish time (CLOCK_MONOTONIC, ns).
    pub fn ts_ns(&self) -> u64 {
        self.reader
            .ring
            .slot(self.slot)
            .ts_ns
            .load(Ordering::Relaxed)
    }

    /// Bytes in use.
    pub fn len(&self) -> usize {
        let ring = &self.reader.ring;
        let len = ring.slot(self.slot).len.load(Ordering::Relaxed);
        len.min(ring.geometry.max_bytes) as usize
    }

    /// True for an empty frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Caller metadata word `i` (0..5; 0 for any other `i`).
    pub fn user(&self, i: usize) -> u64 {
        self.reader
            .ring
            .slot(self.slot)
            .user
            .get(i)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }

    /// The frame's bytes, in place.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the pin keeps the writer out of this slot while `self` lives; `len` is
        // capped at `max_bytes`, which lies inside the slot's frame.
        unsafe { std::slice::from_raw_parts(self.reader.ring.frame_ptr(self.slot), self.len()) }
    }

    /// The frame as elements of `T`, in place.
    pub fn typed<T: Pixel>(&self) -> Result<&[T], RingError> {
        self.reader.ring.view::<T>()?;
        // SAFETY: as in `bytes`; frames are 64-aligned and any bytes are valid for `T`.
        Ok(unsafe {
            std::slice::from_raw_parts(
                self.reader.ring.frame_ptr(self.slot).cast::<T>(),
                self.len() / size_of::<T>(),
            )
        })
    }
}

impl FrameReader {
    /// The reader role at `index`, already claimed.
    pub(super) fn new(ring: FrameRing, index: u32, mode: ReadMode) -> FrameReader {
        let last_seen = ring.stats().last_id;
        FrameReader {
            ring,
            index,
            mode,
            strategy: WaitStrategy::Block,
            last_seen,
        }
    }

    /// The ring this reader reads (its counters tell how far behind the reader is).
    pub fn ring(&self) -> &FrameRing {
        &self.ring
    }

    /// This reader with another wait strategy.
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> FrameReader {
        self.strategy = strategy;
        self
    }

    /// The newest frame, without waiting (`None` before the first publish).
    pub fn latest(&mut self) -> Result<Option<Frame<'_>>, RingError> {
        for _ in 0..64 {
            let last = self.ring.stats().last_id;
            if last == 0 {
                return Ok(None);
            }
            if let Some(slot) = self.pin(last) {
                self.last_seen = self.last_seen.max(last);
                return Ok(Some(Frame {
                    reader: self,
                    slot,
                    id: last,
                }));
            }
        }
        Err(RingError::Corrupt(
            "the newest frame is never in its slot".into(),
        ))
    }

    /// Pins frame `id` if a slot holds it, trying the newest frame's slot first (the hint
    /// saves a scan of every slot's cache line when the reader keeps up).
    fn pin(&self, id: u64) -> Option<u32> {
        let ring = &self.ring;
        let hint = ring.header().last_slot.load(Ordering::Relaxed);
        if let Ok(hint) = u32::try_from(hint) {
            if hint < ring.geometry.slots {
                // The frame's first line travels while the pin's CAS does.
                prefetch(ring.frame_ptr(hint));
                if slot_word::try_pin(ring.word(hint), id, self.index, true) {
                    return Some(hint);
                }
            }
        }
        (0..ring.geometry.slots).find(|&s| slot_word::try_pin(ring.word(s), id, self.index, false))
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

    /// The next frame (per the reader's mode), waiting up to `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Result<Frame<'_>, RingError> {
        let deadline = Deadline::after(timeout);
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the writer's store of `last_id` after the slot's publish.
            let last = self.ring.header().last_id.load(Ordering::Acquire);
            if last > self.last_seen {
                let target = match self.mode {
                    ReadMode::NewestOnly => last,
                    ReadMode::OldestFirst => self.last_seen.saturating_add(1),
                };
                if let Some(slot) = self.pin(target) {
                    self.last_seen = target;
                    return Ok(Frame {
                        reader: self,
                        slot,
                        id: target,
                    });
                }
                if self.mode == ReadMode::OldestFirst {
                    // Overwritten before we got to it: resume at the oldest frame held.
                    let oldest = self.oldest_after(self.last_seen).unwrap_or(last);
                    let missed = oldest.saturating_sub(target).max(1);
                    self.last_seen = oldest.saturating_sub(1).max(target);
                    return Err(RingError::Overrun { missed });
                }
                // The newest frame was replaced between our two reads: look again, but never
                // past the deadline (a corrupt ring could name a frame no slot holds).
                if deadline.expired() {
                    return Err(RingError::Timeout { waited: timeout });
                }
                continue;
            }
            if deadline.expired() {
                return Err(RingError::Timeout { waited: timeout });
            }
            self.wait_for_publish(last, deadline, &mut spins);
        }
    }

    fn wait_for_publish(&self, seen: u64, deadline: Deadline, spins: &mut u32) {
        let spinning = self.strategy.keeps_spinning(*spins);
        if spinning {
            *spins += 1;
            spin_hint();
            return;
        }
        let h = self.ring.header();
        // The handshake with `slot_word::ring_doorbell` (loom-checked there).
        if slot_word::reader_prepares_to_sleep(&h.notify, &h.sleepers, seen) {
            futex_wait(&h.notify, seen as u32, deadline);
        }
        slot_word::reader_awake(&h.sleepers);
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
