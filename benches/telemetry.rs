//! Recording a latency sample or a trace event, shmkit's shared histogram and trace buffer
//! beside their peers, in the same run.
//!
//! - `histogram_record/shmkit`: `Histogram::record` into a histogram in a segment (what every
//!   process of a loop can add to and read).
//! - `histogram_record/hdrhistogram`: the `hdrhistogram` crate's `record` (process-local, 3
//!   significant digits), the usual Rust choice.
//! - `histogram_record/atomic_add`: one `fetch_add` on a shared `AtomicU64`, the floor.
//! - `histogram_snapshot/shmkit`: copying the 976 buckets and reading p99 from them (what
//!   `shmkit watch` does per histogram per refresh).
//!
//! - `trace_event/shmkit_span`: a span guard into a trace buffer in a segment (two clock
//!   reads, one event: what `let _s = trace.span(name)` costs a loop).
//! - `trace_event/shmkit_instant`: an instant (one clock read, one event).
//! - `trace_event/clock_pair`: two `CLOCK_MONOTONIC` reads, the floor of any span.
//! - `trace_event/local_ring`: a span's two clock reads and a 64-byte record written into a
//!   process-local ring (a `Vec`, no atomics): what a single-process tracer needs at least.
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

/// The record `trace_event/local_ring` writes: a trace event's size.
#[derive(Clone, Copy, Default)]
#[allow(dead_code)]
struct LocalEvent {
    ts: u64,
    dur: u64,
    arg: u64,
    name: u64,
    rest: [u64; 4],
}

fn trace(c: &mut Criterion) {
    use shmkit::os::clock::monotonic_ns;
    use shmkit::shared::{TraceBuffer, TraceSpec};
    let name = format!("shmkit-bench-trace-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(&name, &CreateOptions::new(8 << 20)).unwrap();
    let t: TraceBuffer = seg.trace_buffer("trace", &TraceSpec::default()).unwrap();
    let span = t.name("span").unwrap();
    let mut g = c.benchmark_group("trace_event");
    g.bench_function("shmkit_span", |b| {
        let mut i = 0u64;
        b.iter(|| {
            let _s = t.span(span).with_arg(black_box(i));
            i += 1;
        })
    });
    g.bench_function("shmkit_instant", |b| {
        b.iter(|| t.instant(span, black_box(None)))
    });
    g.bench_function("clock_pair", |b| {
        b.iter(|| {
            let start = monotonic_ns();
            black_box(monotonic_ns() - start)
        })
    });
    let mut ring = vec![LocalEvent::default(); 1 << 16];
    g.bench_function("local_ring", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let start = monotonic_ns();
            let end = monotonic_ns();
            ring[i & 0xffff] = LocalEvent {
                ts: start,
                dur: end - start,
                arg: i as u64,
                name: 1,
                rest: [0; 4],
            };
            black_box(&ring[i & 0xffff]);
            i += 1;
        })
    });
    g.finish();
    drop(t);
    drop(seg);
    let _ = Segment::unlink(&name);
}

criterion_group!(benches, record, trace);
criterion_main!(benches);
