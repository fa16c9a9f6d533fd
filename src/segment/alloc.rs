//! The allocator: placing objects in the data area, and re-attaching them by offset.
//!
//! Allocation is a bump of `alloc_next` under the segment's own robust mutex (`alloc_lock` in
//! the header). The block is written completely — padding, zeroed body, initial state, header,
//! and the tag last (Release) — before `alloc_next` moves past it, so a process that dies
//! mid-allocation leaves nothing behind: the next allocator gets "owner died", finds
//! `alloc_next` where it was, and overwrites the half-written bytes. There is no free: objects
//! live as long as the segment (the named table of a later layer adds reuse).

use super::header_view::HeaderView;
use super::{image, Segment, SegmentError};
use crate::primitives::{
    Barrier, BarrierState, Event, Mutex, MutexState, PartySlot, StateRef, StateSlice,
};
use crate::sync::SharedWord;
use shm_layout::{
    BlockKind, SegmentHeader, BARRIER_MAX_PARTIES, BLOCK_HEADER_SIZE, BLOCK_MAX_ALIGN,
};
use std::mem::{align_of, offset_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

const HDR: u64 = BLOCK_HEADER_SIZE as u64;

/// A checked object block (see [`Segment::view_of_kind`]).
pub(crate) struct ObjectBlock<'a, V> {
    /// The view at the block's start.
    pub view: &'a V,
    /// The block's size in bytes.
    pub size: u64,
    /// The block's first byte, with the provenance of the whole mapping.
    pub base: NonNull<u8>,
}

impl Segment {
    /// The segment header's shared words.
    pub(super) fn header(&self) -> &HeaderView {
        self.map
            .view_at(0)
            .expect("open and create checked the mapping holds the header")
    }

    /// The allocator's lock, in the header.
    fn alloc_lock(&self) -> Mutex {
        let offset = offset_of!(SegmentHeader, alloc_lock) as u64;
        self.state_ref::<MutexState>(offset)
            .map(Mutex::from_state)
            .expect("the header holds the allocator lock")
    }

    fn state_ref<T: Sync + 'static>(&self, offset: u64) -> Option<StateRef<T>> {
        let ptr = self
            .map
            .ptr_at(offset, size_of::<T>() as u64, align_of::<T>() as u64)?;
        // SAFETY: `ptr_at` checked bounds and alignment; `T` is one of the state structs,
        // made only of atomics and `Reserved` fields, so any bytes are a valid `T`; the Arc keeps the
        // mapping alive as long as the StateRef.
        Some(unsafe { StateRef::in_mapping(ptr.cast(), offset, self.map.clone()) })
    }

    /// Places a zeroed block of `kind` with no further initialisation.
    pub(super) fn allocate_raw(
        &self,
        kind: BlockKind,
        size: u64,
        align: u64,
    ) -> Result<u64, SegmentError> {
        self.allocate(kind, size, align, |_| {})
    }

    /// Places a block of `kind`: `init` receives the zeroed object before it is published.
    pub(crate) fn allocate(
        &self,
        kind: BlockKind,
        size: u64,
        align: u64,
        init: impl FnOnce(NonNull<u8>),
    ) -> Result<u64, SegmentError> {
        let align = align.max(HDR);
        if !align.is_power_of_two() || align > BLOCK_MAX_ALIGN as u64 {
            return Err(SegmentError::InvalidOption(format!(
                "alignment {align} must be a power of two no larger than {BLOCK_MAX_ALIGN}"
            )));
        }
        let lock = self.alloc_lock();
        // Nothing to repair after a dead allocator: `alloc_next` was not advanced.
        let _guard = lock.lock(crate::DEFAULT_LOCK_TIMEOUT)?.recover_with(|_| {});
        let next_word = &self.header().alloc_next;
        let next = next_word.load(Ordering::Acquire);
        let len = self.map.len();
        if next < self.info.data_start || next > len || next % HDR != 0 {
            return Err(SegmentError::Corrupt {
                what: "allocator next offset",
                detail: format!("{next} is outside {}..={len}", self.info.data_start),
            });
        }
        let too_big = || SegmentError::OutOfSpace {
            requested: size.saturating_add(align).saturating_add(HDR),
            available: len - next,
        };
        let body = (next + HDR)
            .checked_next_multiple_of(align)
            .ok_or_else(too_big)?;
        let end = body
            .checked_add(size)
            .and_then(|e| e.checked_next_multiple_of(HDR))
            .filter(|&e| e <= len)
            .ok_or_else(too_big)?;
        let write_header = |at: u64, tag: u32, align: u64, size: u64| {
            let u32_at = |o| self.map.atomic_u32(o).expect("block header in bounds");
            u32_at(at + 4).store(align as u32, Ordering::Relaxed);
            self.map
                .atomic_u64(at + 8)
                .expect("block header in bounds")
                .store(size, Ordering::Relaxed);
            // Release: a reader that sees the tag (Acquire) sees the object initialised.
            u32_at(at).store(tag, Ordering::Release);
        };
        if body - HDR > next {
            write_header(next, BlockKind::Padding.tag(), HDR, body - HDR - next - HDR);
        }
        // Zero the body through atomics: a dead allocator may have left bytes here.
        for off in (body..end).step_by(8) {
            self.map
                .atomic_u64(off)
                .expect("body in bounds")
                .store(0, Ordering::Relaxed);
        }
        init(self.map.ptr_at(body, size, align).expect("body in bounds"));
        write_header(body - HDR, kind.tag(), align, size);
        // Release: publishes the finished block to anyone who reads `alloc_next`.
        next_word.store(end, Ordering::Release);
        self.header().alloc_count.fetch_add(1, Ordering::Relaxed);
        Ok(body)
    }

    /// The allocated area's end, as published by the last allocation.
    pub(super) fn allocated_end(&self) -> u64 {
        // Acquire: pairs with the Release store of `alloc_next` in `allocate`.
        self.header()
            .alloc_next
            .load(Ordering::Acquire)
            .min(self.map.len())
    }

    /// Reads and checks the block in front of `offset`: finished, of `kind` if given, and at
    /// least `len` bytes long.
    fn checked_block(
        &self,
        offset: u64,
        kind: Option<BlockKind>,
        len: u64,
    ) -> Result<image::BlockInfo, SegmentError> {
        image::object_block(
            &*self.map,
            offset,
            self.info.data_start,
            self.allocated_end(),
            kind,
            len,
        )
    }

    /// Checks that `offset` holds a finished block of `kind` big enough for a `T`.
    fn object_at<T: Sync + 'static>(
        &self,
        offset: u64,
        kind: BlockKind,
    ) -> Result<StateRef<T>, SegmentError> {
        self.checked_block(offset, Some(kind), size_of::<T>() as u64)?;
        self.state_ref(offset).ok_or(SegmentError::BadOffset {
            offset,
            reason: "misaligned for this kind of object",
        })
    }

    /// Places a block sized and aligned for the state struct `T`.
    pub(super) fn allocate_state<T>(
        &self,
        kind: BlockKind,
        init: impl FnOnce(NonNull<u8>),
    ) -> Result<u64, SegmentError> {
        self.allocate(kind, size_of::<T>() as u64, align_of::<T>() as u64, init)
    }

    /// The mutex at the start of the block of `kind` at `offset` (shared values and
    /// dictionaries begin with their mutex).
    pub(crate) fn mutex_in_block(
        &self,
        offset: u64,
        kind: BlockKind,
    ) -> Result<Mutex, SegmentError> {
        self.object_at::<MutexState>(offset, kind)
            .map(Mutex::from_state)
    }

    /// The block of `kind` at `offset`, checked (finished, that kind, big enough for the view
    /// `V` that starts it, aligned for it): the view, the block's size for the kind's
    /// validator, and a pointer to the whole block (derived from the mapping, so it may reach
    /// every byte of the block, not only the view's).
    pub(crate) fn view_of_kind<V: SharedWord>(
        &self,
        offset: u64,
        kind: BlockKind,
    ) -> Result<ObjectBlock<'_, V>, SegmentError> {
        let block = self.checked_block(offset, Some(kind), size_of::<V>() as u64)?;
        let misaligned = || SegmentError::BadOffset {
            offset,
            reason: "misaligned for this kind of object",
        };
        let view = self.map.view_at::<V>(offset).ok_or_else(misaligned)?;
        let base = self
            .map
            .ptr_at(offset, block.size, 1)
            .ok_or_else(misaligned)?;
        Ok(ObjectBlock {
            view,
            size: block.size,
            base,
        })
    }

    /// Places a block of `kind` of `size` bytes that starts with the view `V`; `init` fills
    /// the zeroed view (and, through the second argument, the rest of the block: a pointer to
    /// its first byte with the provenance of the whole block) before the block is published.
    pub(crate) fn allocate_view<V: SharedWord>(
        &self,
        kind: BlockKind,
        size: u64,
        align: u64,
        init: impl FnOnce(&V, NonNull<u8>),
    ) -> Result<u64, SegmentError> {
        let size = size.max(size_of::<V>() as u64);
        let align = align.max(align_of::<V>() as u64);
        self.allocate(kind, size, align, |ptr| {
            // SAFETY: `allocate` hands us the zeroed body of our new block, at least `size`
            // (≥ size of `V`) bytes aligned to `align` (≥ alignment of `V`), inside the
            // mapping; `V` is valid for any bytes.
            init(unsafe { ptr.cast::<V>().as_ref() }, ptr)
        })
    }

    /// Places a new barrier for `parties` (1..=65535); returns its offset.
    pub(super) fn place_barrier(&self, parties: u32) -> Result<u64, SegmentError> {
        if !(1..=BARRIER_MAX_PARTIES).contains(&parties) {
            return Err(SegmentError::InvalidOption(format!(
                "barrier parties {parties} outside 1..={BARRIER_MAX_PARTIES}"
            )));
        }
        self.allocate(
            BlockKind::Barrier,
            shm_layout::barrier_size(parties),
            align_of::<BarrierState>() as u64,
            |ptr| {
                let parties_at = ptr
                    .as_ptr()
                    .wrapping_add(offset_of!(shm_layout::BarrierLayout, parties));
                // SAFETY: `ptr` is the zeroed, 64-aligned, in-bounds body of our new block,
                // which nobody else can reach before it is published; the parties field is at
                // a 4-aligned offset inside it. All-zero slots are free slots.
                unsafe { AtomicU32::from_ptr(parties_at.cast()) }.store(parties, Ordering::Relaxed);
            },
        )
    }

    /// The mutex at `offset` (as returned by [`Mutex::offset`] in any process).
    pub(super) fn mutex_at(&self, offset: u64) -> Result<Mutex, SegmentError> {
        self.object_at(offset, BlockKind::Mutex)
            .map(Mutex::from_state)
    }

    /// The event at `offset`.
    pub(super) fn event_at(&self, offset: u64) -> Result<Event, SegmentError> {
        self.object_at(offset, BlockKind::Event)
            .map(Event::from_state)
    }

    /// The barrier at `offset`, after the validator has checked its party count against its
    /// block (the header and two party slots per party).
    pub(super) fn barrier_at(&self, offset: u64) -> Result<Barrier, SegmentError> {
        let header = size_of::<BarrierState>() as u64;
        let block = self.checked_block(offset, Some(BlockKind::Barrier), header)?;
        let state: StateRef<BarrierState> =
            self.state_ref(offset).ok_or(SegmentError::BadOffset {
                offset,
                reason: "misaligned for this kind of object",
            })?;
        // The same check the inspector runs (`shm_layout::validate::barrier`).
        let mut layout = <shm_layout::BarrierLayout as zerocopy::FromZeros>::new_zeroed();
        layout.parties = state.parties_raw();
        let parties = shm_layout::validate::barrier(&layout, block.size)
            .map_err(SegmentError::invalid_object)?;
        let len = shm_layout::barrier_slots(parties) as usize;
        let slots_at = offset + header;
        let ptr = self
            .map
            .ptr_at(
                slots_at,
                (len * size_of::<PartySlot>()) as u64,
                align_of::<PartySlot>() as u64,
            )
            .ok_or(SegmentError::BadOffset {
                offset,
                reason: "barrier slots outside the mapping",
            })?;
        // SAFETY: `ptr_at` checked that the `len` slots are in bounds and aligned, and the
        // validator that the block holds them; `PartySlot` is two atomics, valid for any bytes;
        // the mapping's Arc keeps them mapped as long as the slice.
        let slots = unsafe { StateSlice::in_mapping(ptr.cast(), len, self.map.clone()) };
        Ok(Barrier::from_parts(state, slots))
    }
}
