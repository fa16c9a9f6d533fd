//! Creating a dictionary and attaching to one, through the segment's one object path
//! (`crate::segment::SegmentObject`); geometry is validated by `shm_layout::validate::dict`,
//! the same function the inspector and the fuzz targets call.

use super::view::DictHeaderView;
use super::SharedDict;
use crate::segment::{sealed, Placed, Segment, SegmentError, SegmentObject};
use crate::sync::{Ordering, SharedWord};
use shm_layout::validate::{self, DictGeometry};
use shm_layout::{BlockKind, ObjectKind};

/// The capacity of a dictionary: what a creator passes, and what an opener reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictSpec {
    /// Most keys.
    pub max_entries: u32,
    /// Bytes of record space (keys, values and an 8-byte header per record, each record
    /// rounded up to 8); the region reserves twice this so compaction never loses data.
    pub data_bytes: u64,
}

impl DictSpec {
    /// `max_entries` keys with 128 bytes of record space each.
    pub fn new(max_entries: u32) -> DictSpec {
        DictSpec {
            max_entries,
            data_bytes: u64::from(max_entries) * 128,
        }
    }

    /// The geometry a creator lays out for this spec (at least one key and 64 bytes).
    fn geometry(&self) -> Result<DictGeometry, SegmentError> {
        DictGeometry::new(self.max_entries.max(1), self.data_bytes.max(64))
            .map_err(SegmentError::invalid_params)
    }
}

impl std::fmt::Display for DictSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} keys and {} bytes of records",
            self.max_entries, self.data_bytes
        )
    }
}

impl sealed::Sealed for SharedDict {}

impl SegmentObject for SharedDict {
    type Params = DictSpec;
    const KIND: ObjectKind = ObjectKind::Dict;

    fn attach(segment: &Segment, offset: u64) -> Result<SharedDict, SegmentError> {
        let block = segment.view_of_kind::<DictHeaderView>(offset, BlockKind::Dict)?;
        let geometry = validate::dict(&block.view.load_plain(), block.size)
            .map_err(SegmentError::invalid_object)?;
        let mutex = segment.mutex_in_block(offset, BlockKind::Dict)?;
        Ok(SharedDict {
            mutex,
            offset,
            base: block.base,
            geometry,
            timeout: crate::primitives::DEFAULT_LOCK_TIMEOUT,
        })
    }

    fn place(segment: &Segment, spec: &DictSpec) -> Result<Placed, SegmentError> {
        let g = spec.geometry()?;
        let offset =
            segment.allocate_view::<DictHeaderView>(BlockKind::Dict, g.size, 64, |h, _| {
                h.slots.store(g.slots, Ordering::Relaxed);
                h.max_entries.store(g.max_entries, Ordering::Relaxed);
                h.data_capacity.store(g.data_capacity, Ordering::Relaxed);
            })?;
        Ok(Placed {
            offset,
            size: g.size,
            param: u64::from(g.max_entries),
        })
    }

    fn mismatch(&self, spec: &DictSpec) -> Option<String> {
        let asked = match spec.geometry() {
            Ok(g) => g,
            Err(e) => return Some(e.to_string()),
        };
        let g = &self.geometry;
        (g.max_entries != asked.max_entries || g.data_capacity != asked.data_capacity).then(|| {
            format!(
                "it holds {} keys and {} bytes of records; {spec} were asked for",
                g.max_entries, g.data_capacity
            )
        })
    }
}
