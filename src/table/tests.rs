//! Heap-memory tests of the table protocol (run under Miri too).

use super::*;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::Arc;

fn table(n: usize) -> Vec<EntryState> {
    (0..n).map(|_| EntryState::new()).collect()
}

fn name(s: &str) -> ObjectName<'_> {
    ObjectName::new(s).unwrap()
}

fn made(offset: u64) -> Result<Created, ()> {
    Ok(Created {
        offset,
        size: 64,
        param: 0,
    })
}

fn soon() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

#[test]
fn names_are_validated() {
    assert_eq!(ObjectName::new(""), Err("is empty"));
    assert_eq!(
        ObjectName::new(&"x".repeat(64)),
        Err("is longer than 63 bytes")
    );
    assert_eq!(ObjectName::new("a\nb"), Err("contains a control character"));
    assert!(
        ObjectName::new(&"é".repeat(31)).is_ok(),
        "62 bytes of UTF-8"
    );
}

#[test]
fn find_or_create_creates_once_then_finds() {
    let t = table(8);
    let (a, created) =
        find_or_create(&t, &name("cam"), ObjectKind::Event, soon(), || made(640)).unwrap();
    assert!(created);
    assert_eq!((a.kind, a.offset), (ObjectKind::Event, 640));
    let (b, created) = find_or_create(
        &t,
        &name("cam"),
        ObjectKind::Event,
        soon(),
        || -> Result<Created, ()> { panic!("created twice") },
    )
    .unwrap();
    assert!(!created);
    assert_eq!(a, b);
    assert_eq!(lookup(&t, &name("cam")).unwrap(), Some(a));
    assert_eq!(lookup(&t, &name("dm")).unwrap(), None);
}

#[test]
fn a_full_table_says_so_with_its_capacity() {
    let t = table(4);
    for i in 0..4 {
        find_or_create(
            &t,
            &name(&format!("n{i}")),
            ObjectKind::Mutex,
            soon(),
            || made(i),
        )
        .unwrap();
    }
    assert!(matches!(
        find_or_create(&t, &name("one-more"), ObjectKind::Mutex, soon(), || made(9)),
        Err(TableError::Full { capacity: 4 })
    ));
    assert_eq!(list(&t).len(), 4);
    for i in 0..4 {
        assert!(lookup(&t, &name(&format!("n{i}"))).unwrap().is_some());
    }
}

#[test]
fn a_failed_create_releases_the_entry() {
    let t = table(2);
    let r = find_or_create(&t, &name("x"), ObjectKind::Mutex, soon(), || {
        Err::<Created, _>("no space")
    });
    assert!(matches!(r, Err(TableError::Create("no space"))));
    assert!(find_or_create(&t, &name("x"), ObjectKind::Mutex, soon(), || made(1)).is_ok());
}

#[test]
fn an_entry_claimed_by_a_dead_creator_is_reclaimed() {
    let t = table(2);
    let n = name("half-made");
    // A creator with an impossible tid (dead) claimed the slot this name probes first.
    let slot = probe(2, &n).next().unwrap();
    t[slot]
        .state
        .store(TABLE_CLAIMED | 0x3FFF_FFFE, Ordering::Relaxed);
    t[slot]
        .claimer
        .store(crate::Record::new(0x3FFF_FFFE, 9).raw(), Ordering::Relaxed);
    let (info, created) = find_or_create(&t, &n, ObjectKind::Event, soon(), || made(128)).unwrap();
    assert!(created);
    assert_eq!(
        info.index as usize, slot,
        "the dead claim was taken over, not skipped"
    );
}

#[test]
fn a_live_claimer_that_never_finishes_is_busy_at_the_deadline() {
    let t = table(2);
    let n = name("stuck");
    let slot = probe(2, &n).next().unwrap();
    let me = current_thread();
    // Claimed by a live thread (this one, seen from another): never finishes.
    let t = Arc::new(t);
    t[slot]
        .state
        .store(TABLE_CLAIMED | me.tid, Ordering::Relaxed);
    t[slot]
        .claimer
        .store(me.owner_record().raw(), Ordering::Relaxed);
    let t2 = Arc::clone(&t);
    let r = std::thread::spawn(move || {
        find_or_create(
            &t2,
            &name("stuck"),
            ObjectKind::Event,
            Deadline::after(Duration::from_millis(30)),
            || made(1),
        )
        .map(|_| ())
    })
    .join()
    .unwrap();
    assert!(matches!(r, Err(TableError::Busy { tid, .. }) if tid == me.tid));
    assert_eq!(lookup(&t, &n).unwrap(), None, "lookup does not wait");
}

#[test]
fn corrupt_entries_are_errors() {
    let t = table(2);
    let n = name("x");
    let slot = probe(2, &n).next().unwrap();
    t[slot].state.store(0x1234, Ordering::Relaxed);
    assert!(matches!(
        find_or_create(&t, &n, ObjectKind::Mutex, soon(), || made(1)),
        Err(TableError::Corrupt {
            what: "entry state",
            ..
        })
    ));
    t[slot].state.store(TABLE_READY, Ordering::Relaxed);
    t[slot].kind.store(99, Ordering::Relaxed);
    assert!(list(&t)
        .iter()
        .any(|r| matches!(r, Err(TableError::Corrupt { what: "kind", .. }))));
}

#[test]
fn threads_racing_on_the_same_names_create_each_once() {
    let names = if cfg!(miri) { 4 } else { 200 };
    let t = Arc::new(table(256));
    let creations = Arc::new(StdAtomicU64::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (t, creations) = (Arc::clone(&t), Arc::clone(&creations));
            std::thread::spawn(move || {
                (0..names)
                    .map(|i| {
                        let (info, _) = find_or_create(
                            &t,
                            &name(&format!("obj-{i}")),
                            ObjectKind::Event,
                            soon(),
                            || {
                                creations.fetch_add(1, Ordering::Relaxed);
                                made(1000 + i)
                            },
                        )
                        .unwrap();
                        info.offset
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let seen: Vec<Vec<u64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(creations.load(Ordering::Relaxed), names);
    assert!(
        seen.iter().all(|s| *s == seen[0]),
        "every thread sees the same objects"
    );
}
