//! Trace buffers in the segment: spans, instants and counters from every process into one
//! bounded ring (the oldest overwritten, every loss counted), for a tool to turn into a
//! timeline (`shmkit trace` writes the Chrome trace-event format Perfetto opens).
//!
//! The bytes are in `shm-layout/src/trace.rs`; the event protocol with its loom models in
//! `protocol.rs`; the name table in `names.rs`; reading from a cursor in `read.rs`; which
//! thread and process recorded what in `announce.rs`; creating and attaching in `attach.rs`.
//!
//! ```no_run
//! use shmkit::{Segment, CreateOptions};
//! use shmkit::shared::TraceSpec;
//! # let seg = Segment::create("lab", &CreateOptions::new(8 << 20))?;
//! let trace = seg.trace_buffer("trace", &TraceSpec::default())?;
//! let centroid = trace.name("centroid")?;
//! for frame in 0..10u64 {
//!     let _span = trace.span(centroid).with_arg(frame); // recorded when dropped
//!     // ... the work ...
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod announce;
mod attach;
mod names;
pub(crate) mod protocol;
mod read;

pub use read::{TraceCursor, TraceRecord, TraceRecordKind};

use crate::segment::Segment;
use crate::sync::{shared_view, AtomicU32, AtomicU64, Ordering, Reserved};
use crate::sys::clock::monotonic_ns;
use crate::sys::identity::current_thread;
use names::{NameFault, NameView};
use protocol::{EventView, Fields};
use shm_layout::validate::TraceGeometry;
use shm_layout::{TraceHeader, TraceKind, TRACE_NAME_MAX};
use std::fmt;
use std::ptr::NonNull;
use std::time::Duration;

shared_view! {
    /// The buffer's header words; byte-for-byte [`shm_layout::TraceHeader`].
    pub(crate) struct TraceHeaderView mirrors TraceHeader, align(64) {
        head: AtomicU64,
        reserved0: Reserved<[u64; 7]>,
        events: AtomicU32,
        names: AtomicU32,
        names_offset: AtomicU64,
        events_offset: AtomicU64,
        dropped: AtomicU64,
        reserved1: Reserved<[u64; 4]>,
    }
}

/// The size of a trace buffer: how many events it keeps and how many distinct names it can
/// file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSpec {
    /// Events kept (a power of two, 64..=16 777 216); 64 bytes each. The default, 65 536
    /// (4 MiB), holds a few seconds of a kHz loop that records a handful of spans a frame.
    pub events: u32,
    /// Distinct names (span, counter, thread and process names), 1..=4096; 64 bytes each.
    pub names: u32,
}

impl Default for TraceSpec {
    fn default() -> TraceSpec {
        TraceSpec {
            events: 1 << 16,
            names: 512,
        }
    }
}

/// A name filed in a trace buffer's name table, for recording events cheaply (see
/// [`TraceBuffer::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceName(u16);

impl TraceName {
    /// The name's index in its buffer's table (what events store).
    pub fn index(self) -> u16 {
        self.0
    }
}

/// Why a name could not be used for tracing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// Names are 1 to 56 bytes of UTF-8.
    #[error("trace name {name:?} is {len} bytes; a name is 1 to {TRACE_NAME_MAX}")]
    NameLength {
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The buffer's name table holds as many names as it can.
    #[error("trace buffer's name table is full ({names} names): {name:?} cannot be filed")]
    NamesFull {
        /// The name that did not fit.
        name: String,
        /// The table's size.
        names: u32,
    },
}

/// A process-shared trace buffer (see the module documentation). Cloning shares it.
#[derive(Clone)]
pub struct TraceBuffer {
    _segment: Segment,
    offset: u64,
    base: NonNull<u8>,
    geometry: TraceGeometry,
}

// SAFETY: the buffer's words are atomics; the segment handle keeps the mapping alive.
unsafe impl Send for TraceBuffer {}
// SAFETY: as above.
unsafe impl Sync for TraceBuffer {}

impl fmt::Debug for TraceBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceBuffer")
            .field("offset", &self.offset)
            .field("events", &self.geometry.events)
            .field("names", &self.geometry.names)
            .finish_non_exhaustive()
    }
}

impl TraceBuffer {
    #[inline]
    fn header(&self) -> &TraceHeaderView {
        // SAFETY: attach checked that the block at `base` is a trace buffer block holding a
        // whole header, aligned for it; the view is atomics only, valid for any bytes;
        // `_segment` keeps the mapping alive as long as `&self`.
        unsafe { self.base.cast::<TraceHeaderView>().as_ref() }
    }

    /// `len` 64-byte views of type `V` from `offset` in the block.
    ///
    /// # Safety
    /// The validator must have checked that `len` entries of `V`'s size start at `offset` (a
    /// multiple of 64 from the 64-aligned block) and end inside the block, and `V` must be
    /// atomics only (valid for any bytes).
    #[inline]
    unsafe fn entries<V>(&self, offset: u64, len: u32) -> &[V] {
        // SAFETY: per this function's contract the entries lie in the block, aligned, and are
        // valid for any bytes; `_segment` keeps the mapping alive as long as `&self`.
        unsafe {
            std::slice::from_raw_parts(
                self.base.as_ptr().add(offset as usize).cast::<V>(),
                len as usize,
            )
        }
    }

    #[inline]
    fn events(&self) -> &[EventView] {
        let g = &self.geometry;
        // SAFETY: `validate::trace` checked `events` slots of 64 bytes (an `EventView`'s
        // size) from `events_offset` inside the block.
        unsafe { self.entries(g.events_offset, g.events) }
    }

    fn names(&self) -> &[NameView] {
        let g = &self.geometry;
        // SAFETY: as for `events`: `names` 64-byte entries from `names_offset`.
        unsafe { self.entries(g.names_offset, g.names) }
    }

    /// Offset of the buffer in its segment.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The buffer's size.
    pub fn spec(&self) -> TraceSpec {
        TraceSpec {
            events: self.geometry.events,
            names: self.geometry.names,
        }
    }

    /// Events recorded so far by every process (or given up: see [`dropped`](Self::dropped)).
    pub fn head(&self) -> u64 {
        self.header().head.load(Ordering::Relaxed)
    }

    /// Events writers gave up because their slot was still being written a whole lap
    /// earlier (a writer stalled or killed mid-event), or lost to a writer two laps on.
    pub fn dropped(&self) -> u64 {
        self.header().dropped.load(Ordering::Relaxed)
    }

    /// Files `name` in the buffer's name table (once per buffer, whichever process comes
    /// first) and returns the handle events are recorded with.
    pub fn name(&self, name: &str) -> Result<TraceName, TraceError> {
        names::intern(self.names(), name)
            .map(TraceName)
            .map_err(|fault| match fault {
                NameFault::Length(len) => TraceError::NameLength {
                    name: name.to_owned(),
                    len,
                },
                NameFault::Full => TraceError::NamesFull {
                    name: name.to_owned(),
                    names: self.geometry.names,
                },
            })
    }

    /// The name filed at `index` (`None` if none is, or it is being filed).
    pub fn name_at(&self, index: u16) -> Option<String> {
        names::name_at(self.names(), index)
    }

    /// Starts a span named `name`, recorded (start and duration) when the returned guard is
    /// dropped.
    #[inline]
    pub fn span(&self, name: TraceName) -> Span<'_> {
        Span {
            buffer: self,
            name,
            arg: None,
            start_ns: monotonic_ns(),
        }
    }

    /// Records a span that started at `start_ns` (`CLOCK_MONOTONIC` ns, as
    /// [`shmkit::os::clock::monotonic_ns`](crate::os::clock::monotonic_ns) reads it) and lasted
    /// `duration`. False when the event was dropped (see [`dropped`](Self::dropped)).
    #[inline]
    pub fn record_span(
        &self,
        name: TraceName,
        start_ns: u64,
        duration: Duration,
        arg: Option<u64>,
    ) -> bool {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.record(TraceKind::Span, name, start_ns, ns, arg)
    }

    /// Records an instant named `name`, now.
    #[inline]
    pub fn instant(&self, name: TraceName, arg: Option<u64>) -> bool {
        self.record(TraceKind::Instant, name, monotonic_ns(), 0, arg)
    }

    /// Records the counter `name`'s value, now.
    #[inline]
    pub fn counter(&self, name: TraceName, value: f64) -> bool {
        self.record(
            TraceKind::Counter,
            name,
            monotonic_ns(),
            value.to_bits(),
            None,
        )
    }

    /// Records the counter `name`'s value as it was at `at_ns` (`CLOCK_MONOTONIC` ns), from a
    /// timestamp a loop already has, as [`record_span`](Self::record_span) does for spans.
    #[inline]
    pub fn record_counter(&self, name: TraceName, at_ns: u64, value: f64) -> bool {
        self.record(TraceKind::Counter, name, at_ns, value.to_bits(), None)
    }

    /// Names the calling thread in this buffer's traces (otherwise it is named as the
    /// operating system knows it, `/proc/thread-self/comm`).
    pub fn name_thread(&self, name: &str) -> Result<(), TraceError> {
        let filed = self.name(name)?;
        announce::set_thread_name(name);
        self.record_now(TraceKind::Name, filed, 0);
        Ok(())
    }

    /// Names the calling process in traces (otherwise it is named as the operating system
    /// knows it, `/proc/self/comm`), in every buffer it records into from now on.
    pub fn name_process(&self, name: &str) -> Result<(), TraceError> {
        let filed = self.name(name)?;
        announce::set_process_name(name);
        self.record_now(TraceKind::Name, filed, 1);
        Ok(())
    }

    fn record_now(&self, kind: TraceKind, name: TraceName, value: u64) -> bool {
        self.record(kind, name, monotonic_ns(), value, None)
    }

    #[inline]
    fn record(
        &self,
        kind: TraceKind,
        name: TraceName,
        ts_ns: u64,
        value: u64,
        arg: Option<u64>,
    ) -> bool {
        let me = current_thread();
        if announce::due(self.base.as_ptr() as usize, ts_ns) {
            self.announce(me.pid, me.tid, ts_ns);
        }
        self.write(&Fields {
            ts_ns,
            value,
            arg,
            pid: me.pid,
            tid: me.tid,
            name: name.0,
            kind: kind as u8,
        })
    }

    #[inline]
    fn write(&self, fields: &Fields) -> bool {
        let header = self.header();
        protocol::record(&header.head, &header.dropped, self.events(), fields)
    }

    /// Records the calling thread's and process's names (at a thread's first event in this
    /// buffer and once a second after, so any window of a trace names its threads).
    #[cold]
    fn announce(&self, pid: u32, tid: u32, ts_ns: u64) {
        let (thread, process) = announce::names();
        for (name, target) in [(thread, 0), (process, 1)] {
            if let Ok(filed) = self.name(&name) {
                self.write(&Fields {
                    ts_ns,
                    value: target,
                    arg: None,
                    pid,
                    tid,
                    name: filed.0,
                    kind: TraceKind::Name as u8,
                });
            }
        }
    }

    /// A cursor from the oldest event the buffer still holds.
    pub fn cursor_from_oldest(&self) -> TraceCursor {
        TraceCursor::new(self.head().saturating_sub(u64::from(self.geometry.events)))
    }

    /// A cursor from the next event to be recorded.
    pub fn cursor_from_now(&self) -> TraceCursor {
        TraceCursor::new(self.head())
    }
}

/// A span being timed: recorded into its buffer when dropped (see [`TraceBuffer::span`]).
#[must_use = "a span is recorded when dropped: bind it to a variable (`let _span = ...`)"]
pub struct Span<'a> {
    buffer: &'a TraceBuffer,
    name: TraceName,
    arg: Option<u64>,
    start_ns: u64,
}

impl Span<'_> {
    /// Attaches `arg` (a frame id, say) to the span.
    #[inline]
    pub fn with_arg(mut self, arg: u64) -> Self {
        self.arg = Some(arg);
        self
    }
}

impl Drop for Span<'_> {
    #[inline]
    fn drop(&mut self) {
        let end = monotonic_ns();
        self.buffer.record(
            TraceKind::Span,
            self.name,
            self.start_ns,
            end.saturating_sub(self.start_ns),
            self.arg,
        );
    }
}

// Real segments: miri cannot map shared memory.
#[cfg(all(test, not(miri)))]
mod tests;
