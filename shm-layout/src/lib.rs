//! The byte layout of a shmkit segment.
//!
//! This crate is the contract between every process that maps a shmkit segment, in any language.
//! It owns every `#[repr(C)]` type that lives in shared memory, the constants that identify a
//! segment (magic, version, sizes), compile-time assertions on every size and offset, and the
//! [`LAYOUT_HASH`] that an opener compares to refuse a segment written by an incompatible build.
//! `LAYOUT.md` beside this crate documents the same bytes for a reader who does not use Rust.
//!
//! The types here are plain integers: they describe bytes, they do not access them. The `shmkit`
//! crate reaches each shared word through an atomic at the offset given here (`ARCHITECTURE.md`,
//! invariant 1), and copies headers out before validating them with `zerocopy`.
#![no_std]

mod barrier;
mod block;
mod command;
mod device;
mod dict;
mod event;
mod exception;
mod frame;
mod hash;
mod header;
mod histogram;
mod link;
mod mutex;
mod shared;
mod table;
mod trace;
pub mod validate;

pub use barrier::{
    barrier_size, barrier_slots, BarrierLayout, BarrierPartySlot, BARRIER_ARRIVED_MASK,
    BARRIER_BROKEN, BARRIER_GENERATION_SHIFT, BARRIER_HISTORY_LEN, BARRIER_HISTORY_SHIFT,
    BARRIER_MAX_PARTIES, BARRIER_TAG_GENERATION_SHIFT, BARRIER_TAG_INDEX_SHIFT, BARRIER_TAG_VALID,
};
pub use block::{
    BlockHeader, BlockKind, BLOCK_HEADER_SIZE, BLOCK_MAX_ALIGN, BLOCK_TAG_MAGIC, BLOCK_TAG_MASK,
};
pub use command::{
    CommandRingHeader, CommandSlotMeta, CMD_ABANDONED, CMD_ANSWERING_MARK, CMD_CLAIMED, CMD_FAILED,
    CMD_FREE, CMD_INLINE, CMD_LOST, CMD_LOST_EXECUTED, CMD_LOST_UNKNOWN, CMD_MAX_SLOTS,
    CMD_NO_DEADLINE, CMD_QUEUED, CMD_REPLIED, CMD_RETRY_SAFE, CMD_TAKEN,
};
pub use device::{
    DeviceStatus, DEVICE_CLOSED, DEVICE_CLOSING, DEVICE_CRASHED, DEVICE_ERROR_MAX,
    DEVICE_FAIL_SAFE, DEVICE_OPENING, DEVICE_RUNNING,
};
pub use dict::{DictHeader, DICT_RECORD_HEADER, DICT_RECORD_LIVE, DICT_TOMBSTONE};
pub use event::{EventLayout, EVENT_COUNTER_MASK, EVENT_SET, EVENT_WAITERS};
pub use exception::{
    ExceptionSlotHeader, EXCEPTION_DEFAULT_SLOTS, EXCEPTION_PAYLOAD_MAX, EXCEPTION_SLOT_SIZE,
    REPORT_ERROR, REPORT_PANIC, SLOT_FREE, SLOT_REPORTED, SLOT_RESERVED, SLOT_RUNNING,
};
pub use frame::{
    ElemType, FrameRingHeader, FrameSlotMeta, FRAME_ID_MASK, FRAME_MAX_READERS, FRAME_MAX_SLOTS,
    FRAME_READERS_SHIFT, FRAME_WRITING,
};
pub use hash::LAYOUT_HASH;
pub use header::{
    SegmentHeader, SegmentState, DATA_ALIGN, HEADER_SIZE, MAGIC, VERSION_MAJOR, VERSION_MINOR,
};
pub use histogram::{
    histogram_bucket, histogram_bucket_high, histogram_bucket_low, HistogramLayout,
    HISTOGRAM_BUCKETS, HISTOGRAM_SUB_BITS,
};
pub use link::{LinkStatus, LINK_COMMANDS_IN, LINK_FRAMES_IN, LINK_PREFIX};
pub use mutex::{
    MutexConsistency, MutexLayout, MUTEX_CONSISTENCY_SHIFT, MUTEX_DEPTH_MASK, MUTEX_TID_MASK,
    MUTEX_WAITERS, OWNER_RECORD_START_MASK,
};
pub use shared::{SharedHeader, SHARED_TYPE_NAME_MAX};
pub use table::{
    fnv1a_bytes, ObjectKind, TableEntry, TABLE_CLAIMED, TABLE_DEFAULT_CAPACITY, TABLE_NAME_MAX,
    TABLE_READY,
};
pub use trace::{
    trace_check, trace_name_hash, TraceEvent, TraceHeader, TraceKind, TraceNameEntry,
    TRACE_MAX_EVENTS, TRACE_MAX_NAMES, TRACE_MIN_EVENTS, TRACE_NAME_FREE, TRACE_NAME_MAX,
    TRACE_NAME_READY, TRACE_NAME_WRITING,
};

/// Cache-line size the layout aligns shared primitives to, so two of them never share a line.
pub const CACHE_LINE: usize = 64;
