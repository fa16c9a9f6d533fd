//! The shared dictionary: a robust mutex, then two halves of (index, data area).
//!
//! Block layout: the 128-byte header, index half 0, index half 1 (`slots` words each), data
//! half 0, data half 1 (`data_capacity` bytes each). Everything after the mutex is touched
//! only by the mutex holder. The index has `slots`
//! (a power of two) `u64` words: 0 empty, `DICT_TOMBSTONE` removed, otherwise
//! `(key_hash_low32 << 32) | (record_offset + 1)`. The data area holds 8-aligned records:
//! `key_len: u16, flags: u16 (bit 0 = live), value_len: u32`, the key, the value.
//!
//! Crash consistency: a record is written first, then `used` grows past it, then one index
//! word is stored to publish it (replacing or removing a key is a single index store too).
//! Compaction writes the other half and commits with one store of `active`. A holder that dies
//! at any point leaves a live half whose index is valid; the repair that follows "owner died"
//! rebuilds the other half from it and recomputes the counters.

use crate::MutexLayout;
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Index word of a removed key.
pub const DICT_TOMBSTONE: u64 = u64::MAX;
/// Bytes of a record header.
pub const DICT_RECORD_HEADER: usize = 8;
/// Record flag: the record is the live value of its key.
pub const DICT_RECORD_LIVE: u16 = 1;

/// The header of a dictionary block; the index follows it, then the data area.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct DictHeader {
    /// Guards everything below.
    pub mutex: MutexLayout,
    /// Index slots (a power of two, at least twice `max_entries`).
    pub slots: u32,
    /// Most keys the dictionary may hold.
    pub max_entries: u32,
    /// Bytes in the data area.
    pub data_capacity: u64,
    /// Bytes of the data area in use (live and dead records).
    pub used: u64,
    /// Bytes of dead records (reclaimed by compaction).
    pub garbage: u64,
    /// Live keys.
    pub count: u32,
    /// Which half (0 or 1) of the index and of the data area is live. Compaction rebuilds
    /// into the other half and flips this word: the one store that commits it.
    pub active: u32,
    /// Tombstones in the live index (compaction clears them).
    pub tombstones: u32,
    /// Reserved; zero.
    pub reserved0: u32,
    /// Reserved; zero.
    pub reserved: [u64; 2],
}

const _: () = {
    assert!(size_of::<DictHeader>() == 128);
    assert!(offset_of!(DictHeader, slots) == 64);
    assert!(offset_of!(DictHeader, max_entries) == 68);
    assert!(offset_of!(DictHeader, data_capacity) == 72);
    assert!(offset_of!(DictHeader, used) == 80);
    assert!(offset_of!(DictHeader, garbage) == 88);
    assert!(offset_of!(DictHeader, count) == 96);
    assert!(offset_of!(DictHeader, active) == 100);
    assert!(offset_of!(DictHeader, tombstones) == 104);
};
