//! The segment's side of the named-object table, and the primitives as segment objects.
//!
//! The table protocol is in `crate::table`; this module places the table and the exception
//! slot array at creation, reads the table's entries, and makes the mutex, the event and the
//! barrier [`SegmentObject`]s (the other kinds do so beside their own code).

use super::object::{sealed, Placed, SegmentObject};
use super::{Segment, SegmentError, TABLE_ENTRY_SIZE};
use crate::primitives::{Barrier, Event, EventState, Mutex, MutexState};
use crate::table::{EntryState, ObjectName, TableError};
use shm_layout::{BlockKind, ObjectKind, TableEntry};
use std::mem::{align_of, size_of};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Segment {
    /// Allocates the table and records it in the header (before the segment is published).
    pub(super) fn create_table(&mut self, capacity: u32) -> Result<(), SegmentError> {
        let bytes = u64::from(capacity) * TABLE_ENTRY_SIZE;
        let offset = self.allocate_raw(BlockKind::Table, bytes, align_of::<TableEntry>() as u64)?;
        let h = self.header();
        h.table_offset.store(offset, Ordering::Relaxed);
        h.table_capacity.store(capacity, Ordering::Relaxed);
        let (next, count) = (
            h.alloc_next.load(Ordering::Relaxed),
            h.alloc_count.load(Ordering::Relaxed),
        );
        self.info.table_offset = offset;
        self.info.table_capacity = capacity;
        self.info.alloc_next = next;
        self.info.alloc_count = count;
        Ok(())
    }

    /// Allocates the exception slot array and records it in the header (before publishing).
    pub(super) fn create_exception_slots(&mut self, slots: u32) -> Result<(), SegmentError> {
        if slots == 0 {
            return Ok(());
        }
        let bytes = u64::from(slots) * shm_layout::EXCEPTION_SLOT_SIZE as u64;
        let offset = self.allocate_raw(BlockKind::Exceptions, bytes, 64)?;
        let h = self.header();
        h.exception_offset.store(offset, Ordering::Relaxed);
        h.exception_slots.store(slots, Ordering::Relaxed);
        let (next, count) = (
            h.alloc_next.load(Ordering::Relaxed),
            h.alloc_count.load(Ordering::Relaxed),
        );
        self.info.exception_offset = offset;
        self.info.exception_slots = slots;
        self.info.alloc_next = next;
        self.info.alloc_count = count;
        Ok(())
    }

    /// Exception slot `index`: a pointer to its 4 KiB (location validated with the header).
    pub(crate) fn exception_slot(&self, index: u32) -> Option<std::ptr::NonNull<u8>> {
        if index >= self.info.exception_slots {
            return None;
        }
        let size = shm_layout::EXCEPTION_SLOT_SIZE as u64;
        self.map.ptr_at(
            self.info.exception_offset + u64::from(index) * size,
            size,
            64,
        )
    }

    /// The table's entries (location validated when the header was checked).
    pub(crate) fn table(&self) -> &[EntryState] {
        let len = self.info.table_capacity as usize;
        let ptr = self
            .map
            .ptr_at(self.info.table_offset, len as u64 * TABLE_ENTRY_SIZE, 64)
            .expect("the header check validated the table's location");
        // SAFETY: `ptr_at` checked that `len` entries fit in the mapping at a 64-aligned
        // offset; `EntryState` is atomics and padding only, valid for any bytes; the slice
        // borrows `self`, which keeps the mapping alive.
        unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<EntryState>(), len) }
    }
}

impl sealed::Sealed for Mutex {}
impl SegmentObject for Mutex {
    type Params = ();
    const KIND: ObjectKind = ObjectKind::Mutex;

    fn attach(segment: &Segment, offset: u64) -> Result<Self, SegmentError> {
        segment.mutex_at(offset)
    }

    fn place(segment: &Segment, _: &()) -> Result<Placed, SegmentError> {
        segment.place_zeroed::<MutexState>(BlockKind::Mutex)
    }

    fn mismatch(&self, _: &()) -> Option<String> {
        None
    }
}

impl sealed::Sealed for Event {}
impl SegmentObject for Event {
    type Params = ();
    const KIND: ObjectKind = ObjectKind::Event;

    fn attach(segment: &Segment, offset: u64) -> Result<Self, SegmentError> {
        segment.event_at(offset)
    }

    fn place(segment: &Segment, _: &()) -> Result<Placed, SegmentError> {
        segment.place_zeroed::<EventState>(BlockKind::Event)
    }

    fn mismatch(&self, _: &()) -> Option<String> {
        None
    }
}

impl sealed::Sealed for Barrier {}
impl SegmentObject for Barrier {
    /// The number of parties.
    type Params = u32;
    const KIND: ObjectKind = ObjectKind::Barrier;

    fn attach(segment: &Segment, offset: u64) -> Result<Self, SegmentError> {
        segment.barrier_at(offset)
    }

    fn place(segment: &Segment, parties: &u32) -> Result<Placed, SegmentError> {
        Ok(Placed {
            offset: segment.place_barrier(*parties)?,
            size: shm_layout::barrier_size(*parties),
            param: u64::from(*parties),
        })
    }

    fn mismatch(&self, parties: &u32) -> Option<String> {
        (self.parties() != *parties).then(|| {
            format!(
                "it has {} parties; {parties} were asked for",
                self.parties()
            )
        })
    }
}

impl Segment {
    /// Places an object whose all-zero bytes are its initial state (a free mutex, a clear
    /// event).
    fn place_zeroed<T>(&self, kind: BlockKind) -> Result<Placed, SegmentError> {
        Ok(Placed {
            offset: self.allocate_state::<T>(kind, |_| {})?,
            size: size_of::<T>() as u64,
            param: 0,
        })
    }
}

/// Test support (feature `test-support`): claims `name` in `segment` through the real
/// find-or-create protocol, then stalls inside creation until `release` is set, the way a
/// process killed mid-initialisation would leave it.
#[cfg(feature = "test-support")]
pub fn claim_and_stall_for_test(
    segment: &Segment,
    name: &str,
    on_claimed: impl FnOnce(),
    release: &std::sync::atomic::AtomicBool,
) -> Result<crate::table::EntryInfo, SegmentError> {
    segment
        .find_or_create_entry(name, ObjectKind::Event, || {
            on_claimed();
            while !release.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            segment.place_zeroed::<EventState>(BlockKind::Event)
        })
        .map(|(info, _)| info)
}

/// Validates an object name into the segment's error type.
pub(crate) fn object_name(name: &str) -> Result<ObjectName<'_>, SegmentError> {
    ObjectName::new(name).map_err(|reason| SegmentError::InvalidObjectName {
        name: name.escape_default().to_string(),
        reason,
    })
}

pub(super) fn table_error(e: TableError, name: &str) -> SegmentError {
    creation_error(e.widen(), name, Duration::ZERO)
}

/// Maps a find-or-create failure: the creator's own error as it is, the table's as a
/// segment error (`waited`: how long a busy creator was waited for).
pub(super) fn creation_error(
    e: TableError<SegmentError>,
    name: &str,
    waited: Duration,
) -> SegmentError {
    match e {
        TableError::Create(err) => err,
        TableError::Corrupt { index, what } => SegmentError::Corrupt {
            what: "table entry",
            detail: format!("entry {index}: {what} (looking up {name:?})"),
        },
        TableError::Full { capacity } => SegmentError::TableFull { capacity },
        TableError::Busy { creator_pid, tid } => SegmentError::EntryBusy {
            name: name.to_owned(),
            creator_pid,
            tid,
            waited,
        },
    }
}
