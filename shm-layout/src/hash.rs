//! The layout hash: a fingerprint of every size and offset in this crate.
//!
//! Two builds agree on [`LAYOUT_HASH`] exactly when they agree on the layout of every type here,
//! so an opener can refuse a segment written by an incompatible build even when the version
//! numbers were not bumped.

use crate::{
    barrier_slots, BarrierLayout, BarrierPartySlot, BlockHeader, EventLayout, MutexLayout,
    SegmentHeader, BARRIER_BROKEN, BARRIER_GENERATION_SHIFT, BARRIER_TAG_GENERATION_SHIFT,
    BARRIER_TAG_INDEX_SHIFT, BLOCK_TAG_MAGIC, EVENT_SET, EVENT_WAITERS, MAGIC,
    MUTEX_CONSISTENCY_SHIFT, MUTEX_TID_MASK, MUTEX_WAITERS,
};
use core::mem::{align_of, offset_of, size_of};

const fn fnv1a(words: &[u64]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < words.len() {
        let mut b = 0;
        while b < 8 {
            hash ^= (words[i] >> (b * 8)) & 0xFF;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            b += 1;
        }
        i += 1;
    }
    hash
}

/// FNV-1a over the sizes, alignments, field offsets and flag values of every layout type.
pub const LAYOUT_HASH: u64 = fnv1a(&[
    MAGIC,
    size_of::<SegmentHeader>() as u64,
    align_of::<SegmentHeader>() as u64,
    offset_of!(SegmentHeader, state) as u64,
    offset_of!(SegmentHeader, alloc_next) as u64,
    offset_of!(SegmentHeader, data_start) as u64,
    offset_of!(SegmentHeader, alloc_lock) as u64,
    size_of::<BlockHeader>() as u64,
    offset_of!(BlockHeader, tag) as u64,
    offset_of!(BlockHeader, size) as u64,
    BLOCK_TAG_MAGIC as u64,
    size_of::<MutexLayout>() as u64,
    align_of::<MutexLayout>() as u64,
    offset_of!(MutexLayout, word) as u64,
    offset_of!(MutexLayout, meta) as u64,
    offset_of!(MutexLayout, owner) as u64,
    offset_of!(MutexLayout, died) as u64,
    MUTEX_CONSISTENCY_SHIFT as u64,
    offset_of!(MutexLayout, owner_pid) as u64,
    MUTEX_WAITERS as u64,
    MUTEX_TID_MASK as u64,
    size_of::<EventLayout>() as u64,
    offset_of!(EventLayout, word) as u64,
    EVENT_SET as u64,
    EVENT_WAITERS as u64,
    size_of::<BarrierLayout>() as u64,
    offset_of!(BarrierLayout, seq) as u64,
    offset_of!(BarrierLayout, parties) as u64,
    offset_of!(BarrierLayout, state) as u64,
    BARRIER_BROKEN,
    size_of::<BarrierPartySlot>() as u64,
    offset_of!(BarrierPartySlot, record) as u64,
    offset_of!(BarrierPartySlot, tag) as u64,
    BARRIER_TAG_INDEX_SHIFT as u64,
    BARRIER_TAG_GENERATION_SHIFT as u64,
    barrier_slots(1) as u64,
    BARRIER_GENERATION_SHIFT as u64,
    offset_of!(SegmentHeader, table_offset) as u64,
    offset_of!(SegmentHeader, table_capacity) as u64,
    size_of::<crate::TableEntry>() as u64,
    offset_of!(crate::TableEntry, claimer) as u64,
    offset_of!(crate::TableEntry, param) as u64,
    offset_of!(crate::TableEntry, name_hash) as u64,
    offset_of!(crate::TableEntry, name) as u64,
    crate::TABLE_CLAIMED as u64,
    size_of::<crate::SharedHeader>() as u64,
    offset_of!(crate::SharedHeader, type_hash) as u64,
    offset_of!(crate::SharedHeader, type_name) as u64,
    size_of::<crate::DictHeader>() as u64,
    offset_of!(crate::DictHeader, slots) as u64,
    offset_of!(crate::DictHeader, used) as u64,
    offset_of!(crate::DictHeader, count) as u64,
    offset_of!(crate::DictHeader, active) as u64,
    offset_of!(crate::DictHeader, tombstones) as u64,
    crate::DICT_RECORD_HEADER as u64,
    offset_of!(SegmentHeader, exception_slots) as u64,
    offset_of!(SegmentHeader, exception_offset) as u64,
    crate::EXCEPTION_SLOT_SIZE as u64,
    offset_of!(crate::ExceptionSlotHeader, child_token) as u64,
    offset_of!(crate::ExceptionSlotHeader, parent_token) as u64,
    offset_of!(crate::ExceptionSlotHeader, payload_len) as u64,
    size_of::<crate::FrameRingHeader>() as u64,
    offset_of!(crate::FrameRingHeader, notify) as u64,
    offset_of!(crate::FrameRingHeader, readers) as u64,
    offset_of!(crate::FrameRingHeader, last_slot) as u64,
    offset_of!(crate::FrameRingHeader, slots) as u64,
    size_of::<crate::FrameSlotMeta>() as u64,
    crate::FRAME_WRITING,
    size_of::<crate::CommandRingHeader>() as u64,
    offset_of!(crate::CommandRingHeader, notify) as u64,
    size_of::<crate::CommandSlotMeta>() as u64,
    offset_of!(crate::CommandSlotMeta, ticket) as u64,
    offset_of!(crate::CommandRingHeader, next_ticket) as u64,
    offset_of!(crate::CommandSlotMeta, inline) as u64,
    offset_of!(crate::CommandSlotMeta, deadline) as u64,
    size_of::<crate::DeviceStatus>() as u64,
    offset_of!(crate::DeviceStatus, close_requested) as u64,
    size_of::<crate::HistogramLayout>() as u64,
    offset_of!(crate::HistogramLayout, generation) as u64,
    offset_of!(crate::HistogramLayout, max) as u64,
    offset_of!(crate::HistogramLayout, buckets) as u64,
    crate::HISTOGRAM_SUB_BITS as u64,
    size_of::<crate::TraceHeader>() as u64,
    offset_of!(crate::TraceHeader, events) as u64,
    offset_of!(crate::TraceHeader, dropped) as u64,
    size_of::<crate::TraceNameEntry>() as u64,
    size_of::<crate::TraceEvent>() as u64,
    offset_of!(crate::TraceEvent, arg) as u64,
    offset_of!(crate::TraceEvent, meta) as u64,
    size_of::<crate::LinkStatus>() as u64,
    offset_of!(crate::LinkStatus, remote_errors) as u64,
]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_changes_when_a_word_changes() {
        assert_ne!(fnv1a(&[1, 2, 3]), fnv1a(&[1, 2, 4]));
        assert_ne!(LAYOUT_HASH, 0);
    }
}
