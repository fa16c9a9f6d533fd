//! Creating a frame ring and attaching to one, through the segment's one object path
//! (`crate::segment::SegmentObject`); geometry is validated by
//! `shm_layout::validate::frame_ring`, the same function the inspector and the fuzz targets
//! call.

use super::view::{HeaderView, SlotView};
use super::{FrameRing, FrameSpec};
use crate::segment::{sealed, Placed, Segment, SegmentError, SegmentObject};
use crate::sync::{Ordering, SharedWord};
use shm_layout::{validate, BlockKind, ObjectKind};
use std::mem::size_of;

impl sealed::Sealed for FrameRing {}

impl SegmentObject for FrameRing {
    type Params = FrameSpec;
    const KIND: ObjectKind = ObjectKind::FrameRing;

    fn attach(segment: &Segment, offset: u64) -> Result<FrameRing, SegmentError> {
        let block = segment.view_of_kind::<HeaderView>(offset, BlockKind::FrameRing)?;
        let geometry = validate::frame_ring(&block.view.load_plain(), block.size)
            .map_err(SegmentError::invalid_object)?;
        Ok(FrameRing {
            _segment: segment.clone(),
            offset,
            base: block.base,
            geometry,
        })
    }

    fn place(segment: &Segment, spec: &FrameSpec) -> Result<Placed, SegmentError> {
        let g = spec.geometry().map_err(SegmentError::invalid_params)?;
        debug_assert!(g.frame_offset >= (size_of::<HeaderView>() + size_of::<SlotView>()) as u64);
        let offset =
            segment.allocate_view::<HeaderView>(BlockKind::FrameRing, g.size, 4096, |h, _| {
                h.slots.store(g.slots, Ordering::Relaxed);
                h.elem.store(g.elem as u32, Ordering::Relaxed);
                h.max_bytes.store(g.max_bytes, Ordering::Relaxed);
                h.ndims.store(g.ndims, Ordering::Relaxed);
                for (word, dim) in h.shape.iter().zip(g.shape) {
                    word.store(dim, Ordering::Relaxed);
                }
                h.frame_offset.store(g.frame_offset, Ordering::Relaxed);
                h.frame_stride.store(g.frame_stride, Ordering::Relaxed);
            })?;
        Ok(Placed {
            offset,
            size: g.size,
            param: spec.fingerprint(),
        })
    }

    fn mismatch(&self, spec: &FrameSpec) -> Option<String> {
        let existing = self.spec();
        (existing != *spec).then(|| format!("it has {existing}; {spec} were asked for"))
    }
}
