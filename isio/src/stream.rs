//! One stream file mapped, its header checked once ([`layout::parse`]) before anything is
//! attached; afterwards only offsets the checked layout gives are touched, through raw
//! pointers and atomics (the file is shared with processes that write it as plain C memory,
//! so no Rust reference to its bytes is ever made).
//!
//! The creator maps the file read-write. A reader maps it read-only and, in a second mapping,
//! read-write only from the page holding the semaphores to the end: the protocol has a reader
//! write its semaphore (the wait decrements it) and its reader-PID word, nothing before them.
//! The header, the data and the keywords are then out of a reader's reach, whatever its bugs,
//! except what shares a page with the first semaphore (`mmap` maps whole pages, and the
//! reference layout packs the regions back to back).
//!
//! A process may truncate the file while it is mapped. Every mapping is registered with
//! [`shmkit::os::sigbus`], so an access to a vanished page reads zeros instead of killing the
//! process; the reader and the writer check the file's size after each frame
//! ([`Stream::long_enough`]) and report the truncation as [`IsioError::Changed`], so a frame
//! that was (partly) zeros is never published.

use super::layout::{self, Keyword, Metadata, Parsed, PROCTRACE_SIZE};
use super::sys::{self, page_size};
use super::IsioError;
use memmap2::MmapRaw;
use shmkit::os::sigbus::Guard;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8};
use zerocopy::{FromZeros, IntoBytes};

/// The largest stream file opened (1 TiB): a length beyond is a corrupt size, not a stream.
const MAX_FILE: u64 = 1 << 40;

/// A mapped stream.
pub(crate) struct Stream {
    path: PathBuf,
    file: File,
    /// Declared before `map`: unregistered before the mapping goes.
    guard: Guard,
    /// The whole file: read-write for the creator, read-only for a reader.
    map: MmapRaw,
    /// A reader's writable mapping of the file from the page holding the semaphores to the
    /// end.
    tail: Option<Tail>,
    parsed: Parsed,
    inode: u64,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("path", &self.path)
            .field("inode", &self.inode)
            .field("layout", &self.parsed.layout)
            .finish()
    }
}

/// A reader's writable part of the file.
struct Tail {
    /// Where in the file it starts (page-aligned).
    offset: u64,
    /// Declared before `map`: unregistered before the mapping goes.
    guard: Guard,
    map: MmapRaw,
}

/// How much of the file a mapping covers and whether it may be written.
#[derive(Clone, Copy)]
enum Part {
    /// All `len` bytes, read-write.
    Whole,
    /// All `len` bytes, read-only.
    WholeReadOnly,
    /// From `offset` (page-aligned) to `len`, read-write.
    From(u64),
}

/// Maps part of `file` (`len` bytes long), guarded against the file shrinking under it.
fn map(file: &File, len: u64, part: Part, path: &Path) -> Result<(Guard, MmapRaw), IsioError> {
    let map = match part {
        Part::Whole => sys::map(file, 0, len, false),
        Part::WholeReadOnly => sys::map(file, 0, len, true),
        Part::From(offset) => sys::map(file, offset, len - offset, false),
    }
    .map_err(|e| IsioError::io("mapping", path, e))?;
    // SAFETY: `map` is this file's mapping of `map.len()` bytes; the guard is stored beside it
    // in a `Stream` that drops the guards first, and every reader of the mapping checks the
    // file's size after its accesses (zeros after a truncation are never taken for data).
    let guard = unsafe { Guard::register(map.as_mut_ptr(), map.len()) }
        .map_err(|e| IsioError::io("guarding the mapping of", path, std::io::Error::other(e)))?;
    Ok((guard, map))
}

impl Stream {
    /// Maps the existing stream file at `path` for a reader and checks it: refused unless
    /// this user, root or one of `trusted` owns it. Only the semaphores' pages and what
    /// follows them are mapped writable.
    pub(crate) fn open(path: &Path, trusted: &[u32]) -> Result<Stream, IsioError> {
        let file = super::dir::open_stream_file(path, true)?;
        super::dir::check_owner(&file, path, trusted)?;
        let meta = file
            .metadata()
            .map_err(|e| IsioError::io("reading the size of", path, e))?;
        let len = meta.len();
        if len < core::mem::size_of::<Metadata>() as u64 {
            return Err(IsioError::TooShort { len });
        }
        if len > MAX_FILE {
            return Err(IsioError::Corrupt("the file is larger than 1 TiB"));
        }
        let (guard, whole) = map(&file, len, Part::WholeReadOnly, path)?;
        let mut header = [0u8; core::mem::size_of::<Metadata>()];
        // SAFETY: the mapping is `len` ≥ 384 bytes long; the header is copied out once and
        // checked as plain bytes (a concurrent writer can only make the check fail).
        unsafe {
            std::ptr::copy_nonoverlapping(whole.as_ptr(), header.as_mut_ptr(), header.len());
        }
        let parsed = layout::parse(&header, len)?;
        // The layout ends with the semaphores and what follows them; `parse` checked that
        // they lie inside the file.
        let offset = parsed.layout.semaphores / page_size() * page_size();
        let (tail_guard, tail) = map(&file, parsed.layout.total, Part::From(offset), path)?;
        Ok(Stream {
            path: path.to_owned(),
            file,
            guard,
            map: whole,
            tail: Some(Tail {
                offset,
                guard: tail_guard,
                map: tail,
            }),
            parsed,
            inode: meta.ino(),
        })
    }

    /// Creates the stream file at `path` (which must not exist) with permissions `mode`,
    /// sized for `md`, with `md` as its header; everything after the header is zero.
    pub(crate) fn create(path: &Path, md: &Metadata, mode: u32) -> Result<Stream, IsioError> {
        let layout = layout::Layout::of(md)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| IsioError::io("creating", path, e))?;
        // The process umask must not decide who may read the stream.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| IsioError::io("setting the mode of", path, e))?;
        file.set_len(layout.total)
            .map_err(|e| IsioError::io("sizing", path, e))?;
        let inode = file
            .metadata()
            .map_err(|e| IsioError::io("reading", path, e))?
            .ino();
        let (guard, map) = map(&file, layout.total, Part::Whole, path)?;
        let mut md = *md;
        md.inode = inode;
        let parsed = layout::parse(md.as_bytes(), layout.total)?;
        // The version string stays zero until the creator has initialised everything
        // (`set_version`): a reader refuses the file until then.
        md.version = [0; 32];
        let bytes = md.as_bytes();
        // SAFETY: the mapping is `layout.total` ≥ 384 bytes; nobody else maps the new file yet.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.as_mut_ptr(), bytes.len()) };
        Ok(Stream {
            path: path.to_owned(),
            file,
            guard,
            map,
            tail: None,
            parsed,
            inode,
        })
    }

    /// Changes header fields of a stream this process is creating (before [`set_version`]
    /// makes it readable: a read-modify-write of the whole header).
    ///
    /// [`set_version`]: Stream::set_version
    pub(crate) fn set_header(&self, change: impl FnOnce(&mut Metadata)) {
        assert!(self.tail.is_none(), "only the creator writes the header");
        let mut md = Metadata::zeroed();
        let bytes = md.as_mut_bytes();
        // SAFETY: the header's 384 bytes, copied out and back; only the creator touches the
        // header before the version is set.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr(), bytes.as_mut_ptr(), 384) };
        change(&mut md);
        let bytes = md.as_bytes();
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.as_mut_ptr(), 384) };
    }

    /// Writes the version string: from now on readers accept the stream.
    pub(crate) fn set_version(&self) {
        assert!(self.tail.is_none(), "only the creator writes the header");
        let version = self.parsed.metadata.version;
        for (i, &b) in version.iter().enumerate() {
            self.u8_word(i)
                .store(b, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The checked header and layout.
    pub(crate) fn parsed(&self) -> &Parsed {
        &self.parsed
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The inode mapped.
    pub(crate) fn inode(&self) -> u64 {
        self.inode
    }

    /// Is the file at the path still this one, at least as long as its layout?
    pub(crate) fn still_current(&self) -> bool {
        self.change().is_none()
    }

    /// What happened to the file since it was mapped, if anything: removed, replaced by
    /// another file, or truncated (now, or at some point: a mapping that lost a page stays
    /// poisoned).
    pub(crate) fn change(&self) -> Option<&'static str> {
        if self.poisoned() {
            return Some("the file was truncated while mapped");
        }
        match std::fs::metadata(&self.path) {
            Err(_) => Some("the stream file was removed"),
            Ok(m) if m.ino() != self.inode => Some("the stream file was replaced by another"),
            Ok(m) if m.len() < self.parsed.layout.total => {
                Some("the file was truncated while mapped")
            }
            Ok(_) => None,
        }
    }

    /// Has an access to this mapping found a page gone (the file shrank)? Free to ask: no
    /// system call.
    pub(crate) fn poisoned(&self) -> bool {
        self.guard.poisoned() || self.tail.as_ref().is_some_and(|t| t.guard.poisoned())
    }

    /// A mapping that lost a page to a truncation is not, even if the file grew back.
    pub(crate) fn long_enough(&self) -> bool {
        !self.poisoned()
            && self
                .file
                .metadata()
                .is_ok_and(|m| m.len() >= self.parsed.layout.total)
    }

    /// A pointer `offset` bytes into the file's mapping: the writable tail's for a reader
    /// when the offset lies in it (a reader writes only there), else the whole file's.
    fn at(&self, offset: u64) -> *mut u8 {
        assert!(
            offset < self.parsed.layout.total,
            "offset inside the layout"
        );
        match &self.tail {
            // SAFETY: `offset` is in `tail.offset..total`, the tail mapping's range.
            Some(tail) if offset >= tail.offset => unsafe {
                tail.map.as_mut_ptr().add((offset - tail.offset) as usize)
            },
            // SAFETY: `offset` is inside the whole-file mapping (asserted against the checked
            // layout, which `parse` checked against the file's length).
            _ => unsafe { self.map.as_mut_ptr().add(offset as usize) },
        }
    }

    /// The header word at `offset` (8-aligned: the layout's constants are).
    pub(crate) fn u64_word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset % 8 == 0 && offset + 8 <= 384);
        // SAFETY: inside the header, 8-aligned (the mapping is page-aligned); an atomic view
        // of shared memory is the point; the mapping lives as long as `self`.
        unsafe { AtomicU64::from_ptr(self.at(offset as u64).cast()) }
    }

    /// The header byte at `offset`.
    pub(crate) fn u8_word(&self, offset: usize) -> &AtomicU8 {
        debug_assert!(offset < 384);
        // SAFETY: inside the header; bytes need no alignment.
        unsafe { AtomicU8::from_ptr(self.at(offset as u64)) }
    }

    /// Element `index` of the 4-byte array at `region` (`index < sem`).
    fn word32(&self, region: u64, index: u16) -> *mut u8 {
        assert!(index < self.parsed.layout.sem, "semaphore index in range");
        self.at(region + 4 * u64::from(index))
    }

    /// Reader PID of semaphore `index`.
    pub(crate) fn read_pid(&self, index: u16) -> &AtomicI32 {
        // SAFETY: inside the read-PID array (index checked), 4-aligned (regions start at
        // multiples of 8).
        unsafe { AtomicI32::from_ptr(self.word32(self.parsed.layout.read_pids, index).cast()) }
    }

    /// Writer PID of semaphore `index`.
    pub(crate) fn write_pid(&self, index: u16) -> &AtomicI32 {
        // SAFETY: as `read_pid`, in the write-PID array.
        unsafe { AtomicI32::from_ptr(self.word32(self.parsed.layout.write_pids, index).cast()) }
    }

    /// Status word of semaphore `index` (`IMAGE_SEMAPHORE_STATUS_*`).
    pub(crate) fn sem_status(&self, index: u16) -> &AtomicU32 {
        // SAFETY: as `read_pid`, in the status array.
        unsafe { AtomicU32::from_ptr(self.word32(self.parsed.layout.semstatus, index).cast()) }
    }

    /// Semaphore `index`.
    pub(crate) fn sem(&self, index: u16) -> *mut libc::sem_t {
        assert!(index < self.parsed.layout.sem, "semaphore index in range");
        self.at(self.parsed.layout.semaphores + 32 * u64::from(index))
            .cast()
    }

    /// The logging semaphore.
    pub(crate) fn semlog(&self) -> *mut libc::sem_t {
        self.at(self.parsed.layout.semlog).cast()
    }

    /// Keyword `index`'s bytes (`index < nb_kw`).
    pub(crate) fn keyword(&self, index: u16) -> *mut u8 {
        assert!(index < self.parsed.layout.nb_kw, "keyword index in range");
        self.at(self.parsed.layout.keywords + 128 * u64::from(index))
    }

    /// The 8-byte word `field` bytes into keyword `index` ([`Keyword::VALUE`] or
    /// [`Keyword::CNT`]).
    pub(crate) fn keyword_word(&self, index: u16, field: u64) -> &AtomicU64 {
        debug_assert!(field % 8 == 0 && field + 8 <= 128);
        // SAFETY: inside keyword `index` (checked by `keyword`), 8-aligned (keywords start at
        // a multiple of 8 and are 128 bytes each); the mapping lives as long as `self`.
        unsafe { AtomicU64::from_ptr(self.keyword(index).add(field as usize).cast()) }
    }

    /// A copy of keyword `index` (a writer may be changing it: the caller checks the copy
    /// against the frame counter as it checks the data).
    pub(crate) fn read_keyword(&self, index: u16) -> Keyword {
        let mut kw = Keyword::new_zeroed();
        let bytes = kw.as_mut_bytes();
        // SAFETY: 128 bytes inside the keyword array (index checked by `keyword`) into a
        // local; any bytes are a valid `Keyword`.
        unsafe { std::ptr::copy_nonoverlapping(self.keyword(index), bytes.as_mut_ptr(), 128) };
        kw
    }

    /// Writes keyword `index` whole (the creator, before anyone reads the stream).
    pub(crate) fn write_keyword(&self, index: u16, kw: &Keyword) {
        assert!(self.tail.is_none(), "only the creator writes keywords");
        let bytes = kw.as_bytes();
        // SAFETY: 128 bytes inside the keyword array (index checked by `keyword`).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.keyword(index), 128) };
    }

    /// The `i32` `field` bytes into process-trace entry `index`.
    pub(crate) fn proctrace_i32(&self, index: u16, field: u64) -> &AtomicI32 {
        let l = &self.parsed.layout;
        let nb = self.parsed.metadata.nb_proctrace;
        assert!(index < nb && field % 4 == 0 && field + 4 <= PROCTRACE_SIZE);
        // SAFETY: inside entry `index` of the process-trace region (bounds asserted),
        // 4-aligned (the region starts at a multiple of 8, entries are 64 bytes).
        unsafe {
            AtomicI32::from_ptr(
                self.at(l.proctrace + PROCTRACE_SIZE * u64::from(index) + field)
                    .cast(),
            )
        }
    }

    /// The data region and its length.
    pub(crate) fn data(&self) -> (*mut u8, usize) {
        let l = &self.parsed.layout;
        if l.data_len == 0 {
            return (std::ptr::null_mut(), 0);
        }
        (self.at(l.data), l.data_len as usize)
    }
}
