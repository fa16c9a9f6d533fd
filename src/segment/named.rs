//! Objects found or created by name through the segment's table.
//!
//! `segment.mutex("x")`, `.event`, `.barrier`, `.shared::<T>`, `.dict`: the first caller in any
//! process creates the object, every later caller gets the same one. The table protocol is in
//! `crate::table`; this module allocates the objects and checks that an existing entry is the
//! kind (and the parameters) the caller asked for.

use super::{Segment, SegmentError, TABLE_ENTRY_SIZE};
use crate::primitives::{Barrier, Event, EventState, Mutex, MutexState};
use crate::sys::clock::Deadline;
use crate::table::{self, Created, EntryInfo, EntryState, NamedEntry, ObjectName, TableError};
use shm_layout::{BlockKind, ObjectKind, SegmentHeader, TableEntry};
use std::mem::{align_of, offset_of, size_of};
use std::time::Duration;

impl Segment {
    /// Allocates the table and records it in the header (before the segment is published).
    pub(super) fn create_table(&mut self, capacity: u32) -> Result<(), SegmentError> {
        let bytes = u64::from(capacity) * TABLE_ENTRY_SIZE;
        let offset = self.allocate_raw(BlockKind::Table, bytes, align_of::<TableEntry>() as u64)?;
        let header = |field: usize| self.map.atomic_u64(field as u64).expect("header field");
        header(offset_of!(SegmentHeader, table_offset))
            .store(offset, std::sync::atomic::Ordering::Relaxed);
        self.map
            .atomic_u32(offset_of!(SegmentHeader, table_capacity) as u64)
            .expect("header field")
            .store(capacity, std::sync::atomic::Ordering::Relaxed);
        self.info.table_offset = offset;
        self.info.table_capacity = capacity;
        self.info.alloc_next = header(offset_of!(SegmentHeader, alloc_next))
            .load(std::sync::atomic::Ordering::Relaxed);
        self.info.alloc_count = header(offset_of!(SegmentHeader, alloc_count))
            .load(std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Allocates the exception slot array and records it in the header (before publishing).
    pub(super) fn create_exception_slots(&mut self, slots: u32) -> Result<(), SegmentError> {
        if slots == 0 {
            return Ok(());
        }
        let bytes = u64::from(slots) * shm_layout::EXCEPTION_SLOT_SIZE as u64;
        let offset = self.allocate_raw(BlockKind::Exceptions, bytes, 64)?;
        self.map
            .atomic_u64(offset_of!(SegmentHeader, exception_offset) as u64)
            .expect("header field")
            .store(offset, std::sync::atomic::Ordering::Relaxed);
        self.map
            .atomic_u32(offset_of!(SegmentHeader, exception_slots) as u64)
            .expect("header field")
            .store(slots, std::sync::atomic::Ordering::Relaxed);
        self.info.exception_offset = offset;
        self.info.exception_slots = slots;
        let header = |field: usize| self.map.atomic_u64(field as u64).expect("header field");
        self.info.alloc_next = header(offset_of!(SegmentHeader, alloc_next))
            .load(std::sync::atomic::Ordering::Relaxed);
        self.info.alloc_count = header(offset_of!(SegmentHeader, alloc_count))
            .load(std::sync::atomic::Ordering::Relaxed);
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

    /// Every named object.
    pub fn entries(&self) -> Result<Vec<NamedEntry>, SegmentError> {
        table::list(self.table())
            .into_iter()
            .map(|r| r.map_err(|e| table_error(e, "")))
            .collect()
    }

    /// The named object `name`, if it exists. Lock-free: no mutex, no system call.
    pub fn lookup(&self, name: &str) -> Result<Option<EntryInfo>, SegmentError> {
        let name = object_name(name)?;
        table::lookup(self.table(), &name).map_err(|e| table_error(e, name.as_str()))
    }

    /// Finds `name` (checking its kind, and its parameters with `accept`, which explains a
    /// mismatch) or creates it with `create`.
    pub(crate) fn find_or_create(
        &self,
        name: &str,
        kind: ObjectKind,
        accept: impl FnOnce(&EntryInfo) -> Result<(), String>,
        create: impl FnOnce() -> Result<Created, SegmentError>,
    ) -> Result<EntryInfo, SegmentError> {
        let name = object_name(name)?;
        let lookup =
            table::lookup(self.table(), &name).map_err(|e| table_error(e, name.as_str()))?;
        let info = match lookup {
            Some(info) => info,
            None => {
                table::find_or_create(
                    self.table(),
                    &name,
                    kind,
                    Deadline::after(self.create_wait),
                    create,
                )
                .map_err(|e| match e {
                    TableError::Create(err) => err,
                    TableError::Full { capacity } => SegmentError::TableFull { capacity },
                    TableError::Busy { creator_pid, tid } => SegmentError::EntryBusy {
                        name: name.to_string(),
                        creator_pid,
                        tid,
                        waited: self.create_wait,
                    },
                    TableError::Corrupt { index, what } => SegmentError::Corrupt {
                        what: "table entry",
                        detail: format!("entry {index}: {what}"),
                    },
                })?
                .0
            }
        };
        if info.kind != kind {
            return Err(SegmentError::KindMismatch {
                name: name.to_string(),
                existing: info.kind.name(),
                requested: kind.name(),
            });
        }
        accept(&info).map_err(|detail| SegmentError::ParamMismatch {
            name: name.to_string(),
            detail,
        })?;
        Ok(info)
    }

    /// Allocates an object whose all-zero bytes are its initial state (a free mutex, a clear
    /// event).
    fn create_zeroed<T>(&self, kind: BlockKind) -> Result<Created, SegmentError> {
        Ok(Created {
            offset: self.allocate_state::<T>(kind, |_| {})?,
            size: size_of::<T>() as u64,
            param: 0,
        })
    }

    /// Finds or creates the mutex `name`.
    pub fn mutex(&self, name: &str) -> Result<Mutex, SegmentError> {
        let info = self.find_or_create(
            name,
            ObjectKind::Mutex,
            |_| Ok(()),
            || self.create_zeroed::<MutexState>(BlockKind::Mutex),
        )?;
        self.mutex_at(info.offset)
    }

    /// Finds or creates the event `name`.
    pub fn event(&self, name: &str) -> Result<Event, SegmentError> {
        let info = self.find_or_create(
            name,
            ObjectKind::Event,
            |_| Ok(()),
            || self.create_zeroed::<EventState>(BlockKind::Event),
        )?;
        self.event_at(info.offset)
    }

    /// Finds or creates the barrier `name` for `parties`; an existing barrier must have the
    /// same number of parties.
    pub fn barrier(&self, name: &str, parties: u32) -> Result<Barrier, SegmentError> {
        let info = self.find_or_create(
            name,
            ObjectKind::Barrier,
            |info| {
                if info.param != u64::from(parties) {
                    return Err(format!(
                        "it has {} parties, {parties} were asked for",
                        info.param
                    ));
                }
                Ok(())
            },
            || {
                let offset = self
                    .alloc_barrier(parties)?
                    .offset()
                    .expect("segment objects have offsets");
                Ok(Created {
                    offset,
                    size: size_of::<shm_layout::BarrierLayout>() as u64,
                    param: u64::from(parties),
                })
            },
        )?;
        self.barrier_at(info.offset)
    }
}

impl Segment {
    /// Test support: claims `name` through the real find-or-create protocol, then stalls
    /// inside creation until `release` is set (or forever), the way a process killed
    /// mid-initialisation would leave it. Used by the multi-process tests; not an API.
    #[doc(hidden)]
    pub fn claim_and_stall_for_test(
        &self,
        name: &str,
        on_claimed: impl FnOnce(),
        release: &std::sync::atomic::AtomicBool,
    ) -> Result<EntryInfo, SegmentError> {
        self.find_or_create(
            name,
            ObjectKind::Event,
            |_| Ok(()),
            || {
                on_claimed();
                while !release.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let offset = self
                    .alloc_event()?
                    .offset()
                    .expect("segment objects have offsets");
                Ok(Created {
                    offset,
                    size: size_of::<shm_layout::EventLayout>() as u64,
                    param: 0,
                })
            },
        )
    }
}

/// Validates an object name into the segment's error type.
pub(crate) fn object_name(name: &str) -> Result<ObjectName<'_>, SegmentError> {
    ObjectName::new(name).map_err(|reason| SegmentError::InvalidObjectName {
        name: name.escape_default().to_string(),
        reason,
    })
}

fn table_error(e: TableError, name: &str) -> SegmentError {
    match e {
        TableError::Corrupt { index, what } => SegmentError::Corrupt {
            what: "table entry",
            detail: format!("entry {index}: {what} (looking up {name:?})"),
        },
        TableError::Full { capacity } => SegmentError::TableFull { capacity },
        TableError::Busy { creator_pid, tid } => SegmentError::EntryBusy {
            name: name.to_owned(),
            creator_pid,
            tid,
            waited: Duration::ZERO,
        },
        TableError::Create(never) => match never {},
    }
}
