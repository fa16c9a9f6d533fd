//! Single-process tests of named objects, shared values and dictionaries on real segments.

use crate::primitives::Acquired;
use crate::primitives::Held;
use crate::segment::{CreateOptions, ObjectKind, Segment, SegmentError, SegmentObjects};
use crate::shared::{BytesSpec, DictError, SharedBytes, SharedDict, SharedError};
use crate::{NoInterrupt, Timeout};
use std::sync::atomic::{AtomicU32, Ordering};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

struct Temp(String, Segment);

impl Temp {
    fn new(tag: &str, table: u32) -> Temp {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "shmkit-named-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let seg =
            Segment::create(&name, &CreateOptions::new(4 << 20).table_capacity(table)).unwrap();
        Temp(name, seg)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Pose {
    x: f64,
    y: f64,
    steps: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Other {
    a: u64,
}

#[test]
fn named_objects_are_found_by_every_handle_and_listed() {
    let t = Temp::new("names", 64);
    let other = Segment::open(&t.0).unwrap();
    let e1 = t.1.event("go").unwrap();
    let e2 = other.event("go").unwrap();
    assert_eq!(e1.offset(), e2.offset());
    e1.set();
    assert!(e2.is_set());
    let m = other.mutex("lock").unwrap();
    assert_eq!(t.1.mutex("lock").unwrap().offset(), m.offset());
    t.1.barrier("meet", 3).unwrap();
    let mut names: Vec<(String, ObjectKind)> = other
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.entry.kind))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        names,
        [
            ("go".into(), ObjectKind::Event),
            ("lock".into(), ObjectKind::Mutex),
            ("meet".into(), ObjectKind::Barrier)
        ]
    );
    let info = other.lookup("meet").unwrap().unwrap();
    assert_eq!((info.param, info.creator_pid), (3, std::process::id()));
    assert_eq!(other.lookup("absent").unwrap(), None);
}

#[test]
fn a_name_of_another_kind_or_parameters_is_a_typed_error() {
    let t = Temp::new("kinds", 64);
    t.1.barrier("b", 3).unwrap();
    match t.1.event("b") {
        Err(SegmentError::KindMismatch {
            existing: "barrier",
            requested: "event",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match t.1.barrier("b", 4) {
        Err(SegmentError::ParamMismatch { detail, .. }) => {
            assert!(detail.contains("3 parties"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    t.1.shared(
        "pose",
        Pose {
            x: 0.0,
            y: 0.0,
            steps: 0,
        },
    )
    .unwrap();
    match t.1.shared("pose", Other { a: 1 }) {
        Err(SegmentError::ParamMismatch { detail, .. }) => {
            assert!(
                detail.contains("Pose") && detail.contains("Other"),
                "names both types: {detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        t.1.mutex(""),
        Err(SegmentError::InvalidObjectName { .. })
    ));
    assert!(matches!(
        t.1.mutex(&"n".repeat(64)),
        Err(SegmentError::InvalidObjectName { .. })
    ));
}

#[test]
fn a_full_table_is_an_error_with_its_capacity() {
    let t = Temp::new("full", 8);
    for i in 0..8 {
        t.1.event(&format!("e{i}")).unwrap();
    }
    assert!(matches!(
        t.1.event("one-more"),
        Err(SegmentError::TableFull { capacity: 8 })
    ));
    assert!(t.1.event("e3").is_ok(), "existing names are still found");
}

#[test]
fn shared_values_lock_read_and_update() {
    let t = Temp::new("shared", 64);
    let a =
        t.1.shared(
            "pose",
            Pose {
                x: 1.0,
                y: 2.0,
                steps: 0,
            },
        )
        .unwrap();
    let b = Segment::open(&t.0)
        .unwrap()
        .shared(
            "pose",
            Pose {
                x: 9.0,
                y: 9.0,
                steps: 9,
            },
        )
        .unwrap();
    assert_eq!(
        b.read().unwrap(),
        Pose {
            x: 1.0,
            y: 2.0,
            steps: 0
        },
        "the creator's init wins"
    );
    b.update(|p| p.steps += 5).unwrap();
    {
        let mut g = a.lock().unwrap().recover_with(|_| {});
        assert_eq!(g.steps, 5);
        g.x = 3.0;
        assert!(matches!(
            a.lock().map(|_| ()),
            Err(SharedError::AlreadyHeld)
        ));
        assert!(matches!(b.read(), Err(SharedError::AlreadyHeld)));
    }
    assert_eq!(a.read().unwrap().x, 3.0);
}

#[test]
fn shared_values_locked_together_through_lock_all() {
    let t = Temp::new("lockall", 64);
    let a = t.1.shared("a", 10u64).unwrap();
    let b = t.1.shared("b", 20u64).unwrap();
    let mut held =
        crate::lock_all(&[b.mutex(), a.mutex()], std::time::Duration::from_secs(1)).unwrap();
    let mut ga = held.pop().unwrap().recover_with(|_| {});
    let gb = held.pop().unwrap().recover_with(|_| {});
    *a.get_mut(&mut ga).unwrap() -= 3;
    assert_eq!(*b.get(&gb).unwrap(), 20);
    assert!(matches!(b.get(&ga), Err(SharedError::WrongGuard)));
    drop((ga, gb));
    assert_eq!(a.read().unwrap(), 7);
}

#[test]
fn a_dead_holder_of_a_shared_value_surfaces_as_owner_died() {
    let t = Temp::new("shareddied", 64);
    let v = t.1.shared("v", 1u64).unwrap();
    v.mutex().abandon_to_a_dead_owner();
    assert!(matches!(v.read(), Err(SharedError::OwnerDied { .. })));
    match v.lock().unwrap() {
        Acquired::OwnerDied(mut g) => {
            *g = 2;
            drop(g.make_consistent());
        }
        Acquired::Locked(_) => panic!("death not passed on"),
    }
    assert_eq!(v.read().unwrap(), 2);
}

#[test]
fn dict_insert_get_update_remove_and_snapshots() {
    let t = Temp::new("dict", 64);
    let d = t.1.dict("cfg", 100).unwrap();
    assert!(d.is_empty().unwrap());
    d.insert("gain", &0.5f64).unwrap();
    d.insert("name", &"woofer".to_string()).unwrap();
    assert_eq!(d.get::<f64>("gain").unwrap(), Some(0.5));
    d.update::<f64>("gain", |g| g.map(|g| g * 2.0)).unwrap();
    assert_eq!(d.get::<f64>("gain").unwrap(), Some(1.0));
    let other: SharedDict = Segment::open(&t.0).unwrap().open("cfg").unwrap();
    assert_eq!(other.spec(), d.spec(), "the opener reads the capacity back");
    assert_eq!(
        other.get::<String>("name").unwrap().as_deref(),
        Some("woofer")
    );
    let mut keys = other.keys().unwrap();
    keys.sort();
    assert_eq!(keys, ["gain", "name"]);
    assert!(
        matches!(other.get::<[u64; 8]>("name"), Err(DictError::Decode { ref key, .. }) if key == "name"),
        "a value of another type is a decode error naming the key"
    );
    assert_eq!(
        d.remove("gain").unwrap(),
        Some(postcard::to_allocvec(&1.0f64).unwrap())
    );
    assert_eq!(d.get::<f64>("gain").unwrap(), None);
    assert_eq!(d.len().unwrap(), 1);
    assert!(matches!(d.get_bytes(""), Err(DictError::BadKey { len: 0 })));
}

#[test]
fn dict_space_is_reused_after_removal_and_limits_are_typed_errors() {
    let t = Temp::new("dictspace", 64);
    let d =
        t.1.open_or_create::<crate::SharedDict>(
            "small",
            &crate::shared::DictSpec {
                max_entries: 4,
                data_bytes: 256,
            },
        )
        .unwrap();
    for round in 0..50u32 {
        for k in 0..4 {
            d.insert_bytes(&format!("k{k}"), &round.to_le_bytes().repeat(4))
                .unwrap();
        }
    }
    assert!(matches!(
        d.insert_bytes("k4", b"x"),
        Err(DictError::TooManyKeys { max: 4 })
    ));
    d.remove("k0").unwrap();
    assert!(matches!(
        d.insert_bytes("k0", &[0u8; 300]),
        Err(DictError::OutOfSpace { .. })
    ));
    d.insert_bytes("k0", b"fits").unwrap();
    assert_eq!(d.get_bytes("k0").unwrap().as_deref(), Some(&b"fits"[..]));
    assert_eq!(
        d.get_bytes("k3").unwrap(),
        Some(49u32.to_le_bytes().repeat(4))
    );
}

#[test]
fn a_dead_dict_holder_surfaces_once_and_the_dict_stays_readable() {
    let t = Temp::new("dictdied", 64);
    let d = t.1.dict("d", 16).unwrap();
    for i in 0..10u64 {
        d.insert(&format!("k{i}"), &i).unwrap();
    }
    d.mutex().abandon_to_a_dead_owner();
    assert!(matches!(
        d.get::<u64>("k1"),
        Err(DictError::OwnerDied { lost: 0, .. })
    ));
    let items = d.items::<u64>().unwrap();
    assert_eq!(items.len(), 10);
    assert_eq!(d.get::<u64>("k7").unwrap(), Some(7));
}

#[test]
fn locking_a_dict_a_holder_died_in_repairs_it_and_reports_once() {
    let t = Temp::new("dictlock", 64);
    let d = t.1.dict("d", 16).unwrap();
    d.insert("a", &1u64).unwrap();
    d.mutex().abandon_to_a_dead_owner();
    assert!(matches!(
        d.lock().map(|_| ()),
        Err(DictError::OwnerDied {
            previous: Some(_),
            lost: 0
        })
    ));
    let g = d.lock().unwrap();
    d.insert("b", &2u64).unwrap();
    drop(g);
    assert_eq!(d.get::<u64>("a").unwrap(), Some(1));
    assert_eq!(d.get::<u64>("b").unwrap(), Some(2));
}

#[test]
fn a_corrupt_dict_region_is_a_typed_error() {
    let t = Temp::new("dictcorrupt", 64);
    let d = t.1.dict("d", 16).unwrap();
    d.insert("a", &1u64).unwrap();
    // Point every index word at a record offset past `used`.
    for slot in 0..32 {
        let w = d.index(0, slot);
        if w.load(Ordering::Relaxed) != 0 {
            w.store(
                (w.load(Ordering::Relaxed) & !0xFFFF_FFFF) | 4000,
                Ordering::Relaxed,
            );
        }
    }
    assert!(matches!(d.get::<u64>("a"), Err(DictError::Corrupt { .. })));
    d.header().slots.store(3, Ordering::Relaxed);
    assert!(matches!(
        d.keys(),
        Err(DictError::Corrupt { what: "header", .. })
    ));
}

#[test]
fn a_panic_inside_update_marks_the_value_inconsistent() {
    let t = Temp::new("panic", 64);
    let v = t.1.shared("v", 1u64).unwrap();
    let v2 = v.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        v2.update(|x| {
            *x = 99;
            panic!("half-way");
        })
    }));
    assert!(r.is_err());
    match v.read() {
        Err(SharedError::OwnerDied { previous: Some(p) }) => assert_eq!(p.pid, std::process::id()),
        other => panic!("{other:?}"),
    }
    assert_eq!(*v.lock().unwrap().recover_with(|x| **x = 1), 1);
}

#[test]
fn an_owner_died_guard_reaches_the_half_updated_value_for_repair() {
    let t = Temp::new("repair", 64);
    let v = t.1.shared("v", 1u64).unwrap();
    let v2 = v.clone();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        v2.update(|x| {
            *x = 99;
            panic!("half-way");
        })
    }));
    match v.lock().unwrap() {
        Acquired::OwnerDied(mut died) => {
            assert_eq!(*died, 99, "the guard shows what the dead holder left");
            *died = 7;
            assert_eq!(*died.make_consistent(), 7);
        }
        Acquired::Locked(_) => panic!("the panic was not passed on"),
    }
    assert_eq!(v.read().unwrap(), 7);
}

fn bytes_spec(name: &str, init: &[u8]) -> BytesSpec {
    BytesSpec::new(name, 8, init.to_vec()).unwrap()
}

#[test]
fn run_time_typed_values_read_write_and_reopen_as_they_are() {
    let t = Temp::new("bytes", 64);
    let v = crate::SegmentObjects::open_or_create::<crate::SharedBytes>(
        &t.1,
        "gain",
        &bytes_spec("f64[2]", &[1; 16]),
    )
    .unwrap();
    assert_eq!((v.len(), v.align(), v.type_name()), (16, 8, "f64[2]"));
    let mut out = [0u8; 16];
    v.read(&mut out, Timeout::Forever, &NoInterrupt).unwrap();
    assert_eq!(out, [1; 16]);
    v.write(&[7; 16], Timeout::Forever, &NoInterrupt).unwrap();
    // Opened by name alone, the value reports the type its creator gave.
    let again: SharedBytes = t.1.open("gain").unwrap();
    assert_eq!((again.len(), again.type_name()), (16, "f64[2]"));
    again
        .read(&mut out, Timeout::Forever, &NoInterrupt)
        .unwrap();
    assert_eq!(out, [7; 16]);
    // The creator's initial bytes do not overwrite an existing value.
    let third = crate::SegmentObjects::open_or_create::<crate::SharedBytes>(
        &t.1,
        "gain",
        &bytes_spec("f64[2]", &[0; 16]),
    )
    .unwrap();
    third
        .read(&mut out, Timeout::Forever, &NoInterrupt)
        .unwrap();
    assert_eq!(out, [7; 16]);
}

#[test]
fn run_time_typed_values_refuse_another_type_length_or_alignment() {
    let t = Temp::new("bytestype", 64);
    let v = crate::SegmentObjects::open_or_create::<crate::SharedBytes>(
        &t.1,
        "v",
        &bytes_spec("f64[2]", &[0; 16]),
    )
    .unwrap();
    match crate::SegmentObjects::open_or_create::<crate::SharedBytes>(
        &t.1,
        "v",
        &bytes_spec("i64[2]", &[0; 16]),
    ) {
        Err(SegmentError::ParamMismatch { detail, .. }) => {
            assert!(
                detail.contains("f64[2]") && detail.contains("i64[2]"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A Rust type of the same size is another type too.
    assert!(matches!(
        t.1.open::<crate::Shared<[u64; 2]>>("v"),
        Err(SegmentError::ParamMismatch { .. })
    ));
    assert!(matches!(
        v.write(&[0; 8], Timeout::Forever, &NoInterrupt),
        Err(SharedError::WrongLength {
            expected: 16,
            got: 8
        })
    ));
    assert!(matches!(
        BytesSpec::new("x", 3, vec![]),
        Err(SegmentError::InvalidOption(_))
    ));
}

#[test]
fn a_run_time_typed_value_is_read_and_written_inside_its_holders_critical_section() {
    let t = Temp::new("byteshold", 64);
    let v = crate::SegmentObjects::open_or_create::<crate::SharedBytes>(
        &t.1,
        "v",
        &bytes_spec("u8[8]", &[0; 8]),
    )
    .unwrap();
    let held = v.mutex().acquire(Timeout::Forever, &NoInterrupt).unwrap();
    assert!(matches!(held, Held::Once));
    // Holding the mutex, reads and writes do not wait for it again.
    v.write(&[3; 8], Timeout::ZERO, &NoInterrupt).unwrap();
    let other = v.clone();
    let blocked = std::thread::spawn(move || {
        let mut out = [0u8; 8];
        other.read(&mut out, Timeout::ZERO, &NoInterrupt)
    })
    .join()
    .unwrap();
    assert!(matches!(blocked, Err(SharedError::Lock(_))), "{blocked:?}");
    v.mutex().release().unwrap();
    let mut out = [0u8; 8];
    v.read(&mut out, Timeout::ZERO, &NoInterrupt).unwrap();
    assert_eq!(out, [3; 8]);
}

#[test]
fn a_dead_holder_of_a_run_time_typed_value_is_reported_until_repaired() {
    let t = Temp::new("bytesdied", 64);
    let v = crate::SegmentObjects::open_or_create::<crate::SharedBytes>(
        &t.1,
        "v",
        &bytes_spec("u8[8]", &[1; 8]),
    )
    .unwrap();
    v.mutex().abandon_to_a_dead_owner();
    let mut out = [0u8; 8];
    for _ in 0..2 {
        assert!(matches!(
            v.read(&mut out, Timeout::Forever, &NoInterrupt),
            Err(SharedError::OwnerDied { .. })
        ));
    }
    // The repair: take the hold, fix the value inside it, declare it consistent.
    assert!(matches!(
        v.mutex().acquire(Timeout::Forever, &NoInterrupt),
        Ok(Held::OwnerDied { .. })
    ));
    v.write(&[2; 8], Timeout::Forever, &NoInterrupt).unwrap();
    v.mutex().make_consistent().unwrap();
    v.mutex().release().unwrap();
    v.read(&mut out, Timeout::Forever, &NoInterrupt).unwrap();
    assert_eq!(out, [2; 8]);
}
