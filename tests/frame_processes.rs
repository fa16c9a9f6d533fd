//! The frame ring across real processes: one writer, four readers, checksummed frames; a
//! reader killed while holding a frame.

mod common;

use common::{eventually, sigkill, spawn, wait_exit, TempSegment};
use shmkit::rings::{ElemType, FrameRing, FrameSpec, FrameWriter, ReadMode, RingError};
use shmkit::{CreateOptions, Segment, WaitStrategy};
use std::sync::atomic::Ordering;
use std::time::Duration;

const FRAMES: u64 = 100_000;
const WORDS: u32 = 1024; // 4 KiB frames of u32

fn spec() -> FrameSpec {
    FrameSpec {
        slots: 16,
        elem: ElemType::U32,
        shape: vec![WORDS],
    }
}

/// The frame for id `id`: words derived from the id, the last one a checksum of the others.
fn fill(words: &mut [u32], id: u64) {
    let n = words.len();
    let mut sum = 0u32;
    for (i, w) in words[..n - 1].iter_mut().enumerate() {
        *w = (id as u32)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(i as u32);
        sum = sum.wrapping_add(*w).rotate_left(1);
    }
    words[n - 1] = sum;
}

fn checksum_ok(words: &[u32]) -> bool {
    let n = words.len();
    let sum = words[..n - 1]
        .iter()
        .fold(0u32, |s, w| s.wrapping_add(*w).rotate_left(1));
    sum == words[n - 1]
}

crate::child_roles!(|role, args| {
    let seg = Segment::open(&args[0]).expect("child opens the segment");
    let ring = seg.frame_ring("cam", &spec()).unwrap();
    let start = seg.barrier("start", 5).unwrap();
    let done = seg.event("done").unwrap();
    match role {
        "write" => {
            let mut w = ring.writer().unwrap();
            start.wait(Duration::from_secs(30)).unwrap();
            for id in 1..=FRAMES {
                let mut slot = w.claim(Duration::from_secs(10)).unwrap();
                fill(slot.typed_mut::<u32>().unwrap(), id);
                assert_eq!(slot.publish(), id);
            }
            done.set();
            0
        }
        "read" => {
            let mode = if args[1] == "oldest" {
                ReadMode::OldestFirst
            } else {
                ReadMode::NewestOnly
            };
            let strategy = if args[2] == "spin" {
                WaitStrategy::SpinThenBlock
            } else {
                WaitStrategy::Block
            };
            let mut r = ring.reader(mode).unwrap().with_strategy(strategy);
            let results = seg.raw().atomic_u64(args[3].parse().unwrap()).unwrap();
            start.wait(Duration::from_secs(30)).unwrap();
            let (mut read, mut bad, mut disorder, mut last) = (0u64, 0u64, 0u64, 0u64);
            loop {
                match r.next(Duration::from_millis(20)) {
                    Ok(f) => {
                        let words = f.typed::<u32>().unwrap();
                        if !checksum_ok(words)
                            || words[0] != (f.id() as u32).wrapping_mul(2_654_435_761)
                        {
                            bad += 1;
                        }
                        if f.id() <= last || (mode == ReadMode::OldestFirst && f.id() != last + 1) {
                            disorder += 1;
                        }
                        last = f.id();
                        read += 1;
                    }
                    Err(RingError::Overrun { missed }) => last += missed,
                    Err(RingError::Timeout { .. }) if done.is_set() => break,
                    Err(RingError::Timeout { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            results.store(read, Ordering::Relaxed);
            if bad == 0 && disorder == 0 && last == FRAMES {
                0
            } else {
                eprintln!(
                    "reader {mode:?}: read {read}, bad {bad}, out of order {disorder}, last {last}"
                );
                1
            }
        }
        "hold" => {
            let mut r = ring.reader(ReadMode::NewestOnly).unwrap();
            let flag = seg.raw().atomic_u64(args[1].parse().unwrap()).unwrap();
            let _frame = r.latest().unwrap().expect("a frame to hold");
            flag.store(1, Ordering::Release);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "hold_owned" => {
            // Several owned frames at once, from an owned reader that is itself dropped.
            let mut r = ring.reader(ReadMode::OldestFirst).unwrap().into_owned();
            let flag = seg.raw().atomic_u64(args[1].parse().unwrap()).unwrap();
            let frames: Vec<_> = (0..4)
                .map(|_| r.next(Duration::from_secs(10)).unwrap())
                .collect();
            drop(r);
            flag.store(frames.len() as u64, Ordering::Release);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        other => panic!("unknown role {other}"),
    }
});

#[test]
fn one_writer_and_four_readers_see_no_torn_frame_in_100k() {
    let name = TempSegment::new("frames");
    let seg = Segment::create(&name.0, &CreateOptions::new(8 << 20)).unwrap();
    seg.frame_ring("cam", &spec()).unwrap();
    let results = seg.raw().alloc(64, 64).unwrap();
    let mut readers: Vec<_> = [
        ("oldest", "block"),
        ("oldest", "spin"),
        ("newest", "block"),
        ("newest", "spin"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (mode, strategy))| {
        spawn(
            "read",
            &[
                name.0.clone(),
                mode.to_string(),
                strategy.to_string(),
                (results + 8 * i as u64).to_string(),
            ],
        )
    })
    .collect();
    let mut writer = spawn("write", std::slice::from_ref(&name.0));
    assert!(wait_exit(&mut writer, Duration::from_secs(120)).success());
    for r in &mut readers {
        assert!(
            wait_exit(r, Duration::from_secs(60)).success(),
            "a reader saw a torn or misordered frame"
        );
    }
    let read: Vec<u64> = (0..4)
        .map(|i| {
            seg.raw()
                .atomic_u64(results + 8 * i)
                .unwrap()
                .load(Ordering::Relaxed)
        })
        .collect();
    assert!(read.iter().all(|&n| n > 0), "{read:?}");
    eprintln!("frames read per reader: {read:?}");
}

#[test]
fn a_reader_killed_holding_a_frame_does_not_stop_the_writer() {
    let name = TempSegment::new("deadreader");
    let seg = Segment::create(&name.0, &CreateOptions::new(8 << 20)).unwrap();
    let flag_off = seg.raw().alloc(8, 64).unwrap();
    let flag = seg.raw().atomic_u64(flag_off).unwrap();
    let cam = seg.frame_ring("cam", &spec()).unwrap();
    let mut writer = cam.writer().unwrap();
    writer.try_claim().unwrap().publish();
    let mut holder = spawn("hold", &[name.0.clone(), flag_off.to_string()]);
    assert!(eventually(Duration::from_secs(10), || flag
        .load(Ordering::Acquire)
        == 1));
    // The writer goes round the ring several times, never blocking on the held slot.
    for _ in 0..40 {
        writer.try_claim().unwrap().publish();
    }
    sigkill(&holder);
    let _ = holder.wait();
    assert_eq!(
        cam.reclaim_dead_readers(),
        1,
        "the dead reader's registration and hold are reclaimed"
    );
    every_slot_is_usable_again(&cam, &mut writer);
}

#[test]
fn a_process_killed_holding_owned_frames_has_its_pins_reclaimed() {
    let name = TempSegment::new("deadowned");
    let seg = Segment::create(&name.0, &CreateOptions::new(8 << 20)).unwrap();
    let flag_off = seg.raw().alloc(8, 64).unwrap();
    let flag = seg.raw().atomic_u64(flag_off).unwrap();
    let cam = seg.frame_ring("cam", &spec()).unwrap();
    let mut writer = cam.writer().unwrap();
    let mut holder = spawn("hold_owned", &[name.0.clone(), flag_off.to_string()]);
    // Publish until the holder has taken (and keeps) its four frames.
    assert!(eventually(Duration::from_secs(10), || {
        writer.try_claim().unwrap().publish();
        std::thread::sleep(Duration::from_millis(1));
        flag.load(Ordering::Acquire) == 4
    }));
    sigkill(&holder);
    let _ = holder.wait();
    assert_eq!(
        cam.reclaim_dead_readers(),
        1,
        "one registration, four pins, reclaimed"
    );
    every_slot_is_usable_again(&cam, &mut writer);
}

/// After a dead reader's reclaim, all 16 slots are usable: 15 frames held here at once (one
/// reader each) and the writer still claims the 16th slot.
fn every_slot_is_usable_again(cam: &FrameRing, writer: &mut FrameWriter) {
    let mut held = Vec::new();
    for _ in 0..15 {
        let mut r = cam.reader(ReadMode::NewestOnly).unwrap().into_owned();
        writer.try_claim().unwrap().publish();
        held.push(r.latest().unwrap().unwrap());
    }
    let mut ids: Vec<u64> = held.iter().map(|f| f.id()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 15, "15 distinct frames held");
    assert!(writer.try_claim().is_ok(), "the 16th slot is free");
}
