//! Creating a command ring and attaching to one, through the segment's one object path
//! (`crate::segment::SegmentObject`); geometry is validated by
//! `shm_layout::validate::command_ring`, the same function the inspector and the fuzz targets
//! call.

use super::view::HeaderView;
use super::{CommandRing, CommandSpec};
use crate::segment::{sealed, Placed, Segment, SegmentError, SegmentObject};
use crate::sync::{Ordering, SharedWord, WaitStrategy};
use shm_layout::validate::{self, CommandGeometry};
use shm_layout::{BlockKind, ObjectKind};

impl sealed::Sealed for CommandRing {}

impl SegmentObject for CommandRing {
    type Params = CommandSpec;
    const KIND: ObjectKind = ObjectKind::CommandRing;

    fn attach(segment: &Segment, offset: u64) -> Result<CommandRing, SegmentError> {
        let block = segment.view_of_kind::<HeaderView>(offset, BlockKind::CommandRing)?;
        let geometry = validate::command_ring(&block.view.load_plain(), block.size)
            .map_err(SegmentError::invalid_object)?;
        Ok(CommandRing {
            _segment: segment.clone(),
            offset,
            base: block.base,
            geometry,
            strategy: WaitStrategy::Block,
            retry_safe: false,
        })
    }

    fn place(segment: &Segment, spec: &CommandSpec) -> Result<Placed, SegmentError> {
        let g = CommandGeometry::new(spec.slots, spec.max_request, spec.max_reply)
            .map_err(SegmentError::invalid_params)?;
        let offset =
            segment.allocate_view::<HeaderView>(BlockKind::CommandRing, g.size, 64, |h, _| {
                h.slots.store(g.slots, Ordering::Relaxed);
                h.max_request.store(g.max_request, Ordering::Relaxed);
                h.max_reply.store(g.max_reply, Ordering::Relaxed);
                h.slot_stride.store(g.slot_stride, Ordering::Relaxed);
            })?;
        Ok(Placed {
            offset,
            size: g.size,
            param: u64::from(spec.slots) << 48
                ^ u64::from(spec.max_request) << 24
                ^ u64::from(spec.max_reply),
        })
    }

    fn mismatch(&self, spec: &CommandSpec) -> Option<String> {
        let existing = self.spec();
        (existing != *spec).then(|| format!("it has {existing}; {spec} were asked for"))
    }
}
