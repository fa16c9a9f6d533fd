//! A shared value: its robust mutex, its type fingerprint, then the value.

use crate::MutexLayout;
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Longest type name kept in the fingerprint (longer names are truncated; the hash covers all).
pub const SHARED_TYPE_NAME_MAX: usize = 40;

/// The header of a shared-value block; the value follows at [`SharedHeader::value_offset`]
/// bytes from the block's start.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SharedHeader {
    /// Guards the value.
    pub mutex: MutexLayout,
    /// FNV-1a of the full type name.
    pub type_hash: u64,
    /// `size_of` the value type.
    pub size: u64,
    /// `align_of` the value type.
    pub align: u32,
    /// Length of `type_name` used.
    pub type_name_len: u32,
    /// The type name, truncated to 40 bytes, for error messages.
    pub type_name: [u8; SHARED_TYPE_NAME_MAX],
}

impl SharedHeader {
    /// Offset of the value from the block's start for a type of alignment `align`.
    pub const fn value_offset(align: usize) -> usize {
        let base = size_of::<SharedHeader>();
        if align > base {
            align
        } else {
            base
        }
    }
}

const _: () = {
    assert!(size_of::<SharedHeader>() == 128);
    assert!(offset_of!(SharedHeader, type_hash) == 64);
    assert!(offset_of!(SharedHeader, size) == 72);
    assert!(offset_of!(SharedHeader, align) == 80);
    assert!(offset_of!(SharedHeader, type_name) == 88);
};
