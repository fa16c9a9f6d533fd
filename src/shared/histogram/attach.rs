//! Creating a histogram and attaching to one, through the segment's one object path
//! (`crate::segment::SegmentObject`). Every byte pattern is a valid histogram, so attaching
//! checks only the block (finished, a histogram's kind, big enough, aligned).

use super::{Histogram, HistogramView};
use crate::segment::{sealed, Placed, Segment, SegmentError, SegmentObject};
use shm_layout::{BlockKind, ObjectKind};
use std::mem::size_of;

impl sealed::Sealed for Histogram {}

impl SegmentObject for Histogram {
    /// Histograms all have the same buckets: nothing to choose.
    type Params = ();
    const KIND: ObjectKind = ObjectKind::Histogram;

    fn attach(segment: &Segment, offset: u64) -> Result<Histogram, SegmentError> {
        let block = segment.view_of_kind::<HistogramView>(offset, BlockKind::Histogram)?;
        Ok(Histogram {
            _segment: segment.clone(),
            offset,
            base: block.base,
        })
    }

    fn place(segment: &Segment, _: &()) -> Result<Placed, SegmentError> {
        let size = size_of::<HistogramView>() as u64;
        // Zeroed: generation 0, no samples.
        let offset =
            segment.allocate_view::<HistogramView>(BlockKind::Histogram, size, 64, |_, _| {})?;
        Ok(Placed {
            offset,
            size,
            param: 0,
        })
    }

    fn mismatch(&self, _: &()) -> Option<String> {
        None
    }
}
