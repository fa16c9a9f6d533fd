//! The dictionary's header words, by name: a typed view of `DictHeader`
//! (`shm-layout/src/dict.rs`). Everything after the mutex is written only by its holder.

use crate::primitives::MutexState;
use crate::sync::{shared_view, AtomicU32, AtomicU64};
use shm_layout::DictHeader;

shared_view! {
    /// The header: the robust mutex, the geometry (written once), the counters.
    pub(crate) struct DictHeaderView mirrors DictHeader, align(64) {
        pub mutex: MutexState,
        pub slots: AtomicU32,
        pub max_entries: AtomicU32,
        pub data_capacity: AtomicU64,
        pub used: AtomicU64,
        pub garbage: AtomicU64,
        pub count: AtomicU32,
        pub active: AtomicU32,
        pub tombstones: AtomicU32,
        pub reserved0: AtomicU32,
        pub reserved: [AtomicU64; 2],
    }
}
