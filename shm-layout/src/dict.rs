//! The shared dictionary: a robust mutex, an open-addressing index and a data area.
//!
//! Everything after the mutex is touched only by the mutex holder. The index has `slots`
//! (a power of two) `u64` words: 0 empty, `DICT_TOMBSTONE` removed, otherwise
//! `(key_hash_low32 << 32) | (record_offset + 1)`. The data area holds 8-aligned records:
//! `key_len: u16, flags: u16 (bit 0 = live), value_len: u32`, the key, the value.
//!
//! Crash consistency: a record is written first, then `used` grows past it, then one index
//! word is stored to publish it (replacing or removing a key is a single index store too). A
//! holder that dies at any point leaves a dictionary whose index is valid; at worst some bytes
//! are unreachable, and the repair pass that follows "owner died" compacts them away.

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
    /// Reserved; zero.
    pub reserved0: u32,
    /// Reserved; zero.
    pub reserved: [u64; 3],
}

const _: () = {
    assert!(size_of::<DictHeader>() == 128);
    assert!(offset_of!(DictHeader, slots) == 64);
    assert!(offset_of!(DictHeader, max_entries) == 68);
    assert!(offset_of!(DictHeader, data_capacity) == 72);
    assert!(offset_of!(DictHeader, used) == 80);
    assert!(offset_of!(DictHeader, garbage) == 88);
    assert!(offset_of!(DictHeader, count) == 96);
};
