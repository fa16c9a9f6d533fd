//! The header in front of every allocated object.
//!
//! The data area is a sequence of blocks, each a 16-byte [`BlockHeader`] followed by `size`
//! bytes, the next block starting at the next multiple of 16. The allocator places each object
//! right after its header, so a process handed only an object's offset can check the header
//! 16 bytes before it; when the object needs more alignment, a [`BlockKind::Padding`] block
//! fills the gap. `tag` is written last, with Release ordering, once the object is initialised.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of [`BlockHeader`]; the object starts right after it.
pub const BLOCK_HEADER_SIZE: usize = 16;
/// Largest object alignment the allocator honours (a page).
pub const BLOCK_MAX_ALIGN: usize = 4096;
/// High half of every valid [`BlockHeader::tag`] (`"BK"`), so stray bytes rarely pass as a tag.
pub const BLOCK_TAG_MAGIC: u32 = 0x424B_0000;
/// Mask selecting the [`BLOCK_TAG_MAGIC`] half of a tag.
pub const BLOCK_TAG_MASK: u32 = 0xFFFF_0000;

/// What an allocated block holds.
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// A [`crate::MutexLayout`].
    Mutex = 1,
    /// An [`crate::EventLayout`].
    Event = 2,
    /// A [`crate::BarrierLayout`].
    Barrier = 3,
    /// Caller-defined bytes, zero-filled at allocation.
    Bytes = 4,
    /// Padding the allocator inserted so the next object is aligned; holds nothing.
    Padding = 5,
    /// The named-object table.
    Table = 6,
    /// A shared value ([`crate::SharedHeader`] then the value).
    Shared = 7,
    /// A dictionary ([`crate::DictHeader`], index, data).
    Dict = 8,
    /// The exception slot array.
    Exceptions = 9,
    /// A frame ring ([`crate::FrameRingHeader`], slot metadata, frames).
    FrameRing = 10,
    /// A command ring ([`crate::CommandRingHeader`], then slots).
    CommandRing = 11,
    /// A [`crate::HistogramLayout`].
    Histogram = 12,
    /// A trace buffer ([`crate::TraceHeader`], names, events).
    TraceBuffer = 13,
}

impl BlockKind {
    /// The tag word a finished block of this kind carries.
    pub const fn tag(self) -> u32 {
        BLOCK_TAG_MAGIC | self as u32
    }

    /// Decodes a tag word; `None` for an unfinished (zero) or corrupt tag.
    pub const fn from_tag(tag: u32) -> Option<Self> {
        if tag & BLOCK_TAG_MASK != BLOCK_TAG_MAGIC {
            return None;
        }
        match tag & !BLOCK_TAG_MASK {
            1 => Some(Self::Mutex),
            2 => Some(Self::Event),
            3 => Some(Self::Barrier),
            4 => Some(Self::Bytes),
            5 => Some(Self::Padding),
            6 => Some(Self::Table),
            7 => Some(Self::Shared),
            8 => Some(Self::Dict),
            9 => Some(Self::Exceptions),
            10 => Some(Self::FrameRing),
            11 => Some(Self::CommandRing),
            12 => Some(Self::Histogram),
            13 => Some(Self::TraceBuffer),
            _ => None,
        }
    }

    /// Human-readable name, for error messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mutex => "mutex",
            Self::Event => "event",
            Self::Barrier => "barrier",
            Self::Bytes => "bytes",
            Self::Padding => "padding",
            Self::Table => "table",
            Self::Shared => "shared value",
            Self::Dict => "dictionary",
            Self::Exceptions => "exception slots",
            Self::FrameRing => "frame ring",
            Self::CommandRing => "command ring",
            Self::Histogram => "histogram",
            Self::TraceBuffer => "trace buffer",
        }
    }
}

/// The 16 bytes in front of every allocated object.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BlockHeader {
    /// [`BlockKind::tag`] once the object is initialised; zero before. Written last (Release).
    pub tag: u32,
    /// Alignment of the object in bytes (a power of two).
    pub align: u32,
    /// Size of the object in bytes (not counting this header).
    pub size: u64,
}

const _: () = {
    assert!(size_of::<BlockHeader>() == BLOCK_HEADER_SIZE);
    assert!(offset_of!(BlockHeader, tag) == 0);
    assert!(offset_of!(BlockHeader, align) == 4);
    assert!(offset_of!(BlockHeader, size) == 8);
};
