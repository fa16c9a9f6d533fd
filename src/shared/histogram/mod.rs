//! Histograms in the segment: latencies (or any `u64`) from every process into one set of
//! log-scaled buckets, one atomic add per sample, readable by any process at any time.
//!
//! The bytes and the bucket scale are in `shm-layout/src/histogram.rs`, the protocol (record,
//! reset, a consistent copy) with its loom models in `protocol.rs`, what a copy says
//! (quantiles, windows) in `snapshot.rs`, and creating and attaching in `attach.rs`.
//!
//! ```no_run
//! use shmkit::{Segment, CreateOptions, SegmentObjects};
//! use shmkit::shared::Histogram;
//! # let seg = Segment::create("lab", &CreateOptions::new(1 << 20))?;
//! let latency: Histogram = seg.open_or_create("loop/frame-to-command", &())?;
//! latency.record_duration(std::time::Duration::from_micros(42));
//! let before = latency.snapshot();
//! // ... a second later, in this or any other process:
//! let window = latency.snapshot().since(&before).unwrap_or_default();
//! println!("p99 {:?} ns over the last second", window.quantile(0.99));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod attach;
pub(crate) mod protocol;
mod snapshot;

pub use snapshot::HistogramSnapshot;

use crate::segment::Segment;
use crate::sync::{shared_view, AtomicU64, Reserved};
use shm_layout::{histogram_bucket, HistogramLayout, HISTOGRAM_BUCKETS};
use std::fmt;
use std::ptr::NonNull;
use std::time::Duration;

shared_view! {
    /// The histogram's shared words; byte-for-byte [`shm_layout::HistogramLayout`].
    pub(crate) struct HistogramView mirrors HistogramLayout, align(64) {
        generation: AtomicU64,
        max: AtomicU64,
        reserved: Reserved<[u64; 6]>,
        buckets: [AtomicU64; HISTOGRAM_BUCKETS],
    }
}

/// How many times [`Histogram::snapshot`] copies while resets keep overlapping it.
const COPY_TRIES: u32 = 8;

/// A process-shared histogram (see the module documentation). Cloning shares it.
#[derive(Clone)]
pub struct Histogram {
    _segment: Segment,
    offset: u64,
    base: NonNull<u8>,
}

// SAFETY: the histogram's words are atomics; the segment handle keeps the mapping alive.
unsafe impl Send for Histogram {}
// SAFETY: as above.
unsafe impl Sync for Histogram {}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl Histogram {
    #[inline]
    fn view(&self) -> &HistogramView {
        // SAFETY: attach checked that the block at `base` is a histogram block holding a whole
        // `HistogramView`, aligned for it; the view is atomics only, valid for any bytes;
        // `_segment` keeps the mapping alive as long as `&self`.
        unsafe { self.base.cast::<HistogramView>().as_ref() }
    }

    /// Offset of the histogram in its segment.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Counts one sample of `value` (nanoseconds, by shmkit's convention, or any unit the
    /// histogram's users agree on). Lock-free: one atomic add, and a second only for a new
    /// maximum.
    #[inline]
    pub fn record(&self, value: u64) {
        let v = self.view();
        protocol::record(&v.buckets, &v.max, histogram_bucket(value), value);
    }

    /// Counts one sample of `duration`, in nanoseconds (saturating at `u64::MAX` ns, 584
    /// years).
    #[inline]
    pub fn record_duration(&self, duration: Duration) {
        self.record(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// A copy of the counts (consistent unless resets kept overlapping it: see
    /// [`HistogramSnapshot::is_stable`]).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let v = self.view();
        let mut buckets = vec![0u64; HISTOGRAM_BUCKETS].into_boxed_slice();
        let copied = protocol::copy(&v.generation, &v.buckets, &v.max, &mut buckets, COPY_TRIES);
        HistogramSnapshot {
            generation: copied.generation,
            max: copied.max,
            stable: copied.stable,
            buckets,
        }
    }

    /// Forgets every sample (for every process). A sample recorded while this runs may be
    /// kept or forgotten; a window ([`HistogramSnapshot::since`]) across a reset is `None`.
    pub fn reset(&self) {
        let v = self.view();
        protocol::reset(&v.generation, &v.buckets, &v.max);
    }
}

// Real segments: miri cannot map shared memory.
#[cfg(all(test, not(miri)))]
mod tests;
