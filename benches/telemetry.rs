//! Recording a latency sample, shmkit's shared histogram beside its peers, in the same run.
//!
//! - `histogram_record/shmkit`: `Histogram::record` into a histogram in a segment (what every
//!   process of a loop can add to and read).
//! - `histogram_record/hdrhistogram`: the `hdrhistogram` crate's `record` (process-local, 3
//!   significant digits), the usual Rust choice.
//! - `histogram_record/atomic_add`: one `fetch_add` on a shared `AtomicU64`, the floor.
//! - `histogram_snapshot/shmkit`: copying the 976 buckets and reading p99 from them (what
//!   `shmkit watch` does per histogram per refresh).
//!
//! Values cycle through 64 latencies from 1 µs to 5 ms so the branch predictor sees a spread.
//! Run: `cargo bench --bench telemetry`.

use criterion::{criterion_group, criterion_main, Criterion};
use shmkit::{CreateOptions, Segment};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

fn values() -> Vec<u64> {
    (0..64u64).map(|i| 1_000 + i * i * 1_200).collect()
}

fn record(c: &mut Criterion) {
    let name = format!("shmkit-bench-telemetry-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
    let h = seg.histogram("latency").unwrap();
    let values = values();
    let mut g = c.benchmark_group("histogram_record");
    g.bench_function("shmkit", |b| {
        let mut i = 0;
        b.iter(|| {
            h.record(black_box(values[i & 63]));
            i += 1;
        })
    });
    let mut hdr = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
    g.bench_function("hdrhistogram", |b| {
        let mut i = 0;
        b.iter(|| {
            let _ = hdr.record(black_box(values[i & 63]));
            i += 1;
        })
    });
    let word = AtomicU64::new(0);
    g.bench_function("atomic_add", |b| {
        let mut i = 0;
        b.iter(|| {
            word.fetch_add(black_box(values[i & 63]) & 1 | 1, Ordering::Relaxed);
            i += 1;
        })
    });
    g.finish();
    let mut g = c.benchmark_group("histogram_snapshot");
    g.bench_function("shmkit", |b| {
        b.iter(|| black_box(h.snapshot().quantile(0.99)))
    });
    g.finish();
    drop(h);
    drop(seg);
    let _ = Segment::unlink(&name);
}

criterion_group!(benches, record);
criterion_main!(benches);
