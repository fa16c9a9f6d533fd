//! The segment header: the first 192 bytes of every segment.
//!
//! The creator fills every field with the segment in state [`SegmentState::Initialising`] (the
//! zero that `ftruncate` leaves), then stores [`SegmentState::Ready`] into `state` last, with
//! Release ordering. An opener loads `state` with Acquire before trusting any other field.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `b"SHMKIT\0\x01"` read as a little-endian `u64`: the first eight bytes of every segment.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMKIT\0\x01");
/// Incremented on any change an older reader cannot understand.
pub const VERSION_MAJOR: u16 = 4;
/// Incremented on additions an older reader may ignore.
pub const VERSION_MINOR: u16 = 2;
/// Size of [`SegmentHeader`] in bytes; also the offset where the allocator's data area starts.
pub const HEADER_SIZE: usize = 192;
/// Alignment of the data area and the default alignment of every allocated object.
pub const DATA_ALIGN: usize = 64;

/// Lifecycle of a segment, stored in [`SegmentHeader::state`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// The creator has not finished writing the header (the bytes `ftruncate` leaves).
    Initialising = 0,
    /// The header is complete and every field may be read.
    Ready = 0x5245_4459, // "READ" - a value zero-filled or random memory is unlikely to hold
}

impl SegmentState {
    /// Decodes a raw `state` word; `None` for a value no writer produces.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Initialising),
            0x5245_4459 => Some(Self::Ready),
            _ => None,
        }
    }
}

/// The header at offset 0 of a segment.
///
/// The first cache line is immutable once `state` is `Ready`. The allocator words in the second
/// line change at run time (only under `alloc_lock`, the third line) and are accessed atomically.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SegmentHeader {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`VERSION_MAJOR`] of the creator.
    pub version_major: u16,
    /// [`VERSION_MINOR`] of the creator.
    pub version_minor: u16,
    /// [`HEADER_SIZE`] as the creator knew it.
    pub header_size: u32,
    /// [`crate::LAYOUT_HASH`] of the creator's build.
    pub layout_hash: u64,
    /// Size of the whole segment in bytes, as created.
    pub total_size: u64,
    /// Process id of the creator.
    pub creator_pid: u32,
    /// [`SegmentState`] as a raw word; written last, with Release ordering.
    pub state: u32,
    /// Identity token of the creator process (its pidfs inode, or its start time in clock
    /// ticks with bit 41 set; see `shmkit::sys::identity`); with `creator_pid` it identifies
    /// the creator exactly even after its pid is reused.
    pub creator_token: u64,
    /// Wall-clock creation time, nanoseconds since the Unix epoch (informational).
    pub created_unix_ns: u64,
    /// Reserved for options; zero in version 1.0.
    pub flags: u32,
    /// Reserved; zero.
    pub reserved0: u32,
    /// Allocator: offset of the first free byte. Advanced with compare-and-swap.
    pub alloc_next: u64,
    /// Allocator: number of blocks handed out (informational).
    pub alloc_count: u64,
    /// Allocator: offset where the data area starts ([`HEADER_SIZE`]).
    pub data_start: u64,
    /// Offset of the named-object table's first entry.
    pub table_offset: u64,
    /// Number of entries in the table.
    pub table_capacity: u32,
    /// Number of exception slots.
    pub exception_slots: u32,
    /// Offset of the first exception slot.
    pub exception_offset: u64,
    /// Reserved; zero.
    pub reserved1: [u64; 2],
    /// The robust mutex that serialises allocation (allocation is rare; its crash safety
    /// matters more than its speed).
    pub alloc_lock: crate::MutexLayout,
}

const _: () = {
    assert!(size_of::<SegmentHeader>() == HEADER_SIZE);
    assert!(core::mem::align_of::<SegmentHeader>() == DATA_ALIGN);
    assert!(offset_of!(SegmentHeader, magic) == 0);
    assert!(offset_of!(SegmentHeader, version_major) == 8);
    assert!(offset_of!(SegmentHeader, version_minor) == 10);
    assert!(offset_of!(SegmentHeader, header_size) == 12);
    assert!(offset_of!(SegmentHeader, layout_hash) == 16);
    assert!(offset_of!(SegmentHeader, total_size) == 24);
    assert!(offset_of!(SegmentHeader, creator_pid) == 32);
    assert!(offset_of!(SegmentHeader, state) == 36);
    assert!(offset_of!(SegmentHeader, creator_token) == 40);
    assert!(offset_of!(SegmentHeader, created_unix_ns) == 48);
    assert!(offset_of!(SegmentHeader, flags) == 56);
    assert!(offset_of!(SegmentHeader, alloc_next) == 64);
    assert!(offset_of!(SegmentHeader, alloc_count) == 72);
    assert!(offset_of!(SegmentHeader, data_start) == 80);
    assert!(offset_of!(SegmentHeader, table_offset) == 88);
    assert!(offset_of!(SegmentHeader, table_capacity) == 96);
    assert!(offset_of!(SegmentHeader, exception_slots) == 100);
    assert!(offset_of!(SegmentHeader, exception_offset) == 104);
    assert!(offset_of!(SegmentHeader, alloc_lock) == 128);
    assert!(HEADER_SIZE % DATA_ALIGN == 0);
};
