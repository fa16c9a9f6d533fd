//! Replay: a recording published again into rings of the same names and specs, frame by frame
//! with its user words, at the original pace, at a speed factor, or as fast as possible.
//!
//! Every ring's frames are merged into one timeline by their `CLOCK_MONOTONIC` publish time,
//! so frames of several rings keep their order. Ids in the target rings are the rings' own
//! (consecutive from their newest): a recording without drops replayed into fresh rings
//! reproduces its ids; the original ids stay in the recording's `FRAMEID` column.

use crate::fits::table::Row;
use crate::manifest::Manifest;
use crate::read::RecordedFile;
use crate::RecordError;
use shm_layout::ElemType;
use shmkit::rings::{FrameRing, FrameSpec, FrameWriter};
use shmkit::Segment;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// At the original intervals divided by this factor (1.0: as recorded).
    Speed(f64),
    /// Without waiting between frames.
    AsFast,
}

/// What a replay published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Per ring: its name and the frames published.
    pub rings: Vec<(String, u64)>,
    /// Stopped by the caller's flag before the end.
    pub interrupted: bool,
}

/// Replays the session in `dir` into `segment` (its rings opened, or created with the
/// recorded specs) at `pace`, until the end or until `stop` is set.
pub fn replay(
    dir: &Path,
    segment: &Segment,
    pace: Pace,
    stop: &AtomicBool,
) -> Result<Replayed, RecordError> {
    let manifest = Manifest::read(dir)?;
    struct Source {
        writer: FrameWriter,
        files: Vec<RecordedFile>,
        file: usize,
        row: usize,
        published: u64,
    }
    let mut sources = Vec::new();
    for r in &manifest.rings {
        let elem = ElemType::from_name(&r.dtype).ok_or_else(|| RecordError::Manifest {
            path: dir.join(crate::MANIFEST),
            detail: format!("ring {:?} has an unknown dtype {:?}", r.ring, r.dtype),
        })?;
        let ring: FrameRing =
            segment.frame_ring(&r.ring, &FrameSpec::new(r.slots, elem, &r.shape))?;
        let writer = ring.writer().map_err(|source| RecordError::Ring {
            ring: r.ring.clone(),
            source,
        })?;
        let files = r
            .files
            .iter()
            .map(|f| RecordedFile::open(&dir.join(&f.file)))
            .collect::<Result<Vec<_>, _>>()?;
        sources.push((
            r.ring.clone(),
            Source {
                writer,
                files,
                file: 0,
                row: 0,
                published: 0,
            },
        ));
    }
    let next_row = |s: &Source| -> Option<Row> {
        let mut file = s.file;
        let mut row = s.row;
        while file < s.files.len() {
            if let Some(r) = s.files[file].rows().get(row) {
                return Some(*r);
            }
            file += 1;
            row = 0;
        }
        None
    };
    let start = Instant::now();
    let mut first_mono: Option<u64> = None;
    let mut buf = Vec::new();
    let mut interrupted = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        // The ring whose next frame is the earliest.
        let Some((i, row)) = sources
            .iter()
            .enumerate()
            .filter_map(|(i, (_, s))| next_row(s).map(|r| (i, r)))
            .min_by_key(|(_, r)| r.mono_ns)
        else {
            break;
        };
        let t0 = *first_mono.get_or_insert(row.mono_ns);
        if let Pace::Speed(speed) = pace {
            let offset = Duration::from_nanos(row.mono_ns.saturating_sub(t0));
            let due = start + offset.div_f64(speed.max(1e-6));
            // Sleep to within a millisecond of the frame's time, then spin: the pace is kept
            // to tens of microseconds without a core spinning between slow frames.
            loop {
                let now = Instant::now();
                if now >= due || stop.load(Ordering::Relaxed) {
                    break;
                }
                let left = due - now;
                if left > Duration::from_millis(2) {
                    std::thread::sleep(left - Duration::from_millis(1));
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        let (name, s) = &mut sources[i];
        while s.files[s.file].rows().get(s.row).is_none() {
            s.file += 1;
            s.row = 0;
        }
        s.files[s.file].frame(s.row, &mut buf)?;
        let ring_error = |source| RecordError::Ring {
            ring: name.clone(),
            source,
        };
        let mut slot = s.writer.claim(Duration::from_secs(5)).map_err(ring_error)?;
        let n = (row.len as usize).min(buf.len());
        slot.bytes_mut()[..n].copy_from_slice(&buf[..n]);
        slot.set_len(n as u64);
        for (w, &u) in row.user.iter().enumerate() {
            slot.set_user(w, u);
        }
        slot.publish();
        s.row += 1;
        s.published += 1;
    }
    Ok(Replayed {
        rings: sources.into_iter().map(|(n, s)| (n, s.published)).collect(),
        interrupted,
    })
}
