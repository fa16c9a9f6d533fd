//! Export: a frame ring followed newest-only and written into a stream, frame by frame, as
//! the reference writer writes (see [`writer`](super::writer)). The frame's id, publish time
//! and user words travel in the `SHMKIT_*` keywords; `atime` is the frame's publish time on
//! `CLOCK_TAI`, so milk tools see when the frame was taken, not when it was copied.

use super::time::monotonic_to_tai;
use super::writer::{FrameMeta, StreamOptions, StreamWriter};
use super::IsioError;
use shmkit::os::clock::monotonic_ns;
use shmkit::rings::{FrameReader, FrameRing, ReadMode, RingError};
use shmkit::{Interrupt, Timeout};
use std::time::Duration;

/// How often a running exporter checks that its stream file was not removed, replaced or
/// truncated (a truncation its own writes ran into is noticed at once).
const CURRENT_CHECK: Duration = Duration::from_millis(250);

/// How an exporter runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportOptions {
    /// The stream's creation options.
    pub stream: StreamOptions,
    /// At most this many frames per second (frames in between are skipped: newest-only);
    /// `None`: every frame the reader gets.
    pub max_rate: Option<f64>,
}

/// What an exporter has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportStats {
    /// Frames written into the stream.
    pub written: u64,
    /// Ring frames published that were not written (newest-only, or the rate limit).
    pub skipped: u64,
    /// The id of the last frame written.
    pub last_id: u64,
}

/// A frame ring exported as a stream.
#[derive(Debug)]
pub struct Exporter {
    reader: FrameReader,
    writer: StreamWriter,
    min_interval_ns: u64,
    next_allowed_ns: u64,
    next_check_ns: u64,
    stats: ExportStats,
}

impl Exporter {
    /// Creates stream `name` shaped as `ring`'s frames and registers a newest-only reader
    /// of the ring. The ring's element type and shape (1 to 3 axes) must have a stream
    /// equivalent.
    pub fn new(
        ring: &FrameRing,
        name: &str,
        options: &ExportOptions,
    ) -> Result<Exporter, IsioError> {
        if let Some(rate) = options.max_rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(IsioError::Rate { rate });
            }
        }
        let writer = StreamWriter::create(name, ring.elem(), ring.shape(), &options.stream)?;
        let reader = ring.reader(ReadMode::NewestOnly)?;
        let min_interval_ns = options
            .max_rate
            .map_or(0, |r| (1e9 / r).min(u64::MAX as f64) as u64);
        Ok(Exporter {
            reader,
            writer,
            min_interval_ns,
            next_allowed_ns: 0,
            next_check_ns: monotonic_ns() + CURRENT_CHECK.as_nanos() as u64,
            stats: ExportStats::default(),
        })
    }

    /// The stream being written.
    pub fn writer(&self) -> &StreamWriter {
        &self.writer
    }

    /// What this exporter has done.
    pub fn stats(&self) -> ExportStats {
        self.stats
    }

    /// Waits up to `timeout` for a frame newer than the last one written (and, with a rate
    /// limit, for the next allowed instant) and writes it. `Ok(false)`: no new frame in
    /// time. Fails with [`RingError::Interrupted`] (inside [`IsioError::Ring`]) within
    /// 100 ms of `interrupt` saying stop, and with [`IsioError::Changed`] if someone removed
    /// or replaced the stream file.
    pub fn step(&mut self, timeout: Timeout, interrupt: &dyn Interrupt) -> Result<bool, IsioError> {
        let now = monotonic_ns();
        if now >= self.next_check_ns || self.writer.truncated() {
            self.next_check_ns = now + CURRENT_CHECK.as_nanos() as u64;
            if let Some(reason) = self.writer.change() {
                return Err(IsioError::Changed {
                    path: self.writer.path().to_owned(),
                    reason: reason.into(),
                });
            }
        }
        if self.next_allowed_ns > now {
            let wait = Duration::from_nanos(self.next_allowed_ns - now);
            let limit = timeout.as_duration();
            if wait > limit {
                sleep_interruptible(limit, interrupt)?;
                return Ok(false);
            }
            sleep_interruptible(wait, interrupt)?;
        }
        let frame = match self.reader.next_interruptible(timeout, interrupt) {
            Ok(frame) => frame,
            Err(RingError::Timeout { .. }) => return Ok(false),
            Err(RingError::Overrun { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let id = frame.id();
        let ts = frame.ts_ns();
        let mut user = [0u64; super::writer::USER_WORDS];
        for (i, u) in user.iter_mut().enumerate() {
            *u = frame.user(i);
        }
        let meta = FrameMeta {
            id,
            ts_ns: ts,
            atime: Some(monotonic_to_tai(ts)),
            user,
        };
        self.writer.write(frame.bytes(), &meta);
        drop(frame);
        if self.stats.last_id != 0 {
            self.stats.skipped += id.saturating_sub(self.stats.last_id).saturating_sub(1);
        }
        self.stats.written += 1;
        self.stats.last_id = id;
        if self.min_interval_ns > 0 {
            // The schedule advances by the interval, so waking late does not drift the rate;
            // after a stall longer than an interval it restarts from now (no burst).
            let now = monotonic_ns();
            let base = if self.next_allowed_ns + self.min_interval_ns < now {
                now
            } else {
                self.next_allowed_ns
                    .max(now.saturating_sub(self.min_interval_ns))
            };
            self.next_allowed_ns = base + self.min_interval_ns;
        }
        Ok(true)
    }

    /// Exports until `interrupt` says stop; returns what was done. (Dropping the exporter
    /// afterwards removes the stream file.)
    pub fn run(&mut self, interrupt: &dyn Interrupt) -> Result<ExportStats, IsioError> {
        loop {
            match self.step(Timeout::After(Duration::from_millis(100)), interrupt) {
                Ok(_) => {}
                Err(IsioError::Ring(RingError::Interrupted)) => return Ok(self.stats),
                Err(e) => return Err(e),
            }
            if interrupt.should_stop() {
                return Ok(self.stats);
            }
        }
    }
}

/// Sleeps `d`, in slices short enough to notice `interrupt` within 100 ms.
pub(super) fn sleep_interruptible(d: Duration, interrupt: &dyn Interrupt) -> Result<(), IsioError> {
    let end = monotonic_ns().saturating_add(d.as_nanos().min(u64::MAX as u128) as u64);
    loop {
        let now = monotonic_ns();
        if now >= end {
            return Ok(());
        }
        if interrupt.is_active() && interrupt.should_stop() {
            return Err(RingError::Interrupted.into());
        }
        let slice = Duration::from_nanos(end - now).min(shmkit::INTERRUPT_POLL);
        std::thread::sleep(slice);
    }
}
