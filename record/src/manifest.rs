//! `manifest.json`: what a session directory holds — per ring, its spec, files and counts —
//! written when the session starts, at every roll-over and at the end, always whole (written
//! to a temporary file, then renamed over the old one).

use crate::file::FileSummary;
use crate::RecordError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The manifest's file name in a session directory.
pub const MANIFEST: &str = "manifest.json";

/// A session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of this file (1).
    pub version: u32,
    /// The segment recorded.
    pub segment: String,
    /// The recording host.
    pub host: String,
    /// Start, UTC ISO 8601.
    pub started_utc: String,
    /// End, UTC ISO 8601 (`None` while recording, or after a killed recorder).
    pub ended_utc: Option<String>,
    /// The recorder stopped normally and every count is final.
    pub complete: bool,
    /// `shmkit record --repair` completed this session after its recorder was killed.
    pub repaired: bool,
    /// The rings.
    pub rings: Vec<RingRecord>,
}

/// One ring of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingRecord {
    /// The ring's name.
    pub ring: String,
    /// Its files' name prefix in the directory.
    pub prefix: String,
    /// Element type (numpy name).
    pub dtype: String,
    /// Frame shape, outermost first.
    pub shape: Vec<u32>,
    /// The ring's slot count.
    pub slots: u32,
    /// The ring's newest frame id when recording started: frames after it are this session's.
    pub start_id: u64,
    /// The ring's newest frame id when recording stopped (`None` until then).
    pub end_id: Option<u64>,
    /// Frames published during the session (`end_id - start_id`; `None` until the end).
    pub published: Option<u64>,
    /// Frames recorded.
    pub recorded: u64,
    /// Frames published during the session and not recorded, counted from the frame ids.
    pub dropped: u64,
    /// The closed files, in order.
    pub files: Vec<FileSummary>,
}

impl Manifest {
    /// Reads `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest, RecordError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| RecordError::Io {
            what: "read",
            path: path.clone(),
            source: e,
        })?;
        serde_json::from_str(&text).map_err(|e| RecordError::Manifest {
            path,
            detail: e.to_string(),
        })
    }

    /// Writes `dir/manifest.json` whole.
    pub fn write(&self, dir: &Path) -> Result<(), RecordError> {
        let path = dir.join(MANIFEST);
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|e| RecordError::Manifest {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let io = |what, source| RecordError::Io {
            what,
            path: tmp.clone(),
            source,
        };
        std::fs::write(&tmp, text).map_err(|e| io("write", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))
    }
}
