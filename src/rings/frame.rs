//! The zero-copy frame ring: one writer fills frames in place, any number of readers (up to
//! 16 at once) read them in place, and a frame a reader holds never changes under it.
//!
//! Layout and the slot word protocol: `shm-layout/src/frame.rs` and [`super::slot_word`].
//! Counters in the header (`last_id`, `total_written`, `last_ts_ns`, `rate_mhz`) are written
//! only by the writer: `last_id` with Release after the frame's slot is published, the others
//! Relaxed (they are statistics).

use super::slot_word;
use super::{record_dead, record_pid};
use crate::segment::{Segment, SegmentError};
use crate::sync::{futex_wait, futex_wake, spin_hint, WaitStrategy};
use crate::sys::clock::{monotonic_ns, Deadline};
use crate::sys::identity::ProcessIdentity;
use shm_layout::{
    fnv1a_bytes, BlockKind, ElemType, FrameRingHeader, FrameSlotMeta, ObjectKind,
    FRAME_MAX_READERS, FRAME_MAX_SLOTS,
};
use std::mem::{offset_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const HEADER: u64 = size_of::<FrameRingHeader>() as u64;
const META: u64 = size_of::<FrameSlotMeta>() as u64;

/// Pixel types a frame can be viewed as.
pub trait Pixel: Copy + 'static {
    /// The element type this Rust type reads.
    const ELEM: ElemType;
}

macro_rules! pixel {
    ($($t:ty => $e:ident),*) => { $(impl Pixel for $t { const ELEM: ElemType = ElemType::$e; })* };
}
pixel!(u8 => U8, u16 => U16, u32 => U32, i16 => I16, i32 => I32, f32 => F32, f64 => F64);

/// The shape of a ring's frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    /// Slots in the ring (2..=1024).
    pub slots: u32,
    /// Element type.
    pub elem: ElemType,
    /// Shape, outermost first (1 to 4 dimensions); the frame is `product × elem size` bytes.
    pub shape: Vec<u32>,
}

impl FrameSpec {
    fn max_bytes(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(self.elem.size() as u64, |acc, &d| {
                acc.checked_mul(u64::from(d))
            })
    }

    fn fingerprint(&self) -> u64 {
        let mut words = vec![u64::from(self.slots), self.elem as u64];
        words.extend(self.shape.iter().map(|&d| u64::from(d)));
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        fnv1a_bytes(&bytes)
    }
}

/// Which frames `next` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Only the newest frame; frames published in between are skipped.
    NewestOnly,
    /// Every frame in order; falling more than the ring behind is an `Overrun`.
    OldestFirst,
}

/// Why a ring operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Another live process is the ring's writer.
    #[error("the ring already has a live writer (pid {pid})")]
    WriterBusy {
        /// Its pid.
        pid: u32,
    },
    /// Every slot is held by readers (or is the newest frame); the writer cannot proceed.
    #[error("all {slots} slots are held by readers")]
    AllSlotsHeld {
        /// Slots in the ring.
        slots: u32,
    },
    /// The ring already has its maximum number of readers.
    #[error("the ring already has {FRAME_MAX_READERS} readers")]
    TooManyReaders,
    /// No new frame before the deadline.
    #[error("no new frame within {waited:?}")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
    },
    /// An oldest-first reader fell behind by more than the ring holds; it resumes at the
    /// oldest frame still held.
    #[error("reader fell behind: {missed} frames were overwritten before it read them")]
    Overrun {
        /// Frames lost.
        missed: u64,
    },
    /// A frame view asked for a type other than the ring's element type.
    #[error("the ring holds {ring:?} elements, not {asked:?}")]
    WrongElemType {
        /// The ring's element type.
        ring: ElemType,
        /// The type asked for.
        asked: ElemType,
    },
    /// The ring's bytes hold values no shmkit process writes.
    #[error("corrupt frame ring: {0}")]
    Corrupt(String),
}

/// A frame ring in a segment. Cheap to clone.
#[derive(Clone)]
pub struct FrameRing {
    _segment: Segment,
    base: NonNull<u8>,
    slots: u32,
    elem: ElemType,
    max_bytes: u64,
    shape: Vec<u32>,
    frame_offset: u64,
    frame_stride: u64,
}

// SAFETY: the ring's shared words are atomics, and frame bytes are only touched under the
// slot protocol; the segment handle keeps the mapping alive.
unsafe impl Send for FrameRing {}
// SAFETY: as above.
unsafe impl Sync for FrameRing {}

impl std::fmt::Debug for FrameRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameRing")
            .field("slots", &self.slots)
            .field("elem", &self.elem)
            .field("shape", &self.shape)
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
}

impl FrameRing {
    pub(super) fn header_u64(&self, field: usize) -> &AtomicU64 {
        // SAFETY: `field` is an 8-aligned offset inside the 256-byte header, which lies in the
        // block checked at attach; atomics are valid for any bytes.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(field).cast()) }
    }

    fn header_u32(&self, field: usize) -> &AtomicU32 {
        // SAFETY: as in `header_u64`, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(field).cast()) }
    }

    pub(super) fn reader_record(&self, index: u32) -> &AtomicU64 {
        self.header_u64(offset_of!(FrameRingHeader, readers) + index as usize * 8)
    }

    fn meta(&self, slot: u32, field: usize) -> &AtomicU64 {
        debug_assert!(slot < self.slots);
        // SAFETY: slot metadata follow the header: `slots` × 64 bytes, inside the block
        // (checked at attach); `field` is an 8-aligned offset inside one entry.
        unsafe {
            AtomicU64::from_ptr(
                self.base
                    .as_ptr()
                    .add((HEADER + u64::from(slot) * META) as usize + field)
                    .cast(),
            )
        }
    }

    pub(super) fn word(&self, slot: u32) -> &AtomicU64 {
        self.meta(slot, offset_of!(FrameSlotMeta, word))
    }

    fn frame_ptr(&self, slot: u32) -> *mut u8 {
        // SAFETY: frames lie at `frame_offset + slot × frame_stride` inside the block
        // (checked at attach).
        unsafe {
            self.base
                .as_ptr()
                .add((self.frame_offset + u64::from(slot) * self.frame_stride) as usize)
        }
    }

    /// Element type of the frames.
    pub fn elem(&self) -> ElemType {
        self.elem
    }

    /// Shape of the frames.
    pub fn shape(&self) -> &[u32] {
        &self.shape
    }

    /// Largest frame in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The header's counters.
    pub fn stats(&self) -> RingStats {
        RingStats {
            total_written: self
                .header_u64(offset_of!(FrameRingHeader, total_written))
                .load(Ordering::Relaxed),
            last_id: self
                .header_u64(offset_of!(FrameRingHeader, last_id))
                .load(Ordering::Acquire),
            rate_hz: self
                .header_u64(offset_of!(FrameRingHeader, rate_mhz))
                .load(Ordering::Relaxed) as f64
                / 1000.0,
            last_ts_ns: self
                .header_u64(offset_of!(FrameRingHeader, last_ts_ns))
                .load(Ordering::Relaxed),
        }
    }

    /// Becomes the ring's writer. A dead writer's role is taken over (its half-written slot
    /// discarded); a live one's is [`RingError::WriterBusy`].
    pub fn writer(&self) -> Result<FrameWriter, RingError> {
        let me = ProcessIdentity::current().record().raw();
        let writer = self.header_u64(offset_of!(FrameRingHeader, writer));
        loop {
            let current = writer.load(Ordering::Acquire);
            if current != 0 && !record_dead(current) {
                return Err(RingError::WriterBusy {
                    pid: record_pid(current),
                });
            }
            if writer
                .compare_exchange(current, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                if current != 0 {
                    // The dead writer may have died mid-frame: that slot holds no frame.
                    for slot in 0..self.slots {
                        let w = self.word(slot).load(Ordering::Relaxed);
                        if slot_word::writing(w) {
                            slot_word::abandon(self.word(slot));
                        }
                    }
                }
                return Ok(FrameWriter {
                    ring: self.clone(),
                    record: me,
                });
            }
        }
    }

    /// Registers a reader. It sees frames published from now on.
    pub fn reader(&self, mode: ReadMode) -> Result<FrameReader, RingError> {
        let me = ProcessIdentity::current().record().raw();
        for pass in 0..2 {
            for index in 0..FRAME_MAX_READERS as u32 {
                let rec = self.reader_record(index);
                if rec
                    .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(FrameReader {
                        ring: self.clone(),
                        index,
                        mode,
                        strategy: WaitStrategy::Block,
                        last_seen: self.stats().last_id,
                    });
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
        for index in 0..FRAME_MAX_READERS as u32 {
            let rec = self.reader_record(index);
            let r = rec.load(Ordering::Acquire);
            // The protocol (claim the index, clear, free) is loom-checked in `slot_word`.
            if r != 0
                && record_dead(r)
                && slot_word::reclaim_reader(
                    rec,
                    r,
                    me,
                    index,
                    (0..self.slots).map(|s| self.word(s)),
                )
            {
                freed += 1;
            }
        }
        freed
    }

    fn view<T: Pixel>(&self) -> Result<(), RingError> {
        if T::ELEM != self.elem {
            return Err(RingError::WrongElemType {
                ring: self.elem,
                asked: T::ELEM,
            });
        }
        Ok(())
    }
}

/// The ring's single writer. Dropping it gives the role up.
pub struct FrameWriter {
    ring: FrameRing,
    record: u64,
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
        let _ = self
            .ring
            .header_u64(offset_of!(FrameRingHeader, writer))
            .compare_exchange(self.record, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

impl FrameWriter {
    /// A slot to fill in place. Fails with [`RingError::AllSlotsHeld`] if readers hold every
    /// slot but the newest; the writer never waits for readers.
    pub fn claim(&mut self) -> Result<WriteSlot<'_>, RingError> {
        let slot = self.find_and_claim().ok_or(RingError::AllSlotsHeld {
            slots: self.ring.slots,
        })?;
        Ok(self.slot(slot))
    }

    /// Claims a slot, waiting up to `timeout` for readers to let one go.
    pub fn claim_timeout(&mut self, timeout: Duration) -> Result<WriteSlot<'_>, RingError> {
        let deadline = Deadline::after(timeout);
        loop {
            if let Some(slot) = self.find_and_claim() {
                return Ok(self.slot(slot));
            }
            if deadline.expired() {
                return Err(RingError::AllSlotsHeld {
                    slots: self.ring.slots,
                });
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

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
        let last = ring
            .header_u64(offset_of!(FrameRingHeader, last_id))
            .load(Ordering::Relaxed);
        let mut reclaimed = false;
        // Fast path: the slot after the newest one is usually the oldest frame; try it alone
        // before reading every slot's cache line.
        let newest = ring
            .header_u64(offset_of!(FrameRingHeader, last_slot))
            .load(Ordering::Relaxed);
        if last != 0 && newest < u64::from(ring.slots) {
            let next = ((newest + 1) % u64::from(ring.slots)) as u32;
            // In steady state the next slot holds exactly the oldest frame the ring can hold.
            let oldest_possible = last.saturating_sub(u64::from(ring.slots) - 1);
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
        for _ in 0..2 * ring.slots + 2 {
            let mut best: Option<(u64, u32)> = None;
            for s in 0..ring.slots {
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
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.len = self.writer.ring.max_bytes;
        // SAFETY: the claim gives this writer the slot alone (readers are kept out by the
        // writing bit); `max_bytes <= frame_stride` bytes lie inside the block.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.writer.ring.frame_ptr(self.slot),
                self.writer.ring.max_bytes as usize,
            )
        }
    }

    /// The frame as elements of `T`, writable in place.
    pub fn typed_mut<T: Pixel>(&mut self) -> Result<&mut [T], RingError> {
        self.writer.ring.view::<T>()?;
        let n = self.writer.ring.max_bytes as usize / size_of::<T>();
        self.len = self.writer.ring.max_bytes;
        // SAFETY: as in `bytes_mut`; frames are 64-aligned, so aligned for every `Pixel`,
        // and any bytes are valid for these plain number types.
        Ok(unsafe {
            std::slice::from_raw_parts_mut(self.writer.ring.frame_ptr(self.slot).cast::<T>(), n)
        })
    }

    /// Sets how many bytes of the buffer the frame uses (default: all of it once written).
    pub fn set_len(&mut self, len: u64) {
        self.len = len.min(self.writer.ring.max_bytes);
    }

    /// Sets caller metadata word `i` (0..5): exposure, gain, ...
    pub fn set_user(&mut self, i: usize, value: u64) {
        if i < 5 {
            self.writer
                .ring
                .meta(self.slot, offset_of!(FrameSlotMeta, user) + i * 8)
                .store(value, Ordering::Relaxed);
        }
    }

    /// Publishes the frame: stamps the next id and the time, and wakes readers. Returns the id.
    pub fn publish(mut self) -> u64 {
        let ring = &self.writer.ring;
        let last = ring.header_u64(offset_of!(FrameRingHeader, last_id));
        let id = last.load(Ordering::Relaxed).wrapping_add(1) & shm_layout::FRAME_ID_MASK;
        let now = monotonic_ns();
        ring.meta(self.slot, offset_of!(FrameSlotMeta, ts_ns))
            .store(now, Ordering::Relaxed);
        ring.meta(self.slot, offset_of!(FrameSlotMeta, len))
            .store(self.len, Ordering::Relaxed);
        slot_word::publish(ring.word(self.slot), id);
        ring.header_u64(offset_of!(FrameRingHeader, last_slot))
            .store(u64::from(self.slot), Ordering::Relaxed);
        // Release: pairs with the reader's Acquire load of `last_id`; the slot word and the
        // `last_slot` hint written before it are visible with it.
        last.store(id, Ordering::Release);
        let notify = ring.header_u32(offset_of!(FrameRingHeader, notify));
        // The handshake with `slot_word::reader_prepares_to_sleep` (loom-checked there).
        let wake = slot_word::ring_doorbell(
            notify,
            ring.header_u32(offset_of!(FrameRingHeader, sleepers)),
            id,
        );
        // The counters have one writer (this one): plain loads and stores, no locked
        // read-modify-writes, all on the header line the stores above already own.
        let total = ring.header_u64(offset_of!(FrameRingHeader, total_written));
        total.store(
            total.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        let last_ts = ring.header_u64(offset_of!(FrameRingHeader, last_ts_ns));
        let prev_ts = last_ts.load(Ordering::Relaxed);
        last_ts.store(now, Ordering::Relaxed);
        if prev_ts != 0 && now > prev_ts {
            let rate = ring.header_u64(offset_of!(FrameRingHeader, rate_mhz));
            let instant = 1_000_000_000_000u64 / (now - prev_ts).max(1);
            let old = rate.load(Ordering::Relaxed);
            let ema = if old == 0 {
                instant
            } else {
                // Saturating: the header is shared memory and may hold anything.
                old.saturating_mul(15).saturating_add(instant) / 16
            };
            rate.store(ema, Ordering::Relaxed);
        }
        if wake {
            futex_wake(notify, u32::MAX);
        }
        self.published = true;
        id
    }
}

impl Drop for WriteSlot<'_> {
    fn drop(&mut self) {
        if !self.published {
            slot_word::abandon(self.writer.ring.word(self.slot));
        }
    }
}

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
        // Frames borrow the reader, so none is held now.
        self.ring
            .reader_record(self.index)
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
            .meta(self.slot, offset_of!(FrameSlotMeta, ts_ns))
            .load(Ordering::Relaxed)
    }

    /// Bytes in use.
    pub fn len(&self) -> usize {
        let len = self
            .reader
            .ring
            .meta(self.slot, offset_of!(FrameSlotMeta, len))
            .load(Ordering::Relaxed);
        len.min(self.reader.ring.max_bytes) as usize
    }

    /// True for an empty frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Caller metadata word `i` (0..5).
    pub fn user(&self, i: usize) -> u64 {
        if i >= 5 {
            return 0;
        }
        self.reader
            .ring
            .meta(self.slot, offset_of!(FrameSlotMeta, user) + i * 8)
            .load(Ordering::Relaxed)
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
        let hint = self
            .ring
            .header_u64(offset_of!(FrameRingHeader, last_slot))
            .load(Ordering::Relaxed);
        if let Ok(hint) = u32::try_from(hint) {
            if hint < self.ring.slots {
                // The frame's first line travels while the pin's CAS does.
                prefetch(self.ring.frame_ptr(hint));
                if slot_word::try_pin(self.ring.word(hint), id, self.index, true) {
                    return Some(hint);
                }
            }
        }
        (0..self.ring.slots).find(|&s| slot_word::try_pin(self.ring.word(s), id, self.index, false))
    }

    /// The oldest frame id the ring still holds after `after`.
    fn oldest_after(&self, after: u64) -> Option<u64> {
        (0..self.ring.slots)
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
        let last_id = self.ring.header_u64(offset_of!(FrameRingHeader, last_id));
        loop {
            // Acquire: pairs with the writer's store of `last_id` after the slot's publish.
            let last = last_id.load(Ordering::Acquire);
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
        let sleepers = self.ring.header_u32(offset_of!(FrameRingHeader, sleepers));
        let notify = self.ring.header_u32(offset_of!(FrameRingHeader, notify));
        // The handshake with `slot_word::ring_doorbell` (loom-checked there).
        if slot_word::reader_prepares_to_sleep(notify, sleepers, seen) {
            futex_wait(notify, seen as u32, deadline);
        }
        slot_word::reader_awake(sleepers);
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

impl Segment {
    /// Finds or creates the frame ring `name`. An existing ring must have the same spec.
    pub fn frame_ring(&self, name: &str, spec: &FrameSpec) -> Result<FrameRing, SegmentError> {
        let bad = |why: String| SegmentError::InvalidOption(format!("frame ring {name:?}: {why}"));
        if !(2..=FRAME_MAX_SLOTS).contains(&spec.slots) {
            return Err(bad(format!(
                "{} slots, expected 2..={FRAME_MAX_SLOTS}",
                spec.slots
            )));
        }
        if !(1..=4).contains(&spec.shape.len()) || spec.shape.contains(&0) {
            return Err(bad(format!(
                "shape {:?} must have 1 to 4 non-zero dimensions",
                spec.shape
            )));
        }
        let max_bytes = spec
            .max_bytes()
            .ok_or_else(|| bad("frame size overflows".into()))?;
        let stride = if max_bytes >= 4096 {
            max_bytes.next_multiple_of(4096)
        } else {
            max_bytes.next_multiple_of(64)
        };
        let frame_offset = (HEADER + u64::from(spec.slots) * META).next_multiple_of(4096);
        let size = stride
            .checked_mul(u64::from(spec.slots))
            .and_then(|f| f.checked_add(frame_offset))
            .ok_or_else(|| bad("ring size overflows".into()))?;
        let fingerprint = spec.fingerprint();
        let info = self.find_or_create(
            name,
            ObjectKind::FrameRing,
            |info| {
                if info.param != fingerprint {
                    return Err(format!("it was created with another slot count, element type or shape than {spec:?}"));
                }
                Ok(())
            },
            || {
                let offset = self.allocate(BlockKind::FrameRing, size, 4096, |ptr| {
                    let base = ptr.as_ptr();
                    let put64 = |field: usize, v: u64| {
                        // SAFETY: the fresh block is ours (unpublished, allocator lock held)
                        // and at least 256 bytes; `field` is an aligned header offset.
                        unsafe { AtomicU64::from_ptr(base.add(field).cast()) }.store(v, Ordering::Relaxed)
                    };
                    let put32 = |field: usize, v: u32| {
                        // SAFETY: as above, 4-aligned.
                        unsafe { AtomicU32::from_ptr(base.add(field).cast()) }.store(v, Ordering::Relaxed)
                    };
                    put32(offset_of!(FrameRingHeader, slots), spec.slots);
                    put32(offset_of!(FrameRingHeader, elem), spec.elem as u32);
                    put64(offset_of!(FrameRingHeader, max_bytes), max_bytes);
                    put32(offset_of!(FrameRingHeader, ndims), spec.shape.len() as u32);
                    for i in 0..4 {
                        put32(offset_of!(FrameRingHeader, shape) + i * 4, spec.shape.get(i).copied().unwrap_or(1));
                    }
                    put64(offset_of!(FrameRingHeader, frame_offset), frame_offset);
                    put64(offset_of!(FrameRingHeader, frame_stride), stride);
                })?;
                Ok(crate::table::Created {
                    offset,
                    size,
                    param: fingerprint,
                })
            },
        )?;
        self.frame_ring_at(info.offset)
    }

    /// The frame ring at `offset` (every geometry field checked against the block).
    pub fn frame_ring_at(&self, offset: u64) -> Result<FrameRing, SegmentError> {
        let header = self.block_ptr_of_kind(offset, BlockKind::FrameRing, HEADER)?;
        let base = header.as_ptr();
        // SAFETY: the header is inside the checked block; aligned fields; atomics are valid
        // for any bytes.
        let (slots, elem, max_bytes, ndims, frame_offset, stride) = unsafe {
            (
                AtomicU32::from_ptr(base.add(offset_of!(FrameRingHeader, slots)).cast())
                    .load(Ordering::Relaxed),
                AtomicU32::from_ptr(base.add(offset_of!(FrameRingHeader, elem)).cast())
                    .load(Ordering::Relaxed),
                AtomicU64::from_ptr(base.add(offset_of!(FrameRingHeader, max_bytes)).cast())
                    .load(Ordering::Relaxed),
                AtomicU32::from_ptr(base.add(offset_of!(FrameRingHeader, ndims)).cast())
                    .load(Ordering::Relaxed),
                AtomicU64::from_ptr(base.add(offset_of!(FrameRingHeader, frame_offset)).cast())
                    .load(Ordering::Relaxed),
                AtomicU64::from_ptr(base.add(offset_of!(FrameRingHeader, frame_stride)).cast())
                    .load(Ordering::Relaxed),
            )
        };
        let corrupt = |detail: String| SegmentError::Corrupt {
            what: "frame ring header",
            detail,
        };
        let elem =
            ElemType::from_raw(elem).ok_or_else(|| corrupt(format!("element type {elem}")))?;
        let shape: Vec<u32> = (0..ndims.min(4) as usize)
            .map(|i| {
                // SAFETY: as above; `i < 4` stays inside `shape`.
                unsafe {
                    AtomicU32::from_ptr(base.add(offset_of!(FrameRingHeader, shape) + i * 4).cast())
                }
                .load(Ordering::Relaxed)
            })
            .collect();
        let end = frame_offset.checked_add(stride.saturating_mul(u64::from(slots)));
        let valid = (2..=FRAME_MAX_SLOTS).contains(&slots)
            && (1..=4).contains(&ndims)
            && max_bytes <= stride
            && frame_offset % 64 == 0
            && stride % 64 == 0
            && frame_offset >= HEADER + u64::from(slots) * META;
        let size = end.filter(|_| valid).ok_or_else(|| {
            corrupt(format!(
                "{slots} slots, {ndims} dims, {max_bytes} bytes per frame, stride {stride}, frames at {frame_offset}"
            ))
        })?;
        let base = self.block_ptr_of_kind(offset, BlockKind::FrameRing, size)?;
        Ok(FrameRing {
            _segment: self.clone(),
            base,
            slots,
            elem,
            max_bytes,
            shape,
            frame_offset,
            frame_stride: stride,
        })
    }
}
