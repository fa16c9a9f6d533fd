//! Heap-memory tests of the mutex (run under Miri too).

use super::*;
use crate::sys::identity::current_thread;
use crate::sys::identity::Liveness;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::Arc;

fn plain_lock(m: &Mutex) -> MutexGuard<'_> {
    match m.lock(crate::DEFAULT_LOCK_TIMEOUT).unwrap() {
        Acquired::Locked(g) => g,
        Acquired::OwnerDied(_) => panic!("unexpected owner died"),
    }
}

#[test]
fn lock_and_unlock_leave_the_word_free() {
    let m = Mutex::new_local();
    {
        let _g = plain_lock(&m);
        assert_eq!(m.owner().map(|o| o.tid), Some(current_thread().tid));
    }
    assert_eq!(m.owner(), None);
    assert_eq!(m.state.raw_word(), 0);
}

#[test]
fn the_same_thread_may_lock_again_and_must_unlock_as_often() {
    let m = Mutex::new_local();
    let a = plain_lock(&m);
    let b = plain_lock(&m);
    let c = m.try_lock().unwrap();
    assert_eq!(m.state.meta.load(Ordering::Relaxed) & MUTEX_DEPTH_MASK, 2);
    drop(c);
    drop(a);
    assert!(m.owner().is_some(), "still held once");
    drop(b);
    assert!(m.owner().is_none());
}

#[test]
fn try_lock_from_another_thread_reports_the_holder() {
    let m = Arc::new(Mutex::new_local());
    let _g = plain_lock(&m);
    let me = current_thread();
    let m2 = Arc::clone(&m);
    let err = std::thread::spawn(move || m2.try_lock().map(|_| ()).unwrap_err())
        .join()
        .unwrap();
    match err {
        LockError::WouldBlock { owner } => {
            assert_eq!(owner.tid, me.tid);
            assert_eq!(owner.pid, me.pid);
            assert_eq!(owner.liveness, Liveness::Alive);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lock_that_times_out_names_the_live_owner() {
    let m = Arc::new(Mutex::new_local());
    let _g = plain_lock(&m);
    let m2 = Arc::clone(&m);
    let err =
        std::thread::spawn(move || m2.lock(Duration::from_millis(30)).map(|_| ()).unwrap_err())
            .join()
            .unwrap();
    assert!(
        matches!(
            err,
            LockError::Timeout {
                owner: OwnerInfo {
                    liveness: Liveness::Alive,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("alive"));
}

#[test]
fn threads_incrementing_under_the_lock_lose_no_update() {
    let threads = 4;
    let per = if cfg!(miri) { 20 } else { 20_000 };
    let m = Arc::new(Mutex::new_local());
    let counter = Arc::new(StdAtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (m, counter) = (Arc::clone(&m), Arc::clone(&counter));
            std::thread::spawn(move || {
                for _ in 0..per {
                    let _g = m
                        .lock(crate::DEFAULT_LOCK_TIMEOUT)
                        .unwrap()
                        .recover_with(|_| panic!("nobody died"));
                    // A non-atomic read-modify-write: only mutual exclusion keeps it exact.
                    let v = counter.load(Ordering::Relaxed);
                    counter.store(v + 1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(counter.load(Ordering::Relaxed), threads * per);
}

fn abandon_to_a_dead_tid(m: &Mutex) {
    m.abandon_to_a_dead_owner();
}

#[test]
fn a_dead_owner_is_reported_and_make_consistent_restores_the_mutex() {
    let m = Mutex::new_local();
    abandon_to_a_dead_tid(&m);
    match m.lock(Duration::from_secs(5)).unwrap() {
        Acquired::OwnerDied(g) => {
            let prev = g.previous_owner().unwrap();
            assert_eq!(
                (prev.tid, prev.pid, prev.liveness),
                (0x3FFF_FFFE, 4242, Liveness::Dead)
            );
            drop(g.make_consistent());
        }
        Acquired::Locked(_) => panic!("owner death not reported"),
    }
    assert!(matches!(
        m.lock(crate::DEFAULT_LOCK_TIMEOUT).unwrap(),
        Acquired::Locked(_)
    ));
}

#[test]
fn try_lock_also_recovers_a_dead_owner() {
    let m = Mutex::new_local();
    abandon_to_a_dead_tid(&m);
    assert!(m.try_lock().unwrap().owner_died());
}

#[test]
fn releasing_without_make_consistent_makes_the_mutex_not_recoverable() {
    let m = Mutex::new_local();
    abandon_to_a_dead_tid(&m);
    let outcome = m.lock(crate::DEFAULT_LOCK_TIMEOUT).unwrap();
    assert!(outcome.owner_died());
    drop(outcome);
    assert_eq!(
        m.lock(crate::DEFAULT_LOCK_TIMEOUT).map(|_| ()),
        Err(LockError::NotRecoverable)
    );
    assert_eq!(m.try_lock().map(|_| ()), Err(LockError::NotRecoverable));
    assert_eq!(
        m.owner(),
        None,
        "a failed lock leaves it free for the next to fail too"
    );
}

#[test]
fn a_survivor_that_dies_before_repairing_passes_owner_died_on() {
    let m = Mutex::new_local();
    abandon_to_a_dead_tid(&m);
    let outcome = m.lock(crate::DEFAULT_LOCK_TIMEOUT).unwrap();
    let Acquired::OwnerDied(g) = outcome else {
        panic!("expected owner died")
    };
    g.release_inconsistent();
    match m.lock(crate::DEFAULT_LOCK_TIMEOUT).unwrap() {
        Acquired::OwnerDied(g) => {
            // The death on record is still the original one.
            assert_eq!(g.previous_owner().map(|o| o.pid), Some(4242));
            drop(g.make_consistent());
        }
        Acquired::Locked(_) => panic!("inconsistency lost"),
    };
}

#[test]
fn a_recycled_tid_with_a_stale_record_is_dead_even_when_it_is_ours() {
    let m = Mutex::new_local();
    let me = current_thread();
    // A predecessor with our tid but another start time died holding the lock.
    m.state.word.store(me.tid, Ordering::Relaxed);
    m.state.owner.store(
        crate::sys::identity::Record::new(me.tid, me.token ^ 3).raw(),
        Ordering::Relaxed,
    );
    let outcome = m.lock(crate::DEFAULT_LOCK_TIMEOUT).unwrap();
    assert!(outcome.owner_died(), "must not be mistaken for reentrancy");
    drop(outcome.recover_with(|_| {}));
    assert_eq!(m.owner(), None);
}

#[test]
fn corrupt_consistency_bits_are_an_error_and_make_the_mutex_unrecoverable() {
    let m = Mutex::new_local();
    m.state
        .meta
        .store(3 << MUTEX_CONSISTENCY_SHIFT, Ordering::Relaxed);
    assert!(matches!(
        m.lock(crate::DEFAULT_LOCK_TIMEOUT).map(|_| ()),
        Err(LockError::Corrupt { .. })
    ));
}

#[test]
fn lock_all_takes_every_lock_in_a_consistent_order() {
    let a = Mutex::new_local();
    let b = Mutex::new_local();
    let held = lock_all(&[&b, &a], Duration::from_secs(1)).unwrap();
    assert_eq!(held.len(), 2);
    assert!(a.owner().is_some() && b.owner().is_some());
    drop(held);
    assert!(a.owner().is_none() && b.owner().is_none());
}

#[test]
fn lock_all_releases_what_it_took_when_one_lock_fails() {
    let a = Arc::new(Mutex::new_local());
    let b = Arc::new(Mutex::new_local());
    let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _g = b2.lock(crate::DEFAULT_LOCK_TIMEOUT).unwrap();
        tx.send(()).unwrap();
        done_rx.recv().unwrap();
    });
    rx.recv().unwrap();
    let err = lock_all(&[&a2, &b], Duration::from_millis(20))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, LockError::Timeout { .. }));
    assert!(a.owner().is_none(), "the lock already taken was released");
    done_tx.send(()).unwrap();
    holder.join().unwrap();
}

// ---- threading.RLock semantics, guard-free ----

#[test]
fn guard_free_acquire_and_release_count_levels_like_an_rlock() {
    let m = Mutex::new_local();
    assert_eq!(m.recursion_count(), 0);
    assert_eq!(m.acquire(Timeout::ZERO, &NoInterrupt), Ok(Held::Once));
    assert_eq!(
        m.acquire(Timeout::ZERO, &NoInterrupt),
        Ok(Held::Reentered { depth: 2 })
    );
    {
        let _guard = plain_lock(&m);
        assert_eq!(m.recursion_count(), 3, "a guard counts in the same depth");
    }
    assert_eq!(m.recursion_count(), 2);
    m.release().unwrap();
    assert!(m.held_by_current_thread());
    m.release().unwrap();
    assert!(!m.held_by_current_thread());
    assert_eq!(m.state.raw_word(), 0);
    assert_eq!(
        m.release(),
        Err(UnlockError::NotOwner { owner: None }),
        "releasing an un-acquired lock is an error, as RLock's RuntimeError"
    );
}

#[cfg(not(miri))]
#[test]
fn release_by_a_thread_that_does_not_hold_it_is_refused_and_names_the_owner() {
    let m = Arc::new(Mutex::new_local());
    assert_eq!(m.acquire(Timeout::ZERO, &NoInterrupt), Ok(Held::Once));
    let me = current_thread();
    let m2 = Arc::clone(&m);
    let (refused, count) = std::thread::spawn(move || (m2.release(), m2.recursion_count()))
        .join()
        .unwrap();
    match refused {
        Err(UnlockError::NotOwner { owner: Some(o) }) => {
            assert_eq!((o.pid, o.tid), (me.pid, me.tid));
            let text = UnlockError::NotOwner { owner: Some(o) }.to_string();
            assert!(text.contains(&format!("tid {}", me.tid)), "{text}");
        }
        other => panic!("expected NotOwner naming us, got {other:?}"),
    }
    assert_eq!(count, 0, "another thread's recursion count is 0");
    assert!(
        m.held_by_current_thread(),
        "the refused release changed nothing"
    );
    m.release().unwrap();
}

#[cfg(not(miri))]
#[test]
fn release_save_frees_every_level_and_acquire_restore_puts_them_back() {
    let m = Arc::new(Mutex::new_local());
    for _ in 0..3 {
        let _ = m.acquire(Timeout::ZERO, &NoInterrupt).unwrap();
    }
    let saved = m.release_save().unwrap();
    assert_eq!(saved.count(), 3);
    assert_eq!(m.state.raw_word(), 0, "fully released");
    // Another thread can take it in between, as a Condition's notifier does.
    let m2 = Arc::clone(&m);
    std::thread::spawn(move || {
        let _g = plain_lock(&m2);
    })
    .join()
    .unwrap();
    assert_eq!(
        m.acquire_restore(saved, Timeout::ZERO, &NoInterrupt),
        Ok(Held::Reentered { depth: 3 })
    );
    assert_eq!(m.recursion_count(), 3);
    for _ in 0..3 {
        m.release().unwrap();
    }
    assert_eq!(m.owner(), None);
    assert_eq!(m.release_save(), Err(UnlockError::NotOwner { owner: None }));
    assert_eq!(SavedHold::new(0), None);
}

#[test]
fn guard_free_owner_died_leaves_the_lock_held_until_made_consistent() {
    let m = Mutex::new_local();
    m.abandon_to_a_dead_owner();
    match m.acquire(Timeout::ZERO, &NoInterrupt) {
        Ok(Held::OwnerDied { previous: Some(p) }) => assert_eq!(p.pid, 4242),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(m.held_by_current_thread(), "held so it can be repaired");
    m.make_consistent().unwrap();
    m.release().unwrap();
    assert_eq!(m.acquire(Timeout::ZERO, &NoInterrupt), Ok(Held::Once));
    m.release().unwrap();
}

#[test]
fn guard_free_release_before_make_consistent_makes_the_mutex_not_recoverable() {
    let m = Mutex::new_local();
    m.abandon_to_a_dead_owner();
    assert!(matches!(
        m.acquire(Timeout::ZERO, &NoInterrupt),
        Ok(Held::OwnerDied { .. })
    ));
    m.release().unwrap();
    assert_eq!(
        m.acquire(Timeout::ZERO, &NoInterrupt),
        Err(LockError::NotRecoverable)
    );
}

#[test]
fn guard_free_release_inconsistent_hands_the_repair_to_the_next_locker() {
    let m = Mutex::new_local();
    m.abandon_to_a_dead_owner();
    let _ = m.acquire(Timeout::ZERO, &NoInterrupt).unwrap();
    m.release_inconsistent().unwrap();
    match m.acquire(Timeout::ZERO, &NoInterrupt) {
        Ok(Held::OwnerDied { previous: Some(p) }) => {
            assert_eq!(p.pid, 4242, "still the holder that died, not the releaser")
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    m.make_consistent().unwrap();
    m.release().unwrap();
}

#[test]
fn make_consistent_by_a_non_owner_is_refused() {
    let m = Mutex::new_local();
    assert_eq!(
        m.make_consistent(),
        Err(UnlockError::NotOwner { owner: None })
    );
}

#[cfg(not(miri))]
#[test]
fn a_zero_timeout_tries_once_and_reports_the_holder() {
    let m = Arc::new(Mutex::new_local());
    let _g = plain_lock(&m);
    let m2 = Arc::clone(&m);
    let got = std::thread::spawn(move || {
        let t0 = std::time::Instant::now();
        let r = m2.lock(Duration::ZERO).map(|_| ());
        let g = m2.acquire(Timeout::ZERO, &NoInterrupt);
        (r, g, t0.elapsed())
    })
    .join()
    .unwrap();
    assert!(
        matches!(got.0, Err(LockError::WouldBlock { .. })),
        "{:?}",
        got.0
    );
    assert!(
        matches!(got.1, Err(LockError::WouldBlock { .. })),
        "{:?}",
        got.1
    );
    assert!(
        got.2 < Duration::from_millis(50),
        "did not sleep: {:?}",
        got.2
    );
}

#[cfg(not(miri))]
#[test]
fn an_interrupted_lock_returns_within_100ms_of_the_check_saying_stop() {
    use std::sync::atomic::AtomicBool;
    let m = Arc::new(Mutex::new_local());
    let _g = plain_lock(&m);
    let stop = Arc::new(AtomicBool::new(false));
    let (m2, stop2) = (Arc::clone(&m), Arc::clone(&stop));
    let waiter = std::thread::spawn(move || {
        let check = || stop2.load(std::sync::atomic::Ordering::Relaxed);
        let r = m2.lock_interruptible(Timeout::Forever, &check).map(|_| ());
        (r, std::time::Instant::now())
    });
    std::thread::sleep(Duration::from_millis(120));
    let asked = std::time::Instant::now();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (r, returned) = waiter.join().unwrap();
    assert!(matches!(r, Err(LockError::Interrupted { .. })), "{r:?}");
    assert!(
        returned.duration_since(asked) < Duration::from_millis(100),
        "took {:?}",
        returned.duration_since(asked)
    );
    drop(_g);
    assert!(
        m.try_lock().is_ok(),
        "an interrupted waiter leaves nothing behind"
    );
}

#[cfg(not(miri))]
#[test]
fn the_uncontended_try_takes_a_free_or_own_mutex_and_leaves_a_held_one_alone() {
    let m = Arc::new(Mutex::new_local());
    assert_eq!(m.try_acquire_uncontended(), Some(Ok(Held::Once)));
    assert_eq!(
        m.try_acquire_uncontended(),
        Some(Ok(Held::Reentered { depth: 2 }))
    );
    let m2 = Arc::clone(&m);
    let other = std::thread::spawn(move || m2.try_acquire_uncontended())
        .join()
        .unwrap();
    assert_eq!(other, None, "held by another thread: nothing done");
    m.release().unwrap();
    m.release().unwrap();
    assert_eq!(m.owner(), None);
}

#[test]
fn the_binding_fast_paths_take_only_the_plain_case_and_change_nothing_otherwise() {
    let m = Mutex::new_local();
    assert!(m.try_acquire_free(), "free and consistent: held once");
    assert_eq!(m.recursion_count(), 1);
    assert!(
        !m.try_acquire_free(),
        "held (by us): the full path counts levels"
    );
    assert!(matches!(
        m.acquire(Timeout::ZERO, &NoInterrupt),
        Ok(Held::Reentered { depth: 2 })
    ));
    assert!(!m.try_release_fast(), "two levels: the full path");
    m.release().unwrap();
    assert!(m.try_release_fast(), "one level, nobody waiting");
    assert_eq!(m.owner(), None);
    assert!(
        !m.try_release_fast(),
        "not held: nothing changed, release says why"
    );
    assert!(matches!(
        m.release(),
        Err(UnlockError::NotOwner { owner: None })
    ));

    // Free but inconsistent (its holder died and a survivor passed the repair on): the fast
    // path gives the acquisition back, and the full path reports the death.
    abandon_to_a_dead_tid(&m);
    match m.acquire(Timeout::ZERO, &NoInterrupt) {
        Ok(Held::OwnerDied { .. }) => m.release_inconsistent().unwrap(),
        other => panic!("{other:?}"),
    }
    assert!(!m.try_acquire_free());
    assert_eq!(m.owner(), None, "the undone acquisition left it free");
    assert!(matches!(
        m.acquire(Timeout::ZERO, &NoInterrupt),
        Ok(Held::OwnerDied { .. })
    ));
    assert!(!m.try_release_fast(), "inconsistent: the full path decides");
    m.make_consistent().unwrap();
    m.release().unwrap();
    assert!(m.try_acquire_free());
    assert!(m.try_release_fast());
}

#[test]
fn a_fast_release_with_a_waiter_wakes_it() {
    let m = Arc::new(Mutex::new_local());
    assert!(m.try_acquire_free());
    let m2 = m.clone();
    let waiter = std::thread::spawn(move || {
        let held = m2.acquire(Timeout::After(Duration::from_secs(10)), &NoInterrupt);
        assert!(matches!(held, Ok(Held::Once)), "{held:?}");
        m2.release().unwrap();
    });
    // Let the waiter set its bit: then the fast release's word is no longer just our tid.
    std::thread::sleep(Duration::from_millis(50));
    m.release().unwrap();
    waiter.join().unwrap();
    assert_eq!(m.owner(), None);
}

#[test]
fn a_bare_guard_dropped_by_a_panic_leaves_the_mutex_consistent() {
    // Only a guard over data marks it inconsistent when its thread panics (a bare mutex
    // protects nothing the library can see): the next locker gets an ordinary lock.
    let m = Arc::new(Mutex::new_local());
    let m2 = m.clone();
    let r = std::thread::spawn(move || {
        let _g = plain_lock(&m2);
        panic!("inside a bare critical section");
    })
    .join();
    assert!(r.is_err());
    assert!(matches!(
        m.lock(Duration::from_secs(1)).unwrap(),
        Acquired::Locked(_)
    ));
}
