//! The histogram: log-scaled buckets of `u64` counters, written with one atomic add per
//! sample by any process, read by any process.
//!
//! Bucket `i` of a value `v` (any unit; shmkit records nanoseconds):
//!
//! | `v` | bucket | width |
//! |---|---|---|
//! | `0..16` | `v` | 1 |
//! | `16 << k ..< 32 << k` (`k = 0..=59`) | `16 + 16 k + ((v >> k) & 15)` | `1 << k` |
//!
//! so every bucket above 15 is 1/16 of its octave wide (a value is known to within 6.25 %), and
//! the 976 buckets cover every `u64`.
//!
//! | field | meaning |
//! |---|---|
//! | `generation` | odd while a reset runs: `reset` makes it odd, zeroes `max` and the buckets, then adds 1 (so twice the resets so far) |
//! | `max` | the largest value recorded since the last reset (`fetch_max`) |
//! | `buckets[i]` | samples in bucket `i` since the last reset (`fetch_add(1)`) |
//!
//! A reader copies the buckets between two reads of `generation`: equal and even, no reset ran
//! while it copied. Counts only grow between resets, so the samples of a window are the bucket-wise
//! difference of two copies with the same generation. Any bytes are a valid histogram.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Sub-buckets per octave, as a power of two.
pub const HISTOGRAM_SUB_BITS: u32 = 4;
/// Buckets of a histogram.
pub const HISTOGRAM_BUCKETS: usize = 16 + (64 - HISTOGRAM_SUB_BITS as usize) * 16;

/// The bucket of `value` (see the module's table).
#[inline]
pub const fn histogram_bucket(value: u64) -> usize {
    if value < 16 {
        value as usize
    } else {
        let octave = 63 - value.leading_zeros(); // 4..=63
        let shift = octave - HISTOGRAM_SUB_BITS;
        16 + 16 * shift as usize + ((value >> shift) & 15) as usize
    }
}

/// The smallest value of bucket `i` (`i < HISTOGRAM_BUCKETS`).
pub const fn histogram_bucket_low(i: usize) -> u64 {
    if i < 16 {
        i as u64
    } else {
        let shift = (i - 16) / 16;
        ((16 + (i - 16) % 16) as u64) << shift
    }
}

/// The largest value of bucket `i` (`i < HISTOGRAM_BUCKETS`).
pub const fn histogram_bucket_high(i: usize) -> u64 {
    if i + 1 >= HISTOGRAM_BUCKETS {
        u64::MAX
    } else {
        histogram_bucket_low(i + 1) - 1
    }
}

/// A process-shared histogram (see the module's tables).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct HistogramLayout {
    /// Odd while a reset runs; twice the resets so far otherwise.
    pub generation: u64,
    /// Largest value since the last reset.
    pub max: u64,
    /// Reserved; zero.
    pub reserved: [u64; 6],
    /// Samples per bucket since the last reset.
    pub buckets: [u64; HISTOGRAM_BUCKETS],
}

const _: () = {
    assert!(HISTOGRAM_BUCKETS == 976);
    assert!(size_of::<HistogramLayout>() == 64 + 8 * HISTOGRAM_BUCKETS);
    assert!(offset_of!(HistogramLayout, generation) == 0);
    assert!(offset_of!(HistogramLayout, max) == 8);
    assert!(offset_of!(HistogramLayout, buckets) == 64);
    assert!(histogram_bucket(u64::MAX) == HISTOGRAM_BUCKETS - 1);
    assert!(histogram_bucket(15) == 15 && histogram_bucket(16) == 16);
    assert!(histogram_bucket(31) == 31 && histogram_bucket(32) == 32);
    assert!(histogram_bucket_low(32) == 32 && histogram_bucket_high(31) == 31);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_the_bucket_whose_bounds_hold_it() {
        let mut v = 0u64;
        let mut step = 1u64;
        while v < u64::MAX / 2 {
            let i = histogram_bucket(v);
            assert!(
                histogram_bucket_low(i) <= v && v <= histogram_bucket_high(i),
                "{v}"
            );
            v = v.saturating_add(step);
            step = step.saturating_add(step / 3 + 1);
        }
        for i in 0..HISTOGRAM_BUCKETS {
            assert_eq!(histogram_bucket(histogram_bucket_low(i)), i);
            assert_eq!(histogram_bucket(histogram_bucket_high(i)), i);
        }
    }

    #[test]
    fn a_bucket_above_fifteen_is_a_sixteenth_of_its_octave() {
        for i in 16..HISTOGRAM_BUCKETS {
            let (lo, hi) = (histogram_bucket_low(i), histogram_bucket_high(i));
            let width = hi - lo + 1;
            assert_eq!(width, 1 << ((i - 16) / 16), "bucket {i}");
            assert!(
                width * 16 <= lo && lo / 2 < width * 16,
                "bucket {i}: {lo}..={hi}"
            );
        }
    }
}
