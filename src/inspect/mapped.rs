//! Inspecting a segment this process has mapped: its blocks and a copy of its bytes, read
//! through the mapping with atomic loads (never a lock, never a write).

use crate::segment::{BlockInfo, Segment, SegmentError};

/// Re-reads and re-validates `segment`'s header and walks every allocated block.
pub fn blocks(segment: &Segment) -> Result<Vec<BlockInfo>, SegmentError> {
    segment.blocks()
}

/// Copies the whole of `segment` into a `Vec` (one atomic load per 8 bytes), for
/// [`inspect_image`](super::inspect_image) or a test's own checks.
pub fn snapshot(segment: &Segment) -> Vec<u8> {
    segment.snapshot()
}
