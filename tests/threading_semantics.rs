//! `threading`'s semantics across real processes: an `RLock` released by a process that does
//! not hold it, its depth saved and restored around another process's hold, its holder killed
//! mid-hold (guard-free), a barrier's action run by the last process before any is released,
//! and an event's wait answering whether it was set.

mod common;

use common::{eventually, sigkill, spawn, wait_exit, TempSegment};
use shmkit::{
    CreateOptions, Held, LockError, NoInterrupt, Segment, SegmentObjects, Timeout, UnlockError,
};
use std::sync::atomic::Ordering;
use std::time::Duration;

const GENERATIONS: u64 = 20;

crate::child_roles!(|role, args| {
    let seg = Segment::open(&args[0]).expect("child opens the segment");
    let flag = seg.raw().atomic_u64(args[1].parse().unwrap()).unwrap();
    let m = seg.mutex("m").unwrap();
    match role {
        "hold_guard_free" => {
            assert_eq!(m.acquire(Timeout::ZERO, &NoInterrupt), Ok(Held::Once));
            let _ = m.acquire(Timeout::ZERO, &NoInterrupt).unwrap();
            flag.store(u64::from(std::process::id()), Ordering::Release);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "save_restore" => {
            for _ in 0..3 {
                let _ = m.acquire(Timeout::ZERO, &NoInterrupt).unwrap();
            }
            let saved = m.release_save().unwrap();
            flag.store(1, Ordering::Release);
            let go = seg.event("go").unwrap();
            assert!(go.wait(Duration::from_secs(20)));
            // The parent holds it now; restoring waits for it.
            let restored =
                m.acquire_restore(saved, Timeout::After(Duration::from_secs(20)), &NoInterrupt);
            if restored != Ok(Held::Reentered { depth: 3 }) || m.recursion_count() != 3 {
                eprintln!("restored {restored:?}, depth {}", m.recursion_count());
                return 1;
            }
            for _ in 0..3 {
                m.release().unwrap();
            }
            i32::from(m.release().is_ok()) * 2
        }
        "barrier_action" => {
            let (runs_at, released_at) = (args[2].parse().unwrap(), args[3].parse().unwrap());
            let (mine, errors) = (seg.clone(), args[1].parse::<u64>().unwrap());
            let b = seg
                .open::<shmkit::Barrier>("b")
                .unwrap()
                .with_action(move || {
                    let runs = mine.raw().atomic_u64(runs_at).unwrap();
                    let released = mine.raw().atomic_u64(released_at).unwrap();
                    let g = runs.fetch_add(1, Ordering::SeqCst);
                    if released.load(Ordering::SeqCst) != g * 3 {
                        mine.raw()
                            .atomic_u64(errors)
                            .unwrap()
                            .fetch_add(1, Ordering::SeqCst);
                    }
                    Ok::<(), std::io::Error>(())
                });
            let runs = seg.raw().atomic_u64(runs_at).unwrap();
            let released = seg.raw().atomic_u64(released_at).unwrap();
            for g in 0..GENERATIONS {
                b.wait(Duration::from_secs(20)).expect("barrier wait");
                if runs.load(Ordering::SeqCst) <= g {
                    return 3; // released before this generation's action ran
                }
                released.fetch_add(1, Ordering::SeqCst);
                while released.load(Ordering::SeqCst) < (g + 1) * 3 {
                    std::thread::yield_now();
                }
            }
            0
        }
        "event_poll_then_wait" => {
            let e = seg.event("e").unwrap();
            let polled = e.wait(Duration::ZERO);
            flag.store(1, Ordering::Release);
            let waited = e.wait(Duration::from_secs(20));
            match (polled, waited) {
                (false, true) => 0,
                _ => 1,
            }
        }
        other => panic!("unknown role {other}"),
    }
});

fn setup(tag: &str) -> (TempSegment, Segment, u64) {
    let name = TempSegment::new(tag);
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    seg.mutex("m").unwrap();
    let flag = seg.raw().alloc(64, 64).unwrap();
    (name, seg, flag)
}

#[test]
fn a_release_by_a_process_that_does_not_hold_the_mutex_names_the_holder() {
    let (name, seg, flag_off) = setup("notowner");
    let flag = seg.raw().atomic_u64(flag_off).unwrap();
    let m = seg.mutex("m").unwrap();
    let mut child = spawn("hold_guard_free", &[name.0.clone(), flag_off.to_string()]);
    assert!(eventually(Duration::from_secs(20), || flag
        .load(Ordering::Acquire)
        != 0));
    let pid = flag.load(Ordering::Acquire) as u32;
    match m.release() {
        Err(UnlockError::NotOwner { owner: Some(o) }) => assert_eq!(o.pid, pid),
        other => panic!("expected NotOwner naming pid {pid}, got {other:?}"),
    }
    assert_eq!(m.recursion_count(), 0);
    assert!(matches!(
        m.acquire(Timeout::ZERO, &NoInterrupt),
        Err(LockError::WouldBlock { owner }) if owner.pid == pid
    ));
    // Killed holding two guard-free levels: the next acquirer is told, and holds it once.
    sigkill(&child);
    let _ = child.wait();
    match m.acquire(Timeout::After(Duration::from_secs(5)), &NoInterrupt) {
        Ok(Held::OwnerDied { previous: Some(p) }) => assert_eq!(p.pid, pid),
        other => panic!("expected OwnerDied naming pid {pid}, got {other:?}"),
    }
    assert_eq!(
        m.recursion_count(),
        1,
        "the dead holder's levels died with it"
    );
    m.make_consistent().unwrap();
    m.release().unwrap();
    assert_eq!(m.owner(), None);
}

#[test]
fn a_depth_saved_in_one_process_is_restored_after_another_process_held_the_mutex() {
    let (name, seg, flag_off) = setup("saverestore");
    let flag = seg.raw().atomic_u64(flag_off).unwrap();
    let m = seg.mutex("m").unwrap();
    let go = seg.event("go").unwrap();
    let mut child = spawn("save_restore", &[name.0.clone(), flag_off.to_string()]);
    assert!(eventually(Duration::from_secs(20), || flag
        .load(Ordering::Acquire)
        == 1));
    // Fully released by the save: this process takes it at once.
    let g = m.lock(Duration::ZERO).expect("free after release_save");
    go.set();
    std::thread::sleep(Duration::from_millis(100));
    drop(g);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_barrier_action_runs_in_the_last_process_before_any_process_is_released() {
    let name = TempSegment::new("baction");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    seg.mutex("m").unwrap();
    seg.barrier("b", 3).unwrap();
    let counters = seg.raw().alloc(64, 64).unwrap();
    let (errors, runs, released) = (counters, counters + 8, counters + 16);
    let mut children: Vec<_> = (0..3)
        .map(|_| {
            spawn(
                "barrier_action",
                &[
                    name.0.clone(),
                    errors.to_string(),
                    runs.to_string(),
                    released.to_string(),
                ],
            )
        })
        .collect();
    for c in &mut children {
        let status = wait_exit(c, Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
    let load = |off| seg.raw().atomic_u64(off).unwrap().load(Ordering::SeqCst);
    assert_eq!(load(runs), GENERATIONS, "one action per generation");
    assert_eq!(load(errors), 0, "an action ran after a party was released");
}

#[test]
fn an_event_wait_says_whether_it_was_set_and_a_zero_timeout_polls() {
    let (name, seg, flag_off) = setup("eventbool");
    let flag = seg.raw().atomic_u64(flag_off).unwrap();
    let e = seg.event("e").unwrap();
    let mut child = spawn(
        "event_poll_then_wait",
        &[name.0.clone(), flag_off.to_string()],
    );
    assert!(eventually(Duration::from_secs(20), || flag
        .load(Ordering::Acquire)
        == 1));
    std::thread::sleep(Duration::from_millis(30));
    e.set();
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(20)).code(),
        Some(0)
    );
}
