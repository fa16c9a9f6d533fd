//! Replay: a recording published again into rings of the same names and specs, frame by frame
//! with its user words, at the original pace, at a speed factor, or as fast as possible — the
//! whole session or some of its rings, from a chosen instant.
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

/// What to replay, and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// How fast.
    pub pace: Pace,
    /// Only these rings of the session (by name); every ring when empty.
    pub rings: Vec<String>,
    /// Where in the recording to start; the pace counts from the first frame replayed.
    pub start: ReplayStart,
}

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayStart {
    /// At the session's first frame.
    Beginning,
    /// This long after the first frame of the rings replayed.
    After(Duration),
    /// At the first frame of each ring published at or after this `CLOCK_MONOTONIC` time of
    /// the recording (its `TMONO` column, ns).
    AtMonoNs(u64),
}

impl ReplayOptions {
    /// Every ring of the session, from its start, at `pace`.
    pub fn new(pace: Pace) -> ReplayOptions {
        ReplayOptions {
            pace,
            rings: Vec::new(),
            start: ReplayStart::Beginning,
        }
    }
}

/// Replays the session in `dir` into `segment` (its rings opened, or created with the
/// recorded specs) as `options` say, until the end or until `stop` is set.
///
/// # Errors
/// [`RecordError::Manifest`] for a ring `options` names that the session does not hold, or a
/// manifest this version cannot read; the reading and ring errors of the files and rings.
pub fn replay(
    dir: &Path,
    segment: &Segment,
    options: &ReplayOptions,
    stop: &AtomicBool,
) -> Result<Replayed, RecordError> {
    let manifest = Manifest::read(dir)?;
    if let Some(missing) = options
        .rings
        .iter()
        .find(|name| !manifest.rings.iter().any(|r| &r.ring == *name))
    {
        return Err(RecordError::Manifest {
            path: dir.join(crate::MANIFEST),
            detail: format!("the session has no ring {missing:?}"),
        });
    }
    let pace = options.pace;
    struct Source {
        writer: FrameWriter,
        files: Vec<RecordedFile>,
        file: usize,
        row: usize,
        published: u64,
    }
    let mut sources = Vec::new();
    for r in manifest
        .rings
        .iter()
        .filter(|r| options.rings.is_empty() || options.rings.contains(&r.ring))
    {
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
        let source = Source {
            writer,
            files,
            file: 0,
            row: 0,
            published: 0,
        };
        sources.push((r.ring.clone(), source));
    }
    let from = match options.start {
        ReplayStart::Beginning => None,
        ReplayStart::AtMonoNs(t) => Some(t),
        ReplayStart::After(offset) => sources
            .iter()
            .filter_map(|(_, s)| s.files.iter().find_map(|f| f.rows().first()))
            .map(|row| row.mono_ns)
            .min()
            .map(|first| {
                first.saturating_add(u64::try_from(offset.as_nanos()).unwrap_or(u64::MAX))
            }),
    };
    if let Some(from) = from {
        for (_, source) in &mut sources {
            // Rows are in publish order within a ring: skip whole files, then rows.
            while source.file < source.files.len() {
                let rows = source.files[source.file].rows();
                match rows.iter().position(|row| row.mono_ns >= from) {
                    Some(row) => {
                        source.row = row;
                        break;
                    }
                    None => source.file += 1,
                }
            }
        }
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
