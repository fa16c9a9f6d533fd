//! The ring's single writer: claim a slot, fill it in place, publish.

use super::{slot_word, FrameRing, Pixel, RingError};
use crate::shared::Histogram;
use crate::sync::{futex_wake, Interrupt, NoInterrupt, Ordering, Timeout};
use crate::sys::clock::monotonic_ns;
use crate::sys::identity::Record;
use std::mem::size_of;
use std::time::Duration;

/// The ring's single writer. Dropping it gives the role up.
pub struct FrameWriter {
    ring: FrameRing,
    record: Record,
    /// Where late frames are counted: the deadline in ns and the histogram.
    late: Option<(u64, Histogram)>,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter")
            .field("ring", &self.ring)
            .finish()
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        self.ring.header().writer.release(self.record);
    }
}

impl FrameWriter {
    /// The writer role, already claimed for `record`.
    pub(super) fn new(ring: FrameRing, record: Record) -> FrameWriter {
        FrameWriter {
            ring,
            record,
            late: None,
        }
    }

    /// Counts every frame published more than `deadline` after the one before it into
    /// `late` (the interval, ns): one comparison per publish, one atomic add per late frame.
    /// The ring's declared [`Cadence`](super::Cadence) gives both
    /// ([`RingCadence::late`](super::RingCadence::late)); device servers attach it by
    /// themselves.
    pub fn count_late(&mut self, deadline: Duration, late: Histogram) {
        self.late = Some((u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX), late));
    }

    /// Whether late frames are counted ([`count_late`](Self::count_late)).
    pub fn counts_late(&self) -> bool {
        self.late.is_some()
    }

    /// A slot to fill in place, now: fails with [`RingError::AllSlotsHeld`] if readers hold
    /// every slot but the newest (a writer that must never wait for readers, as a camera's).
    #[inline]
    pub fn try_claim(&mut self) -> Result<WriteSlot<'_>, RingError> {
        let slot = self.find_and_claim().ok_or(RingError::AllSlotsHeld {
            slots: self.ring.geometry.slots,
        })?;
        Ok(self.slot(slot))
    }

    /// Claims a slot, waiting up to `timeout` for readers to let one go.
    pub fn claim(&mut self, timeout: impl Into<Timeout>) -> Result<WriteSlot<'_>, RingError> {
        self.claim_interruptible(timeout.into(), &NoInterrupt)
    }

    /// Claims a slot within `timeout`, giving up with [`RingError::Interrupted`] within
    /// 100 ms of `interrupt` saying stop. Readers release slots without a wake-up, so this
    /// polls every 50 µs (a writer that must not wait uses [`try_claim`](Self::try_claim)).
    pub fn claim_interruptible(
        &mut self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<WriteSlot<'_>, RingError> {
        let deadline = timeout.deadline();
        loop {
            if let Some(slot) = self.find_and_claim() {
                return Ok(self.slot(slot));
            }
            if deadline.expired() {
                return Err(RingError::AllSlotsHeld {
                    slots: self.ring.geometry.slots,
                });
            }
            if interrupt.should_stop() {
                return Err(RingError::Interrupted);
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    #[inline]
    fn slot(&mut self, slot: u32) -> WriteSlot<'_> {
        WriteSlot {
            writer: self,
            slot,
            len: 0,
            published: false,
        }
    }

    /// Claims the oldest slot nobody holds (never the newest frame's), reclaiming dead
    /// readers' holds once if every slot is held.
    fn find_and_claim(&self) -> Option<u32> {
        let ring = &self.ring;
        let slots = ring.geometry.slots;
        let header = ring.header();
        let last = header.last_id.load(Ordering::Relaxed);
        let mut reclaimed = false;
        // Fast path: the slot after the newest one is usually the oldest frame; try it alone
        // before reading every slot's cache line.
        let newest = header.last_slot.load(Ordering::Relaxed);
        if last != 0 && newest < u64::from(slots) {
            let next = ((newest + 1) % u64::from(slots)) as u32;
            // In steady state the next slot holds exactly the oldest frame the ring can hold.
            let oldest_possible = last.saturating_sub(u64::from(slots) - 1);
            if slot_word::try_claim_holding(ring.word(next), oldest_possible) {
                return Some(next);
            }
            let w = ring.word(next).load(Ordering::Relaxed);
            if slot_word::id_of(w) <= oldest_possible
                && slot_word::try_claim(ring.word(next)).is_some()
            {
                return Some(next);
            }
        }
        // Each pass picks the oldest claimable slot without allocating (this runs per frame);
        // a lost race with a reader's pin costs one more pass.
        for _ in 0..2 * slots + 2 {
            let mut best: Option<(u64, u32)> = None;
            for s in 0..slots {
                let w = ring.word(s).load(Ordering::Relaxed);
                let id = slot_word::id_of(w);
                if slot_word::readers_of(w) == 0
                    && !slot_word::writing(w)
                    && (last == 0 || id != last)
                    && best.is_none_or(|(b, _)| id < b)
                {
                    best = Some((id, s));
                }
            }
            match best {
                Some((_, slot)) if slot_word::try_claim(ring.word(slot)).is_some() => {
                    return Some(slot)
                }
                Some(_) => continue,
                None if !reclaimed => {
                    reclaimed = true;
                    if ring.reclaim_dead_readers() == 0 {
                        return None;
                    }
                }
                None => return None,
            }
        }
        None
    }

    /// The ring this writer writes.
    pub fn ring(&self) -> &FrameRing {
        &self.ring
    }

    /// A slot to fill in place that owns this writer (for callers that cannot hold a borrow:
    /// a binding's slot object). Waits up to `timeout` for readers to let a slot go; on
    /// failure the writer comes back with the error.
    #[allow(clippy::result_large_err)] // the writer itself, handed back: no allocation
    pub fn claim_owned(
        mut self,
        timeout: impl Into<Timeout>,
    ) -> Result<OwnedWriteSlot, (FrameWriter, RingError)> {
        let claimed = self.claim(timeout).map(WriteSlot::into_index);
        match claimed {
            Ok(slot) => Ok(OwnedWriteSlot {
                writer: Some(self),
                slot,
                len: 0,
            }),
            Err(e) => Err((self, e)),
        }
    }

    /// Slot `slot`'s whole buffer.
    #[inline]
    fn buffer(&self, slot: u32) -> (*mut u8, usize) {
        (
            self.ring.frame_ptr(slot),
            self.ring.geometry.max_bytes as usize,
        )
    }

    fn set_user_word(&self, slot: u32, i: usize, value: u64) {
        if let Some(word) = self.ring.slot(slot).user.get(i) {
            word.store(value, Ordering::Relaxed);
        }
    }

    /// Publishes claimed slot `slot` holding `len` bytes: stamps the next id and the time, and
    /// wakes readers. Returns the id.
    fn publish_slot(&self, slot: u32, len: u64) -> u64 {
        let ring = &self.ring;
        let h = ring.header();
        let meta = ring.slot(slot);
        let id = h.last_id.load(Ordering::Relaxed).wrapping_add(1) & shm_layout::FRAME_ID_MASK;
        let now = monotonic_ns();
        meta.ts_ns.store(now, Ordering::Relaxed);
        meta.len.store(len, Ordering::Relaxed);
        slot_word::publish(&meta.word, id);
        h.last_slot.store(u64::from(slot), Ordering::Relaxed);
        // Release: pairs with the reader's Acquire load of `last_id`; the slot word and the
        // `last_slot` hint written before it are visible with it.
        h.last_id.store(id, Ordering::Release);
        // The handshake with `slot_word::reader_prepares_to_sleep` (loom-checked there).
        let wake = slot_word::ring_doorbell(&h.notify, &h.sleepers, id);
        // The counters have one writer (this one): plain loads and stores, no locked
        // read-modify-writes, all on the header line the stores above already own.
        h.total_written.store(
            h.total_written.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        let prev_ts = h.last_ts_ns.load(Ordering::Relaxed);
        h.last_ts_ns.store(now, Ordering::Relaxed);
        if let Some((deadline, late)) = &self.late {
            if prev_ts != 0 && now.saturating_sub(prev_ts) > *deadline {
                late.record(now - prev_ts);
            }
        }
        if prev_ts != 0 && now > prev_ts {
            let instant = 1_000_000_000_000u64 / (now - prev_ts).max(1);
            let old = h.rate_mhz.load(Ordering::Relaxed);
            let ema = if old == 0 {
                instant
            } else {
                // Saturating: the header is shared memory and may hold anything.
                old.saturating_mul(15).saturating_add(instant) / 16
            };
            h.rate_mhz.store(ema, Ordering::Relaxed);
            // The period's deviation from the mean period (the rate's), smoothed alike.
            let period = now - prev_ts;
            let mean = 1_000_000_000_000u64 / ema.max(1);
            let deviation = period.abs_diff(mean);
            let old = h.jitter_ns.load(Ordering::Relaxed);
            let jitter = old.saturating_mul(15).saturating_add(deviation) / 16;
            h.jitter_ns.store(jitter, Ordering::Relaxed);
        }
        if wake {
            futex_wake(&h.notify, u32::MAX);
        }
        id
    }
}

/// A claimed slot: fill it, then [`publish`](Self::publish). Dropping it unpublished gives
/// the slot back empty.
pub struct WriteSlot<'w> {
    writer: &'w mut FrameWriter,
    slot: u32,
    len: u64,
    published: bool,
}

impl WriteSlot<'_> {
    /// The whole frame buffer (`max_bytes`), writable in place.
    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let (ptr, len) = self.writer.buffer(self.slot);
        self.len = len as u64;
        // SAFETY: the claim gives this writer the slot alone (readers are kept out by the
        // writing bit); `max_bytes <= frame_stride` bytes lie inside the block.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// The frame as elements of `T`, writable in place.
    pub fn typed_mut<T: Pixel>(&mut self) -> Result<&mut [T], RingError> {
        self.writer.ring.view::<T>()?;
        let (ptr, len) = self.writer.buffer(self.slot);
        self.len = len as u64;
        // SAFETY: as in `bytes_mut`; frames are 64-aligned, so aligned for every `Pixel`,
        // and any bytes are valid for these plain number types.
        Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<T>(), len / size_of::<T>()) })
    }

    /// Sets how many bytes of the buffer the frame uses (default: all of it once written).
    pub fn set_len(&mut self, len: u64) {
        self.len = len.min(self.writer.ring.geometry.max_bytes);
    }

    /// Sets caller metadata word `i` (0..5): exposure, gain, ...
    pub fn set_user(&mut self, i: usize, value: u64) {
        self.writer.set_user_word(self.slot, i, value);
    }

    /// Publishes the frame: stamps the next id and the time, and wakes readers. Returns the id.
    #[inline]
    pub fn publish(mut self) -> u64 {
        self.published = true;
        self.writer.publish_slot(self.slot, self.len)
    }

    /// The slot's index, the claim passing to the caller (who publishes or abandons it).
    fn into_index(mut self) -> u32 {
        self.published = true;
        self.slot
    }
}

impl Drop for WriteSlot<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.published {
            slot_word::abandon(self.writer.ring.word(self.slot));
        }
    }
}

/// A claimed slot that owns its [`FrameWriter`] ([`FrameWriter::claim_owned`]): the same
/// operations as [`WriteSlot`], and the writer back from [`publish`](Self::publish) or
/// [`abandon`](Self::abandon). Dropping it gives the slot back empty and the writer role up.
pub struct OwnedWriteSlot {
    /// `Some` until published or abandoned.
    writer: Option<FrameWriter>,
    slot: u32,
    len: u64,
}

impl std::fmt::Debug for OwnedWriteSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedWriteSlot")
            .field("slot", &self.slot)
            .field("len", &self.len)
            .finish()
    }
}

impl OwnedWriteSlot {
    fn writer(&self) -> &FrameWriter {
        self.writer.as_ref().expect("present until consumed")
    }

    /// The slot's whole buffer (`max_bytes`): its address and length. Writing through it is
    /// the caller's business; the claim keeps readers out until publish. Marks the frame as
    /// the whole buffer (see [`set_len`](Self::set_len)).
    pub fn buffer(&mut self) -> (*mut u8, usize) {
        let (ptr, len) = self.writer().buffer(self.slot);
        self.len = len as u64;
        (ptr, len)
    }

    /// The whole frame buffer, writable in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let (ptr, len) = self.buffer();
        // SAFETY: as in `WriteSlot::bytes_mut`; `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Sets how many bytes of the buffer the frame uses.
    pub fn set_len(&mut self, len: u64) {
        self.len = len.min(self.writer().ring.geometry.max_bytes);
    }

    /// Sets caller metadata word `i` (0..5).
    pub fn set_user(&mut self, i: usize, value: u64) {
        self.writer().set_user_word(self.slot, i, value);
    }

    /// The ring this slot belongs to.
    pub fn ring(&self) -> &FrameRing {
        &self.writer().ring
    }

    /// Publishes the frame; returns its id and the writer.
    pub fn publish(mut self) -> (u64, FrameWriter) {
        let writer = self.writer.take().expect("present until consumed");
        (writer.publish_slot(self.slot, self.len), writer)
    }

    /// Gives the slot back unpublished; returns the writer.
    pub fn abandon(mut self) -> FrameWriter {
        let writer = self.writer.take().expect("present until consumed");
        slot_word::abandon(writer.ring.word(self.slot));
        writer
    }
}

impl Drop for OwnedWriteSlot {
    fn drop(&mut self) {
        if let Some(writer) = &self.writer {
            slot_word::abandon(writer.ring.word(self.slot));
        }
    }
}
