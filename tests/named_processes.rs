//! The named-object table and the shared dictionary across real processes.

mod common;

use common::{eventually, sigkill, spawn, wait_exit, TempSegment};
use shmkit::{CreateOptions, DictError, Segment, SegmentError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const NAMES: u64 = 1000;
const KEYS: u64 = 10;
const START: i64 = 1000;

fn fnv(acc: u64, x: u64) -> u64 {
    (acc ^ x).wrapping_mul(0x0100_0000_01b3)
}

/// The dictionary locked for a multi-operation section; a dead holder's damage is repaired
/// by `lock` itself, which then says so once (the retry gets the lock).
fn lock_repaired(d: &shmkit::SharedDict) -> shmkit::MutexGuard<'_> {
    loop {
        match d.lock() {
            Ok(g) => return g,
            Err(shmkit::DictError::OwnerDied { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
}

crate::child_roles!(|role, args| {
    let seg = Segment::open(&args[0]).expect("child opens the segment");
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    match role {
        "race_names" => {
            // Creates (or finds) 1000 names in an order of its own, then records a digest
            // of (name, offset) in its slot.
            let me = num(2);
            let mut digest = 0xcbf2_9ce4_8422_2325u64;
            let mut offsets = vec![0u64; NAMES as usize];
            for k in 0..NAMES {
                let i = (k * 7 + me * 131) % NAMES;
                offsets[i as usize] = seg.event(&format!("obj-{i}")).unwrap().offset().unwrap();
            }
            for (i, off) in offsets.iter().enumerate() {
                digest = fnv(fnv(digest, i as u64), *off);
            }
            seg.raw()
                .atomic_u64(num(1) + 8 * me)
                .unwrap()
                .store(digest, Ordering::Release);
            0
        }
        "stall_create" => {
            let never = AtomicBool::new(false);
            let flag = seg.raw().atomic_u64(num(2)).unwrap();
            let _ = shmkit::test_support::claim_and_stall_for_test(
                &seg,
                &args[1],
                || flag.store(1, Ordering::Release),
                &never,
            );
            1
        }
        "transfer" => {
            // Moves one unit between two keys per step, both under the dictionary's
            // mutex held across the two updates: the sum over all keys never changes.
            let d = seg.dict("accounts", 64).unwrap();
            let mut rng = fastrand::Rng::with_seed(num(1));
            for _ in 0..num(2) {
                let (from, to) = (rng.u64(0..KEYS), rng.u64(0..KEYS));
                let _g = lock_repaired(&d);
                d.update::<i64>(&format!("k{from}"), |v| v.map(|v| v - 1))
                    .unwrap();
                d.update::<i64>(&format!("k{to}"), |v| v.map(|v| v + 1))
                    .unwrap();
            }
            0
        }
        "churn_forever" => {
            // Holds the dictionary's mutex for good (its operations lock it reentrantly)
            // and rewrites keys until killed, so the kill always lands inside an update
            // sequence.
            let d = seg.dict("accounts", 64).unwrap();
            let flag = seg.raw().atomic_u64(num(1)).unwrap();
            let _g = lock_repaired(&d);
            flag.store(1, Ordering::Release);
            let mut i = 0u64;
            loop {
                d.insert(&format!("k{}", i % KEYS), &(START + 1)).unwrap();
                d.insert(&format!("big{}", i % 3), &vec![i; 40]).unwrap();
                i += 1;
            }
        }
        other => panic!("unknown role {other}"),
    }
});

#[test]
fn eight_processes_racing_over_1000_names_create_each_once_and_agree() {
    let name = TempSegment::new("race");
    let seg = Segment::create(&name.0, &CreateOptions::new(8 << 20).table_capacity(2048)).unwrap();
    let slots = seg.raw().alloc(8 * 8, 64).unwrap();
    let mut children: Vec<_> = (0..8u64)
        .map(|me| {
            spawn(
                "race_names",
                &[name.0.clone(), slots.to_string(), me.to_string()],
            )
        })
        .collect();
    for c in &mut children {
        assert!(wait_exit(c, Duration::from_secs(120)).success());
    }
    let entries = seg.entries().unwrap();
    assert_eq!(
        entries.len() as u64,
        NAMES,
        "each name created exactly once"
    );
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len() as u64, NAMES);
    let events = shmkit::inspect::blocks(&seg)
        .unwrap()
        .iter()
        .filter(|b| b.kind == shmkit::segment::BlockKind::Event)
        .count();
    assert_eq!(events as u64, NAMES, "no duplicate objects were allocated");
    let digests: Vec<u64> = (0..8)
        .map(|i| {
            seg.raw()
                .atomic_u64(slots + 8 * i)
                .unwrap()
                .load(Ordering::Acquire)
        })
        .collect();
    assert!(
        digests.iter().all(|d| *d == digests[0] && *d != 0),
        "every process saw the same objects: {digests:x?}"
    );
}

#[test]
fn a_creator_killed_mid_initialisation_is_reclaimed() {
    let name = TempSegment::new("reclaim");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let flag_off = seg.raw().alloc(8, 64).unwrap();
    let flag = seg.raw().atomic_u64(flag_off).unwrap();
    let mut child = spawn(
        "stall_create",
        &[name.0.clone(), "camera".into(), flag_off.to_string()],
    );
    assert!(eventually(Duration::from_secs(10), || flag
        .load(Ordering::Acquire)
        == 1));
    // Claimed but unfinished: lookups do not see the name, and a creator waits, then is told
    // who is busy with it.
    assert_eq!(seg.lookup("camera").unwrap(), None);
    let impatient = Segment::open_with(
        &name.0,
        &shmkit::OpenOptions {
            create_wait: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .unwrap();
    match impatient.event("camera") {
        Err(SegmentError::EntryBusy { creator_pid, .. }) => assert_eq!(creator_pid, child.id()),
        other => panic!("{other:?}"),
    }
    sigkill(&child);
    let start = Instant::now();
    let event = seg
        .event("camera")
        .expect("the dead creator's entry is reclaimed");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    let _ = child.wait();
    assert_eq!(seg.event("camera").unwrap().offset(), event.offset());
    assert_eq!(seg.entries().unwrap().len(), 1);
}

fn sum(d: &shmkit::SharedDict) -> i64 {
    d.values::<i64>().unwrap().iter().sum()
}

#[test]
fn four_processes_updating_a_dictionary_keep_the_sum() {
    let name = TempSegment::new("dictsum");
    let seg = Segment::create(&name.0, &CreateOptions::new(4 << 20)).unwrap();
    let d = seg.dict("accounts", 64).unwrap();
    for k in 0..KEYS {
        d.insert(&format!("k{k}"), &START).unwrap();
    }
    let total = START * KEYS as i64;
    let mut children: Vec<_> = (0..4u64)
        .map(|i| spawn("transfer", &[name.0.clone(), i.to_string(), "2000".into()]))
        .collect();
    let mut snapshots = 0;
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        assert_eq!(sum(&d), total, "a snapshot saw a half-done transfer");
        snapshots += 1;
    }
    for c in &mut children {
        assert!(wait_exit(c, Duration::from_secs(60)).success());
    }
    assert_eq!(sum(&d), total);
    assert!(snapshots > 0);
}

#[test]
fn a_dictionary_holder_killed_mid_update_surfaces_owner_died_and_stays_readable() {
    let name = TempSegment::new("dictkill");
    let seg = Segment::create(&name.0, &CreateOptions::new(4 << 20)).unwrap();
    let d = seg.dict("accounts", 64).unwrap();
    for k in 0..KEYS {
        d.insert(&format!("k{k}"), &START).unwrap();
    }
    let flag_off = seg.raw().alloc(8, 64).unwrap();
    let flag = seg.raw().atomic_u64(flag_off).unwrap();
    for round in 0..20 {
        flag.store(0, Ordering::Relaxed);
        let mut child = spawn("churn_forever", &[name.0.clone(), flag_off.to_string()]);
        assert!(eventually(Duration::from_secs(10), || flag
            .load(Ordering::Acquire)
            == 1));
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..2000)));
        sigkill(&child);
        let _ = child.wait();
        match d.get::<i64>("k0") {
            Err(DictError::OwnerDied { lost, .. }) => assert_eq!(lost, 0, "round {round}"),
            other => panic!("round {round}: owner death not surfaced: {other:?}"),
        }
        let items = d
            .items_bytes()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(
            items.len() as u64 >= KEYS,
            "round {round}: {} items",
            items.len()
        );
        for k in 0..KEYS {
            let v = d
                .get::<i64>(&format!("k{k}"))
                .unwrap()
                .expect("every key survives");
            assert!(v == START || v == START + 1, "round {round}: k{k} = {v}");
        }
    }
}
