//! A histogram's counts copied out, and what they say: sample count, quantiles (to within the
//! 1/16-of-an-octave width of a bucket), mean, maximum, and the samples of a window (the
//! difference of two snapshots).

use shm_layout::{histogram_bucket_high, histogram_bucket_low, HistogramLayout, HISTOGRAM_BUCKETS};

/// A copy of a histogram's counts.
#[derive(Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub(super) generation: u64,
    pub(super) max: u64,
    pub(super) stable: bool,
    pub(super) buckets: Box<[u64]>,
}

impl std::fmt::Debug for HistogramSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistogramSnapshot")
            .field("generation", &self.generation)
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max())
            .finish()
    }
}

impl HistogramSnapshot {
    /// The counts of a copied layout (the inspector's copy of a segment).
    pub fn from_layout(layout: &HistogramLayout) -> HistogramSnapshot {
        HistogramSnapshot {
            generation: layout.generation,
            max: layout.max,
            stable: layout.generation % 2 == 0,
            buckets: layout.buckets.to_vec().into_boxed_slice(),
        }
    }

    /// Resets of the histogram before this copy (twice the number of completed resets; odd
    /// while a reset ran).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// No reset ran while this was copied (a copy taken while a reset was zeroing may hold
    /// counts from both sides of it).
    pub fn is_stable(&self) -> bool {
        self.stable
    }

    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }

    /// Samples per bucket, indexed as `shm_layout::histogram_bucket` numbers them.
    pub fn buckets(&self) -> &[u64] {
        &self.buckets
    }

    /// The largest sample (exact; 0 with no samples). In a window ([`since`](Self::since)),
    /// the largest sample's bucket's upper bound, capped at the histogram's maximum.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1; 0.5 the median): the upper bound of the bucket that
    /// holds it, capped at the maximum, so it overstates by at most a bucket's width (1/16 of
    /// its octave). `None` with no samples.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // The rank of the sample at q, 1-based: at least the first, at most the last.
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(n);
            if seen >= rank {
                return Some(histogram_bucket_high(i).min(self.max.max(histogram_bucket_low(i))));
            }
        }
        Some(self.max)
    }

    /// The mean, each sample taken at its bucket's midpoint. `None` with no samples.
    pub fn mean(&self) -> Option<f64> {
        let count = self.count();
        (count > 0).then(|| {
            let sum: f64 = self
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(i, &n)| {
                    let mid =
                        (histogram_bucket_low(i) as f64 + histogram_bucket_high(i) as f64) / 2.0;
                    mid * n as f64
                })
                .sum();
            sum / count as f64
        })
    }

    /// The samples recorded after `earlier` and up to this copy, when both copies are of the
    /// same generation; `None` when a reset came between them (this copy alone then holds
    /// what followed the reset).
    pub fn since(&self, earlier: &HistogramSnapshot) -> Option<HistogramSnapshot> {
        if self.generation != earlier.generation || !self.stable || !earlier.stable {
            return None;
        }
        let buckets: Box<[u64]> = self
            .buckets
            .iter()
            .zip(earlier.buckets.iter())
            .map(|(now, then)| now.saturating_sub(*then))
            .collect();
        let top = buckets.iter().rposition(|&n| n > 0);
        Some(HistogramSnapshot {
            generation: self.generation,
            max: top.map_or(0, |i| histogram_bucket_high(i).min(self.max)),
            stable: true,
            buckets,
        })
    }
}

/// An empty snapshot, for tests and for windows with nothing in them.
impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            generation: 0,
            max: 0,
            stable: true,
            buckets: vec![0; HISTOGRAM_BUCKETS].into_boxed_slice(),
        }
    }
}
