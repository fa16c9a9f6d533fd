//! Events and barriers across real processes: wake-all, generations, breaking, deadlines.

mod common;

use common::{eventually, sigkill, spawn, wait_exit, TempSegment};
use shmkit::{BarrierError, CreateOptions, Segment, WaitStrategy};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const EXIT_BROKEN: i32 = 3;
const EXIT_PARTY_DIED: i32 = 6;

fn strategy(name: &str) -> WaitStrategy {
    match name {
        "block" => WaitStrategy::Block,
        "spin" => WaitStrategy::Spin,
        "spin_then_block" => WaitStrategy::SpinThenBlock,
        other => panic!("unknown strategy {other}"),
    }
}

crate::child_roles!(|role, args| {
    let seg = Segment::open(&args[0]).expect("child opens the segment");
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    match role {
        "wait_event" => {
            let event = seg
                .attach::<shmkit::Event>(num(1))
                .unwrap()
                .with_strategy(strategy(&args[3]));
            seg.raw()
                .atomic_u64(num(2))
                .unwrap()
                .fetch_add(1, Ordering::AcqRel);
            match event.wait(Duration::from_secs(20)) {
                true => 0,
                false => 1,
            }
        }
        "barrier_loop" => {
            let barrier = seg
                .attach::<shmkit::Barrier>(num(1))
                .unwrap()
                .with_strategy(strategy(&args[4]));
            let leaders = seg.raw().atomic_u64(num(2)).unwrap();
            let parties = barrier.parties();
            for g in 0..num(3) as u32 {
                let w = barrier.wait(Duration::from_secs(20)).expect("barrier wait");
                assert_eq!(w.generation, g, "generations are seen in order");
                if w.is_leader(parties) {
                    leaders.fetch_add(1, Ordering::Relaxed);
                }
            }
            0
        }
        "barrier_once" => {
            let barrier = seg.attach::<shmkit::Barrier>(num(1)).unwrap();
            match barrier.wait(Duration::from_millis(num(2))) {
                Ok(_) => 0,
                Err(BarrierError::Broken) => EXIT_BROKEN,
                Err(BarrierError::Timeout { .. }) => 4,
                Err(BarrierError::Corrupt { .. }) => 5,
                Err(BarrierError::PartyDied { .. }) => EXIT_PARTY_DIED,
                Err(BarrierError::Interrupted) => 7,
                Err(BarrierError::ActionFailed { .. }) => 8,
            }
        }
        "barrier_lead_and_hang" => {
            // The last party: its action says so, then hangs until this process is killed.
            let (mine, running) = (seg.clone(), num(2));
            let barrier = seg
                .attach::<shmkit::Barrier>(num(1))
                .unwrap()
                .with_action(move || {
                    mine.raw()
                        .atomic_u64(running)
                        .unwrap()
                        .store(1, Ordering::Release);
                    std::thread::sleep(Duration::from_secs(60));
                    Ok::<(), std::io::Error>(())
                });
            let _ = barrier.wait(Duration::from_secs(60));
            0
        }
        other => panic!("unknown role {other}"),
    }
});

#[test]
fn set_wakes_all_of_8_waiting_processes() {
    wake_8_waiting_processes(false);
}

/// Python's `threading.Event`: every waiter waiting when `set()` is called is awakened, even
/// if `clear()` follows at once, before any waiter runs.
#[test]
fn set_then_clear_at_once_wakes_all_of_8_waiting_processes() {
    for _ in 0..3 {
        wake_8_waiting_processes(true);
    }
}

fn wake_8_waiting_processes(clear_at_once: bool) {
    let name = TempSegment::new("event8");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let event = seg.event("event-1").unwrap();
    let arrived_off = seg.raw().alloc(8, 64).unwrap();
    let arrived = seg.raw().atomic_u64(arrived_off).unwrap();
    let strategies = [
        "block",
        "block",
        "block",
        "block",
        "block",
        "spin_then_block",
        "spin_then_block",
        "spin",
    ];
    let mut children: Vec<_> = strategies
        .iter()
        .map(|s| {
            spawn(
                "wait_event",
                &[
                    name.0.clone(),
                    event.offset().unwrap().to_string(),
                    arrived_off.to_string(),
                    s.to_string(),
                ],
            )
        })
        .collect();
    assert!(eventually(Duration::from_secs(20), || arrived
        .load(Ordering::Acquire)
        == 8));
    // Every waiter that blocks must be asleep in the futex before `set` (the counter above
    // only says it is about to wait). The spinning one cannot be seen waiting from outside:
    // if it were not yet, it would miss the set and this test fail, never pass wrongly.
    for (c, s) in children.iter().zip(strategies) {
        if s != "spin" {
            common::wait_until_futex_wait(c.id() as i32, Duration::from_secs(20));
        }
    }
    assert!(!event.is_set());
    event.set();
    if clear_at_once {
        event.clear();
    }
    for c in &mut children {
        assert_eq!(
            wait_exit(c, Duration::from_secs(30)).code(),
            Some(0),
            "a waiter was not woken (cleared at once: {clear_at_once})"
        );
    }
}

#[test]
fn four_processes_pass_1000_barrier_generations_with_one_leader_each() {
    const GENS: u64 = 1000;
    let name = TempSegment::new("barrier1000");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let barrier = seg.barrier("barrier-1", 4).unwrap();
    let leaders_off = seg.raw().alloc(8, 64).unwrap();
    let mut children: Vec<_> = ["block", "block", "spin_then_block", "block"]
        .iter()
        .map(|s| {
            spawn(
                "barrier_loop",
                &[
                    name.0.clone(),
                    barrier.offset().unwrap().to_string(),
                    leaders_off.to_string(),
                    GENS.to_string(),
                    s.to_string(),
                ],
            )
        })
        .collect();
    for c in &mut children {
        assert!(wait_exit(c, Duration::from_secs(120)).success());
    }
    assert_eq!(
        seg.raw()
            .atomic_u64(leaders_off)
            .unwrap()
            .load(Ordering::Relaxed),
        GENS
    );
    assert!(!barrier.is_broken());
}

fn spawn_barrier_waiters(
    name: &str,
    offset: u64,
    n: usize,
    timeout_ms: u64,
) -> Vec<std::process::Child> {
    (0..n)
        .map(|_| {
            spawn(
                "barrier_once",
                &[name.to_owned(), offset.to_string(), timeout_ms.to_string()],
            )
        })
        .collect()
}

#[test]
fn abort_breaks_the_barrier_for_every_waiting_process() {
    let name = TempSegment::new("abort");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let barrier = seg.barrier("barrier-2", 4).unwrap();
    let mut children = spawn_barrier_waiters(&name.0, barrier.offset().unwrap(), 3, 20_000);
    assert!(eventually(Duration::from_secs(20), || barrier.arrived() == 3));
    barrier.abort();
    for c in &mut children {
        assert_eq!(
            wait_exit(c, Duration::from_secs(10)).code(),
            Some(EXIT_BROKEN)
        );
    }
    assert_eq!(
        barrier.wait(Duration::ZERO),
        Err(BarrierError::Broken),
        "stays broken"
    );
    barrier.reset();
    assert!(!barrier.is_broken());
}

#[test]
fn a_timeout_breaks_the_barrier_for_every_waiting_process() {
    let name = TempSegment::new("btimeout");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let barrier = seg.barrier("barrier-3", 4).unwrap();
    let mut children = spawn_barrier_waiters(&name.0, barrier.offset().unwrap(), 2, 20_000);
    assert!(eventually(Duration::from_secs(20), || barrier.arrived() == 2));
    let start = Instant::now();
    let mine = barrier.wait(Duration::from_millis(50));
    let took = start.elapsed();
    assert!(
        matches!(
            mine,
            Err(BarrierError::Timeout {
                arrived: 3,
                parties: 4,
                ..
            })
        ),
        "{mine:?}"
    );
    assert!(
        took >= Duration::from_millis(50) && took <= Duration::from_millis(70),
        "{took:?}"
    );
    for c in &mut children {
        assert_eq!(
            wait_exit(c, Duration::from_secs(10)).code(),
            Some(EXIT_BROKEN)
        );
    }
}

/// Waits at `barrier` in a thread of this process; the thread returns the outcome and when
/// it came.
fn wait_in_thread(
    barrier: &shmkit::Barrier,
) -> std::thread::JoinHandle<(Result<shmkit::BarrierWait, BarrierError>, Instant)> {
    let barrier = barrier.clone();
    std::thread::spawn(move || {
        let r = barrier.wait(Duration::from_secs(20));
        (r, Instant::now())
    })
}

/// The exit of a party the death broke the barrier for: broken, or the one that found it.
fn broken_or_found(code: Option<i32>) -> bool {
    code == Some(EXIT_BROKEN) || code == Some(EXIT_PARTY_DIED)
}

#[test]
fn a_party_killed_while_waiting_breaks_the_barrier_for_the_others_within_100ms() {
    let name = TempSegment::new("bdeath");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    // Four parties: the victim, a survivor and this process wait (20 s deadlines); the fourth
    // never comes. Without death detection they would wait out their 20 s.
    let barrier = seg.barrier("barrier-4", 4).unwrap();
    let offset = barrier.offset().unwrap();
    let mut victim = spawn_barrier_waiters(&name.0, offset, 1, 20_000).remove(0);
    assert!(eventually(Duration::from_secs(20), || barrier.arrived() == 1));
    let mut survivor = spawn_barrier_waiters(&name.0, offset, 1, 20_000).remove(0);
    assert!(eventually(Duration::from_secs(20), || barrier.arrived() == 2));
    let mine = wait_in_thread(&barrier);
    assert!(eventually(Duration::from_secs(20), || barrier.arrived() == 3));
    std::thread::sleep(Duration::from_millis(30));
    sigkill(&victim);
    let killed = Instant::now();
    let _ = victim.wait();
    let (outcome, at) = mine.join().unwrap();
    assert!(
        matches!(
            outcome,
            Err(BarrierError::Broken | BarrierError::PartyDied { .. })
        ),
        "{outcome:?}"
    );
    let took = at.duration_since(killed);
    assert!(
        took < Duration::from_millis(100),
        "broken {took:?} after the kill"
    );
    assert!(broken_or_found(
        wait_exit(&mut survivor, Duration::from_secs(10)).code()
    ));
    assert!(barrier.is_broken());
}

#[test]
fn a_last_party_killed_while_running_the_action_breaks_the_barrier_within_100ms() {
    let name = TempSegment::new("bleader");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let barrier = seg.barrier("barrier-5", 3).unwrap();
    let offset = barrier.offset().unwrap();
    let running_off = seg.raw().alloc(8, 64).unwrap();
    let running = seg.raw().atomic_u64(running_off).unwrap();
    let mut waiter = spawn_barrier_waiters(&name.0, offset, 1, 20_000).remove(0);
    assert!(eventually(Duration::from_secs(20), || barrier.arrived() == 1));
    let mine = wait_in_thread(&barrier);
    assert!(eventually(Duration::from_secs(20), || barrier.arrived() == 2));
    let mut leader = spawn(
        "barrier_lead_and_hang",
        &[name.0.clone(), offset.to_string(), running_off.to_string()],
    );
    assert!(eventually(Duration::from_secs(20), || running
        .load(Ordering::Acquire)
        == 1));
    assert_eq!(barrier.n_waiting(), 3, "all arrived; the action runs");
    sigkill(&leader);
    let killed = Instant::now();
    let _ = leader.wait();
    let (outcome, at) = mine.join().unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
    let took = at.duration_since(killed);
    assert!(
        took < Duration::from_millis(100),
        "broken {took:?} after the kill"
    );
    assert!(broken_or_found(
        wait_exit(&mut waiter, Duration::from_secs(10)).code()
    ));
}

#[test]
fn event_and_barrier_deadlines_are_accurate_within_20ms() {
    let name = TempSegment::new("edeadline");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let event = seg.event("event-2").unwrap();
    for s in [
        WaitStrategy::Block,
        WaitStrategy::Spin,
        WaitStrategy::SpinThenBlock,
    ] {
        for ms in [1, 30] {
            let timeout = Duration::from_millis(ms);
            let start = Instant::now();
            assert!(!event.clone().with_strategy(s).wait(timeout));
            let took = start.elapsed();
            assert!(
                took >= timeout && took <= timeout + Duration::from_millis(20),
                "{s:?}: {took:?} for {timeout:?}"
            );
        }
    }
    let barrier = seg.barrier("barrier-6", 2).unwrap();
    let start = Instant::now();
    assert!(barrier.wait(Duration::from_millis(30)).is_err());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(30) && took <= Duration::from_millis(50),
        "{took:?}"
    );
}
