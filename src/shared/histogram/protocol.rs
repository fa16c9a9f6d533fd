//! The histogram's protocol over its shared words (table in `shm-layout/src/histogram.rs`):
//! a sample is one `fetch_add` on its bucket (and a `fetch_max` only when it is a new
//! maximum); a reset bumps the generation, then zeroes; a reader copies between two reads of
//! the generation, seqlock-style, so it knows whether a reset ran while it copied.
//!
//! The functions take the words, not the view, so the loom models below check them on four
//! buckets instead of 976.

use crate::sync::{fence, AtomicU64, Ordering};

/// Adds one sample of `value` to `buckets[bucket]` and raises `max` to it.
#[inline]
pub(crate) fn record(buckets: &[AtomicU64], max: &AtomicU64, bucket: usize, value: u64) {
    // Relaxed: a count orders nothing; readers want totals, not happens-before.
    buckets[bucket].fetch_add(1, Ordering::Relaxed);
    // A load first: almost every sample is below the maximum, and a load does not take the
    // cache line exclusively the way `fetch_max` would.
    if value > max.load(Ordering::Relaxed) {
        max.fetch_max(value, Ordering::Relaxed);
    }
}

/// Zeroes the maximum and every bucket, the generation odd while it does and one more
/// (even) after. A sample recorded while this runs may be kept or zeroed. A reset killed
/// midway leaves the generation odd (readers see no stable copy) until the next reset, which
/// continues from that odd value; concurrent resets both zero, and the generation ends even.
pub(crate) fn reset(generation: &AtomicU64, buckets: &[AtomicU64], max: &AtomicU64) {
    let running = generation.load(Ordering::Relaxed) | 1;
    generation.store(running, Ordering::Relaxed);
    // Release: the odd generation before any zero below (pairs with the Acquire fence in
    // `copy`: a reader that copied one of these zeros then reads a changed generation).
    fence(Ordering::Release);
    max.store(0, Ordering::Relaxed);
    for bucket in buckets {
        bucket.store(0, Ordering::Relaxed);
    }
    // Release: every zero before the even generation (pairs with the Acquire load that
    // starts `copy`: a reader that finds the new generation copies from the zeros on).
    generation.store(running + 1, Ordering::Release);
}

/// Copies `buckets` into `out` and returns the generation and the maximum, retrying while a
/// reset runs; after `tries` attempts that each overlapped a reset, the last copy (some of
/// its counts from before the reset, some after) with `stable` false.
pub(crate) fn copy(
    generation: &AtomicU64,
    buckets: &[AtomicU64],
    max: &AtomicU64,
    out: &mut [u64],
    tries: u32,
) -> Copied {
    let mut attempt = 0;
    loop {
        // Acquire: pairs with the Release fence of a reset that completed before: its zeros
        // (and anything recorded after them) are what the loads below start from.
        let before = generation.load(Ordering::Acquire);
        for (o, b) in out.iter_mut().zip(buckets) {
            *o = b.load(Ordering::Relaxed);
        }
        let high = max.load(Ordering::Relaxed);
        // Acquire: pairs with a running reset's Release fence: if any load above saw one of
        // its zeros, the generation read below is the new one.
        fence(Ordering::Acquire);
        let after = generation.load(Ordering::Relaxed);
        attempt += 1;
        let stable = before == after && before % 2 == 0;
        if stable || attempt >= tries {
            return Copied {
                generation: after,
                max: high,
                stable,
            };
        }
    }
}

/// What [`copy`] read besides the buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Copied {
    /// The generation the copy belongs to.
    pub generation: u64,
    /// The maximum.
    pub max: u64,
    /// No reset ran while it copied.
    pub stable: bool,
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    struct Words {
        generation: AtomicU64,
        max: AtomicU64,
        buckets: [AtomicU64; 4],
    }

    fn words() -> Arc<Words> {
        Arc::new(Words {
            generation: AtomicU64::new(0),
            max: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        })
    }

    #[test]
    fn samples_from_two_threads_add_up_exactly() {
        loom::model(|| {
            let w = words();
            let threads: Vec<_> = [(1usize, 10u64), (2, 20)]
                .into_iter()
                .map(|(bucket, value)| {
                    let w = w.clone();
                    loom::thread::spawn(move || {
                        record(&w.buckets, &w.max, bucket, value);
                        record(&w.buckets, &w.max, 3, value + 1);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let mut out = [0u64; 4];
            let c = copy(&w.generation, &w.buckets, &w.max, &mut out, 1);
            assert_eq!(out, [0, 1, 1, 2]);
            assert_eq!((c.max, c.stable), (21, true));
        });
    }

    #[test]
    fn a_stable_copy_is_all_from_one_side_of_a_reset() {
        loom::model(|| {
            let w = words();
            record(&w.buckets, &w.max, 0, 5);
            record(&w.buckets, &w.max, 1, 6);
            let resetter = {
                let w = w.clone();
                loom::thread::spawn(move || reset(&w.generation, &w.buckets, &w.max))
            };
            let mut out = [0u64; 4];
            let c = copy(&w.generation, &w.buckets, &w.max, &mut out, 1);
            resetter.join().unwrap();
            if c.stable {
                // Before the reset: both samples; after it: none. Never one of two.
                match c.generation {
                    0 => assert_eq!((out, c.max), ([1, 1, 0, 0], 6)),
                    g => assert_eq!((g, out, c.max), (2, [0, 0, 0, 0], 0)),
                }
            }
        });
    }
}
