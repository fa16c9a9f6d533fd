//! The frame ring's shared words, by name: typed views of `FrameRingHeader` and
//! `FrameSlotMeta` (`shm-layout/src/frame.rs`), attached once at attach time.

use crate::sync::{shared_view, AtomicU32, AtomicU64, RecordWord};
use shm_layout::{FrameRingHeader, FrameSlotMeta, FRAME_MAX_READERS};

shared_view! {
    /// The ring's header. Line 0 is what a publish writes and a reader polls; line 1 is the
    /// geometry (written once by the creator); then the reader records.
    pub(crate) struct HeaderView mirrors FrameRingHeader, align(64) {
        pub writer: RecordWord,
        pub last_id: AtomicU64,
        pub last_slot: AtomicU64,
        pub notify: AtomicU32,
        pub sleepers: AtomicU32,
        pub total_written: AtomicU64,
        pub last_ts_ns: AtomicU64,
        pub rate_mhz: AtomicU64,
        pub jitter_ns: AtomicU64,
        pub slots: AtomicU32,
        pub elem: AtomicU32,
        pub max_bytes: AtomicU64,
        pub ndims: AtomicU32,
        pub reserved1: AtomicU32,
        pub shape: [AtomicU32; 4],
        pub frame_offset: AtomicU64,
        pub frame_stride: AtomicU64,
        pub overruns: AtomicU64,
        pub readers: [RecordWord; FRAME_MAX_READERS],
    }
}

shared_view! {
    /// One slot's metadata: the slot word (`super::super::slot_word`) and the frame's stamp.
    pub(crate) struct SlotView mirrors FrameSlotMeta, align(64) {
        pub word: AtomicU64,
        pub ts_ns: AtomicU64,
        pub len: AtomicU64,
        pub user: [AtomicU64; 5],
    }
}
