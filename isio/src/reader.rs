//! Reading a stream someone else writes: a semaphore claimed the way milk readers claim one
//! (`ImageStreamIO_getsemwaitindex`), and frames copied out tear-free.
//!
//! The reference writer gives readers no lock, only a bracket: `write = 1` before the data,
//! `cnt0++` and `write = 0` after it. A copy is trusted only if `cnt0` is the same and
//! `write` is 0 both before and after it; otherwise the writer was in the data meanwhile and
//! the copy is reported [`Copied::Torn`] (dropped, never published). Everything else in the
//! file — the semaphore words, the PIDs, the keywords — may hold anything; only offsets the
//! checked layout gives are touched.

use super::dir::{pid_alive, stream_path};
use super::layout::{offsets, Parsed, Timespec};
use super::stream::Stream;
use super::writer::{keywords, USER_WORDS};
use super::{sem, IsioError};
use shmkit::{Interrupt, NoInterrupt, Timeout};
use std::path::Path;
use std::sync::atomic::{fence, Ordering};

/// What one copy attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    /// A whole frame.
    Frame(FrameInfo),
    /// The writer changed the frame during the copy: the copy is garbage.
    Torn,
    /// The writer was writing when the copy would have started (no copy was made; its post
    /// comes when it finishes).
    Busy,
    /// `cnt0` has not moved since the last frame.
    Unchanged,
}

/// What came with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// The stream's counter for this frame.
    pub cnt0: u64,
    /// Frames the stream wrote since the previous copy and this reader never copied.
    pub missed: u64,
    /// Acquisition time (`CLOCK_TAI`).
    pub atime: Timespec,
    /// Write time (`CLOCK_TAI`).
    pub writetime: Timespec,
    /// The frame id and user words a shmkit writer carried in its `SHMKIT_*` keywords, if
    /// the stream has them.
    pub shmkit: Option<ShmkitWords>,
}

/// The values of a shmkit writer's keywords for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmkitWords {
    /// `SHMKIT_ID`: the source ring's frame id.
    pub id: u64,
    /// `SHMKIT_TS`: the source ring's publish time, `CLOCK_MONOTONIC` ns of its host.
    pub ts_ns: u64,
    /// `SHMKIT_U0` … `SHMKIT_U4`.
    pub user: [u64; USER_WORDS],
}

/// A reader of one stream file, holding one of its semaphores.
#[derive(Debug)]
pub struct StreamReader {
    stream: Stream,
    index: u16,
    pid: i32,
    last_cnt0: u64,
    /// Whether the keywords at shmkit's indices carry shmkit's names.
    shmkit_keywords: bool,
}

impl StreamReader {
    /// Opens stream `name` in `dir`.
    pub fn open_named(dir: &Path, name: &str, preferred: u16) -> Result<StreamReader, IsioError> {
        StreamReader::open(&stream_path(dir, name)?, preferred)
    }

    /// Opens the stream file at `path` and claims a semaphore: the one this process already
    /// holds, else `preferred` if free, else the first free one (free: its reader PID is 0,
    /// -1 or a dead process). Pending posts on it are flushed, so the first wait is for the
    /// next frame. Frames already in the stream count as seen.
    ///
    /// The file must belong to this user or root ([`IsioError::Owner`] otherwise); see
    /// [`StreamReader::open_trusting`] to read another user's streams.
    pub fn open(path: &Path, preferred: u16) -> Result<StreamReader, IsioError> {
        StreamReader::open_trusting(path, preferred, &[])
    }

    /// [`StreamReader::open`], also accepting a file owned by one of the `trusted` uids.
    pub fn open_trusting(
        path: &Path,
        preferred: u16,
        trusted: &[u32],
    ) -> Result<StreamReader, IsioError> {
        let stream = Stream::open(path, trusted)?;
        let pid = std::process::id() as i32;
        let count = stream.parsed().layout.sem;
        let index = claim(&stream, pid, preferred).ok_or(IsioError::NoSemaphore { count })?;
        // SAFETY: semaphore `index` of the checked layout.
        unsafe { sem::flush(stream.sem(index)) }.map_err(|source| IsioError::Semaphore {
            path: stream.path().to_owned(),
            index,
            source,
        })?;
        let shmkit_keywords = stream.parsed().layout.nb_kw >= keywords::USED
            && stream.read_keyword(keywords::ID.0).name() == keywords::ID.1
            && stream.read_keyword(keywords::TS.0).name() == keywords::TS.1
            && (0..USER_WORDS as u16)
                .all(|u| stream.read_keyword(keywords::USER0 + u).name() == format!("SHMKIT_U{u}"));
        let last_cnt0 = stream.u64_word(offsets::CNT0).load(Ordering::Acquire);
        Ok(StreamReader {
            stream,
            index,
            pid,
            last_cnt0,
            shmkit_keywords,
        })
    }

    /// The semaphore this reader waits on.
    pub fn semaphore(&self) -> u16 {
        self.index
    }

    /// The checked header (as read at open).
    pub fn parsed(&self) -> &Parsed {
        self.stream.parsed()
    }

    /// The stream file.
    pub fn path(&self) -> &Path {
        self.stream.path()
    }

    /// The inode this reader maps.
    pub fn inode(&self) -> u64 {
        self.stream.inode()
    }

    /// Does the path still name the file this reader maps (not removed or re-created)?
    pub fn still_current(&self) -> bool {
        self.stream.still_current()
    }

    /// The stream's counter now.
    pub fn cnt0(&self) -> u64 {
        self.stream.u64_word(offsets::CNT0).load(Ordering::Acquire)
    }

    /// Is the last writer that posted (or the creator) alive?
    pub fn writer_alive(&self) -> bool {
        let md = &self.stream.parsed().metadata;
        let word = |at: usize| self.stream.u64_word(at).load(Ordering::Relaxed) as i64;
        let written = Timespec {
            sec: word(offsets::WRITETIME),
            nsec: word(offsets::WRITETIME + 8),
        };
        pid_alive(
            self.stream.write_pid(self.index).load(Ordering::Relaxed),
            Some(written),
        ) || pid_alive(md.creator_pid, Some(md.creationtime))
    }

    /// Waits up to `timeout` for the writer's post on this reader's semaphore.
    pub fn wait(&self, timeout: impl Into<Timeout>) -> Result<bool, IsioError> {
        self.wait_interruptible(timeout.into(), &NoInterrupt)
            .or_else(|e| match e {
                IsioError::Interrupted => Ok(false),
                other => Err(other),
            })
    }

    /// [`wait`](Self::wait) within `timeout`, giving up with [`IsioError::Interrupted`]
    /// within 100 ms of `interrupt` saying stop.
    pub fn wait_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<bool, IsioError> {
        let sem = self.stream.sem(self.index);
        // SAFETY: semaphore `index` of the checked layout.
        let waited =
            unsafe { sem::wait_interruptible(sem, timeout, interrupt) }.map_err(|source| {
                IsioError::Semaphore {
                    path: self.stream.path().to_owned(),
                    index: self.index,
                    source,
                }
            })?;
        match waited {
            sem::Waited::Posted => Ok(true),
            sem::Waited::TimedOut => Ok(false),
            sem::Waited::Interrupted => Err(IsioError::Interrupted),
        }
    }

    /// Copies the newest frame into `dst` (up to its length) if `cnt0` moved, checking the
    /// copy against the writer's bracket. Fails only if the file was truncated under us.
    pub fn copy_frame(&mut self, dst: &mut [u8]) -> Result<Copied, IsioError> {
        let s = &self.stream;
        // Acquire: pairs with the writer's Release store of `cnt0`: frame `c1`'s bytes are
        // visible below.
        let c1 = s.u64_word(offsets::CNT0).load(Ordering::Acquire);
        if c1 == self.last_cnt0 {
            return Ok(Copied::Unchanged);
        }
        if s.u8_word(offsets::WRITE).load(Ordering::Acquire) != 0 {
            return Ok(Copied::Busy);
        }
        if !s.long_enough() {
            return Err(truncated(s));
        }
        let (src, len) = s.data();
        let n = len.min(dst.len());
        // SAFETY: `src` is the data region, `len` ≥ `n` bytes inside the mapping (the file
        // is still that long); `dst` is the caller's. A concurrent writer can change the
        // bytes (that is what the bracket check below detects), never their location.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), n) };
        let word = |at: usize| s.u64_word(at).load(Ordering::Relaxed);
        let time = |at: usize| Timespec {
            sec: word(at) as i64,
            nsec: word(at + 8) as i64,
        };
        let atime = time(offsets::ATIME);
        let writetime = time(offsets::WRITETIME);
        let shmkit = self.shmkit_keywords.then(|| {
            let kw = |i: u16| {
                s.keyword_word(i, super::layout::Keyword::VALUE)
                    .load(Ordering::Relaxed)
            };
            let mut user = [0u64; USER_WORDS];
            for (u, v) in user.iter_mut().enumerate() {
                *v = kw(keywords::USER0 + u as u16);
            }
            ShmkitWords {
                id: kw(keywords::ID.0),
                ts_ns: kw(keywords::TS.0),
                user,
            }
        });
        // Acquire fence: pairs with the writer's Release fence after `write = 1`: if the copy
        // saw any byte of a later write, the loads below see that write's `write = 1` (or its
        // end, whose Release store of `write = 0` comes after its `cnt0`, loaded second).
        fence(Ordering::Acquire);
        let w2 = s.u8_word(offsets::WRITE).load(Ordering::Acquire);
        let c2 = s.u64_word(offsets::CNT0).load(Ordering::Relaxed);
        if !s.long_enough() {
            // Truncated during the copy: some of it may be the zeros that replaced the
            // vanished pages, not the writer's bytes.
            return Err(truncated(s));
        }
        if w2 != 0 || c2 != c1 {
            return Ok(Copied::Torn);
        }
        let missed = c1.wrapping_sub(self.last_cnt0).saturating_sub(1);
        self.last_cnt0 = c1;
        Ok(Copied::Frame(FrameInfo {
            cnt0: c1,
            missed,
            atime,
            writetime,
            shmkit,
        }))
    }
}

fn truncated(s: &Stream) -> IsioError {
    IsioError::Changed {
        path: s.path().to_owned(),
        reason: "the file was truncated while mapped".into(),
    }
}

/// Claims a semaphore index for `pid` (the reference's order), with a compare-and-swap so
/// two readers starting together cannot take the same one.
fn claim(stream: &Stream, pid: i32, preferred: u16) -> Option<u16> {
    let count = stream.parsed().layout.sem;
    if let Some(i) = (0..count).find(|&i| stream.read_pid(i).load(Ordering::Relaxed) == pid) {
        return Some(i);
    }
    let take = |i: u16| {
        let word = stream.read_pid(i);
        let held = word.load(Ordering::Relaxed);
        (held <= 0 || !pid_alive(held, None))
            && word
                .compare_exchange(held, pid, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    };
    if preferred < count && take(preferred) {
        return Some(preferred);
    }
    (0..count).find(|&i| take(i))
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        // The index goes back to "free" as the creator left it; only if it is still ours.
        let _ = self.stream.read_pid(self.index).compare_exchange(
            self.pid,
            -1,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}
