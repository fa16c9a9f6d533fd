//! Creating a stream and writing frames into it exactly as the reference writer
//! (`ImageStreamIO_createIm` + `ImageStreamIO_UpdateIm_atime`) does, so milk readers cannot
//! tell a shmkit writer from their own.
//!
//! A write, step by step (each a store into the shared file):
//!
//! | step | reference | here |
//! |---|---|---|
//! | 1 | `md->write = 1` | `write` ← 1, then a Release fence |
//! | 2 | the caller copies the data | the frame's bytes, and the `SHMKIT_*` keyword values |
//! | 3 | `writetime` ← now (`CLOCK_TAI`), `atime` ← given or now | the same, `atime` given by the caller |
//! | 4 | `cnt0++` | `cnt0` ← `cnt0 + 1`, Release |
//! | 5 | `write = 0` | `write` ← 0, Release |
//! | 6 | post every semaphore whose value is below 10, `semWritePID[i]` ← pid | the same |
//! | 7 | post `semlog` if below 10 | the same |
//!
//! Readers that copy tear-free (shmkit's importer) read `cnt0` and `write` before the copy
//! and again after it: steps 1 and 4–5 bracket the data for them.

use super::dir::{check_name, pid_alive, shm_dir, stream_path, Peek};
use super::layout::{
    self, offsets, proctrace, DataType, Keyword, Metadata, Timespec, DEFAULT_PROCTRACE,
    DEFAULT_SEMAPHORES, MAX_ELEMENTS, VERSION,
};
use super::stream::Stream;
use super::{sem, IsioError};
use shmkit::rings::ElemType;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};

/// User words of a ring frame (`shm_layout::FrameSlot::user`).
pub const USER_WORDS: usize = 5;

/// `MATH_DATA`: the reference `createIm`'s image type.
const MATH_DATA: u64 = 0x0002;

/// The keywords a shmkit writer fills at every frame, at these indices.
pub mod keywords {
    /// The source ring's frame id (`L`).
    pub const ID: (u16, &str) = (0, "SHMKIT_ID");
    /// The source ring's publish time, `CLOCK_MONOTONIC` ns of the writing host (`L`).
    pub const TS: (u16, &str) = (1, "SHMKIT_TS");
    /// The first of the five user words (`SHMKIT_U0` … `SHMKIT_U4`, `L`, at 2 … 6).
    pub const USER0: u16 = 2;
    /// How many keywords shmkit uses.
    pub const USED: u16 = 7;
}

/// How a stream is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// The directory (default: [`shm_dir`]).
    pub dir: PathBuf,
    /// File permissions (default 0600: private to the user, as shmkit segments are; the
    /// reference uses 0666).
    pub mode: u32,
    /// Semaphores (default 10, the reference's): one per concurrent reader.
    pub semaphores: u16,
    /// Keywords (default 16; at least the 7 shmkit fills).
    pub keywords: u16,
}

impl Default for StreamOptions {
    fn default() -> StreamOptions {
        StreamOptions {
            dir: shm_dir(),
            mode: 0o600,
            semaphores: DEFAULT_SEMAPHORES,
            keywords: 16,
        }
    }
}

/// One frame to write.
#[derive(Debug, Clone, Copy)]
pub struct FrameMeta {
    /// The source frame id (keyword `SHMKIT_ID`).
    pub id: u64,
    /// The source publish time, `CLOCK_MONOTONIC` ns (keyword `SHMKIT_TS`).
    pub ts_ns: u64,
    /// Acquisition time for `atime` (`CLOCK_TAI`); `None`: now, as the reference does.
    pub atime: Option<Timespec>,
    /// The five user words (keywords `SHMKIT_U0` … `SHMKIT_U4`).
    pub user: [u64; USER_WORDS],
}

/// The header of a new stream of `elem` elements shaped `shape` (slowest axis first).
pub fn metadata(
    name: &str,
    elem: ElemType,
    shape: &[u32],
    semaphores: u16,
    keywords: u16,
) -> Result<Metadata, IsioError> {
    check_name(name)?;
    if shape.is_empty() || shape.len() > 3 || shape.contains(&0) {
        return Err(IsioError::Unexportable {
            shape: shape.to_vec(),
        });
    }
    let nelement = shape
        .iter()
        .try_fold(1u64, |p, &d| p.checked_mul(u64::from(d)))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| IsioError::Unexportable {
            shape: shape.to_vec(),
        })?;
    let datatype = DataType::of(elem);
    let mut md = Metadata::zeroed();
    md.version[..VERSION.len()].copy_from_slice(VERSION.as_bytes());
    md.name[..name.len()].copy_from_slice(name.as_bytes());
    md.naxis = shape.len() as u8;
    for (i, &d) in shape.iter().rev().enumerate() {
        md.size[i] = d;
    }
    md.nelement = nelement;
    md.datatype = datatype.code();
    md.imagetype = MATH_DATA;
    md.imdatamemsize = nelement * datatype.size();
    md.shared = 1;
    md.location = -1;
    md.sem = semaphores;
    md.nb_kw = keywords.max(keywords::USED);
    md.nb_proctrace = DEFAULT_PROCTRACE;
    Ok(md)
}

/// The live process that writes the stream file at `path`, if any: its creator, its owner,
/// or the last poster of any semaphore. Reads the file as plain bytes (it may be anything).
fn live_writer(path: &Path) -> Option<i32> {
    let peek = Peek::read(path).ok()?;
    let own = std::process::id() as i32;
    let created = Some(peek.header_time(offsets::CREATIONTIME));
    let written = Some(peek.header_time(offsets::WRITETIME));
    let mut pids = vec![
        (peek.header_i32(offsets::CREATOR_PID), created),
        (peek.header_i32(offsets::OWNER_PID), created),
    ];
    if let Ok(parsed) = peek.parse() {
        let posters = peek.write_pids(&parsed).unwrap_or_default();
        pids.extend(posters.into_iter().map(|p| (p, written)));
    }
    pids.into_iter()
        .find(|&(p, by)| p != own && pid_alive(p, by))
        .map(|(p, _)| p)
}

/// A stream this process created and writes. Dropping it removes the file (if the path still
/// names it), so a clean exit leaves nothing behind; a killed writer's file is replaced by the
/// next writer of the name.
#[derive(Debug)]
pub struct StreamWriter {
    stream: Stream,
    pid: i32,
    cnt0: u64,
}

impl StreamWriter {
    /// Creates stream `name` for frames of `elem` shaped `shape` (slowest axis first, 1 to 3
    /// axes). A file of that name whose writer is alive is refused ([`IsioError::InUse`]);
    /// one whose writers are all dead (or that is not a stream) is replaced, as the
    /// reference does.
    pub fn create(
        name: &str,
        elem: ElemType,
        shape: &[u32],
        options: &StreamOptions,
    ) -> Result<StreamWriter, IsioError> {
        let md = metadata(name, elem, shape, options.semaphores, options.keywords)?;
        let path = stream_path(&options.dir, name)?;
        // Two tries: a file that appears between the unlink and the create is another
        // writer's, checked once more.
        let mut attempt = 0;
        let stream = loop {
            if let Some(pid) = live_writer(&path) {
                return Err(IsioError::InUse { path, pid });
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(IsioError::io("removing the stale stream", &path, e)),
            }
            match Stream::create(&path, &md, options.mode) {
                Err(IsioError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists && attempt == 0 =>
                {
                    attempt += 1;
                }
                other => break other?,
            }
        };
        let writer = StreamWriter {
            stream,
            pid: std::process::id() as i32,
            cnt0: 0,
        };
        writer.initialise()?;
        Ok(writer)
    }

    /// Everything `createIm` sets after sizing, the version string last ("so the stream
    /// cannot be used until it is ready", as the reference says).
    fn initialise(&self) -> Result<(), IsioError> {
        let s = &self.stream;
        let l = s.parsed().layout;
        for i in 0..l.sem {
            // SAFETY: semaphore `i` of the new file's layout; nobody uses it before the
            // version string below says the stream is ready.
            unsafe { sem::init(s.sem(i)) }
                .map_err(|e| IsioError::io("initialising a semaphore of", s.path(), e))?;
            s.read_pid(i).store(-1, Ordering::Relaxed);
            s.write_pid(i).store(-1, Ordering::Relaxed);
            s.sem_status(i).store(0, Ordering::Relaxed);
        }
        // SAFETY: as above, the logging semaphore.
        unsafe { sem::init(s.semlog()) }
            .map_err(|e| IsioError::io("initialising the log semaphore of", s.path(), e))?;
        for i in 0..s.parsed().metadata.nb_proctrace {
            s.proctrace_i32(i, proctrace::TRIGSEMINDEX)
                .store(-1, Ordering::Relaxed);
        }
        for i in 0..l.nb_kw {
            s.write_keyword(i, &Keyword::unused());
        }
        s.write_keyword(
            keywords::ID.0,
            &Keyword::long(keywords::ID.1, 0, "shmkit frame id in the source ring"),
        );
        s.write_keyword(
            keywords::TS.0,
            &Keyword::long(keywords::TS.1, 0, "shmkit publish time, CLOCK_MONOTONIC ns"),
        );
        for u in 0..USER_WORDS as u16 {
            s.write_keyword(
                keywords::USER0 + u,
                &Keyword::long(&format!("SHMKIT_U{u}"), 0, "shmkit frame user word"),
            );
        }
        let now = super::time::tai_now();
        s.set_header(|md| {
            md.creationtime = now;
            md.lastaccesstime = now;
            md.creator_pid = self.pid;
            md.owner_pid = self.pid;
        });
        // Release: everything above is visible to a reader that sees the version.
        fence(Ordering::Release);
        s.set_version();
        Ok(())
    }

    /// The stream file.
    pub fn path(&self) -> &Path {
        self.stream.path()
    }

    /// Frames written (`cnt0`).
    pub fn cnt0(&self) -> u64 {
        self.cnt0
    }

    /// Bytes of one frame.
    pub fn frame_len(&self) -> usize {
        self.stream.data().1
    }

    /// The checked header this writer created.
    pub fn parsed(&self) -> &layout::Parsed {
        self.stream.parsed()
    }

    /// Does the stream's path still name this writer's file (no one removed, replaced or
    /// truncated it)?
    pub fn still_current(&self) -> bool {
        self.stream.still_current()
    }

    /// What another process did to the stream's file since this writer created it (removed,
    /// replaced or truncated it), if anything.
    pub fn change(&self) -> Option<&'static str> {
        self.stream.change()
    }

    /// Has a write found a page of the file gone (someone truncated it)? No system call:
    /// cheap enough to ask after every frame.
    pub fn truncated(&self) -> bool {
        self.stream.poisoned()
    }

    /// Writes one frame: `data` (its first `frame_len` bytes; a shorter frame is zero-padded)
    /// and `meta`, then posts every semaphore, exactly as the reference writer does (module
    /// docs). Returns the new `cnt0`.
    pub fn write(&mut self, data: &[u8], meta: &FrameMeta) -> u64 {
        let s = &self.stream;
        s.u8_word(offsets::WRITE).store(1, Ordering::Relaxed);
        // Release fence: orders `write = 1` before the data stores below; pairs with the
        // Acquire fence a tear-checking reader issues after its copy (it then sees `write`
        // or `cnt0` changed if it saw any byte of this frame).
        fence(Ordering::Release);
        let (dst, len) = s.data();
        let n = data.len().min(len);
        // SAFETY: `dst` is the data region, `len` bytes inside the mapping; `data` is a
        // caller's slice that cannot overlap it (the mapping is this writer's own).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst, n);
            if n < len {
                std::ptr::write_bytes(dst.add(n), 0, len - n);
            }
        }
        let kw = |index: u16, value: u64| {
            s.keyword_word(index, Keyword::VALUE)
                .store(value, Ordering::Relaxed);
            s.keyword_word(index, Keyword::CNT)
                .fetch_add(1, Ordering::Relaxed);
        };
        kw(keywords::ID.0, meta.id);
        kw(keywords::TS.0, meta.ts_ns);
        for (u, &value) in meta.user.iter().enumerate() {
            kw(keywords::USER0 + u as u16, value);
        }
        let now = super::time::tai_now();
        let atime = meta.atime.unwrap_or(now);
        let ts = |at: usize, t: Timespec| {
            s.u64_word(at).store(t.sec as u64, Ordering::Relaxed);
            s.u64_word(at + 8).store(t.nsec as u64, Ordering::Relaxed);
        };
        ts(offsets::WRITETIME, now);
        ts(offsets::ATIME, atime);
        // The stream's own counter, not ours: another writer of the same stream (milk lets
        // several) keeps counting from where it is.
        let cnt0 = s
            .u64_word(offsets::CNT0)
            .load(Ordering::Relaxed)
            .wrapping_add(1);
        // Release: the data and timestamps above happen before the new count; pairs with
        // the reader's Acquire load of `cnt0` before its copy.
        s.u64_word(offsets::CNT0).store(cnt0, Ordering::Release);
        s.u8_word(offsets::WRITE).store(0, Ordering::Release);
        for i in 0..s.parsed().layout.sem {
            // A semaphore another process vandalised is its reader's loss, not the other
            // readers': it is not posted, and the next frame tries it again.
            // SAFETY: semaphore `i` of the checked layout, initialised at creation.
            if unsafe { sem::post_capped(s.sem(i)) } == Ok(true) {
                s.write_pid(i).store(self.pid, Ordering::Relaxed);
            }
        }
        // SAFETY: the logging semaphore of the checked layout.
        let _ = unsafe { sem::post_capped(s.semlog()) };
        self.cnt0 = cnt0;
        cnt0
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        shmkit::os::files::remove_if_same(self.stream.path(), self.stream.inode());
    }
}
