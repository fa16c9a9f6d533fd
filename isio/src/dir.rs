//! Where streams live and what they are called: `$MILK_SHM_DIR` if it names a directory,
//! else `/milk/shm` if it exists, else `/tmp` (the reference's order); a stream `NAME` is the
//! file `NAME.im.shm` there. [`list`] reads every stream's header without mapping it.

use super::layout::{self, Metadata};
use super::IsioError;
use serde::Serialize;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The file name suffix of a stream.
pub const SUFFIX: &str = ".im.shm";

/// Opens the stream file at `path` for reading (and writing if `write`): never through a
/// symbolic link (`O_NOFOLLOW`), never waiting for a FIFO's other end (`O_NONBLOCK`, which a
/// regular file ignores), and only if what it opened is a regular file. A stream directory
/// such as `/tmp` is shared: a FIFO or a link planted under a stream's name must be refused
/// at once, not hang the reader or lead it to another file.
pub(crate) fn open_stream_file(path: &Path, write: bool) -> Result<std::fs::File, IsioError> {
    use shmkit::os::files::{open_regular, OpenRegularError};
    match open_regular(path, write) {
        Ok((file, _)) => Ok(file),
        Err(OpenRegularError::NotRegular(found)) => Err(IsioError::NotAFile {
            path: path.to_owned(),
            found,
        }),
        Err(OpenRegularError::Io(e)) => Err(IsioError::io("opening", path, e)),
    }
}

/// Refuses `file` (at `path`) unless this user, root or one of `trusted` owns it.
pub(crate) fn check_owner(
    file: &std::fs::File,
    path: &Path,
    trusted: &[u32],
) -> Result<(), IsioError> {
    use std::os::unix::fs::MetadataExt;
    let owner = file
        .metadata()
        .map_err(|e| IsioError::io("reading the owner of", path, e))?
        .uid();
    let me = super::sys::effective_uid();
    if owner == me || owner == 0 || trusted.contains(&owner) {
        return Ok(());
    }
    Err(IsioError::Owner {
        path: path.to_owned(),
        owner,
    })
}

/// The stream directory, resolved as the reference does.
pub fn shm_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MILK_SHM_DIR") {
        let dir = PathBuf::from(dir);
        if dir.is_dir() {
            return dir;
        }
    }
    let milk = PathBuf::from("/milk/shm");
    if milk.is_dir() {
        return milk;
    }
    PathBuf::from("/tmp")
}

/// Checks a stream name: 1 to 79 bytes (the header's field holds 80 with its NUL), printable
/// ASCII without `/`, not `.` or `..`.
pub fn check_name(name: &str) -> Result<(), IsioError> {
    let refuse = |reason| {
        Err(IsioError::Name {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("empty");
    }
    if name.len() > 79 {
        return refuse("longer than 79 bytes");
    }
    if name == "." || name == ".." {
        return refuse("a directory, not a name");
    }
    if !name.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return refuse("only printable ASCII without '/' or spaces");
    }
    Ok(())
}

/// The file of stream `name` in `dir`.
pub fn stream_path(dir: &Path, name: &str) -> Result<PathBuf, IsioError> {
    check_name(name)?;
    Ok(dir.join(format!("{name}{SUFFIX}")))
}

/// Is process `pid` alive, and old enough to be the one the stream names — started no later
/// than `by` (a `CLOCK_TAI` time the header holds: the creation time for the creator and
/// owner, the last write time for the writers that posted)? The stream keeps bare pids; the
/// time test is what tells a live writer from a later process the kernel gave its pid
/// (exact to a clock tick). Without a time (a reader's semaphore claim, which the format
/// dates nowhere) a live, non-zombie process with the pid counts. A process whose liveness
/// cannot be read (another PID namespace, `hidepid`) counts as alive: nothing is taken from
/// it on a guess.
pub(crate) fn pid_alive(pid: i32, by: Option<layout::Timespec>) -> bool {
    use shmkit::os::identity::{started_by, Liveness};
    if pid <= 0 {
        return false;
    }
    let bound = by.map_or(u64::MAX, |t| {
        // Clock conversion costs a few microseconds of error; a millisecond of slack keeps
        // a writer that started just before creating its stream alive.
        super::time::tai_to_boot(t.as_ns()).saturating_add(1_000_000)
    });
    started_by(pid as u32, bound) != Liveness::Dead
}

/// A stream file's header and length, read with `pread` (not mapped: a hostile or half-made
/// file cannot fault the reader), for the callers that look before they map.
pub(crate) struct Peek {
    file: std::fs::File,
    /// The file's length.
    pub(crate) len: u64,
    /// Its first 384 bytes.
    pub(crate) header: [u8; core::mem::size_of::<Metadata>()],
}

impl Peek {
    /// Reads the header of the file at `path`.
    pub(crate) fn read(path: &Path) -> Result<Peek, IsioError> {
        let file = open_stream_file(path, false)?;
        let len = file
            .metadata()
            .map_err(|e| IsioError::io("reading the size of", path, e))?
            .len();
        let mut header = [0u8; core::mem::size_of::<Metadata>()];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| IsioError::TooShort { len })?;
        Ok(Peek { file, len, header })
    }

    /// The checked header.
    pub(crate) fn parse(&self) -> Result<layout::Parsed, IsioError> {
        layout::parse(&self.header, self.len)
    }

    /// The `timespec` at header offset `at` (creation and write times), whatever the rest
    /// holds.
    pub(crate) fn header_time(&self, at: usize) -> layout::Timespec {
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.header[at..at + 8]);
            i64::from_ne_bytes(b)
        };
        layout::Timespec {
            sec: word(at),
            nsec: word(at + 8),
        }
    }

    /// The `i32` at header offset `at` (creator and owner PIDs), whatever the rest holds.
    pub(crate) fn header_i32(&self, at: usize) -> i32 {
        let b = &self.header[at..at + 4];
        i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The semaphores' writer PIDs, per the checked `parsed` layout.
    pub(crate) fn write_pids(&self, parsed: &layout::Parsed) -> Result<Vec<i32>, IsioError> {
        let mut raw = vec![0u8; 4 * usize::from(parsed.layout.sem)];
        self.file
            .read_exact_at(&mut raw, parsed.layout.write_pids)
            .map_err(|_| IsioError::Corrupt("the writer PID array is not readable"))?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// One stream of a directory, as `shmkit milk ls` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    /// The name (from the file name).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Shape, slowest axis first (empty if unreadable).
    pub shape: Vec<u32>,
    /// Element type name.
    pub datatype: String,
    /// Frames written.
    pub cnt0: u64,
    /// The creating process.
    pub creator_pid: i32,
    /// Is it alive?
    pub creator_alive: bool,
    /// Processes that posted a semaphore last, and whether alive.
    pub writers: Vec<(i32, bool)>,
    /// Why the stream could not be read, if it could not.
    pub error: Option<String>,
}

fn info(path: &Path, name: String) -> StreamInfo {
    let mut out = StreamInfo {
        name,
        path: path.to_owned(),
        shape: Vec::new(),
        datatype: String::new(),
        cnt0: 0,
        creator_pid: 0,
        creator_alive: false,
        writers: Vec::new(),
        error: None,
    };
    let read = || -> Result<(layout::Parsed, Vec<i32>), IsioError> {
        let peek = Peek::read(path)?;
        let parsed = peek.parse()?;
        let pids = peek.write_pids(&parsed)?;
        Ok((parsed, pids))
    };
    match read() {
        Ok((p, pids)) => {
            out.shape = p.shape();
            out.datatype = p.datatype.name().to_owned();
            out.cnt0 = p.metadata.cnt0;
            out.creator_pid = p.metadata.creator_pid;
            out.creator_alive = pid_alive(p.metadata.creator_pid, Some(p.metadata.creationtime));
            let mut writers: Vec<i32> = pids.into_iter().filter(|&p| p > 0).collect();
            writers.sort_unstable();
            writers.dedup();
            let by = Some(p.metadata.writetime);
            out.writers = writers.into_iter().map(|w| (w, pid_alive(w, by))).collect();
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    out
}

/// Every stream in `dir`, sorted by name; an unreadable one is listed with its error.
pub fn list(dir: &Path) -> Result<Vec<StreamInfo>, IsioError> {
    let entries = std::fs::read_dir(dir).map_err(|e| IsioError::io("listing", dir, e))?;
    let mut out: Vec<StreamInfo> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let name = file.strip_suffix(SUFFIX)?.to_owned();
            Some(info(&e.path(), name))
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_escape_or_not_fit_are_refused() {
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(80), "tab\t"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["dm00disp", "cam.raw-1", &"x".repeat(79)] {
            check_name(good).unwrap();
        }
        assert_eq!(
            stream_path(Path::new("/milk/shm"), "wfs").unwrap(),
            PathBuf::from("/milk/shm/wfs.im.shm")
        );
    }
}
