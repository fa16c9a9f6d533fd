//! How cost grows with the work, in one run:
//!
//! - `frame_fanout`: one writer (this process, CPU 0) and 1 / 4 / 15 blocking readers (child
//!   processes sharing CPU 1). `publish/N` is the writer's cost of one claim + publish with N
//!   readers asleep; `hold_mean/N` and `hold_last/N` the publish→hold latency of the average
//!   and of the slowest reader of each frame (reader's clock minus the frame's timestamp).
//! - `command_clients`: 1 / 4 / 16 client threads (this process, CPU 0) against one blocking
//!   server (a child on CPU 1). `rtt/N` is one client's round trip while the N − 1 others call
//!   back to back; `per_call/N` the wall time per call with all N calling (1 / throughput).
//! - `named_lookup_fill`: name lookup in a table of 1024 entries filled to 10 / 50 / 90 %,
//!   of present and of absent names (64 of each, cycled, so the cost is an average over probe
//!   paths), beside a `HashMap` of the same size.
//! - `dict_get_size`: `SharedDict::get` in dictionaries of 16 and 4096 entries (64 keys
//!   cycled), beside a `HashMap` behind a `std::sync::Mutex`.
//!
//! Run: `cargo bench --bench scaling`.

mod common;

use common::{child_args, pin_to_cpu, ChildProc};
use criterion::{criterion_group, BenchmarkId, Criterion};
use shmkit::prelude::*;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);
const FANOUT: [u32; 3] = [1, 4, 15];
const CLIENTS: [usize; 3] = [1, 4, 16];
/// Pause between frames, so the blocking readers are asleep when the next one is published
/// (a camera's frame period is far longer).
const FRAME_GAP: Duration = Duration::from_micros(200);

fn segment(tag: &str, size: u64, table: u32) -> (String, Segment) {
    let name = format!("shmkit-bench-scaling-{}-{tag}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(&name, &CreateOptions::new(size).table_capacity(table)).unwrap();
    (name, seg)
}

fn fanout_spec() -> FrameSpec {
    FrameSpec {
        slots: 4,
        elem: ElemType::U8,
        shape: vec![64],
    }
}

fn command_spec() -> CommandSpec {
    CommandSpec {
        slots: 32,
        max_request: 64,
        max_reply: 64,
    }
}

fn child_main(role: &str) {
    pin_to_cpu(1);
    let args = child_args();
    let seg = Segment::open(&args[0]).unwrap();
    match role {
        "fanout_reader" => {
            let ring: FrameRing = seg.open("fanout").unwrap();
            let stats: u64 = args[1].parse().unwrap();
            let index: u64 = args[2].parse().unwrap();
            let acks = seg.raw().atomic_u64(stats).unwrap();
            let latency = seg.raw().atomic_u64(stats + 8 * (1 + index)).unwrap();
            let mut r = ring.reader(ReadMode::NewestOnly).unwrap();
            acks.fetch_add(1, Ordering::AcqRel);
            loop {
                let f = r.next(LONG).unwrap();
                let now = shmkit::clock::monotonic_ns();
                latency.store(now.saturating_sub(f.ts_ns()), Ordering::Relaxed);
                drop(f);
                // Release: the latency is visible with the ack.
                acks.fetch_add(1, Ordering::Release);
            }
        }
        "command_server" => {
            let ring: CommandRing = seg.open("cmd").unwrap();
            common::serve_echo_commands(&ring)
        }
        other => panic!("unknown bench child role {other}"),
    }
}

/// What one fanout iteration measured.
#[derive(Default, Clone, Copy)]
struct Fanout {
    publish: Duration,
    hold_mean: Duration,
    hold_last: Duration,
}

fn frame_fanout(c: &mut Criterion) {
    pin_to_cpu(0);
    let (name, seg) = segment("fanout", 4 << 20, 64);
    let ring = seg.frame_ring("fanout", &fanout_spec()).unwrap();
    let stats = seg.raw().alloc(8 * 17, 64).unwrap();
    let acks = seg.raw().atomic_u64(stats).unwrap();
    let mut g = c.benchmark_group("frame_fanout");
    g.measurement_time(Duration::from_secs(3));
    for n in FANOUT {
        acks.store(0, Ordering::Release);
        let readers: Vec<ChildProc> = (0..n)
            .map(|i| {
                ChildProc::spawn(
                    "fanout_reader",
                    &[name.clone(), stats.to_string(), i.to_string()],
                )
            })
            .collect();
        let deadline = Instant::now() + LONG;
        while acks.load(Ordering::Acquire) < u64::from(n) {
            assert!(Instant::now() < deadline, "readers never registered");
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut w = ring.writer().unwrap();
        let one = |w: &mut shmkit::rings::FrameWriter| -> Fanout {
            let gap = Instant::now() + FRAME_GAP;
            while Instant::now() < gap {
                std::hint::spin_loop();
            }
            acks.store(0, Ordering::Release);
            let t0 = Instant::now();
            let mut slot = w.try_claim().unwrap();
            slot.bytes_mut()[..8].copy_from_slice(&1u64.to_le_bytes());
            slot.publish();
            let publish = t0.elapsed();
            while acks.load(Ordering::Acquire) < u64::from(n) {
                std::thread::yield_now();
            }
            let lat: Vec<u64> = (0..u64::from(n))
                .map(|i| {
                    seg.raw()
                        .atomic_u64(stats + 8 * (1 + i))
                        .unwrap()
                        .load(Ordering::Relaxed)
                })
                .collect();
            Fanout {
                publish,
                hold_mean: Duration::from_nanos(lat.iter().sum::<u64>() / u64::from(n)),
                hold_last: Duration::from_nanos(lat.iter().copied().max().unwrap_or(0)),
            }
        };
        type Pick = fn(&Fanout) -> Duration;
        let picks: [(&str, Pick); 3] = [
            ("publish", |f| f.publish),
            ("hold_mean", |f| f.hold_mean),
            ("hold_last", |f| f.hold_last),
        ];
        for (what, pick) in picks {
            g.bench_with_input(BenchmarkId::new(what, n), &n, |b, _| {
                b.iter_custom(|iters| (0..iters).map(|_| pick(&one(&mut w))).sum())
            });
        }
        drop(w);
        drop(readers);
        ring.reclaim_dead_readers();
    }
    g.finish();
    let _ = Segment::unlink(&name);
}

fn command_clients(c: &mut Criterion) {
    pin_to_cpu(0);
    let (name, seg) = segment("clients", 4 << 20, 64);
    let ring = seg.command_ring("cmd", &command_spec()).unwrap();
    let _server = ChildProc::spawn("command_server", std::slice::from_ref(&name));
    while ring.call(b"warm-up", Duration::from_millis(100)).is_err() {}
    let call = |ring: &CommandRing, n: u64| {
        let echoed = ring
            .call_with(&n.to_le_bytes(), LONG, |reply| {
                u64::from_le_bytes(reply.try_into().unwrap())
            })
            .unwrap();
        assert_eq!(echoed, n);
    };
    let mut g = c.benchmark_group("command_clients");
    g.measurement_time(Duration::from_secs(3));
    for n in CLIENTS {
        // rtt/N: one client measured, N - 1 calling back to back meanwhile.
        let stop = Arc::new(AtomicBool::new(false));
        let load: Vec<_> = (1..n)
            .map(|_| {
                let (ring, stop) = (ring.clone(), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        call(&ring, i);
                        i += 1;
                    }
                })
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("rtt", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                for i in 0..iters {
                    call(&ring, i);
                }
                t0.elapsed()
            })
        });
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.join().unwrap();
        }
        // per_call/N: all N calling, wall time per call.
        g.bench_with_input(BenchmarkId::new("per_call", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let each = iters.div_ceil(n as u64);
                let t0 = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..n {
                        let ring = ring.clone();
                        s.spawn(move || {
                            for i in 0..each {
                                call(&ring, i);
                            }
                        });
                    }
                });
                let total = t0.elapsed();
                // Scale to exactly `iters` calls.
                total.mul_f64(iters as f64 / (each * n as u64) as f64)
            })
        });
    }
    g.finish();
    let _ = Segment::unlink(&name);
}

/// `KEYS` names spread over `0..count` with `make`, so an iteration's cost is the average over
/// the table's probe paths, not one name's luck.
fn spread(count: u32, make: impl Fn(u32) -> String) -> Vec<String> {
    (0..KEYS).map(|k| make(k * count.max(1) / KEYS)).collect()
}

/// Names cycled through per benchmark.
const KEYS: u32 = 64;

fn named_lookup_fill(c: &mut Criterion) {
    const CAPACITY: u32 = 1024;
    let mut g = c.benchmark_group("named_lookup_fill");
    for percent in [10u32, 50, 90] {
        let (name, seg) = segment(&format!("fill{percent}"), 8 << 20, CAPACITY);
        let count = CAPACITY * percent / 100;
        for i in 0..count {
            seg.event(&format!("name-{i}")).unwrap();
        }
        let present = spread(count, |i| format!("name-{i}"));
        let absent = spread(KEYS, |i| format!("absent-{i}"));
        let map: HashMap<String, u64> = (0..count)
            .map(|i| (format!("name-{i}"), u64::from(i)))
            .collect();
        let mut k = 0usize;
        let mut next = |names: &[String]| {
            k = (k + 1) % names.len();
            k
        };
        g.bench_with_input(BenchmarkId::new("shmkit_hit", percent), &percent, |b, _| {
            b.iter(|| black_box(seg.lookup(black_box(&present[next(&present)])).unwrap()))
        });
        g.bench_with_input(
            BenchmarkId::new("shmkit_miss", percent),
            &percent,
            |b, _| b.iter(|| black_box(seg.lookup(black_box(&absent[next(&absent)])).unwrap())),
        );
        g.bench_with_input(
            BenchmarkId::new("std_hashmap_hit", percent),
            &percent,
            |b, _| {
                b.iter(|| {
                    black_box(
                        map.get(black_box(present[next(&present)].as_str()))
                            .copied(),
                    )
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("std_hashmap_miss", percent),
            &percent,
            |b, _| {
                b.iter(|| black_box(map.get(black_box(absent[next(&absent)].as_str())).copied()))
            },
        );
        let _ = Segment::unlink(&name);
    }
    g.finish();
}

fn dict_get_size(c: &mut Criterion) {
    let mut g = c.benchmark_group("dict_get_size");
    for entries in [16u32, 4096] {
        let (name, seg) = segment(&format!("dict{entries}"), 32 << 20, 64);
        let d = seg.dict("d", entries).unwrap();
        for i in 0..entries {
            d.insert(&format!("key-{i}"), &(u64::from(i) * 3)).unwrap();
        }
        let keys = spread(entries, |i| format!("key-{i}"));
        let map: StdMutex<HashMap<String, u64>> = StdMutex::new(
            (0..entries)
                .map(|i| (format!("key-{i}"), u64::from(i) * 3))
                .collect(),
        );
        let mut k = 0usize;
        let mut next = || {
            k = (k + 1) % keys.len();
            k
        };
        g.bench_with_input(BenchmarkId::new("shmkit", entries), &entries, |b, _| {
            b.iter(|| black_box(d.get::<u64>(black_box(&keys[next()])).unwrap()))
        });
        g.bench_with_input(
            BenchmarkId::new("std_hashmap", entries),
            &entries,
            |b, _| {
                b.iter(|| {
                    black_box(
                        map.lock()
                            .unwrap()
                            .get(black_box(keys[next()].as_str()))
                            .copied(),
                    )
                })
            },
        );
        let _ = Segment::unlink(&name);
    }
    g.finish();
}

criterion_group!(
    benches,
    frame_fanout,
    command_clients,
    named_lookup_fill,
    dict_get_size
);

fn main() {
    common::bench_main(child_main, benches);
}
