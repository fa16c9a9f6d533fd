//! Reading segment bytes as hostile input: the header check and the block walk.
//!
//! Both run over [`SegmentBytes`], implemented for the live mapping (every read an atomic load
//! at a checked, aligned offset) and for a plain byte slice (a copied image, the fuzzer's
//! input). Every offset and length read from the bytes is bounds-checked with checked
//! arithmetic before it is used; a bad value is a [`SegmentError::Corrupt`] naming the field.

use super::SegmentError;
use crate::sys::identity::ProcessIdentity;
use shm_layout::{
    BlockKind, SegmentHeader, SegmentState, BLOCK_HEADER_SIZE, BLOCK_MAX_ALIGN, HEADER_SIZE,
    LAYOUT_HASH, MAGIC, VERSION_MAJOR,
};
use shm_layout::{TableEntry, EXCEPTION_SLOT_SIZE};
use std::mem::{offset_of, size_of};
use zerocopy::FromBytes;

/// Read access to segment bytes. Reads out of bounds or misaligned return `None`.
pub(crate) trait SegmentBytes {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// The little-endian `u32` at `offset` (4-aligned).
    fn load_u32(&self, offset: u64) -> Option<u32>;
    /// The little-endian `u64` at `offset` (8-aligned).
    fn load_u64(&self, offset: u64) -> Option<u64>;
}

impl SegmentBytes for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn load_u32(&self, offset: u64) -> Option<u32> {
        let start = usize::try_from(offset).ok().filter(|o| o % 4 == 0)?;
        let bytes = self.get(start..start.checked_add(4)?)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }

    fn load_u64(&self, offset: u64) -> Option<u64> {
        let start = usize::try_from(offset).ok().filter(|o| o % 8 == 0)?;
        let bytes = self.get(start..start.checked_add(8)?)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }
}

/// Segment bytes that can also be copied out in runs (a copied image, or a file read page by
/// page): what the inspector decodes whole structures from.
pub(crate) trait ImageBytes: SegmentBytes {
    /// Copies `out.len()` bytes at `offset` into `out`; false if they run past the end.
    fn copy_at(&self, offset: u64, out: &mut [u8]) -> bool;
}

impl ImageBytes for [u8] {
    fn copy_at(&self, offset: u64, out: &mut [u8]) -> bool {
        let Some(src) = usize::try_from(offset)
            .ok()
            .and_then(|s| self.get(s..s.checked_add(out.len())?))
        else {
            return false;
        };
        out.copy_from_slice(src);
        true
    }
}

/// A borrowed slice is image bytes too (so a `&[u8]` can be passed as `&dyn ImageBytes`).
impl SegmentBytes for &[u8] {
    fn len(&self) -> u64 {
        SegmentBytes::len(*self)
    }

    fn load_u32(&self, offset: u64) -> Option<u32> {
        (**self).load_u32(offset)
    }

    fn load_u64(&self, offset: u64) -> Option<u64> {
        (**self).load_u64(offset)
    }
}

impl ImageBytes for &[u8] {
    fn copy_at(&self, offset: u64, out: &mut [u8]) -> bool {
        (**self).copy_at(offset, out)
    }
}

/// What a valid, ready header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Layout version (major, minor) of the creator.
    pub version: (u16, u16),
    /// Layout hash of the creator's build.
    pub layout_hash: u64,
    /// Size of the segment in bytes.
    pub total_size: u64,
    /// The process that created the segment.
    pub creator: ProcessIdentity,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// Offset of the data area.
    pub data_start: u64,
    /// Offset of the first unallocated byte when the header was read.
    pub alloc_next: u64,
    /// Blocks allocated when the header was read.
    pub alloc_count: u64,
    /// Offset of the named-object table.
    pub table_offset: u64,
    /// Entries in the named-object table.
    pub table_capacity: u32,
    /// Offset of the first exception slot.
    pub exception_offset: u64,
    /// Number of exception slots.
    pub exception_slots: u32,
}

/// The header's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// Complete and valid.
    Ready(HeaderInfo),
    /// The creator has not stored `Ready` yet.
    Initialising {
        /// Creator as far as it has written it (zeros if not yet).
        creator: ProcessIdentity,
    },
}

fn corrupt(what: &'static str, detail: String) -> SegmentError {
    SegmentError::Corrupt { what, detail }
}

/// Copies the header out (one load per 8 bytes) and checks every field.
pub(crate) fn check_header(
    bytes: &(impl SegmentBytes + ?Sized),
    name: &str,
) -> Result<HeaderCheck, SegmentError> {
    let len = bytes.len();
    if len < HEADER_SIZE as u64 {
        return Err(SegmentError::TooSmall {
            name: name.to_owned(),
            size: len,
            needed: HEADER_SIZE as u64,
        });
    }
    let state_raw = bytes
        .load_u32(offset_of!(SegmentHeader, state) as u64)
        .ok_or_else(|| corrupt("header", "unreadable state word".into()))?;
    // Acquire: pairs with the creator's Release store of `Ready`; the copy below sees every
    // header field it wrote before.
    std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
    let mut copy = [0u8; HEADER_SIZE];
    for (i, chunk) in copy.chunks_exact_mut(8).enumerate() {
        let word = bytes
            .load_u64(i as u64 * 8)
            .ok_or_else(|| corrupt("header", "unreadable".into()))?;
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let header = SegmentHeader::read_from_bytes(&copy).expect("the copy is exactly one header");
    let creator = ProcessIdentity {
        pid: header.creator_pid,
        token: header.creator_token,
    };
    match SegmentState::from_raw(state_raw) {
        Some(SegmentState::Initialising) => return Ok(HeaderCheck::Initialising { creator }),
        Some(SegmentState::Ready) => {}
        None => {
            return Err(corrupt(
                "header state",
                format!("{state_raw:#010x} is not a state"),
            ))
        }
    }
    if header.magic != MAGIC {
        return Err(corrupt(
            "header magic",
            format!(
                "{:#018x}, expected {MAGIC:#018x}: not a shmkit segment",
                header.magic
            ),
        ));
    }
    if header.version_major != VERSION_MAJOR {
        return Err(SegmentError::VersionMismatch {
            name: name.to_owned(),
            found_major: header.version_major,
            found_minor: header.version_minor,
            expected_major: VERSION_MAJOR,
        });
    }
    if header.header_size as usize != HEADER_SIZE {
        return Err(corrupt(
            "header size",
            format!("{}, expected {HEADER_SIZE}", header.header_size),
        ));
    }
    if header.layout_hash != LAYOUT_HASH {
        return Err(SegmentError::LayoutMismatch {
            name: name.to_owned(),
            found: header.layout_hash,
            expected: LAYOUT_HASH,
        });
    }
    if header.total_size > len {
        return Err(SegmentError::TooSmall {
            name: name.to_owned(),
            size: len,
            needed: header.total_size,
        });
    }
    if header.total_size != len {
        return Err(corrupt(
            "header total size",
            format!("{} but the object is {len} bytes", header.total_size),
        ));
    }
    if header.data_start != HEADER_SIZE as u64 {
        return Err(corrupt(
            "allocator data start",
            format!("{}, expected {HEADER_SIZE}", header.data_start),
        ));
    }
    if header.alloc_next < header.data_start
        || header.alloc_next > header.total_size
        || header.alloc_next % BLOCK_HEADER_SIZE as u64 != 0
    {
        return Err(corrupt(
            "allocator next offset",
            format!(
                "{} is outside {}..={} or not a multiple of 16",
                header.alloc_next, header.data_start, header.total_size
            ),
        ));
    }
    let table_bytes = u64::from(header.table_capacity) * size_of::<TableEntry>() as u64;
    if header.table_capacity == 0
        || header.table_capacity > crate::segment::MAX_TABLE_CAPACITY
        || header.table_offset < header.data_start + BLOCK_HEADER_SIZE as u64
        || header.table_offset % 64 != 0
        || header
            .table_offset
            .checked_add(table_bytes)
            .is_none_or(|end| end > header.alloc_next)
    {
        return Err(corrupt(
            "table location",
            format!(
                "{} entries at offset {} do not fit in the allocated area {}..{}",
                header.table_capacity, header.table_offset, header.data_start, header.alloc_next
            ),
        ));
    }
    let slot_bytes = u64::from(header.exception_slots) * EXCEPTION_SLOT_SIZE as u64;
    if header.exception_slots > crate::segment::MAX_EXCEPTION_SLOTS
        || (header.exception_slots > 0
            && (header.exception_offset < header.data_start + BLOCK_HEADER_SIZE as u64
                || header.exception_offset % 64 != 0
                || header
                    .exception_offset
                    .checked_add(slot_bytes)
                    .is_none_or(|end| end > header.alloc_next)))
    {
        return Err(corrupt(
            "exception slots location",
            format!(
                "{} slots at offset {} do not fit in the allocated area {}..{}",
                header.exception_slots,
                header.exception_offset,
                header.data_start,
                header.alloc_next
            ),
        ));
    }
    Ok(HeaderCheck::Ready(HeaderInfo {
        version: (header.version_major, header.version_minor),
        layout_hash: header.layout_hash,
        total_size: header.total_size,
        creator,
        created_unix_ns: header.created_unix_ns,
        data_start: header.data_start,
        alloc_next: header.alloc_next,
        alloc_count: header.alloc_count,
        table_offset: header.table_offset,
        table_capacity: header.table_capacity,
        exception_offset: header.exception_offset,
        exception_slots: header.exception_slots,
    }))
}

/// One block of the data area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Offset of the object (16 bytes after its header).
    pub offset: u64,
    /// What it holds.
    pub kind: BlockKind,
    /// Object size in bytes.
    pub size: u64,
    /// Object alignment in bytes.
    pub align: u32,
}

/// Reads and checks the block header in front of an object at `offset`, which must lie in
/// `[data_start, end)`.
pub(crate) fn read_block(
    bytes: &(impl SegmentBytes + ?Sized),
    offset: u64,
    data_start: u64,
    end: u64,
) -> Result<BlockInfo, SegmentError> {
    let bad = |reason| SegmentError::BadOffset { offset, reason };
    if offset % BLOCK_HEADER_SIZE as u64 != 0 {
        return Err(bad("not a multiple of 16"));
    }
    let header = offset
        .checked_sub(BLOCK_HEADER_SIZE as u64)
        .filter(|&h| h >= data_start && offset < end)
        .ok_or(bad("outside the allocated area"))?;
    let tag = bytes.load_u32(header).ok_or(bad("outside the segment"))?;
    let align = bytes
        .load_u32(header + 4)
        .ok_or(bad("outside the segment"))?;
    let size = bytes
        .load_u64(header + 8)
        .ok_or(bad("outside the segment"))?;
    let kind = BlockKind::from_tag(tag).ok_or_else(|| {
        corrupt(
            "block tag",
            format!("{tag:#010x} in front of offset {offset}"),
        )
    })?;
    if !align.is_power_of_two()
        || (align as usize) < BLOCK_HEADER_SIZE
        || align as usize > BLOCK_MAX_ALIGN
    {
        return Err(corrupt(
            "block alignment",
            format!("{align} at offset {offset}"),
        ));
    }
    if offset % u64::from(align) != 0 {
        return Err(corrupt(
            "block alignment",
            format!("offset {offset} is not aligned to its block's {align}"),
        ));
    }
    if offset.checked_add(size).is_none_or(|e| e > end) {
        return Err(corrupt(
            "block size",
            format!("{size} bytes at offset {offset} run past the allocated end {end}"),
        ));
    }
    Ok(BlockInfo {
        offset,
        kind,
        size,
        align,
    })
}

/// Reads the block in front of an object at `offset` (as [`read_block`]) and checks that it
/// is of `kind` (if given) and at least `len` bytes long: the first step of every attach, live
/// or over an image, so the inspector and the live handles agree on which blocks are objects.
pub(crate) fn object_block(
    bytes: &(impl SegmentBytes + ?Sized),
    offset: u64,
    data_start: u64,
    end: u64,
    kind: Option<BlockKind>,
    len: u64,
) -> Result<BlockInfo, SegmentError> {
    let block = read_block(bytes, offset, data_start, end)?;
    if let Some(kind) = kind.filter(|&k| k != block.kind) {
        return Err(SegmentError::wrong_kind(offset, kind, block.kind));
    }
    if block.size < len {
        return Err(SegmentError::Corrupt {
            what: "block size",
            detail: format!(
                "the {} at offset {offset} has {} bytes, needs {len}",
                block.kind.name(),
                block.size
            ),
        });
    }
    Ok(block)
}

/// Walks every block from `data_start` to `end` (the allocator's next offset).
pub(crate) fn walk_blocks(
    bytes: &(impl SegmentBytes + ?Sized),
    data_start: u64,
    end: u64,
) -> Result<Vec<BlockInfo>, SegmentError> {
    let mut blocks = Vec::new();
    let mut at = data_start;
    while at < end {
        let block = read_block(bytes, at + BLOCK_HEADER_SIZE as u64, data_start, end)?;
        at = block
            .offset
            .checked_add(block.size)
            .and_then(|e| e.checked_next_multiple_of(BLOCK_HEADER_SIZE as u64))
            .ok_or_else(|| corrupt("block size", format!("{} overflows", block.size)))?;
        if block.kind != BlockKind::Padding {
            blocks.push(block);
        }
    }
    Ok(blocks)
}

/// Validates a whole segment image (header and every block) held in ordinary memory, as an
/// inspector or a fuzzer sees it. `Ok(None)` means the image is still initialising.
pub fn validate_image(image: &[u8]) -> Result<Option<(HeaderInfo, Vec<BlockInfo>)>, SegmentError> {
    validate_bytes(image)
}

/// [`validate_image`] over any segment bytes.
pub(crate) fn validate_bytes(
    image: &(impl SegmentBytes + ?Sized),
) -> Result<Option<(HeaderInfo, Vec<BlockInfo>)>, SegmentError> {
    match check_header(image, "<image>")? {
        HeaderCheck::Initialising { .. } => Ok(None),
        HeaderCheck::Ready(info) => {
            let blocks = walk_blocks(image, info.data_start, info.alloc_next)?;
            Ok(Some((info, blocks)))
        }
    }
}
