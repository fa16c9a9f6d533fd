//! Creating a trace buffer and attaching to one, through the segment's one object path
//! (`crate::segment::SegmentObject`); geometry is validated by `shm_layout::validate::trace`,
//! the same function the inspector and the fuzz targets call.

use super::{TraceBuffer, TraceHeaderView, TraceSpec};
use crate::segment::{sealed, Placed, Segment, SegmentError, SegmentObject};
use crate::sync::{Ordering, SharedWord};
use shm_layout::validate::{self, TraceGeometry};
use shm_layout::{BlockKind, ObjectKind};

impl sealed::Sealed for TraceBuffer {}

impl SegmentObject for TraceBuffer {
    type Params = TraceSpec;
    const KIND: ObjectKind = ObjectKind::TraceBuffer;

    fn attach(segment: &Segment, offset: u64) -> Result<TraceBuffer, SegmentError> {
        let block = segment.view_of_kind::<TraceHeaderView>(offset, BlockKind::TraceBuffer)?;
        let geometry = validate::trace(&block.view.load_plain(), block.size)
            .map_err(SegmentError::invalid_object)?;
        Ok(TraceBuffer {
            _segment: segment.clone(),
            offset,
            base: block.base,
            geometry,
        })
    }

    fn place(segment: &Segment, spec: &TraceSpec) -> Result<Placed, SegmentError> {
        let g =
            TraceGeometry::new(spec.events, spec.names).map_err(SegmentError::invalid_params)?;
        // Zeroed otherwise: head 0, every name free, every event never written.
        let offset = segment.allocate_view::<TraceHeaderView>(
            BlockKind::TraceBuffer,
            g.size,
            64,
            |h, _| {
                h.events.store(g.events, Ordering::Relaxed);
                h.names.store(g.names, Ordering::Relaxed);
                h.names_offset.store(g.names_offset, Ordering::Relaxed);
                h.events_offset.store(g.events_offset, Ordering::Relaxed);
            },
        )?;
        Ok(Placed {
            offset,
            size: g.size,
            param: u64::from(g.events) << 32 | u64::from(g.names),
        })
    }

    fn mismatch(&self, spec: &TraceSpec) -> Option<String> {
        let existing = self.spec();
        (existing != *spec).then(|| {
            format!(
                "it keeps {} events and {} names; {} and {} were asked for",
                existing.events, existing.names, spec.events, spec.names
            )
        })
    }
}
