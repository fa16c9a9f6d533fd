//! Frame and command rings beside iceoryx2 and bare futex / spin / pipe round trips, in the
//! same run, between this process on CPU 0 and a child on CPU 1.
//!
//! - `frame_latency_cross`: one-way latency from publish to the reader holding the frame,
//!   measured as half a round trip (a frame one way, a frame back). The payload written per
//!   frame is the same few bytes whatever the frame size: frames are filled in place.
//! - `command_rtt_cross`: one call and its reply per iteration.
//!
//! Run: `cargo bench --bench rings`.

mod common;

use common::{child_args, pin_to_cpu, raw_round_trip, serve_raw_peer, timed, ChildProc, RawShm};
use criterion::{criterion_group, Criterion};
use iceoryx2::prelude::*;
use shmkit::rings::{CommandSpec, ElemType, FrameRing, FrameSpec, ReadMode};
use shmkit::{CreateOptions, Segment, WaitStrategy};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn frame_spec(bytes: u32) -> FrameSpec {
    FrameSpec {
        slots: 4,
        elem: ElemType::U8,
        shape: vec![bytes],
    }
}

fn strategy(name: &str) -> WaitStrategy {
    if name == "spin" {
        WaitStrategy::Spin
    } else {
        WaitStrategy::Block
    }
}

/// Publishes frame `n` (writing its first 8 bytes, as a driver stamps a header) on `ring`.
fn send_frame(w: &mut shmkit::rings::FrameWriter, n: u64) {
    let mut slot = w.try_claim().expect("a free slot");
    slot.bytes_mut()[..8].copy_from_slice(&n.to_le_bytes());
    slot.publish();
}

/// Waits for the next frame and returns its first 8 bytes.
fn recv_frame(r: &mut shmkit::rings::FrameReader) -> u64 {
    let f = r.next(LONG).expect("a frame");
    u64::from_le_bytes(f.bytes()[..8].try_into().unwrap())
}

fn rings(seg: &Segment, bytes: u32) -> (FrameRing, FrameRing) {
    (
        seg.frame_ring(&format!("ping-{bytes}"), &frame_spec(bytes))
            .unwrap(),
        seg.frame_ring(&format!("pong-{bytes}"), &frame_spec(bytes))
            .unwrap(),
    )
}

fn child_main(role: &str) {
    pin_to_cpu(1);
    if serve_raw_peer(role) {
        return;
    }
    let args = child_args();
    match role {
        "frame_echo" => {
            let seg = Segment::open(&args[0]).unwrap();
            let bytes: u32 = args[1].parse().unwrap();
            let (ping, pong) = rings(&seg, bytes);
            let mut r = ping
                .reader(ReadMode::OldestFirst)
                .unwrap()
                .with_strategy(strategy(&args[2]));
            let mut w = pong.writer().unwrap();
            seg.event("echo-ready").unwrap().set();
            loop {
                let n = recv_frame(&mut r);
                send_frame(&mut w, n);
            }
        }
        "command_server" => {
            let seg = Segment::open(&args[0]).unwrap();
            let ring = seg
                .command_ring("cmd", &command_spec())
                .unwrap()
                .with_strategy(strategy(&args[1]));
            common::serve_echo_commands(&ring)
        }
        "iceoryx2_echo" => {
            let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
            let ping = node
                .service_builder(&args[0].as_str().try_into().unwrap())
                .publish_subscribe::<[u8; 64]>()
                .open_or_create()
                .unwrap();
            let pong = node
                .service_builder(&args[1].as_str().try_into().unwrap())
                .publish_subscribe::<[u8; 64]>()
                .open_or_create()
                .unwrap();
            let sub = ping.subscriber_builder().create().unwrap();
            let publisher = pong.publisher_builder().create().unwrap();
            let block = args[2] == "block";
            let events = block.then(|| {
                let ping_ev = node
                    .service_builder(&format!("{}-ev", args[0]).as_str().try_into().unwrap())
                    .event()
                    .open_or_create()
                    .unwrap();
                let pong_ev = node
                    .service_builder(&format!("{}-ev", args[1]).as_str().try_into().unwrap())
                    .event()
                    .open_or_create()
                    .unwrap();
                (
                    ping_ev.listener_builder().create().unwrap(),
                    pong_ev.notifier_builder().create().unwrap(),
                )
            });
            let ready = Segment::open(&args[3])
                .unwrap()
                .event("echo-ready")
                .unwrap();
            ready.set();
            loop {
                let sample = loop {
                    if let Some(s) = sub.receive().unwrap() {
                        break s;
                    }
                    match &events {
                        Some((listener, _)) => {
                            listener.blocking_wait(|_| {}).unwrap();
                        }
                        None => std::hint::spin_loop(),
                    }
                };
                let payload = *sample;
                drop(sample);
                publisher
                    .loan_uninit()
                    .unwrap()
                    .write_payload(payload)
                    .send()
                    .unwrap();
                if let Some((_, notifier)) = &events {
                    notifier.notify().unwrap();
                }
            }
        }
        other => panic!("unknown bench child role {other}"),
    }
}

fn command_spec() -> CommandSpec {
    CommandSpec {
        slots: 8,
        max_request: 64,
        max_reply: 64,
    }
}

/// Runs `iters` round trips and returns half the total: the one-way latency.
fn half_round_trips(iters: u64, round_trip: impl FnMut(u64)) -> Duration {
    timed(iters, round_trip) / 2
}

fn frame_latency_cross(c: &mut Criterion) {
    pin_to_cpu(0);
    let name = format!("shmkit-bench-rings-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(&name, &CreateOptions::new(96 << 20)).unwrap();
    let ready = seg.event("echo-ready").unwrap();
    let mut g = c.benchmark_group("frame_latency_cross");
    g.measurement_time(Duration::from_secs(4));
    for (bench, bytes, strat) in [
        ("shmkit_spin_64B", 64u32, "spin"),
        ("shmkit_spin_8MiB", 8 << 20, "spin"),
        ("shmkit_block_64B", 64, "block"),
        ("shmkit_block_8MiB", 8 << 20, "block"),
    ] {
        let (ping, pong) = rings(&seg, bytes);
        let mut w = ping.writer().unwrap();
        let mut r = pong
            .reader(ReadMode::OldestFirst)
            .unwrap()
            .with_strategy(strategy(strat));
        ready.clear();
        let child = ChildProc::spawn(
            "frame_echo",
            &[name.clone(), bytes.to_string(), strat.to_string()],
        );
        assert!(ready.wait(LONG), "the peer never got ready");
        g.bench_function(bench, |b| {
            b.iter_custom(|iters| {
                half_round_trips(iters, |n| {
                    send_frame(&mut w, n);
                    assert_eq!(recv_frame(&mut r), n);
                })
            })
        });
        drop(child);
        drop(w);
        // The child's reader and writer died with it; free their registrations.
        ping.reclaim_dead_readers();
    }
    for (bench, mode) in [
        ("iceoryx2_spin_64B", "spin"),
        ("iceoryx2_block_64B", "block"),
    ] {
        let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
        let (ping_name, pong_name) = (
            format!("shmkit-bench/{}/ping-{mode}", std::process::id()),
            format!("shmkit-bench/{}/pong-{mode}", std::process::id()),
        );
        let ping = node
            .service_builder(&ping_name.as_str().try_into().unwrap())
            .publish_subscribe::<[u8; 64]>()
            .open_or_create()
            .unwrap();
        let pong = node
            .service_builder(&pong_name.as_str().try_into().unwrap())
            .publish_subscribe::<[u8; 64]>()
            .open_or_create()
            .unwrap();
        let publisher = ping.publisher_builder().create().unwrap();
        let sub = pong.subscriber_builder().create().unwrap();
        let block = mode == "block";
        let events = block.then(|| {
            let ping_ev = node
                .service_builder(&format!("{ping_name}-ev").as_str().try_into().unwrap())
                .event()
                .open_or_create()
                .unwrap();
            let pong_ev = node
                .service_builder(&format!("{pong_name}-ev").as_str().try_into().unwrap())
                .event()
                .open_or_create()
                .unwrap();
            (
                pong_ev.listener_builder().create().unwrap(),
                ping_ev.notifier_builder().create().unwrap(),
            )
        });
        ready.clear();
        let child = ChildProc::spawn(
            "iceoryx2_echo",
            &[
                ping_name.clone(),
                pong_name.clone(),
                mode.to_string(),
                name.clone(),
            ],
        );
        assert!(ready.wait(LONG), "the peer never got ready");
        g.bench_function(bench, |b| {
            b.iter_custom(|iters| {
                half_round_trips(iters, |n| {
                    let mut payload = [0u8; 64];
                    payload[..8].copy_from_slice(&n.to_le_bytes());
                    publisher
                        .loan_uninit()
                        .unwrap()
                        .write_payload(payload)
                        .send()
                        .unwrap();
                    if let Some((_, notifier)) = &events {
                        notifier.notify().unwrap();
                    }
                    let sample = loop {
                        if let Some(s) = sub.receive().unwrap() {
                            break s;
                        }
                        match &events {
                            Some((listener, _)) => {
                                listener.blocking_wait(|_| {}).unwrap();
                            }
                            None => std::hint::spin_loop(),
                        }
                    };
                    assert_eq!(u64::from_le_bytes(sample[..8].try_into().unwrap()), n);
                })
            })
        });
        drop(child);
    }
    g.finish();
    let _ = Segment::unlink(&name);
}

fn command_rtt_cross(c: &mut Criterion) {
    pin_to_cpu(0);
    let name = format!("shmkit-bench-cmd-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(&name, &CreateOptions::new(4 << 20)).unwrap();
    let mut g = c.benchmark_group("command_rtt_cross");
    g.measurement_time(Duration::from_secs(4));
    for (bench, strat) in [("shmkit_spin", "spin"), ("shmkit_block", "block")] {
        let ring = seg
            .command_ring("cmd", &command_spec())
            .unwrap()
            .with_strategy(strategy(strat));
        let child = ChildProc::spawn("command_server", &[name.clone(), strat.to_string()]);
        while ring.call(b"warm-up", Duration::from_millis(100)).is_err() {}
        g.bench_function(bench, |b| {
            b.iter_custom(|iters| {
                timed(iters, |n| {
                    let echoed = ring
                        .call_with(&n.to_le_bytes(), LONG, |reply| {
                            u64::from_le_bytes(reply.try_into().unwrap())
                        })
                        .unwrap();
                    assert_eq!(echoed, n);
                })
            })
        });
        drop(child);
        // Wait until the dead server is noticed so the next one can attach.
        while ring.call(b"x", Duration::from_millis(50)).is_ok() {}
    }
    for bench in ["raw_futex", "raw_spin"] {
        let raw_name = format!("shmkit-bench-{}-{bench}", std::process::id());
        let raw = RawShm::create(&raw_name);
        let word = raw.atomic(0);
        let _child = ChildProc::spawn(bench, &[raw_name]);
        let spin = bench == "raw_spin";
        g.bench_function(bench, |b| {
            b.iter_custom(|iters| timed(iters, |_| raw_round_trip(word, spin)))
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
    let _ = Segment::unlink(&name);
}

criterion_group!(benches, frame_latency_cross, command_rtt_cross);

fn main() {
    common::bench_main(child_main, benches);
}
