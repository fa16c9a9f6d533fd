//! Completing a session whose recorder (or an earlier repair) was killed: every `.part` file
//! is completed from the frames and metadata rows that reached the disk, a closed file the
//! manifest does not list yet (killed between the rename and the manifest) is listed, and the
//! manifest gets the counts its files hold.

use crate::file::{complete_part, FileSummary};
use crate::manifest::Manifest;
use crate::read::RecordedFile;
use crate::RecordError;
use std::path::Path;

/// Completes the session in `dir` (see the module documentation) and returns its manifest.
/// A complete session is left as it is.
pub fn repair(dir: &Path) -> Result<Manifest, RecordError> {
    let mut manifest = Manifest::read(dir)?;
    let entries = std::fs::read_dir(dir).map_err(|source| RecordError::Io {
        what: "list",
        path: dir.to_owned(),
        source,
    })?;
    let paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    for fresh in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "new"))
    {
        // A header not yet renamed to `.part` (no frame was written after it): nothing to
        // keep.
        let _ = std::fs::remove_file(fresh);
    }
    let mut parts: Vec<_> = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect();
    parts.sort();
    let mut changed = false;
    for part in parts {
        let summary = complete_part(part)?;
        changed = true;
        if let Some(ring) = manifest
            .rings
            .iter_mut()
            .find(|r| summary.file.starts_with(&format!("{}-", r.prefix)))
        {
            if !ring.files.iter().any(|f| f.file == summary.file) {
                ring.files.push(summary);
                ring.files.sort_by(|a, b| a.file.cmp(&b.file));
            }
        }
    }
    // Closed files the manifest does not list: the writer (or a repair) was killed after the
    // rename. Their rows, left beside them, are no longer needed.
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "fits"))
    {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let _ = std::fs::remove_file(path.with_extension("fits.meta"));
        let Some(ring) = manifest
            .rings
            .iter_mut()
            .find(|r| name.starts_with(&format!("{}-", r.prefix)))
        else {
            continue;
        };
        if ring.files.iter().any(|f| f.file == name) {
            continue;
        }
        let file = RecordedFile::open(path)?;
        let rows = file.rows();
        ring.files.push(FileSummary {
            file: name,
            frames: rows.len() as u64,
            first_id: rows.first().map_or(0, |r| r.id),
            last_id: rows.last().map_or(0, |r| r.id),
            dropped: rows.iter().map(|r| r.dropped).sum(),
        });
        ring.files.sort_by(|a, b| a.file.cmp(&b.file));
        changed = true;
    }
    // Stray metadata of a file that was never started has nothing to complete.
    if !manifest.complete {
        for ring in &mut manifest.rings {
            ring.recorded = ring.files.iter().map(|f| f.frames).sum();
            ring.dropped = ring.files.iter().map(|f| f.dropped).sum();
        }
        manifest.repaired = true;
        changed = true;
    }
    if changed {
        manifest.write(dir)?;
    }
    Ok(manifest)
}
