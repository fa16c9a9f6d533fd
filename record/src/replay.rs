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
use shmkit::rings::{FrameRing, FrameSpec};
use shmkit::Segment;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
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
    let mut writers = Vec::new();
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
        writers.push((r.ring.clone(), writer, 0u64));
        sources.push(Source {
            files,
            file: 0,
            row: 0,
        });
    }
    let from = match options.start {
        ReplayStart::Beginning => None,
        ReplayStart::AtMonoNs(t) => Some(t),
        ReplayStart::After(offset) => sources
            .iter()
            .filter_map(|s| s.files.iter().find_map(|f| f.rows().first()))
            .map(|row| row.mono_ns)
            .min()
            .map(|first| {
                first.saturating_add(u64::try_from(offset.as_nanos()).unwrap_or(u64::MAX))
            }),
    };
    if let Some(from) = from {
        for source in &mut sources {
            source.seek(from);
        }
    }
    // Frames are read from disk (a recording written past the page cache is not in it) by a
    // thread that keeps READ_AHEAD frames ready, so a slow read delays no frame's publish.
    let (ready_tx, ready) = mpsc::sync_channel::<Result<Ahead, RecordError>>(READ_AHEAD);
    let (spare_tx, spare) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        scope.spawn(move || read_ahead(sources, &ready_tx, &spare));
        let _precise = crate::sys::PreciseSleeps::new();
        let start = Instant::now();
        let mut first_mono: Option<u64> = None;
        let mut interrupted = false;
        // The reader hangs up at the end of the recording.
        while let Ok(ahead) = ready.recv() {
            let Ahead { ring, row, frame } = ahead?;
            if stop.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
            let t0 = *first_mono.get_or_insert(row.mono_ns);
            if let Pace::Speed(speed) = pace {
                let offset = Duration::from_nanos(row.mono_ns.saturating_sub(t0));
                wait_until(start + offset.div_f64(speed.max(1e-6)), stop);
            }
            let (name, writer, published) = &mut writers[ring];
            let ring_error = |source| RecordError::Ring {
                ring: name.clone(),
                source,
            };
            let mut slot = writer.claim(Duration::from_secs(5)).map_err(ring_error)?;
            let n = (row.len as usize).min(frame.len());
            slot.bytes_mut()[..n].copy_from_slice(&frame[..n]);
            slot.set_len(n as u64);
            for (w, &u) in row.user.iter().enumerate() {
                slot.set_user(w, u);
            }
            slot.publish();
            *published += 1;
            // The reader may have finished: then the buffer is simply dropped.
            let _ = spare_tx.send(frame);
        }
        // Dropping `ready` stops the reader at its next frame.
        drop(ready);
        Ok(Replayed {
            rings: writers.into_iter().map(|(n, _, p)| (n, p)).collect(),
            interrupted,
        })
    })
}

/// Frames read ahead of their publish.
const READ_AHEAD: usize = 32;

/// One ring's files and the next frame to read.
struct Source {
    files: Vec<RecordedFile>,
    file: usize,
    row: usize,
}

impl Source {
    /// The next frame's row and where it is, if any is left.
    fn next(&self) -> Option<(Row, usize, usize)> {
        let (mut file, mut row) = (self.file, self.row);
        while file < self.files.len() {
            if let Some(r) = self.files[file].rows().get(row) {
                return Some((*r, file, row));
            }
            file += 1;
            row = 0;
        }
        None
    }

    /// Moves to the first frame published at or after `from` (rows are in publish order
    /// within a ring).
    fn seek(&mut self, from: u64) {
        while self.file < self.files.len() {
            match self.files[self.file]
                .rows()
                .iter()
                .position(|row| row.mono_ns >= from)
            {
                Some(row) => {
                    self.row = row;
                    return;
                }
                None => self.file += 1,
            }
        }
    }
}

/// A frame read ahead: its ring (index), row and native bytes.
struct Ahead {
    ring: usize,
    row: Row,
    frame: Vec<u8>,
}

/// Reads every source's frames in publish order across rings into `ready`, reusing the
/// buffers that come back on `spare`, until the end or until the publisher hangs up.
fn read_ahead(
    mut sources: Vec<Source>,
    ready: &mpsc::SyncSender<Result<Ahead, RecordError>>,
    spare: &mpsc::Receiver<Vec<u8>>,
) {
    loop {
        // The ring whose next frame is the earliest.
        let Some((ring, (row, file, at))) = sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.next().map(|n| (i, n)))
            .min_by_key(|(_, (r, ..))| r.mono_ns)
        else {
            return;
        };
        let source = &mut sources[ring];
        let mut frame = spare.try_recv().unwrap_or_default();
        let read = source.files[file].frame(at, &mut frame);
        (source.file, source.row) = (file, at + 1);
        let sent = ready.send(read.map(|()| Ahead { ring, row, frame }));
        if sent.is_err() {
            return;
        }
    }
}

/// Sleeps until `due` (or `stop`). With [`PreciseSleeps`](crate::sys::PreciseSleeps) the
/// kernel ends the sleep within microseconds of it; a replay beside the loop's servers must
/// not spin on their CPU.
fn wait_until(due: Instant, stop: &AtomicBool) {
    loop {
        let now = Instant::now();
        if now >= due || stop.load(Ordering::Relaxed) {
            return;
        }
        // In steps of at most 100 ms, so a stop is seen between slow frames.
        std::thread::sleep((due - now).min(Duration::from_millis(100)));
    }
}
