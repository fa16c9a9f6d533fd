//! Histograms across processes: samples recorded at once by several processes add up
//! exactly; a recorder killed mid-stream leaves the counts of what it recorded; a reset
//! killed midway is finished by the next.

mod common;

use common::{sigkill, spawn, wait_exit, TempSegment};
use shmkit::{CreateOptions, Histogram, Segment};
use std::time::Duration;

/// The values child `k` records: spread over six decades, different per child.
fn values(k: u64, n: u64) -> impl Iterator<Item = u64> {
    (0..n).map(move |i| (i * 7919 + k * 104_729) % 1_000_000 + i % 17)
}

crate::child_roles!(|role, args| match role {
    // Records `n` values of sequence `k` into histogram "h", then exits.
    "record" => {
        let seg = Segment::open(&args[0]).unwrap();
        let h = seg.histogram("h").unwrap();
        let (k, n): (u64, u64) = (args[1].parse().unwrap(), args[2].parse().unwrap());
        for v in values(k, n) {
            h.record(v);
        }
        0
    }
    // Records forever (until killed).
    "record_forever" => {
        let seg = Segment::open(&args[0]).unwrap();
        let h = seg.histogram("h").unwrap();
        let progress = seg.histogram("progress").unwrap();
        progress.record(1);
        loop {
            h.record(1234);
        }
    }
    // Resets "h" forever (until killed: some kill lands midway through a reset).
    "reset_forever" => {
        let seg = Segment::open(&args[0]).unwrap();
        let h = seg.histogram("h").unwrap();
        loop {
            h.reset();
        }
    }
    other => panic!("unknown role {other}"),
});

#[test]
fn samples_from_four_processes_add_up_exactly() {
    let name = TempSegment::new("hist4");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let h = seg.histogram("h").unwrap();
    let n = 200_000u64;
    let mut children: Vec<_> = (0..4u64)
        .map(|k| spawn("record", &[name.0.clone(), k.to_string(), n.to_string()]))
        .collect();
    for child in &mut children {
        assert_eq!(wait_exit(child, Duration::from_secs(60)).code(), Some(0));
    }
    let mut expected = vec![0u64; shm_layout::HISTOGRAM_BUCKETS];
    let mut max = 0;
    for k in 0..4 {
        for v in values(k, n) {
            expected[shm_layout::histogram_bucket(v)] += 1;
            max = max.max(v);
        }
    }
    let s = h.snapshot();
    assert_eq!(s.count(), 4 * n);
    assert_eq!(s.buckets(), &expected[..], "every bucket's count");
    assert_eq!(s.max(), max);
    assert!(s.is_stable());
}

#[test]
fn a_recorder_killed_mid_stream_leaves_a_readable_histogram() {
    let name = TempSegment::new("histkill");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let h: Histogram = seg.histogram("h").unwrap();
    let progress = seg.histogram("progress").unwrap();
    let child = spawn("record_forever", std::slice::from_ref(&name.0));
    assert!(common::eventually(Duration::from_secs(20), || {
        progress.snapshot().count() > 0 && h.snapshot().count() > 1000
    }));
    sigkill(&child);
    let mut child = child;
    wait_exit(&mut child, Duration::from_secs(10));
    let after = h.snapshot();
    // Every sample it recorded is there, in its bucket, and nothing else.
    assert!(after.count() > 1000);
    assert_eq!(
        after.buckets()[shm_layout::histogram_bucket(1234)],
        after.count()
    );
    h.record(1234);
    assert_eq!(h.snapshot().count(), after.count() + 1);
}

#[test]
fn a_reset_killed_midway_is_finished_by_the_next() {
    let name = TempSegment::new("histreset");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let h: Histogram = seg.histogram("h").unwrap();
    // Kill resetters until one dies in the middle of a reset (an odd generation).
    let mut odd = false;
    for _ in 0..50 {
        let mut child = spawn("reset_forever", std::slice::from_ref(&name.0));
        assert!(common::eventually(Duration::from_secs(20), || {
            h.snapshot().generation() >= 2
        }));
        std::thread::sleep(Duration::from_micros(300));
        sigkill(&child);
        wait_exit(&mut child, Duration::from_secs(10));
        if h.snapshot().generation() % 2 == 1 {
            odd = true;
            break;
        }
    }
    assert!(odd, "no resetter was killed midway in 50 tries");
    // Mid-reset: no copy is stable, and windows say so.
    let torn = h.snapshot();
    assert!(!torn.is_stable());
    assert!(h.snapshot().since(&torn).is_none());
    h.reset();
    h.record(5);
    let s = h.snapshot();
    assert!(s.is_stable() && s.generation() % 2 == 0);
    assert_eq!((s.count(), s.max()), (1, 5));
}
