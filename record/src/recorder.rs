//! The recorder: per ring, a reader thread that copies each frame out of its slot at once and
//! a writer thread that puts the copies into FITS files, with a bounded buffer between them.

use crate::file::{CubeFile, Origin};
use crate::fits::table::Row;
use crate::manifest::{Manifest, RingRecord};
use crate::{sys, time, RecordError};
use shmkit::rings::{FrameReader, FrameRing, ReadMode, RingError};
use shmkit::{Segment, SegmentObjects};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When a ring's current file is closed and the next one started (the first limit reached).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Roll {
    /// Frames per file.
    pub frames: Option<u64>,
    /// Bytes of frame data per file.
    pub bytes: Option<u64>,
    /// Seconds per file.
    pub seconds: Option<f64>,
}

/// How to record.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// The session directory (created if missing; it must not hold a recording).
    pub out: PathBuf,
    /// Roll-over limits (default: one file per ring).
    pub roll: Roll,
    /// Run the recorder's threads at idle priority (`SCHED_IDLE`): they take only time no
    /// other thread wants, and never preempt one. On the AO bench (the recorder on the
    /// servers' CPU, about 88 % busy) this is what keeps the loop's latency: a reader at
    /// the normal policy preempts the camera between its publish and its wake-up of the
    /// controller (p99 250–350 µs instead of 56). On a CPU with no idle time left an idle
    /// recorder is lapped — the frames it missed are counted, never lost silently.
    pub idle: bool,
    /// Pin the recorder threads to this CPU.
    pub cpu: Option<usize>,
    /// Memory for frames copied but not yet written, per ring (default 256 MiB).
    pub buffer_bytes: usize,
}

impl RecordOptions {
    /// Recording into `out`, one file per ring, 256 MiB of buffer per ring.
    pub fn new(out: impl Into<PathBuf>) -> RecordOptions {
        RecordOptions {
            out: out.into(),
            roll: Roll::default(),
            idle: false,
            cpu: None,
            buffer_bytes: 256 << 20,
        }
    }
}

/// A ring's counts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The ring.
    pub ring: String,
    /// Frames recorded.
    pub recorded: u64,
    /// Frames not recorded, counted from the frame ids.
    pub dropped: u64,
}

/// What the reader hands the writer: a frame's bytes and its metadata row.
type Copied = (Vec<u8>, Row);

struct Counters {
    recorded: AtomicU64,
    dropped: AtomicU64,
}

/// A ring being recorded: its name, its counts, and its reader thread until joined.
type RingThread = (
    String,
    Arc<Counters>,
    Option<JoinHandle<Result<(), RecordError>>>,
);

/// A running recording. [`stop`](Self::stop) ends it with every file closed valid and the
/// manifest complete; dropping it does the same.
pub struct Recorder {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    manifest: Arc<Mutex<Manifest>>,
    rings: Vec<RingThread>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("dir", &self.dir).finish()
    }
}

/// A ring's name as a file name prefix.
fn prefix_of(ring: &str) -> String {
    ring.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Recorder {
    /// Starts recording `rings` of `segment` into `options.out`.
    pub fn start(
        segment: &Segment,
        rings: &[&str],
        options: &RecordOptions,
    ) -> Result<Recorder, RecordError> {
        let dir = options.out.clone();
        std::fs::create_dir_all(&dir).map_err(|source| RecordError::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        if dir.join(crate::MANIFEST).exists() {
            return Err(RecordError::NotEmpty(dir));
        }
        let started = time::utc_ns();
        let offset = time::utc_minus_monotonic();
        let host = sys::host_name();
        let mut opened = Vec::new();
        for &name in rings {
            let ring: FrameRing = segment.open(name)?;
            opened.push((name.to_owned(), ring));
        }
        let manifest = Manifest {
            version: 1,
            segment: segment.name().to_owned(),
            host: host.clone(),
            started_utc: time::iso8601(started),
            ended_utc: None,
            complete: false,
            repaired: false,
            rings: opened
                .iter()
                .map(|(name, ring)| {
                    let spec = ring.spec();
                    RingRecord {
                        ring: name.clone(),
                        prefix: prefix_of(name),
                        dtype: spec.elem.name().to_owned(),
                        shape: spec.shape.clone(),
                        slots: spec.slots,
                        start_id: 0,
                        end_id: None,
                        published: None,
                        recorded: 0,
                        dropped: 0,
                        files: Vec::new(),
                    }
                })
                .collect(),
        };
        let manifest = Arc::new(Mutex::new(manifest));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, (name, ring)) in opened.into_iter().enumerate() {
            let counters = Arc::new(Counters {
                recorded: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            });
            let spec = ring.spec();
            let origin = Origin {
                ring: name.clone(),
                segment: segment.name().to_owned(),
                host: host.clone(),
                elem: spec.elem,
                shape: spec.shape.clone(),
                start_utc: time::iso8601(started),
                index: 0,
            };
            let job = RingJob {
                index: i,
                ring,
                origin,
                dir: dir.clone(),
                prefix: prefix_of(&name),
                options: options.clone(),
                offset,
                stop: stop.clone(),
                counters: counters.clone(),
                manifest: manifest.clone(),
            };
            // The start id is read just before the reader exists (it starts at the newest
            // frame then): a frame published in between is this session's and, never seen,
            // counts as dropped. The reader exists before `start` returns, so a frame
            // published after it is recorded.
            let start_id = job.ring.stats().last_id;
            let reader =
                job.ring
                    .reader(ReadMode::OldestFirst)
                    .map_err(|source| RecordError::Ring {
                        ring: name.clone(),
                        source,
                    })?;
            lock(&job.manifest).rings[i].start_id = start_id;
            let (running, started) = sync_channel::<()>(1);
            let handle = std::thread::Builder::new()
                .name(format!("shmkit-record {name}"))
                .spawn(move || job.run(start_id, reader, running))
                .map_err(|_| RecordError::Thread(name.clone()))?;
            // Returns once the reader reads: frames published after `start` are recorded.
            let _ = started.recv();
            threads.push((name, counters, Some(handle)));
        }
        lock(&manifest).write(&dir)?;
        Ok(Recorder {
            dir,
            stop,
            manifest,
            rings: threads,
        })
    }

    /// The session directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Each ring's counts so far.
    pub fn progress(&self) -> Vec<Progress> {
        self.rings
            .iter()
            .map(|(ring, c, _)| Progress {
                ring: ring.clone(),
                recorded: c.recorded.load(Ordering::Relaxed),
                dropped: c.dropped.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Stops: each ring is read up to the frame that was newest at this call, every file is
    /// closed valid, and the manifest is written complete. Returns it.
    pub fn stop(mut self) -> Result<Manifest, RecordError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<Manifest, RecordError> {
        self.stop.store(true, Ordering::Release);
        let mut first_error = None;
        for (name, _, handle) in &mut self.rings {
            if let Some(h) = handle.take() {
                let result = h
                    .join()
                    .unwrap_or_else(|_| Err(RecordError::Thread(name.clone())));
                if let Err(e) = result {
                    first_error.get_or_insert(e);
                }
            }
        }
        let manifest = {
            let mut m = lock(&self.manifest);
            m.ended_utc = Some(time::iso8601(time::utc_ns()));
            m.complete = first_error.is_none();
            m.write(&self.dir)?;
            m.clone()
        };
        match first_error {
            Some(e) => Err(e),
            None => Ok(manifest),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.rings.iter().any(|(_, _, h)| h.is_some()) {
            let _ = self.finish();
        }
    }
}

fn lock(m: &Mutex<Manifest>) -> std::sync::MutexGuard<'_, Manifest> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One ring's recording.
struct RingJob {
    index: usize,
    ring: FrameRing,
    origin: Origin,
    dir: PathBuf,
    prefix: String,
    options: RecordOptions,
    offset: i128,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    manifest: Arc<Mutex<Manifest>>,
}

/// How long a reader sleeps when it has caught up. It polls rather than waits on the ring's
/// futex: a sleeping reader makes every publish wake it (a system call in the loop's writer,
/// and a thread woken beside the camera), while a poll costs the writer nothing. A ring of
/// 8 slots at 2 kHz holds 4 ms, eight polls.
const POLL: Duration = Duration::from_micros(500);

impl RingJob {
    fn place_thread(&self) {
        // Best effort: a recorder that cannot choose its CPU or policy still records.
        if let Some(cpu) = self.options.cpu {
            let _ = sys::pin_to_cpu(cpu);
        }
        if self.options.idle {
            let _ = sys::idle_priority();
        }
    }

    /// The reader side (this thread) and the writer thread it starts.
    fn run(
        self,
        start_id: u64,
        reader: FrameReader,
        running: SyncSender<()>,
    ) -> Result<(), RecordError> {
        self.place_thread();
        let spec = self.ring.spec();
        let frame_bytes =
            spec.shape.iter().map(|&d| d as usize).product::<usize>() * spec.elem.size();
        let depth = (self.options.buffer_bytes / frame_bytes.max(1)).clamp(4, 1 << 16);
        let (to_writer, from_reader) = sync_channel::<Copied>(depth);
        let (recycle, spares) = sync_channel::<Vec<u8>>(depth + 2);
        let writer = {
            let w = WriterJob {
                index: self.index,
                origin: self.origin.clone(),
                dir: self.dir.clone(),
                prefix: self.prefix.clone(),
                roll: self.options.roll,
                manifest: self.manifest.clone(),
                idle: self.options.idle,
                cpu: self.options.cpu,
            };
            std::thread::Builder::new()
                .name(format!("shmkit-record-writer {}", self.origin.ring))
                .spawn(move || w.run(from_reader, recycle))
                .map_err(|_| RecordError::Thread(self.origin.ring.clone()))?
        };
        let _ = running.send(());
        let read = self.read(start_id, reader, &to_writer, &spares);
        drop(to_writer);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(RecordError::Thread(self.origin.ring.clone())));
        read.and(written)
    }

    fn read(
        &self,
        start_id: u64,
        mut reader: FrameReader,
        to_writer: &SyncSender<Copied>,
        spares: &Receiver<Vec<u8>>,
    ) -> Result<(), RecordError> {
        let ring_error = |source| RecordError::Ring {
            ring: self.origin.ring.clone(),
            source,
        };
        let mut last = start_id;
        let mut end: Option<u64> = None;
        loop {
            if end.is_none() && self.stop.load(Ordering::Acquire) {
                end = Some(self.ring.stats().last_id);
            }
            if end.is_some_and(|e| last >= e) {
                break;
            }
            let frame = match reader.next(Duration::ZERO) {
                Ok(f) => f,
                Err(RingError::Timeout { .. }) => {
                    if end.is_some() {
                        break;
                    }
                    std::thread::sleep(POLL);
                    continue;
                }
                // Lapped: the frames it missed show as a gap in the ids.
                Err(RingError::Overrun { .. }) => continue,
                Err(e) => return Err(ring_error(e)),
            };
            let id = frame.id();
            if id <= last {
                continue; // not newer than what we have (a ring reset would look like this)
            }
            let mut buf = spares.try_recv().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(frame.bytes());
            let mono = frame.ts_ns();
            let row = Row {
                id,
                mono_ns: mono,
                utc_s: (i128::from(mono) + self.offset) as f64 / 1e9,
                dropped: id - last - 1,
                len: frame.len() as u64,
                user: std::array::from_fn(|i| frame.user(i)),
            };
            // The slot is let go here, after one copy.
            drop(frame);
            self.counters
                .dropped
                .fetch_add(row.dropped, Ordering::Relaxed);
            last = id;
            if to_writer.send((buf, row)).is_err() {
                break; // the writer failed; its error is what the caller reports
            }
            self.counters.recorded.fetch_add(1, Ordering::Relaxed);
        }
        let end = end.unwrap_or(last).max(last);
        let tail = end - last;
        self.counters.dropped.fetch_add(tail, Ordering::Relaxed);
        let mut m = lock(&self.manifest);
        let r = &mut m.rings[self.index];
        r.end_id = Some(end);
        r.published = Some(end - start_id);
        r.recorded = self.counters.recorded.load(Ordering::Relaxed);
        r.dropped = self.counters.dropped.load(Ordering::Relaxed);
        Ok(())
    }
}

/// The writer side of one ring.
struct WriterJob {
    index: usize,
    origin: Origin,
    dir: PathBuf,
    prefix: String,
    roll: Roll,
    manifest: Arc<Mutex<Manifest>>,
    idle: bool,
    cpu: Option<usize>,
}

impl WriterJob {
    fn run(
        self,
        frames: Receiver<Copied>,
        recycle: SyncSender<Vec<u8>>,
    ) -> Result<(), RecordError> {
        if let Some(cpu) = self.cpu {
            let _ = sys::pin_to_cpu(cpu);
        }
        if self.idle {
            let _ = sys::idle_priority();
        }
        let mut index = 0u32;
        let mut file = self.open(index)?;
        let mut opened_at = Instant::now();
        for (bytes, row) in frames {
            if self.full(&file, opened_at) {
                self.close(file)?;
                index += 1;
                file = self.open(index)?;
                opened_at = Instant::now();
            }
            file.write(&bytes, &row)?;
            let _ = recycle.try_send(bytes);
        }
        self.close(file)
    }

    fn open(&self, index: u32) -> Result<CubeFile, RecordError> {
        let origin = Origin {
            index,
            ..self.origin.clone()
        };
        CubeFile::create(&self.dir, &format!("{}-{index:04}", self.prefix), origin)
    }

    fn full(&self, file: &CubeFile, opened_at: Instant) -> bool {
        let r = &self.roll;
        file.frames() > 0
            && (r.frames.is_some_and(|n| file.frames() >= n)
                || r.bytes.is_some_and(|b| file.data_bytes() >= b)
                || r.seconds
                    .is_some_and(|s| opened_at.elapsed().as_secs_f64() >= s))
    }

    fn close(&self, file: CubeFile) -> Result<(), RecordError> {
        let summary = file.close()?;
        // Written under the lock: the rings' writers close files concurrently, and the
        // manifest on disk must be the newest one (one writer at a time also keeps its
        // temporary file to one writer).
        let mut m = lock(&self.manifest);
        m.rings[self.index].files.push(summary);
        m.write(&self.dir)
    }
}
