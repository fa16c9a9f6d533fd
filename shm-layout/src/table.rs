//! The named-object table: a fixed array of [`TableEntry`] found by open addressing on the
//! name's hash (linear probing, no deletion).
//!
//! `state` of an entry:
//!
//! | `state`                   | meaning                                                   |
//! |---------------------------|-----------------------------------------------------------|
//! | `0`                       | empty: the probe for a name ends here                     |
//! | `TABLE_CLAIMED \| tid`    | thread `tid` is creating the object; wait, or reclaim if dead |
//! | `TABLE_READY`             | every other field is written and immutable                |
//!
//! A creator CASes `0 → CLAIMED|tid`, stores its record in `claimer` (same format as a
//! mutex's `owner`), allocates and initialises the object, fills the entry, then stores
//! `READY` with Release and wakes futex waiters on `state`.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bit of `state` marking an entry being created; the low bits hold the creator's tid.
pub const TABLE_CLAIMED: u32 = 0x8000_0000;
/// `state` of a finished entry.
pub const TABLE_READY: u32 = 1;
/// Longest object name in bytes.
pub const TABLE_NAME_MAX: usize = 63;
/// Default number of entries.
pub const TABLE_DEFAULT_CAPACITY: u32 = 1024;

/// What a named entry holds.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A mutex block.
    Mutex = 1,
    /// An event block.
    Event = 2,
    /// A barrier block (`param` = parties).
    Barrier = 3,
    /// A shared value block (`param` = type fingerprint hash).
    Shared = 4,
    /// A dictionary block (`param` = entry capacity).
    Dict = 5,
    /// A frame ring (`param` = a hash of its geometry).
    FrameRing = 6,
    /// A command ring (`param` = a hash of its geometry).
    CommandRing = 7,
    /// A histogram block (`param` = 0).
    Histogram = 8,
    /// A trace buffer (`param` = its event slots << 32 | its name entries).
    TraceBuffer = 9,
}

impl ObjectKind {
    /// The kind of block an object of this kind is allocated as.
    pub const fn block_kind(self) -> crate::BlockKind {
        use crate::BlockKind as B;
        match self {
            Self::Mutex => B::Mutex,
            Self::Event => B::Event,
            Self::Barrier => B::Barrier,
            Self::Shared => B::Shared,
            Self::Dict => B::Dict,
            Self::FrameRing => B::FrameRing,
            Self::CommandRing => B::CommandRing,
            Self::Histogram => B::Histogram,
            Self::TraceBuffer => B::TraceBuffer,
        }
    }

    /// Decodes a raw `kind`.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Mutex),
            2 => Some(Self::Event),
            3 => Some(Self::Barrier),
            4 => Some(Self::Shared),
            5 => Some(Self::Dict),
            6 => Some(Self::FrameRing),
            7 => Some(Self::CommandRing),
            8 => Some(Self::Histogram),
            9 => Some(Self::TraceBuffer),
            _ => None,
        }
    }

    /// Human-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mutex => "mutex",
            Self::Event => "event",
            Self::Barrier => "barrier",
            Self::Shared => "shared value",
            Self::Dict => "dictionary",
            Self::FrameRing => "frame ring",
            Self::CommandRing => "command ring",
            Self::Histogram => "histogram",
            Self::TraceBuffer => "trace buffer",
        }
    }
}

/// One entry of the table.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct TableEntry {
    /// See the module's state table.
    pub state: u32,
    /// [`ObjectKind`] as a raw word.
    pub kind: u32,
    /// Creator record `(tid << 42) | token`, written right after the claim.
    pub claimer: u64,
    /// Offset of the object in the segment.
    pub offset: u64,
    /// Size of the object's block in bytes.
    pub size: u64,
    /// Kind-specific parameter (see [`ObjectKind`]).
    pub param: u64,
    /// Creator's pid.
    pub creator_pid: u32,
    /// Length of `name` in bytes (1..=63).
    pub name_len: u32,
    /// FNV-1a hash of the name (also picks the first probe slot).
    pub name_hash: u64,
    /// Reserved; zero.
    pub reserved: u64,
    /// The name's UTF-8 bytes, zero-padded.
    pub name: [u8; 64],
}

const _: () = {
    assert!(size_of::<TableEntry>() == 128);
    assert!(offset_of!(TableEntry, state) == 0);
    assert!(offset_of!(TableEntry, kind) == 4);
    assert!(offset_of!(TableEntry, claimer) == 8);
    assert!(offset_of!(TableEntry, offset) == 16);
    assert!(offset_of!(TableEntry, size) == 24);
    assert!(offset_of!(TableEntry, param) == 32);
    assert!(offset_of!(TableEntry, creator_pid) == 40);
    assert!(offset_of!(TableEntry, name_len) == 44);
    assert!(offset_of!(TableEntry, name_hash) == 48);
    assert!(offset_of!(TableEntry, name) == 64);
};

/// FNV-1a over bytes (names and type names).
pub const fn fnv1a_bytes(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}
