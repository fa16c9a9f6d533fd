//! The robust reentrant mutex across real processes: exclusion, owner death by SIGKILL,
//! reentrancy, and deadline accuracy.

mod common;

use common::{eventually, sigkill, spawn, wait_exit, TempSegment};
use shmkit::{Acquired, CreateOptions, Liveness, LockError, Segment};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

crate::child_roles!(|role, args| {
    let seg = Segment::open(&args[0]).expect("child opens the segment");
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    let mutex = seg.attach::<shmkit::Mutex>(num(1)).unwrap();
    match role {
        "increment" => {
            let counter = seg.raw().atomic_u64(num(2)).unwrap();
            for _ in 0..num(3) {
                let _g = mutex
                    .lock(shmkit::DEFAULT_LOCK_TIMEOUT)
                    .unwrap()
                    .recover_with(|_| panic!("nobody dies here"));
                // Deliberately not an atomic increment: only the mutex keeps it exact.
                let v = counter.load(Ordering::Relaxed);
                counter.store(v + 1, Ordering::Relaxed);
            }
            0
        }
        "hold_forever" => {
            // Keeps updating a pair (a, b) with a == b outside each update, holding the lock
            // throughout, until killed. `flag` tells the parent the lock is held.
            let a = seg.raw().atomic_u64(num(2)).unwrap();
            let b = seg.raw().atomic_u64(num(2) + 8).unwrap();
            let flag = seg.raw().atomic_u64(num(2) + 16).unwrap();
            let _g = mutex
                .lock(shmkit::DEFAULT_LOCK_TIMEOUT)
                .unwrap()
                .recover_with(|_| {});
            flag.store(1, Ordering::Release);
            loop {
                let v = a.load(Ordering::Relaxed) + 1;
                a.store(v, Ordering::Relaxed);
                for _ in 0..(v % 64) {
                    std::hint::spin_loop();
                }
                b.store(v, Ordering::Relaxed);
            }
        }
        "hold_twice" => {
            // Locks reentrantly twice, then releases one level per step of `step`.
            let step = seg.raw().atomic_u64(num(2)).unwrap();
            let g1 = mutex
                .lock(shmkit::DEFAULT_LOCK_TIMEOUT)
                .unwrap()
                .recover_with(|_| {});
            let g2 = mutex
                .lock(shmkit::DEFAULT_LOCK_TIMEOUT)
                .unwrap()
                .recover_with(|_| {});
            step.store(1, Ordering::Release);
            while step.load(Ordering::Acquire) != 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(g2);
            step.store(3, Ordering::Release);
            while step.load(Ordering::Acquire) != 4 {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(g1);
            step.store(5, Ordering::Release);
            0
        }
        other => panic!("unknown role {other}"),
    }
});

#[test]
fn processes_incrementing_a_plain_counter_under_the_mutex_lose_nothing() {
    const PROCS: u64 = 4;
    const PER: u64 = 100_000;
    let name = TempSegment::new("count");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let m = seg.mutex("mutex-1").unwrap();
    let counter = seg.raw().alloc(8, 64).unwrap();
    let args = [
        name.0.clone(),
        m.offset().unwrap().to_string(),
        counter.to_string(),
        PER.to_string(),
    ];
    let mut children: Vec<_> = (0..PROCS).map(|_| spawn("increment", &args)).collect();
    for c in &mut children {
        assert!(wait_exit(c, Duration::from_secs(120)).success());
    }
    assert_eq!(
        seg.raw()
            .atomic_u64(counter)
            .unwrap()
            .load(Ordering::Relaxed),
        PROCS * PER
    );
}

#[test]
fn a_holder_killed_at_random_points_is_detected_within_100ms_and_the_data_repaired() {
    let kills = 200;
    let name = TempSegment::new("kill");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let m = seg.mutex("mutex-2").unwrap();
    let data = seg.raw().alloc(24, 64).unwrap();
    let (a, b, flag) = (
        seg.raw().atomic_u64(data).unwrap(),
        seg.raw().atomic_u64(data + 8).unwrap(),
        seg.raw().atomic_u64(data + 16).unwrap(),
    );
    let args = [
        name.0.clone(),
        m.offset().unwrap().to_string(),
        data.to_string(),
    ];
    let mut torn = 0;
    let mut worst = Duration::ZERO;
    for i in 0..kills {
        flag.store(0, Ordering::Relaxed);
        let mut child = spawn("hold_forever", &args);
        assert!(
            eventually(Duration::from_secs(10), || flag.load(Ordering::Acquire)
                == 1),
            "child {i} never locked"
        );
        let before = a.load(Ordering::Relaxed);
        // A waiter blocks on the lock while the child runs; the kill lands at a random point
        // of the child's update loop.
        let waiter = {
            let m = m.clone();
            std::thread::spawn(move || {
                let outcome = m.lock(Duration::from_secs(10));
                let at = Instant::now();
                match outcome {
                    Ok(Acquired::OwnerDied(g)) => {
                        let prev = g.previous_owner().expect("this waiter saw the death");
                        g.release_inconsistent();
                        Ok((at, prev))
                    }
                    Ok(Acquired::Locked(_)) => Err("lock acquired without owner-died".to_string()),
                    Err(e) => Err(e.to_string()),
                }
            })
        };
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..3000)));
        let killed_at = Instant::now();
        sigkill(&child);
        let (detected_at, prev) = waiter
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("kill {i}: {e}"));
        assert_eq!(prev.pid, child.id(), "the dead owner is named");
        assert_eq!(prev.liveness, Liveness::Dead);
        let latency = detected_at.saturating_duration_since(killed_at);
        worst = worst.max(latency);
        assert!(
            latency <= Duration::from_millis(100),
            "kill {i}: detected after {latency:?}"
        );
        let _ = child.wait();
        // Repair: the pair may be torn by the kill; restore the invariant.
        match m.lock(shmkit::DEFAULT_LOCK_TIMEOUT).unwrap() {
            Acquired::OwnerDied(g) => {
                if a.load(Ordering::Relaxed) != b.load(Ordering::Relaxed) {
                    torn += 1;
                    b.store(a.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                assert!(
                    a.load(Ordering::Relaxed) >= before,
                    "progress is never lost"
                );
                drop(g.make_consistent());
            }
            Acquired::Locked(_) => panic!("kill {i}: inconsistency not passed on"),
        }
    }
    assert_eq!(a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
    assert!(
        matches!(m.try_lock().unwrap(), Acquired::Locked(_)),
        "consistent again"
    );
    eprintln!("{kills} kills, {torn} tore the data, worst detection {worst:?}");
}

#[test]
fn a_thread_that_exits_holding_the_lock_is_detected() {
    let m = shmkit::Mutex::new_local();
    let m2 = m.clone();
    let tid = std::thread::spawn(move || {
        let g = m2.lock(shmkit::DEFAULT_LOCK_TIMEOUT).unwrap();
        std::mem::forget(g);
        m2.owner().unwrap().tid
    })
    .join()
    .unwrap();
    let start = Instant::now();
    match m.lock(Duration::from_secs(5)).unwrap() {
        Acquired::OwnerDied(g) => {
            assert_eq!(g.previous_owner().unwrap().tid, tid);
            drop(g.make_consistent());
        }
        Acquired::Locked(_) => panic!("exited owner not detected"),
    }
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn reentrant_locks_in_one_process_exclude_another_until_fully_released() {
    let name = TempSegment::new("reent");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let m = seg.mutex("mutex-3").unwrap();
    let step_off = seg.raw().alloc(8, 64).unwrap();
    let step = seg.raw().atomic_u64(step_off).unwrap();
    let mut child = spawn(
        "hold_twice",
        &[
            name.0.clone(),
            m.offset().unwrap().to_string(),
            step_off.to_string(),
        ],
    );
    assert!(eventually(Duration::from_secs(10), || step
        .load(Ordering::Acquire)
        == 1));
    assert!(
        matches!(m.try_lock().map(|_| ()), Err(LockError::WouldBlock { owner }) if owner.pid == child.id())
    );
    step.store(2, Ordering::Release);
    assert!(eventually(Duration::from_secs(10), || step
        .load(Ordering::Acquire)
        == 3));
    assert!(m.try_lock().is_err(), "still held once");
    step.store(4, Ordering::Release);
    assert!(eventually(Duration::from_secs(10), || step
        .load(Ordering::Acquire)
        == 5));
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    assert!(matches!(m.try_lock().unwrap(), Acquired::Locked(_)));
}

#[test]
fn lock_timeout_returns_after_the_deadline_within_20ms() {
    let name = TempSegment::new("deadline");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let m = seg.mutex("mutex-4").unwrap();
    let data = seg.raw().alloc(24, 64).unwrap();
    let mut child = spawn(
        "hold_forever",
        &[
            name.0.clone(),
            m.offset().unwrap().to_string(),
            data.to_string(),
        ],
    );
    let flag = seg.raw().atomic_u64(data + 16).unwrap();
    assert!(eventually(Duration::from_secs(10), || flag
        .load(Ordering::Acquire)
        == 1));
    for ms in [1, 10, 50, 150] {
        let timeout = Duration::from_millis(ms);
        let start = Instant::now();
        let err = m.lock(timeout).map(|_| ()).unwrap_err();
        let took = start.elapsed();
        assert!(took >= timeout, "returned early: {took:?} < {timeout:?}");
        assert!(
            took <= timeout + Duration::from_millis(20),
            "returned late: {took:?} for {timeout:?}"
        );
        match err {
            LockError::Timeout { owner, .. } => {
                assert_eq!(owner.pid, child.id());
                assert_eq!(owner.liveness, Liveness::Alive);
            }
            other => panic!("{other:?}"),
        }
    }
    sigkill(&child);
    let _ = child.wait();
}
