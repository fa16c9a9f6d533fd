//! A named shared memory segment: create, open, validate, close, unlink.
//!
//! A segment is a POSIX shared memory object mapped `MAP_SHARED`, starting with the header of
//! `shm-layout`. Creation is exclusive (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600 unless asked
//! otherwise); opening checks the owner, waits (bounded) for a creator that is still writing
//! the header, and validates every header field before handing out a [`Segment`]. Objects are
//! placed by the allocator (`alloc`) and re-attached by offset from any process.

mod alloc;
mod error;
mod header_view;
mod image;
mod mapping;
mod name;
pub(crate) mod named;
mod object;
mod raw;

pub use crate::table::{EntryInfo, NamedEntry, ObjectName};
pub use error::SegmentError;
pub(crate) use image::{object_block, validate_bytes, ImageBytes, SegmentBytes};
pub use image::{validate_image, BlockInfo, HeaderInfo};
pub use name::{SegmentName, MAX_NAME_LEN};
pub(crate) use object::sealed;
pub use object::{Placed, SegmentObject, SegmentObjects};
pub use raw::RawMemory;
pub use shm_layout::{BlockKind, ObjectKind};

/// How long a find-or-create waits for another creator of the same name by default.
pub const DEFAULT_CREATE_WAIT: Duration = Duration::from_secs(5);

/// Most exception slots a segment may have.
pub const MAX_EXCEPTION_SLOTS: u32 = 4096;

/// Largest named-object table a segment may have.
pub const MAX_TABLE_CAPACITY: u32 = 1 << 20;
const TABLE_ENTRY_SIZE: u64 = std::mem::size_of::<shm_layout::TableEntry>() as u64;

use crate::sys::clock::Deadline;
use crate::sys::identity::{current_process, Liveness};
use crate::sys::shm;
use header_view::HeaderView;
use image::{check_header, HeaderCheck};
use mapping::Mapping;
use shm_layout::{SegmentState, HEADER_SIZE, LAYOUT_HASH, MAGIC, VERSION_MAJOR, VERSION_MINOR};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How to create a segment.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    size: u64,
    mode: u32,
    memory: MemoryOptions,
    table_capacity: u32,
    exception_slots: u32,
}

/// How to treat the mapping's pages (for both create and open).
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryOptions {
    /// Fault every page in at map time, so the first touch does not page-fault.
    pub prefault: bool,
    /// `mlock` the mapping: its pages are never swapped out (implies `prefault`). Needs
    /// `RLIMIT_MEMLOCK` room or `CAP_IPC_LOCK`.
    pub lock_in_memory: bool,
}

impl CreateOptions {
    /// A segment of `size` bytes (header included), mode 0600.
    pub fn new(size: u64) -> Self {
        CreateOptions {
            size,
            mode: 0o600,
            memory: MemoryOptions::default(),
            table_capacity: shm_layout::TABLE_DEFAULT_CAPACITY,
            exception_slots: shm_layout::EXCEPTION_DEFAULT_SLOTS,
        }
    }

    /// Exception slots for child processes (default 32, 4 KiB each): at most this many
    /// children spawned from the segment can be running or awaiting `join` at once.
    pub fn exception_slots(mut self, slots: u32) -> Self {
        self.exception_slots = slots;
        self
    }

    /// Entries in the named-object table (default 1024, 128 bytes each).
    pub fn table_capacity(mut self, entries: u32) -> Self {
        self.table_capacity = entries;
        self
    }

    /// Permission bits (default 0600: only this user). Widening is an explicit choice.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Prefault and/or lock the mapping.
    pub fn memory(mut self, memory: MemoryOptions) -> Self {
        self.memory = memory;
        self
    }
}

/// How to open an existing segment.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// How long to wait for a creator that is still initialising the segment.
    pub init_timeout: Duration,
    /// Accept a segment owned by another user (its mode bits must still let us in).
    pub allow_other_owner: bool,
    /// Prefault and/or lock the mapping.
    pub memory: MemoryOptions,
    /// How long finding or creating a named object through this handle waits for another
    /// process that is creating the same name before failing with
    /// [`SegmentError::EntryBusy`] (default [`DEFAULT_CREATE_WAIT`], 5 s).
    pub create_wait: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            init_timeout: Duration::from_secs(5),
            allow_other_owner: false,
            memory: MemoryOptions::default(),
            create_wait: DEFAULT_CREATE_WAIT,
        }
    }
}

/// A mapped shmkit segment. Cheap to clone; the mapping lives while any clone or any object
/// handle taken from it lives.
#[derive(Clone)]
pub struct Segment {
    map: Arc<Mapping>,
    name: SegmentName,
    info: HeaderInfo,
    create_wait: Duration,
    /// The file's permission bits when this handle created or opened it.
    mode: u32,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name.as_str())
            .field("size", &self.info.total_size)
            .field("creator", &self.info.creator)
            .finish()
    }
}

fn io_error(op: &'static str, name: &SegmentName, source: io::Error) -> SegmentError {
    match source.kind() {
        io::ErrorKind::NotFound => SegmentError::NotFound {
            name: name.to_string(),
        },
        io::ErrorKind::AlreadyExists => SegmentError::AlreadyExists {
            name: name.to_string(),
        },
        io::ErrorKind::PermissionDenied => SegmentError::PermissionDenied {
            name: name.to_string(),
        },
        _ => SegmentError::Io {
            op,
            name: name.to_string(),
            source,
        },
    }
}

impl Segment {
    /// Creates a new segment; fails with [`SegmentError::AlreadyExists`] if the name is taken.
    pub fn create(name: &str, options: &CreateOptions) -> Result<Segment, SegmentError> {
        let name = SegmentName::new(name)?;
        if !(1..=MAX_TABLE_CAPACITY).contains(&options.table_capacity) {
            return Err(SegmentError::InvalidOption(format!(
                "table capacity {} outside 1..={MAX_TABLE_CAPACITY}",
                options.table_capacity
            )));
        }
        if options.exception_slots > MAX_EXCEPTION_SLOTS {
            return Err(SegmentError::InvalidOption(format!(
                "{} exception slots is above the maximum of {MAX_EXCEPTION_SLOTS}",
                options.exception_slots
            )));
        }
        let table_bytes = u64::from(options.table_capacity) * TABLE_ENTRY_SIZE;
        let slot_bytes =
            u64::from(options.exception_slots) * shm_layout::EXCEPTION_SLOT_SIZE as u64;
        let min = HEADER_SIZE as u64 + table_bytes + slot_bytes + 4096;
        if options.size < min {
            return Err(SegmentError::InvalidOption(format!(
                "size {} is below the minimum of {min} bytes",
                options.size
            )));
        }
        if options.mode & !0o777 != 0 || options.mode & 0o600 != 0o600 {
            return Err(SegmentError::InvalidOption(format!(
                "mode {:o} must be permission bits including owner read-write (0600)",
                options.mode
            )));
        }
        let fd =
            shm::create(name.posix(), options.mode).map_err(|e| io_error("create", &name, e))?;
        let result = (|| {
            shm::set_size(&fd, options.size).map_err(|e| io_error("ftruncate", &name, e))?;
            // The mode as created: the umask may have taken bits off `options.mode`.
            let mode = shm::stat(&fd)
                .map_err(|e| io_error("fstat", &name, e))?
                .mode;
            let map = Mapping::map(fd, options.size, options.memory)
                .map_err(|e| io_error("mmap", &name, e))?;
            let info = Self::initialise(&map);
            let mut seg = Segment {
                map: Arc::new(map),
                name: name.clone(),
                info,
                create_wait: DEFAULT_CREATE_WAIT,
                mode,
            };
            seg.create_table(options.table_capacity)?;
            seg.create_exception_slots(options.exception_slots)?;
            seg.publish();
            Ok(seg)
        })();
        if result.is_err() {
            let _ = shm::unlink(name.posix());
        }
        result
    }

    /// Writes the header of a fresh (zero-filled) mapping; `state` last, with Release.
    fn initialise(map: &Mapping) -> HeaderInfo {
        let me = current_process();
        let created_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let h = map
            .view_at::<HeaderView>(0)
            .expect("a new segment holds at least its header");
        // Creator identity first, so an opener that finds the segment still initialising can
        // tell a creator at work from a dead one.
        h.creator_pid.store(me.pid, Ordering::Relaxed);
        h.creator_token.store(me.token, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.version_major.store(VERSION_MAJOR, Ordering::Relaxed);
        h.version_minor.store(VERSION_MINOR, Ordering::Relaxed);
        h.header_size.store(HEADER_SIZE as u32, Ordering::Relaxed);
        h.layout_hash.store(LAYOUT_HASH, Ordering::Relaxed);
        h.total_size.store(map.len(), Ordering::Relaxed);
        h.created_unix_ns.store(created_unix_ns, Ordering::Relaxed);
        h.alloc_next.store(HEADER_SIZE as u64, Ordering::Relaxed);
        h.data_start.store(HEADER_SIZE as u64, Ordering::Relaxed);
        // The allocator lock is all zeros: a free, consistent mutex. `state` stays
        // Initialising until `publish`, after the table exists.
        HeaderInfo {
            version: (VERSION_MAJOR, VERSION_MINOR),
            layout_hash: LAYOUT_HASH,
            total_size: map.len(),
            creator: me,
            created_unix_ns,
            data_start: HEADER_SIZE as u64,
            alloc_next: HEADER_SIZE as u64,
            alloc_count: 0,
            table_offset: 0,
            table_capacity: 0,
            exception_offset: 0,
            exception_slots: 0,
        }
    }

    /// Marks the segment ready: the last header store, with Release.
    fn publish(&self) {
        // Release: pairs with the Acquire load of `state` in `open`.
        self.header()
            .state
            .store(SegmentState::Ready as u32, Ordering::Release);
    }

    /// Opens an existing segment with default [`OpenOptions`].
    pub fn open(name: &str) -> Result<Segment, SegmentError> {
        Self::open_with(name, &OpenOptions::default())
    }

    /// Opens an existing segment.
    pub fn open_with(name: &str, options: &OpenOptions) -> Result<Segment, SegmentError> {
        let name = SegmentName::new(name)?;
        let deadline = Deadline::after(options.init_timeout);
        let fd = shm::open(name.posix()).map_err(|e| io_error("open", &name, e))?;
        loop {
            let stat = shm::stat(&fd).map_err(|e| io_error("fstat", &name, e))?;
            let ours = shm::effective_uid();
            if stat.uid != ours && !options.allow_other_owner {
                return Err(SegmentError::WrongOwner {
                    name: name.to_string(),
                    owner: stat.uid,
                    ours,
                });
            }
            if stat.size == 0 {
                // Created but not yet sized: the creator is between shm_open and ftruncate.
                if deadline.expired() {
                    return Err(SegmentError::StillInitialising {
                        name: name.to_string(),
                        creator_pid: 0,
                        waited: options.init_timeout,
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            if stat.size < HEADER_SIZE as u64 {
                return Err(SegmentError::TooSmall {
                    name: name.to_string(),
                    size: stat.size,
                    needed: HEADER_SIZE as u64,
                });
            }
            let fd = fd.try_clone().map_err(|e| io_error("dup", &name, e))?;
            let map = Mapping::map(fd, stat.size, options.memory)
                .map_err(|e| io_error("mmap", &name, e))?;
            return loop {
                match check_header(&map, name.as_str())? {
                    HeaderCheck::Ready(info) => {
                        break Ok(Segment {
                            map: Arc::new(map),
                            name,
                            info,
                            create_wait: options.create_wait,
                            mode: stat.mode,
                        })
                    }
                    HeaderCheck::Initialising { creator } => {
                        if creator.pid != 0 && creator.liveness() == Liveness::Dead {
                            break Err(SegmentError::CreatorDied {
                                name: name.to_string(),
                                creator_pid: creator.pid,
                            });
                        }
                        if deadline.expired() {
                            break Err(SegmentError::StillInitialising {
                                name: name.to_string(),
                                creator_pid: creator.pid,
                                waited: options.init_timeout,
                            });
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            };
        }
    }

    /// Opens the segment if it exists, creates it otherwise. Safe against a racing creator.
    pub fn open_or_create(name: &str, options: &CreateOptions) -> Result<Segment, SegmentError> {
        let open = OpenOptions {
            memory: options.memory,
            ..OpenOptions::default()
        };
        for _ in 0..16 {
            match Self::open_with(name, &open) {
                Err(SegmentError::NotFound { .. }) => {}
                other => return other,
            }
            match Self::create(name, options) {
                // Lost the race to another creator: open theirs.
                Err(SegmentError::AlreadyExists { .. }) => {}
                other => return other,
            }
        }
        Err(SegmentError::Io {
            op: "open_or_create",
            name: name.to_owned(),
            source: io::Error::other("the segment kept appearing and disappearing"),
        })
    }

    /// Removes the segment's name. Processes that have it mapped keep using it; it is freed
    /// when the last one unmaps.
    pub fn unlink(name: &str) -> Result<(), SegmentError> {
        let name = SegmentName::new(name)?;
        shm::unlink(name.posix()).map_err(|e| io_error("unlink", &name, e))
    }

    /// Unmaps this handle. The mapping is released when the last handle (this segment, its
    /// clones and every object taken from it) is gone; `close` reports how many others remain
    /// so a caller that expected to be last can find the leak.
    pub fn close(self) -> Result<(), SegmentError> {
        let others = Arc::strong_count(&self.map) - 1;
        drop(self);
        if others > 0 {
            return Err(SegmentError::StillInUse { handles: others });
        }
        Ok(())
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The header as validated at open (or written at create).
    pub fn info(&self) -> &HeaderInfo {
        &self.info
    }

    /// The segment file's permission bits when this handle created or opened it (0o600
    /// unless its creator asked for more). A segment writable by group or others lets those
    /// users write any byte in it.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Re-reads and re-validates the header and walks every allocated block (public as
    /// [`crate::inspect::blocks`]).
    pub(crate) fn blocks(&self) -> Result<Vec<BlockInfo>, SegmentError> {
        let info = match check_header(&*self.map, self.name.as_str())? {
            HeaderCheck::Ready(info) => info,
            HeaderCheck::Initialising { .. } => {
                return Err(SegmentError::Corrupt {
                    what: "header state",
                    detail: "a ready segment went back to initialising".into(),
                })
            }
        };
        image::walk_blocks(&*self.map, info.data_start, info.alloc_next)
    }

    /// Copies the whole segment into a `Vec` (one atomic load per 8 bytes), for inspection
    /// (public as [`crate::inspect::snapshot`]).
    pub(crate) fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.map.len() as usize);
        for off in (0..self.map.len()).step_by(8) {
            let word = self
                .map
                .atomic_u64(off)
                .map_or(0, |w| w.load(Ordering::Relaxed));
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.truncate(self.map.len() as usize);
        out
    }
}

// These map real shared memory, which Miri cannot do.
#[cfg(all(test, not(miri)))]
mod tests;
