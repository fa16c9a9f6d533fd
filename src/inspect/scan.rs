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
    /// `alive`, `stale` (creator dead, nobody maps it), `orphaned` (creator dead, still
    /// mapped), `initialising`, `corrupt`, `unreadable`. A segment written by a build with
    /// another layout is judged by its creator like any other (its `error` says so).
    pub status: String,
    /// Seconds since creation.
    pub age_s: Option<f64>,
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

/// Segment `name`'s file, to be read page by page.
fn open_paged(name: &str) -> Result<PagedFile, InspectError> {
    let file = std::fs::File::open(path_of(name)).map_err(|e| read_error(name, e))?;
    let len = file.metadata().map_err(|e| read_error(name, e))?.len();
    Ok(PagedFile::new(file, len))
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

/// Pids of live processes other than this one that map `/dev/shm/NAME`.
pub fn mapped_by_live_process(name: &str) -> Vec<u32> {
    let target = format!("{SHM_DIR}/{}", name.trim_start_matches('/'));
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|maps| {
                maps.lines().any(|l| {
                    l.split_whitespace().nth(5) == Some(target.as_str())
                        || l.ends_with(&format!("{target} (deleted)"))
                })
            })
        })
        .collect();
    pids.sort_unstable();
    pids
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
            match std::fs::File::open(path_of(name)) {
                Ok(f) => {
                    use std::io::Read;
                    (&f).read_exact(&mut magic).is_ok() && magic == MAGIC.to_le_bytes()
                }
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
                creator_pid: None,
                creator_alive: None,
                mapped_by: mapped_by_live_process(&name),
                status: "unreadable".into(),
                age_s: None,
                error: None,
                name,
            };
            match open_paged(&listing.name).and_then(|image| header_of(&listing.name, &image)) {
                Ok(Some((creator, created_unix_ns, note))) => {
                    listing.error = note;
                    let alive = creator.liveness() != Liveness::Dead;
                    listing.creator_pid = Some(creator.pid);
                    listing.creator_alive = Some(alive);
                    listing.age_s = Some(now_unix.saturating_sub(created_unix_ns) as f64 / 1e9);
                    listing.status = if alive {
                        "alive"
                    } else if listing.mapped_by.is_empty() {
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

/// Removes segments whose creator is dead and that no live process maps; never a live one,
/// never another user's. `dry_run` only reports.
pub fn clean(dry_run: bool) -> Vec<CleanAction> {
    let me = crate::sys::shm::effective_uid();
    list()
        .into_iter()
        .map(|l| {
            let (removed, reason) = if l.uid != me {
                (false, format!("owned by uid {}, not {me}", l.uid))
            } else if l.status == "stale" {
                (
                    true,
                    format!(
                        "creator pid {} is dead and no process maps it",
                        l.creator_pid.unwrap_or(0)
                    ),
                )
            } else if l.status == "orphaned" {
                (
                    false,
                    format!("creator is dead but pids {:?} still map it", l.mapped_by),
                )
            } else {
                (false, l.status.clone())
            };
            let removed = removed && (dry_run || std::fs::remove_file(path_of(&l.name)).is_ok());
            CleanAction {
                name: l.name,
                removed,
                reason,
            }
        })
        .collect()
}
