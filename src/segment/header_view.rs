//! The segment header's shared words, by name: a typed view of `SegmentHeader`
//! (`shm-layout/src/header.rs`). Written by the creator before `state` turns ready; afterwards
//! only the allocator words (`alloc_next`, `alloc_count`) change, under `alloc_lock`.

use crate::primitives::MutexState;
use crate::sync::{shared_view, AtomicU32, AtomicU64};
use shm_layout::SegmentHeader;
use std::sync::atomic::AtomicU16;

shared_view! {
    /// The header at offset 0 of every segment.
    pub(crate) struct HeaderView mirrors SegmentHeader, align(64) {
        pub magic: AtomicU64,
        pub version_major: AtomicU16,
        pub version_minor: AtomicU16,
        pub header_size: AtomicU32,
        pub layout_hash: AtomicU64,
        pub total_size: AtomicU64,
        pub creator_pid: AtomicU32,
        pub state: AtomicU32,
        pub creator_token: AtomicU64,
        pub created_unix_ns: AtomicU64,
        pub flags: AtomicU32,
        pub reserved0: AtomicU32,
        pub alloc_next: AtomicU64,
        pub alloc_count: AtomicU64,
        pub data_start: AtomicU64,
        pub table_offset: AtomicU64,
        pub table_capacity: AtomicU32,
        pub exception_slots: AtomicU32,
        pub exception_offset: AtomicU64,
        pub reserved1: [AtomicU64; 2],
        pub alloc_lock: MutexState,
    }
}
