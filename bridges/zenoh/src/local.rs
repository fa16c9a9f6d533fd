//! The local end of an import: the segment found or created, and the ring in it found or
//! created from the remote spec. An existing ring of another spec is the typed
//! [`BridgeError::SpecMismatch`], never a second ring under the same name.

use crate::error::BridgeError;
use shmkit::{CreateOptions, Segment, SegmentError, SegmentObject, SegmentObjects};

/// Segment headroom beyond the ring (header, table, the link value).
const SEGMENT_HEADROOM: u64 = 1 << 20;

/// Opens segment `segment` (creating it with room for `ring_bytes` and the headroom if it is
/// missing) and the ring `ring` of `spec` in it (creating it if it is missing).
pub fn open_ring<T: SegmentObject>(
    segment: &str,
    ring_bytes: Option<u64>,
    ring: &str,
    spec: &T::Params,
    spec_text: String,
) -> Result<(Segment, T), BridgeError> {
    let size = ring_bytes
        .and_then(|b| b.checked_add(SEGMENT_HEADROOM))
        .ok_or_else(|| BridgeError::Config("the remote ring's size overflows".into()))?;
    let seg = Segment::open_or_create(segment, &CreateOptions::new(size))?;
    match seg.open_or_create::<T>(ring, spec) {
        Ok(r) => Ok((seg, r)),
        Err(SegmentError::ParamMismatch { detail, .. }) => Err(BridgeError::SpecMismatch {
            ring: ring.to_owned(),
            local: detail,
            remote: spec_text,
        }),
        Err(e) => Err(e.into()),
    }
}
