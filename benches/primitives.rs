//! shmkit's primitives beside their peers, in the same run.
//!
//! - `mutex_uncontended`: lock + unlock on one thread, every mutex in shared memory except
//!   `std_mutex` (which cannot be).
//! - `event_rtt_cross`: one round trip (ping, pong) between this process on CPU 0 and a child
//!   on CPU 1, per iteration.
//! - `mutex_handoff_cross`: two processes on CPUs 0 and 1 pass a turn through a contended lock;
//!   one iteration is one hand-over from this process to the child and back.
//!
//! The child is this bench binary re-executed with `SHMKIT_BENCH_CHILD` set; it serves until
//! its stop flag is raised. Run: `cargo bench --bench primitives`.

mod common;

use common::{
    child_args, pin_to_cpu, pthread_robust_recursive_init, raw_round_trip, serve_raw_peer, timed,
    ChildProc, RawShm,
};
use criterion::{criterion_group, Criterion};
use shmkit::{CreateOptions, Event, Segment, WaitStrategy};
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// The child process.

fn child_main(role: &str) {
    pin_to_cpu(1);
    if serve_raw_peer(role) {
        return;
    }
    let args = child_args();
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    match role {
        "shmkit_event" => {
            let seg = Segment::open(&args[0]).unwrap();
            let strategy = if args[3] == "spin" {
                WaitStrategy::Spin
            } else {
                WaitStrategy::Block
            };
            let ping = seg
                .attach::<shmkit::Event>(num(1))
                .unwrap()
                .with_strategy(strategy);
            let pong = seg.attach::<shmkit::Event>(num(2)).unwrap();
            loop {
                assert!(ping.wait(shmkit::Timeout::Forever));
                ping.clear();
                pong.set();
            }
        }
        "shmkit_handoff" => {
            let seg = Segment::open(&args[0]).unwrap();
            let mutex = seg.attach::<shmkit::Mutex>(num(1)).unwrap();
            let turn = seg.raw().atomic_u32(num(2)).unwrap();
            loop {
                let _g = mutex
                    .lock(shmkit::DEFAULT_LOCK_TIMEOUT)
                    .unwrap()
                    .recover_with(|_| {});
                if turn.load(Ordering::Relaxed) == 1 {
                    turn.store(0, Ordering::Relaxed);
                }
            }
        }
        "pthread_handoff" => {
            let shm = RawShm::open(&args[0]);
            let m = shm.at(0).cast::<libc::pthread_mutex_t>();
            let turn = shm.atomic(1024);
            loop {
                // SAFETY: the parent initialised the mutex; it lives in the mapping.
                unsafe { libc::pthread_mutex_lock(m) };
                if turn.load(Ordering::Relaxed) == 1 {
                    turn.store(0, Ordering::Relaxed);
                }
                // SAFETY: we hold it.
                unsafe { libc::pthread_mutex_unlock(m) };
            }
        }
        "raw_sync_event" => {
            use raw_sync::events::{Event as RsEvent, EventInit, EventState};
            let shm = RawShm::open(&args[0]);
            // SAFETY: the parent initialised both events at these offsets before spawning us.
            let (ping, _) = unsafe { RsEvent::from_existing(shm.at(0)) }.unwrap();
            // SAFETY: as above.
            let (pong, _) = unsafe { RsEvent::from_existing(shm.at(1024)) }.unwrap();
            loop {
                ping.wait(raw_sync::Timeout::Infinite).unwrap();
                pong.set(EventState::Signaled).unwrap();
            }
        }
        other => panic!("unknown bench child role {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Benchmarks.

fn bench_name(tag: &str) -> String {
    format!("shmkit-bench-{}-{tag}", std::process::id())
}

fn mutex_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended");
    let seg_name = bench_name("uncontended");
    let _ = Segment::unlink(&seg_name);
    let seg = Segment::create(&seg_name, &CreateOptions::new(1 << 20)).unwrap();
    let raw = RawShm::create(&bench_name("uncontended-raw"));

    let m = seg.mutex("mutex-1").unwrap();
    g.bench_function("shmkit", |b| {
        b.iter(|| {
            let guard = m
                .lock(shmkit::DEFAULT_LOCK_TIMEOUT)
                .unwrap()
                .recover_with(|_| {});
            black_box(&guard);
        })
    });

    // SAFETY: the slot at 0 is ours for the whole benchmark.
    let pm = unsafe { pthread_robust_recursive_init(raw.at(0)) };
    g.bench_function("pthread_robust_recursive", |b| {
        b.iter(|| {
            // SAFETY: initialised above; locked and unlocked by this thread only.
            unsafe {
                black_box(libc::pthread_mutex_lock(pm));
                libc::pthread_mutex_unlock(pm);
            }
        })
    });

    let sm = std::sync::Mutex::new(0u64);
    g.bench_function("std_mutex", |b| {
        b.iter(|| {
            let guard = sm.lock().unwrap();
            black_box(&*guard);
        })
    });

    use raw_sync::locks::{LockInit, Mutex as RsMutex};
    // SAFETY: slot 1024 holds the raw_sync mutex, slot 2048 its (unused) data.
    let (rm, _) = unsafe { RsMutex::new(raw.at(1024), raw.at(2048)) }.unwrap();
    g.bench_function("raw_sync", |b| {
        b.iter(|| {
            let guard = rm.lock().unwrap();
            black_box(&guard);
        })
    });
    g.finish();
    drop(seg);
    let _ = Segment::unlink(&seg_name);
}

fn event_rtt_cross(c: &mut Criterion) {
    pin_to_cpu(0);
    let mut g = c.benchmark_group("event_rtt_cross");
    g.measurement_time(Duration::from_secs(4));

    for (bench, strategy, arg) in [
        ("shmkit_block", WaitStrategy::Block, "block"),
        ("shmkit_spin", WaitStrategy::Spin, "spin"),
    ] {
        let seg_name = bench_name(bench);
        let _ = Segment::unlink(&seg_name);
        let seg = Segment::create(&seg_name, &CreateOptions::new(1 << 20)).unwrap();
        let ping = seg.event("event-1").unwrap();
        let pong: Event = seg.event("event-2").unwrap().with_strategy(strategy);
        let _child = ChildProc::spawn(
            "shmkit_event",
            &[
                seg_name.clone(),
                ping.offset().unwrap().to_string(),
                pong.offset().unwrap().to_string(),
                arg.to_owned(),
            ],
        );
        g.bench_function(bench, |b| {
            b.iter_custom(|iters| {
                timed(iters, |_| {
                    ping.set();
                    assert!(pong.wait(shmkit::Timeout::Forever));
                    pong.clear();
                })
            })
        });
        let _ = Segment::unlink(&seg_name);
    }

    for bench in ["raw_futex", "raw_spin"] {
        let raw = RawShm::create(&bench_name(bench));
        let word = raw.atomic(0);
        let _child = ChildProc::spawn(bench, &[bench_name(bench)]);
        let spin = bench == "raw_spin";
        g.bench_function(bench, |b| {
            b.iter_custom(|iters| timed(iters, |_| raw_round_trip(word, spin)))
        });
    }

    {
        use raw_sync::events::{Event as RsEvent, EventInit, EventState};
        let raw = RawShm::create(&bench_name("raw_sync_event"));
        // SAFETY: slots 0 and 1024 are ours; each event needs well under 1 KiB.
        let (ping, _) = unsafe { RsEvent::new(raw.at(0), true) }.unwrap();
        // SAFETY: as above.
        let (pong, _) = unsafe { RsEvent::new(raw.at(1024), true) }.unwrap();
        let _child = ChildProc::spawn("raw_sync_event", &[bench_name("raw_sync_event")]);
        g.bench_function("raw_sync_event", |b| {
            b.iter_custom(|iters| {
                timed(iters, |_| {
                    ping.set(EventState::Signaled).unwrap();
                    pong.wait(raw_sync::Timeout::Infinite).unwrap();
                })
            })
        });
    }

    {
        use std::io::{Read, Write};
        let mut child = ChildProc::spawn("pipe", &[]);
        let mut to = child.0.stdin.take().unwrap();
        let mut from = child.0.stdout.take().unwrap();
        let mut byte = [7u8; 1];
        g.bench_function("pipe", |b| {
            b.iter_custom(|iters| {
                timed(iters, |_| {
                    to.write_all(&byte).unwrap();
                    from.read_exact(&mut byte).unwrap();
                })
            })
        });
    }
    g.finish();
}

fn mutex_handoff_cross(c: &mut Criterion) {
    pin_to_cpu(0);
    let mut g = c.benchmark_group("mutex_handoff_cross");
    g.measurement_time(Duration::from_secs(4));
    {
        let seg_name = bench_name("handoff");
        let _ = Segment::unlink(&seg_name);
        let seg = Segment::create(&seg_name, &CreateOptions::new(1 << 20)).unwrap();
        let mutex = seg.mutex("mutex-2").unwrap();
        let turn_off = seg.raw().alloc(64, 64).unwrap();
        let turn = seg.raw().atomic_u32(turn_off).unwrap();
        let _child = ChildProc::spawn(
            "shmkit_handoff",
            &[
                seg_name.clone(),
                mutex.offset().unwrap().to_string(),
                turn_off.to_string(),
            ],
        );
        g.bench_function("shmkit", |b| {
            b.iter_custom(|iters| {
                timed(iters, |_| loop {
                    let _g = mutex
                        .lock(shmkit::DEFAULT_LOCK_TIMEOUT)
                        .unwrap()
                        .recover_with(|_| {});
                    if turn.load(Ordering::Relaxed) == 0 {
                        turn.store(1, Ordering::Relaxed);
                        break;
                    }
                })
            })
        });
        let _ = Segment::unlink(&seg_name);
    }
    {
        let name = bench_name("handoff-pthread");
        let raw = RawShm::create(&name);
        // SAFETY: slot 0 is ours.
        let m = unsafe { pthread_robust_recursive_init(raw.at(0)) };
        let turn = raw.atomic(1024);
        let _child = ChildProc::spawn("pthread_handoff", std::slice::from_ref(&name));
        g.bench_function("pthread_robust_recursive", |b| {
            b.iter_custom(|iters| {
                timed(iters, |_| loop {
                    // SAFETY: initialised above, shared with the child.
                    unsafe { libc::pthread_mutex_lock(m) };
                    let mine = turn.load(Ordering::Relaxed) == 0;
                    if mine {
                        turn.store(1, Ordering::Relaxed);
                    }
                    // SAFETY: we hold it.
                    unsafe { libc::pthread_mutex_unlock(m) };
                    if mine {
                        break;
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    mutex_uncontended,
    event_rtt_cross,
    mutex_handoff_cross
);

fn main() {
    common::bench_main(child_main, benches);
}
