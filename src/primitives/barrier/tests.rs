//! The barrier's unit tests: the state codec, and waits across threads.

use super::state::tag;
use super::*;
use crate::sys::identity::current_thread;
use shm_layout::BARRIER_HISTORY_LEN;
use std::time::Duration;

#[test]
fn packed_round_trips() {
    let p = Packed {
        arrived: 65535,
        broken: true,
        history: 0x5555,
        generation: u32::MAX,
    };
    assert_eq!(Packed::decode(p.encode()), p);
}

#[test]
fn history_remembers_recent_outcomes_and_forgets_old_ones() {
    let mut p = Packed::decode(0);
    p = p.end_generation(true); // gen 0 broken
    p = p.end_generation(false); // gen 1 completed
    assert_eq!(p.outcome_of(0), Some(true));
    assert_eq!(p.outcome_of(1), Some(false));
    assert_eq!(
        p.outcome_of(2),
        None,
        "the current generation has not ended"
    );
    for _ in 0..BARRIER_HISTORY_LEN {
        p = p.end_generation(false);
    }
    assert_eq!(p.outcome_of(0), None);
}

#[test]
fn a_single_party_barrier_never_blocks() {
    let b = Barrier::new_local(1);
    for g in 0..3 {
        let w = b.wait(Duration::ZERO).unwrap();
        assert_eq!(w.generation, g);
        assert!(w.is_leader(1));
    }
}

#[test]
fn threads_meet_over_many_generations_with_one_leader_each() {
    const PARTIES: u32 = 4;
    let gens = if cfg!(miri) { 3 } else { 200 };
    let b = Arc::new(Barrier::new_local(PARTIES));
    let handles: Vec<_> = (0..PARTIES)
        .map(|i| {
            let b = Barrier::clone(&b).with_strategy(if i % 2 == 0 {
                WaitStrategy::Block
            } else {
                WaitStrategy::SpinThenBlock
            });
            std::thread::spawn(move || {
                (0..gens)
                    .map(|_| b.wait(Duration::from_secs(30)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<BarrierWait>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for g in 0..gens as usize {
        let mut indexes: Vec<u32> = results.iter().map(|r| r[g].index).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, (0..PARTIES).collect::<Vec<_>>());
        assert!(results.iter().all(|r| r[g].generation == g as u32));
    }
}

#[test]
fn a_timeout_breaks_the_barrier_for_everyone_until_reset() {
    let b = Arc::new(Barrier::new_local(3));
    let b2 = Barrier::clone(&b);
    let other = std::thread::spawn(move || b2.wait(Duration::from_secs(30)));
    while b.arrived() == 0 {
        std::thread::yield_now();
    }
    let mine = b.wait(Duration::from_millis(10));
    assert!(matches!(
        mine,
        Err(BarrierError::Timeout {
            arrived: 2,
            parties: 3,
            ..
        })
    ));
    assert_eq!(other.join().unwrap(), Err(BarrierError::Broken));
    assert!(b.is_broken());
    assert_eq!(b.wait(Duration::ZERO), Err(BarrierError::Broken));
    b.reset();
    assert!(!b.is_broken());
    assert_eq!(b.arrived(), 0);
}

#[test]
fn abort_and_reset_release_waiters_as_broken() {
    for abort in [true, false] {
        let b = Arc::new(Barrier::new_local(2));
        let b2 = Barrier::clone(&b);
        let waiter = std::thread::spawn(move || b2.wait(Duration::from_secs(30)));
        while b.arrived() == 0 {
            std::thread::yield_now();
        }
        if abort {
            b.abort();
        } else {
            b.reset();
        }
        assert_eq!(waiter.join().unwrap(), Err(BarrierError::Broken));
        assert_eq!(b.is_broken(), abort);
    }
}

#[test]
fn a_corrupt_party_count_is_an_error() {
    let b = Barrier::new_local(2);
    b.state.parties.store(0, Ordering::Relaxed);
    assert!(matches!(
        b.wait(Duration::ZERO),
        Err(BarrierError::Corrupt { .. })
    ));
    b.state.parties.store(2, Ordering::Relaxed);
    b.state.state.store(5, Ordering::Relaxed);
    assert!(matches!(
        b.wait(Duration::ZERO),
        Err(BarrierError::Corrupt { .. })
    ));
}

// ---- threading.Barrier semantics ----

#[cfg(not(miri))]
#[test]
fn the_action_runs_once_per_generation_in_the_last_party_before_anyone_is_released() {
    use std::sync::atomic::{AtomicU32 as StdU32, Ordering as O};
    const PARTIES: u32 = 3;
    const GENERATIONS: u32 = 50;
    let runs = Arc::new(StdU32::new(0));
    let released = Arc::new(StdU32::new(0));
    let early = Arc::new(StdU32::new(0));
    let (r, rel, e) = (runs.clone(), released.clone(), early.clone());
    let b = Barrier::new_local(PARTIES).with_action(move || {
        let generation = r.fetch_add(1, O::SeqCst);
        // Every party of earlier generations has been released, none of this one.
        if rel.load(O::SeqCst) != generation * PARTIES {
            e.fetch_add(1, O::SeqCst);
        }
        Ok::<(), std::io::Error>(())
    });
    let handles: Vec<_> = (0..PARTIES)
        .map(|_| {
            let (b, runs, released) = (b.clone(), runs.clone(), released.clone());
            std::thread::spawn(move || {
                let mut leaders = 0;
                for g in 0..GENERATIONS {
                    let w = b.wait(Duration::from_secs(30)).unwrap();
                    assert!(runs.load(O::SeqCst) > g, "released before the action ran");
                    leaders += u32::from(w.is_leader(PARTIES));
                    released.fetch_add(1, O::SeqCst);
                    // Keep generations apart so the counter check above is exact.
                    while released.load(O::SeqCst) < (g + 1) * PARTIES {
                        std::thread::yield_now();
                    }
                }
                leaders
            })
        })
        .collect();
    let leaders: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(runs.load(O::SeqCst), GENERATIONS);
    assert_eq!(
        leaders, GENERATIONS,
        "one leader (the action's runner) per generation"
    );
    assert_eq!(
        early.load(O::SeqCst),
        0,
        "a party was released before the action"
    );
}

#[cfg(not(miri))]
#[test]
fn a_failing_action_breaks_the_barrier_for_everyone_and_tells_the_leader_why() {
    let b = Barrier::new_local(2).with_action(|| Err("calibration lost"));
    let other = {
        let b = b.clone();
        std::thread::spawn(move || b.wait(Duration::from_secs(30)))
    };
    while b.n_waiting() == 0 {
        std::thread::yield_now();
    }
    let mine = b.wait(Duration::from_secs(30));
    assert_eq!(
        mine,
        Err(BarrierError::ActionFailed {
            message: "calibration lost".into()
        })
    );
    assert_eq!(other.join().unwrap(), Err(BarrierError::Broken));
    assert!(b.is_broken());
    assert_eq!(b.n_waiting(), 0);
}

#[cfg(not(miri))]
#[test]
fn a_panicking_action_breaks_the_barrier_and_the_panic_reaches_the_leader() {
    let b = Barrier::new_local(2)
        .with_action(|| -> Result<(), std::io::Error> { panic!("action panicked") });
    let other = {
        let b = b.clone();
        std::thread::spawn(move || b.wait(Duration::from_secs(30)))
    };
    while b.n_waiting() == 0 {
        std::thread::yield_now();
    }
    let b2 = b.clone();
    let leader = std::thread::spawn(move || b2.wait(Duration::from_secs(30)));
    assert!(leader.join().is_err(), "the panic propagates in the leader");
    assert_eq!(other.join().unwrap(), Err(BarrierError::Broken));
    assert!(b.is_broken());
}

#[cfg(not(miri))]
#[test]
fn a_deadline_that_passes_while_the_action_runs_does_not_break_the_barrier() {
    let b = Barrier::new_local(2).with_action(|| {
        std::thread::sleep(Duration::from_millis(150));
        Ok::<(), std::io::Error>(())
    });
    let waiter = {
        let b = b.clone();
        std::thread::spawn(move || b.wait(Duration::from_millis(50)))
    };
    while b.n_waiting() == 0 {
        std::thread::yield_now();
    }
    let mine = b.wait(Duration::from_secs(30)).unwrap();
    assert!(mine.is_leader(2));
    assert_eq!(waiter.join().unwrap().map(|w| w.index), Ok(0));
    assert!(!b.is_broken());
}

#[test]
fn parties_n_waiting_and_broken_are_readable_at_any_time() {
    let b = Barrier::new_local(3);
    assert_eq!((b.parties(), b.n_waiting(), b.is_broken()), (3, 0, false));
    b.abort();
    assert_eq!((b.parties(), b.n_waiting(), b.is_broken()), (3, 0, true));
    b.reset();
    assert!(!b.is_broken());
}

#[cfg(not(miri))]
#[test]
fn an_interrupted_wait_returns_within_100ms_and_breaks_the_barrier() {
    use std::sync::atomic::{AtomicBool, Ordering as O};
    let b = Barrier::new_local(3);
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let b = b.clone();
        std::thread::spawn(move || b.wait(Duration::from_secs(30)))
    };
    let interrupted = {
        let (b, stop) = (b.clone(), stop.clone());
        std::thread::spawn(move || {
            let check = || stop.load(O::Relaxed);
            let r = b.wait_interruptible(Timeout::Forever, &check);
            (r, std::time::Instant::now())
        })
    };
    while b.n_waiting() < 2 {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(80));
    let asked = std::time::Instant::now();
    stop.store(true, O::Relaxed);
    let (r, at) = interrupted.join().unwrap();
    assert_eq!(r, Err(BarrierError::Interrupted));
    assert!(at.duration_since(asked) < Duration::from_millis(100));
    assert_eq!(other.join().unwrap(), Err(BarrierError::Broken));
}

/// A party's slot naming a thread that has exited, at arrival index 0: the party that
/// arrives next watches it and breaks the generation within a check interval or two.
#[cfg(not(miri))]
#[test]
fn a_dead_party_is_found_by_its_watcher_and_breaks_the_barrier_at_once() {
    let b = Barrier::new_local(4);
    let dead = std::thread::spawn(|| current_thread().owner_record())
        .join()
        .unwrap();
    // As a party that claimed slot 0, tagged itself and arrived, then died.
    b.slots[0].record.store(dead.raw(), Ordering::Relaxed);
    b.slots[0].tag.store(tag(0, 0), Ordering::Relaxed);
    b.state.state.store(1, Ordering::Release);
    let other = {
        let b = b.clone();
        std::thread::spawn(move || b.wait(Duration::from_secs(30)))
    };
    let t0 = std::time::Instant::now();
    while b.n_waiting() < 2 {
        std::thread::yield_now();
    }
    // Our wait would never complete (one party is dead, one never comes); the watcher
    // breaks it.
    let mine = b.wait(Duration::from_secs(30));
    let took = t0.elapsed();
    let theirs = other.join().unwrap();
    assert!(
        [&mine, &theirs]
            .iter()
            .any(|r| matches!(r, Err(BarrierError::PartyDied { tid }) if *tid == dead.id())),
        "{mine:?} {theirs:?}"
    );
    assert!(took < Duration::from_millis(100), "took {took:?}");
    assert!(b.is_broken());
}

#[cfg(not(miri))]
#[test]
fn a_dead_partys_leftover_slot_is_reclaimed_once_its_generation_is_over() {
    let b = Barrier::new_local(1);
    let dead = std::thread::spawn(|| current_thread().owner_record())
        .join()
        .unwrap();
    for slot in b.slots.iter() {
        slot.record.store(dead.raw(), Ordering::Relaxed);
        slot.tag.store(tag(7, 0), Ordering::Relaxed);
    }
    let with_action = b.clone().with_action(|| Ok::<(), std::io::Error>(()));
    assert_eq!(
        with_action.wait(Duration::from_secs(5)).map(|w| w.index),
        Ok(0)
    );
}
