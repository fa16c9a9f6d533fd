//! Finding segments in `/dev/shm`, reading them, and deciding which are stale.

use super::error::{corrupt, InspectError};
use super::objects::{inspect_bytes, Inspection};
use super::paged::PagedFile;
use crate::segment::{validate_bytes, ImageBytes, SegmentBytes, SegmentError};
use crate::sys::identity::Liveness;
use crate::sys::identity::ProcessIdentity;
use serde::Serialize;
use shm_layout::{SegmentHeader, MAGIC};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zerocopy::{FromZeros, IntoBytes};

/// Where POSIX shared memory objects live on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// One entry of [`list`].
#[derive(Debug, Clone, Serialize)]
pub struct SegmentListing {
    /// The segment's name (without the leading `/`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Permission bits, e.g. `0o600`.
    pub mode: u32,
    /// The creator's pid (`None` when the header could not be read).
    pub creator_pid: Option<u32>,
    /// Whether the creator is alive (`None` when unknown).
    pub creator_alive: Option<bool>,
    /// Pids of live processes that map it (other than this one).
    pub mapped_by: Vec<u32>,
    /// Why a process might map it without appearing in `mapped_by` (unreadable
    /// `/proc/PID/maps`, a nested PID namespace); empty when every process was looked at.
    pub mapped_unknown: Vec<String>,
    /// `alive`, `stale` (creator dead, provably mapped by nobody), `orphaned` (creator dead,
    /// mapped or possibly mapped), `initialising`, `corrupt`, `unreadable`. A segment written by a build with
    /// another layout is judged by its creator like any other (its `error` says so).
    pub status: String,
    /// Seconds since creation.
    pub age_s: Option<f64>,
    /// The file's inode when listed: `clean` removes the name only if it still is this file.
    #[serde(skip)]
    pub inode: u64,
    /// What is wrong, for `corrupt` and `unreadable`.
    pub error: Option<String>,
}

fn path_of(name: &str) -> PathBuf {
    Path::new(SHM_DIR).join(name.trim_start_matches('/'))
}

/// A failed read of segment `name`'s file.
fn read_error(name: &str, e: std::io::Error) -> InspectError {
    match e.kind() {
        std::io::ErrorKind::NotFound => InspectError::NotFound(name.to_owned()),
        std::io::ErrorKind::PermissionDenied => InspectError::PermissionDenied(name.to_owned()),
        _ => InspectError::Io {
            name: name.to_owned(),
            source: e,
        },
    }
}

/// Opens `/dev/shm/NAME` for reading, only if it is a regular file
/// ([`open_regular`](crate::sys::files::open_regular)): a name swapped for a link or a FIFO
/// between listing and opening neither hangs nor misleads the tool.
fn open_segment_file(name: &str) -> Result<(std::fs::File, std::fs::Metadata), InspectError> {
    use crate::sys::files::{open_regular, OpenRegularError};
    open_regular(&path_of(name), false).map_err(|e| match e {
        OpenRegularError::NotRegular(kind) => InspectError::NotAFile {
            name: name.to_owned(),
            kind,
        },
        OpenRegularError::Io(e) => read_error(name, e),
    })
}

/// Segment `name`'s file, to be read page by page.
fn open_paged(name: &str) -> Result<PagedFile, InspectError> {
    let (file, meta) = open_segment_file(name)?;
    Ok(PagedFile::new(file, meta.len()))
}

/// Inspects segment `name` from a copy of its bytes.
///
/// Reads only the pages it decodes (header, table, block headers, the objects' headers and
/// slot metadata), not frame data: cheap enough to repeat every refresh of `shmkit watch`.
pub fn inspect(name: &str) -> Result<Inspection, InspectError> {
    inspect_paged(name).map(|(inspection, _)| inspection)
}

/// [`inspect`], also returning how many 4 KiB pages it read.
pub(crate) fn inspect_paged(name: &str) -> Result<(Inspection, usize), InspectError> {
    let image = open_paged(name)?;
    if image.load_u64(0) != Some(MAGIC) {
        return Err(InspectError::NotShmkit(name.to_owned()));
    }
    let inspection = inspect_bytes(name, &image)?;
    Ok((inspection, image.pages_read()))
}

/// Who maps `/dev/shm/NAME`, as far as `/proc` can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mappers {
    /// Pids of live processes other than this one that map it.
    pub pids: Vec<u32>,
    /// Why some process might map it unseen (another user's or a non-dumpable process whose
    /// `/proc/PID/maps` cannot be read, processes outside this PID namespace, no `/proc`);
    /// empty when every process was looked at.
    pub unknown: Vec<String>,
}

impl Mappers {
    /// Whether no process is proven to map it and none could map it unseen.
    pub fn none(&self) -> bool {
        self.pids.is_empty() && self.unknown.is_empty()
    }
}

/// Pids of live processes other than this one that map `/dev/shm/NAME` (see
/// [`mappers`] for whether that list is complete).
pub fn mapped_by_live_process(name: &str) -> Vec<u32> {
    mappers(name).pids
}

/// Who maps `/dev/shm/NAME`: the pids seen mapping it, and why others might map it unseen.
pub fn mappers(name: &str) -> Mappers {
    let target = format!("{SHM_DIR}/{}", name.trim_start_matches('/'));
    let me = std::process::id();
    let mut found = Mappers::default();
    if nested_pid_namespace() {
        found.unknown.push(
            "this process runs in a nested PID namespace: processes outside it are invisible"
                .into(),
        );
    }
    let entries = match std::fs::read_dir("/proc") {
        Ok(entries) => entries,
        Err(e) => {
            found.unknown.push(format!("/proc cannot be read ({e})"));
            return found;
        }
    };
    let mut unreadable: Vec<u32> = Vec::new();
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        if pid == me {
            continue;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            Ok(maps) => {
                if maps.lines().any(|l| {
                    l.split_whitespace().nth(5) == Some(target.as_str())
                        || l.ends_with(&format!("{target} (deleted)"))
                }) {
                    found.pids.push(pid);
                }
            }
            // Exited since the listing: it maps nothing.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ESRCH) => {}
            // Another user's, or non-dumpable, or a kernel thread's empty maps read as an
            // error: it may map the segment.
            Err(_) => {
                if !is_kernel_thread(pid) {
                    unreadable.push(pid);
                }
            }
        }
    }
    if !unreadable.is_empty() {
        unreadable.sort_unstable();
        let shown: Vec<String> = unreadable.iter().take(8).map(u32::to_string).collect();
        found.unknown.push(format!(
            "/proc/PID/maps of {} process(es) cannot be read (pids {}{})",
            unreadable.len(),
            shown.join(", "),
            if unreadable.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        ));
    }
    found.pids.sort_unstable();
    found
}

/// Whether this process runs outside the initial PID namespace, where processes of the
/// namespaces above are invisible. The initial namespace's inode is the kernel's fixed
/// `PROC_PID_INIT_INO`; `NSpid` cannot tell, because a `/proc` mounted inside a namespace
/// lists only the levels below its own.
fn nested_pid_namespace() -> bool {
    const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() != PROC_PID_INIT_INO)
}

/// Kernel threads map nothing (their `maps` is empty and readable by root only as such).
fn is_kernel_thread(pid: u32) -> bool {
    // The 9th field after the command (flags) has PF_KTHREAD (0x00200000).
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|end| {
                stat[end + 1..]
                    .split_whitespace()
                    .nth(6)?
                    .parse::<u64>()
                    .ok()
            })
            .is_some_and(|flags| flags & 0x0020_0000 != 0)
    })
}

fn shmkit_candidates() -> Vec<(String, std::fs::Metadata)> {
    let Ok(dir) = std::fs::read_dir(SHM_DIR) else {
        return Vec::new();
    };
    let mut out: Vec<(String, std::fs::Metadata)> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let meta = e.metadata().ok()?;
            if !meta.is_file() {
                return None;
            }
            Some((e.file_name().to_str()?.to_owned(), meta))
        })
        .filter(|(name, _)| {
            // Only files that start with the shmkit magic (unreadable ones are listed too,
            // when their name says shmkit, so a permission problem is visible).
            let mut magic = [0u8; 8];
            match open_segment_file(name) {
                Ok((f, _)) => {
                    use std::io::Read;
                    (&f).read_exact(&mut magic).is_ok() && magic == MAGIC.to_le_bytes()
                }
                Err(InspectError::NotAFile { .. }) => false,
                Err(_) => name.starts_with("shmkit"),
            }
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every shmkit segment on the machine, each with its creator's liveness and who maps it.
pub fn list() -> Vec<SegmentListing> {
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as u64;
    shmkit_candidates()
        .into_iter()
        .map(|(name, meta)| {
            let mut listing = SegmentListing {
                size: meta.len(),
                uid: meta.uid(),
                mode: meta.mode() & 0o7777,
                inode: meta.ino(),
                creator_pid: None,
                creator_alive: None,
                mapped_by: Vec::new(),
                mapped_unknown: Vec::new(),
                status: "unreadable".into(),
                age_s: None,
                error: None,
                name,
            };
            let mappers = mappers(&listing.name);
            listing.mapped_by = mappers.pids;
            listing.mapped_unknown = mappers.unknown;
            match open_paged(&listing.name).and_then(|image| header_of(&listing.name, &image)) {
                Ok(Some((creator, created_unix_ns, note))) => {
                    listing.error = note;
                    let alive = creator.liveness() != Liveness::Dead;
                    listing.creator_pid = Some(creator.pid);
                    listing.creator_alive = Some(alive);
                    listing.age_s = Some(now_unix.saturating_sub(created_unix_ns) as f64 / 1e9);
                    if !alive && listing.mapped_by.is_empty() && !listing.mapped_unknown.is_empty()
                    {
                        prove_unmapped(&mut listing);
                    }
                    listing.status = if alive {
                        "alive"
                    } else if listing.mapped_by.is_empty() && listing.mapped_unknown.is_empty() {
                        "stale"
                    } else {
                        "orphaned"
                    }
                    .into();
                }
                Ok(None) => listing.status = "initialising".into(),
                Err(InspectError::Corrupt { what, detail, .. }) => {
                    listing.status = "corrupt".into();
                    listing.error = Some(format!("{what}: {detail}"));
                }
                Err(e) => listing.error = Some(e.to_string()),
            }
            listing
        })
        .collect()
}

/// Where `/proc` could not look at every process, asks the kernel instead: an exclusive lease
/// granted (and released at once) proves that no process has the file open or mapped, which
/// clears `mapped_unknown`; a refused one says another process has it.
fn prove_unmapped(listing: &mut SegmentListing) {
    let Ok((file, meta)) = open_segment_file(&listing.name) else {
        return;
    };
    if meta.ino() != listing.inode {
        return;
    }
    match crate::sys::files::ExclusiveLease::take(&file) {
        Ok(Some(_released_at_once)) => listing.mapped_unknown.clear(),
        Ok(None) => {
            listing.mapped_unknown = vec![
                "another process has it open or mapped (the kernel refused an exclusive lease)"
                    .into(),
            ]
        }
        Err(_) => {}
    };
}

/// The header's creator and creation time (and a note when the layout is another build's);
/// `None` while initialising.
fn header_of(
    name: &str,
    image: &PagedFile,
) -> Result<Option<(ProcessIdentity, u64, Option<String>)>, InspectError> {
    match validate_bytes(image) {
        Ok(Some((info, _))) => Ok(Some((info.creator, info.created_unix_ns, None))),
        Ok(None) => Ok(None),
        // Another build's layout: the creator fields sit where every version keeps them.
        Err(e @ (SegmentError::LayoutMismatch { .. } | SegmentError::VersionMismatch { .. })) => {
            let mut header = SegmentHeader::new_zeroed();
            if !image.copy_at(0, header.as_mut_bytes()) {
                return Err(corrupt(name, e));
            }
            Ok(Some((
                ProcessIdentity {
                    pid: header.creator_pid,
                    token: header.creator_token,
                },
                header.created_unix_ns,
                Some(format!("written by another shmkit build: {e}").replace("\"<image>\" ", "")),
            )))
        }
        Err(e) => Err(corrupt(name, e)),
    }
}

/// What [`clean`] did (or would do) with one segment.
#[derive(Debug, Clone, Serialize)]
pub struct CleanAction {
    /// The segment.
    pub name: String,
    /// Removed (or, in a dry run, would be).
    pub removed: bool,
    /// Why it was or was not removed.
    pub reason: String,
}

/// Removes segments whose creator is dead and that no process has open or mapped; never a
/// live one, never another user's. `dry_run` only reports.
///
/// "Nobody maps it" is proven, not guessed: the kernel grants an exclusive lease on the file
/// only when no other process — of any user, in any PID namespace — has it open or mapped,
/// and the name is removed while that lease is held (and only if it is still that file).
/// Where leases are unavailable, `/proc` must show every process: an unreadable
/// `/proc/PID/maps` or a nested PID namespace keeps the segment, and the reason says so.
pub fn clean(dry_run: bool) -> Vec<CleanAction> {
    let me = crate::sys::shm::effective_uid();
    list()
        .into_iter()
        .map(|l| {
            let (removed, reason) = if l.uid != me {
                (false, format!("owned by uid {}, not {me}", l.uid))
            } else if l.status == "orphaned" && !l.mapped_by.is_empty() {
                (
                    false,
                    format!("creator is dead but pids {:?} still map it", l.mapped_by),
                )
            } else if l.status == "stale" || l.status == "orphaned" {
                remove_unmapped(&l, dry_run)
            } else {
                (false, l.status.clone())
            };
            CleanAction {
                name: l.name,
                removed,
                reason,
            }
        })
        .collect()
}

/// Removes (or in a dry run, would remove) a dead creator's segment `l` that no visible
/// process maps, if the kernel confirms nobody has it open: `(removed, why)`.
fn remove_unmapped(l: &SegmentListing, dry_run: bool) -> (bool, String) {
    let creator = l.creator_pid.unwrap_or(0);
    let unseen = || {
        format!(
            "creator pid {creator} is dead, but a process may still map it unseen: {}",
            l.mapped_unknown.join("; ")
        )
    };
    let file = match open_segment_file(&l.name) {
        Ok((file, meta)) if meta.ino() == l.inode => file,
        Ok(_) => return (false, "replaced by another file since it was listed".into()),
        Err(e) => return (false, e.to_string()),
    };
    let outcome = match crate::sys::files::ExclusiveLease::take(&file) {
        Ok(Some(_lease)) => {
            let why = format!("creator pid {creator} is dead and no process has it open or mapped");
            let removed = dry_run || crate::sys::files::remove_if_same(&path_of(&l.name), l.inode);
            (removed, why)
        }
        Ok(None) => (
            false,
            format!(
                "creator pid {creator} is dead, but another process has it open or mapped (the \
                 kernel refused an exclusive lease)"
            ),
        ),
        // No lease to be had: only /proc's word, which must cover every process.
        Err(e) if l.mapped_unknown.is_empty() => {
            let removed = dry_run || crate::sys::files::remove_if_same(&path_of(&l.name), l.inode);
            (
                removed,
                format!(
                    "creator pid {creator} is dead and no process maps it (every /proc/PID/maps \
                     read; no lease: {e})"
                ),
            )
        }
        Err(_) => (false, unseen()),
    };
    outcome
}
