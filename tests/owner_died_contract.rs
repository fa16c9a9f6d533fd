//! The one owner-died contract (the table in `ARCHITECTURE.md`), row by row, with the holder a
//! real process killed while it holds the lock: the caller is told who died, its operation did
//! not run, and what could be repaired without the caller has been. (Device rows:
//! `tests/devices.rs`; the guard-free mutex row: `tests/threading_semantics.rs`.)

mod common;

use common::{eventually, sigkill, spawn, TempSegment};
use shmkit::{Acquired, CreateOptions, DictError, Segment, SharedError};
use std::sync::atomic::Ordering;
use std::time::Duration;

crate::child_roles!(|role, args| {
    let seg = Segment::open(&args[0]).expect("child opens the segment");
    let flag = seg.raw().atomic_u64(args[1].parse().unwrap()).unwrap();
    // Each role takes its lock, leaves the data half-updated, says so, and waits to die.
    let hold_until_killed = || -> ! {
        flag.store(u64::from(std::process::id()), Ordering::Release);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    match role {
        "hold_mutex" => {
            let m = seg.mutex("m").unwrap();
            let _g = m
                .lock(shmkit::DEFAULT_LOCK_TIMEOUT)
                .unwrap()
                .recover_with(|_| {});
            hold_until_killed()
        }
        "hold_shared" => {
            let v = seg.shared("v", [0u64; 2]).unwrap();
            let mut g = match v.lock().unwrap() {
                Acquired::Locked(g) => g,
                Acquired::OwnerDied(g) => g.make_consistent(),
            };
            g[0] = 1; // the pair's invariant (equal halves) is broken until g[1] = 1
            hold_until_killed()
        }
        "hold_dict" => {
            let d = seg.dict("d", 16).unwrap();
            let _g = d.lock().unwrap();
            d.insert("inside", &1u64).unwrap();
            hold_until_killed()
        }
        other => panic!("unknown role {other}"),
    }
});

/// Starts `role`, waits until it holds its lock, kills it; returns the segment and its pid.
fn killed_holding(role: &str) -> (TempSegment, Segment, u32) {
    let name = TempSegment::new(role);
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    seg.mutex("m").unwrap();
    seg.shared("v", [0u64; 2]).unwrap();
    let d = seg.dict("d", 16).unwrap();
    d.insert("before", &7u64).unwrap();
    let flag_off = seg.raw().alloc(8, 64).unwrap();
    let flag = seg.raw().atomic_u64(flag_off).unwrap();
    let mut child = spawn(role, &[name.0.clone(), flag_off.to_string()]);
    assert!(eventually(Duration::from_secs(20), || flag
        .load(Ordering::Acquire)
        != 0));
    let pid = flag.load(Ordering::Acquire) as u32;
    sigkill(&child);
    let _ = child.wait();
    (name, seg, pid)
}

#[test]
fn mutex_lock_hands_over_the_lock_and_the_repair() {
    let (_name, seg, pid) = killed_holding("hold_mutex");
    let m = seg.mutex("m").unwrap();
    match m.lock(Duration::from_secs(5)).unwrap() {
        Acquired::OwnerDied(g) => {
            assert_eq!(g.previous_owner().map(|p| p.pid), Some(pid));
            drop(g.make_consistent());
        }
        Acquired::Locked(_) => panic!("the death was not reported"),
    }
    assert!(matches!(
        m.lock(shmkit::DEFAULT_LOCK_TIMEOUT).unwrap(),
        Acquired::Locked(_)
    ));
}

#[test]
fn shared_one_shot_calls_do_not_run_and_keep_reporting_until_a_locker_repairs() {
    let (_name, seg, pid) = killed_holding("hold_shared");
    let v = seg.shared("v", [0u64; 2]).unwrap();
    for _ in 0..2 {
        match v.update(|x| x[1] += 100) {
            Err(SharedError::OwnerDied { previous: Some(p) }) => assert_eq!(p.pid, pid),
            other => panic!("expected OwnerDied, got {other:?}"),
        }
        assert!(matches!(v.read(), Err(SharedError::OwnerDied { .. })));
    }
    match v.lock().unwrap() {
        Acquired::OwnerDied(mut g) => {
            assert_eq!(
                *g,
                [1, 0],
                "the update above did not run; the half-update is there"
            );
            g[1] = g[0];
            drop(g.make_consistent());
        }
        Acquired::Locked(_) => panic!("the death was not reported to the locker"),
    }
    assert_eq!(v.read().unwrap(), [1, 1]);
}

#[test]
fn dict_calls_repair_the_dictionary_report_once_and_the_retry_runs() {
    let (_name, seg, pid) = killed_holding("hold_dict");
    let d = seg.dict("d", 16).unwrap();
    match d.insert("after", &2u64) {
        Err(DictError::OwnerDied {
            previous: Some(p),
            lost: 0,
        }) => assert_eq!(p.pid, pid),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert_eq!(
        d.get::<u64>("after").unwrap(),
        None,
        "the insert did not run"
    );
    d.insert("after", &2u64).unwrap();
    assert_eq!(d.get::<u64>("before").unwrap(), Some(7));
    assert_eq!(d.get::<u64>("after").unwrap(), Some(2));
}
