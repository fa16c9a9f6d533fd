//! Import: a stream's frames copied into a shmkit frame ring, so shmkit readers get a milk
//! camera zero-copy. The importer waits on its own semaphore of the stream (claimed as milk
//! readers claim one), copies each new frame straight into a claimed ring slot, and publishes
//! it only if the copy was not torn ([`reader`](super::reader)); a torn copy is dropped and
//! counted.
//!
//! The ring's spec comes from the stream: its element type, its shape slowest axis first
//! (`[size[1], size[0]]` for an image), and the slots asked for; an existing ring of another
//! spec is a typed error. User words: a stream written by a shmkit exporter carries its
//! source frame's five user words (keywords `SHMKIT_U0` … `SHMKIT_U4`), and they are
//! published as they were; any other stream's frames get `[cnt0, atime, writetime, 0, 0]`
//! (times in `CLOCK_TAI` nanoseconds).
//!
//! A stream that is removed and created again (a restarted milk camera: a new inode) is
//! re-attached within 100 ms of its first post; one re-created with another shape or type
//! ends the import with [`IsioError::Changed`].

use super::layout::Parsed;
use super::reader::{Copied, StreamReader};
use super::IsioError;
use shmkit::os::clock::monotonic_ns;
use shmkit::rings::{FrameRing, FrameSpec, FrameWriter, RingError};
use shmkit::segment::Segment;
use shmkit::{Interrupt, Timeout};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest single semaphore wait: how soon a re-created stream or an interrupt is
/// noticed.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// How often a streaming importer checks that the path still names its file.
const CURRENT_CHECK: Duration = Duration::from_millis(250);

/// How an importer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Slots of the ring it creates (2 to 1024; default 8).
    pub slots: u32,
    /// The semaphore index to prefer (default 0; another free one if it is taken).
    pub semaphore: u16,
    /// Users (uids) besides this one and root whose stream files are read; a file owned by
    /// anyone else is [`IsioError::Owner`] (default: none).
    pub trusted_owners: Vec<u32>,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            slots: 8,
            semaphore: 0,
            trusted_owners: Vec::new(),
        }
    }
}

/// What an importer has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportStats {
    /// Frames published into the ring.
    pub published: u64,
    /// Copies the writer tore (dropped).
    pub torn: u64,
    /// Posts found the writer already writing the next frame (nothing copied).
    pub busy: u64,
    /// Frames the stream wrote that were never copied (counter gaps).
    pub missed: u64,
    /// Frames dropped because readers held every ring slot.
    pub ring_full: u64,
    /// Times the stream was re-attached after being re-created.
    pub reattached: u64,
    /// The stream's counter at the last frame published.
    pub last_cnt0: u64,
}

/// What one [`Importer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A frame was published with this ring id.
    Published(u64),
    /// A post came but no frame was published (torn, busy, unchanged or the ring full:
    /// the statistics say which).
    Dropped,
    /// Nothing within the timeout.
    Idle,
}

/// The ring spec for `parsed`'s frames.
pub fn spec_for(parsed: &Parsed, slots: u32) -> Result<FrameSpec, IsioError> {
    let elem = parsed.datatype.elem().ok_or(IsioError::UnsupportedType {
        name: parsed.datatype.name(),
        code: parsed.datatype.code(),
    })?;
    Ok(FrameSpec::new(slots, elem, &parsed.shape()))
}

/// Segment headroom beyond the ring: the segment header, its object table and allocator.
const SEGMENT_HEADROOM: u64 = 1 << 20;

/// Bytes a new segment needs to hold the ring an import of the stream at `path` creates with
/// `slots` slots (the ring plus 1 MiB for the segment's own structures).
pub fn segment_size_for(path: &Path, slots: u32) -> Result<u64, IsioError> {
    let spec = spec_for(&super::dir::Peek::read(path)?.parse()?, slots)?;
    let geometry = shm_layout::validate::FrameGeometry::new(spec.slots, spec.elem, &spec.shape)
        .map_err(|e| shmkit::segment::SegmentError::InvalidOption(e.to_string()))?;
    geometry
        .size
        .checked_add(SEGMENT_HEADROOM)
        .ok_or(IsioError::Corrupt("the ring's size overflows"))
}

/// A stream imported into a frame ring.
#[derive(Debug)]
pub struct Importer {
    path: PathBuf,
    reader: StreamReader,
    spec: FrameSpec,
    writer: FrameWriter,
    preferred: u16,
    trusted: Vec<u32>,
    next_check_ns: u64,
    stats: ImportStats,
}

impl Importer {
    /// Opens the stream file at `path`, finds or creates ring `ring` in `segment` with the
    /// stream's spec (an existing ring must match it) and takes the ring's writer role.
    pub fn new(
        path: &Path,
        segment: &Segment,
        ring: &str,
        options: &ImportOptions,
    ) -> Result<Importer, IsioError> {
        let reader = StreamReader::open_trusting(path, options.semaphore, &options.trusted_owners)?;
        let spec = spec_for(reader.parsed(), options.slots)?;
        let ring = segment.frame_ring(ring, &spec)?;
        let writer = ring.writer()?;
        Ok(Importer {
            path: path.to_owned(),
            reader,
            spec,
            writer,
            preferred: options.semaphore,
            trusted: options.trusted_owners.clone(),
            next_check_ns: monotonic_ns() + CURRENT_CHECK.as_nanos() as u64,
            stats: ImportStats::default(),
        })
    }

    /// The ring frames are published into.
    pub fn ring(&self) -> &FrameRing {
        self.writer.ring()
    }

    /// The stream reader (its semaphore index, header, liveness of the writer).
    pub fn reader(&self) -> &StreamReader {
        &self.reader
    }

    /// What this importer has done.
    pub fn stats(&self) -> ImportStats {
        self.stats
    }

    /// Re-attaches if the path names another file now; a file with another spec is an
    /// error, a missing one is waited for (the old mapping stays).
    fn check_current(&mut self) -> Result<(), IsioError> {
        self.next_check_ns = monotonic_ns() + CURRENT_CHECK.as_nanos() as u64;
        if self.reader.still_current() {
            return Ok(());
        }
        let fresh = match StreamReader::open_trusting(&self.path, self.preferred, &self.trusted) {
            Ok(r) => r,
            // Gone, or half-made by a writer that is still creating it: look again later.
            Err(IsioError::Io { .. })
            | Err(IsioError::TooShort { .. })
            | Err(IsioError::Version { .. })
            | Err(IsioError::FileSize { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let spec = spec_for(fresh.parsed(), self.spec.slots)?;
        if spec != self.spec {
            return Err(IsioError::Changed {
                path: self.path.clone(),
                reason: format!("re-created with {spec}; the ring holds {}", self.spec),
            });
        }
        self.reader = fresh;
        self.stats.reattached += 1;
        Ok(())
    }

    /// Copies the frame a post announced, if it is new and whole, into the ring.
    fn take(&mut self) -> Result<Step, IsioError> {
        let mut slot = match self.writer.try_claim() {
            Ok(slot) => slot,
            Err(RingError::AllSlotsHeld { .. }) => {
                self.stats.ring_full += 1;
                return Ok(Step::Dropped);
            }
            Err(e) => return Err(e.into()),
        };
        match self.reader.copy_frame(slot.bytes_mut())? {
            Copied::Frame(info) => {
                let user = match info.shmkit {
                    Some(words) => words.user,
                    None => [info.cnt0, info.atime.as_ns(), info.writetime.as_ns(), 0, 0],
                };
                for (i, &u) in user.iter().enumerate() {
                    slot.set_user(i, u);
                }
                let id = slot.publish();
                self.stats.published += 1;
                self.stats.missed += info.missed;
                self.stats.last_cnt0 = info.cnt0;
                Ok(Step::Published(id))
            }
            Copied::Torn => {
                self.stats.torn += 1;
                Ok(Step::Dropped)
            }
            Copied::Busy => {
                self.stats.busy += 1;
                Ok(Step::Dropped)
            }
            Copied::Unchanged => Ok(Step::Dropped),
        }
    }

    /// Waits up to `timeout` for the stream's next post and imports the frame. Fails with
    /// [`RingError::Interrupted`] (inside [`IsioError::Ring`]) within 100 ms of `interrupt`
    /// saying stop.
    pub fn step(&mut self, timeout: Timeout, interrupt: &dyn Interrupt) -> Result<Step, IsioError> {
        let start = monotonic_ns();
        let limit = timeout.as_duration();
        loop {
            if monotonic_ns() >= self.next_check_ns {
                self.check_current()?;
            }
            let elapsed = Duration::from_nanos(monotonic_ns().saturating_sub(start));
            let slice = limit.saturating_sub(elapsed).min(WAIT_SLICE);
            if self.reader.wait(slice)? {
                return self.take();
            }
            if interrupt.is_active() && interrupt.should_stop() {
                return Err(RingError::Interrupted.into());
            }
            self.check_current()?;
            if Duration::from_nanos(monotonic_ns().saturating_sub(start)) >= limit {
                return Ok(Step::Idle);
            }
        }
    }

    /// Imports until `interrupt` says stop; returns what was done.
    pub fn run(&mut self, interrupt: &dyn Interrupt) -> Result<ImportStats, IsioError> {
        loop {
            match self.step(Timeout::Forever, interrupt) {
                Ok(_) => {}
                Err(IsioError::Ring(RingError::Interrupted)) => return Ok(self.stats),
                Err(e) => return Err(e),
            }
            if interrupt.is_active() && interrupt.should_stop() {
                return Ok(self.stats);
            }
        }
    }
}
