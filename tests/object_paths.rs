//! Every path from a segment to an object, for every kind, in one place: `open`, `create`,
//! `open_or_create`, `attach` and the short forms all reach the same object; a second process
//! opens each kind by name without repeating its parameters; `create` refuses a taken name;
//! `open_or_create` names both sides of a mismatch; and attach and the inspector agree on a
//! table of corrupt images.

mod common;

use common::{spawn, wait_exit, TempSegment};
use shmkit::inspect::{inspect_image, ObjectState};
use shmkit::rings::{CommandRing, CommandSpec, ElemType, FrameRing, FrameSpec, ReadMode};
use shmkit::shared::{DictSpec, TraceBuffer, TraceSpec};
use shmkit::{
    Barrier, BytesSpec, CreateOptions, Event, Histogram, Mutex, Segment, SegmentError,
    SegmentObject, SegmentObjects, Shared, SharedBytes, SharedDict,
};
use std::time::Duration;

fn frame_spec() -> FrameSpec {
    FrameSpec::new(4, ElemType::U16, &[48, 64])
}

fn command_spec() -> CommandSpec {
    CommandSpec {
        slots: 8,
        max_request: 100,
        max_reply: 200,
    }
}

/// Creates one object of every kind, with non-default parameters.
fn populate(seg: &Segment) {
    seg.mutex("m").unwrap();
    seg.event("e").unwrap();
    seg.barrier("b", 3).unwrap();
    seg.shared::<u64>("s", 42).unwrap();
    let d = seg
        .open_or_create::<SharedDict>(
            "d",
            &DictSpec {
                max_entries: 10,
                data_bytes: 4000,
            },
        )
        .unwrap();
    d.insert("k", &7u32).unwrap();
    let ring = seg.frame_ring("f", &frame_spec()).unwrap();
    let mut w = ring.writer().unwrap();
    let mut slot = w.try_claim().unwrap();
    slot.typed_mut::<u16>().unwrap()[5] = 99;
    slot.publish();
    seg.command_ring("c", &command_spec()).unwrap();
    let h = seg.histogram("h").unwrap();
    h.record(1500);
    h.record(2500);
    let t = seg.trace_buffer("t", &trace_spec()).unwrap();
    t.instant(t.name("tick").unwrap(), Some(7));
}

fn trace_spec() -> TraceSpec {
    TraceSpec {
        events: 64,
        names: 8,
    }
}

crate::child_roles!(|role, args| match role {
    // Opens every kind by name alone and checks what it reads back.
    "open_all" => {
        let seg = Segment::open(&args[0]).unwrap();
        let _: Mutex = seg.open("m").unwrap();
        let _: Event = seg.open("e").unwrap();
        let b: Barrier = seg.open("b").unwrap();
        assert_eq!(b.parties(), 3);
        let s: Shared<u64> = seg.open("s").unwrap();
        assert_eq!(s.read().unwrap(), 42);
        let d: SharedDict = seg.open("d").unwrap();
        assert_eq!(
            d.spec(),
            DictSpec {
                max_entries: 10,
                data_bytes: 4000
            }
        );
        assert_eq!(d.get::<u32>("k").unwrap(), Some(7));
        let f: FrameRing = seg.open("f").unwrap();
        assert_eq!(f.spec(), frame_spec());
        let mut r = f.reader(ReadMode::NewestOnly).unwrap();
        assert_eq!(r.latest().unwrap().unwrap().typed::<u16>().unwrap()[5], 99);
        let c: CommandRing = seg.open("c").unwrap();
        assert_eq!(c.spec(), command_spec());
        let t: TraceBuffer = seg.open("t").unwrap();
        let mut cursor = t.cursor_from_oldest();
        let mut events = Vec::new();
        t.read_rest(&mut cursor, &mut events);
        let tick = events.iter().find(|e| e.arg == Some(7)).unwrap();
        assert_eq!(t.name_at(tick.name).as_deref(), Some("tick"));
        let h: Histogram = seg.open("h").unwrap();
        assert_eq!(h.snapshot().count(), 2);
        assert_eq!(h.snapshot().max(), 2500);
        // By offset, through the same validation.
        let again: FrameRing = seg.attach(f.offset()).unwrap();
        assert_eq!(again.spec(), frame_spec());
        0
    }
    other => panic!("unknown role {other}"),
});

/// `create`, then every other path, must land on the object `create` made.
fn every_path_agrees<T: SegmentObject>(
    seg: &Segment,
    name: &str,
    params: &T::Params,
    offset: impl Fn(&T) -> u64,
    short: impl Fn(&Segment) -> Result<T, SegmentError>,
) {
    let created = offset(&seg.create::<T>(name, params).unwrap());
    let paths = [
        ("open", offset(&seg.open::<T>(name).unwrap())),
        (
            "open_or_create",
            offset(&seg.open_or_create::<T>(name, params).unwrap()),
        ),
        ("attach", offset(&seg.attach::<T>(created).unwrap())),
        ("short form", offset(&short(seg).unwrap())),
        ("lookup", seg.lookup(name).unwrap().unwrap().offset),
    ];
    for (path, at) in paths {
        assert_eq!(at, created, "{name}: {path} reached another object");
    }
}

#[test]
fn every_path_reaches_the_same_object_for_every_kind() {
    let name = TempSegment::new("paths");
    let seg = Segment::create(&name.0, &CreateOptions::new(4 << 20)).unwrap();
    let at = |o: Option<u64>| o.expect("segment objects have offsets");
    every_path_agrees::<Mutex>(&seg, "m", &(), |m| at(m.offset()), |s| s.mutex("m"));
    every_path_agrees::<Event>(&seg, "e", &(), |e| at(e.offset()), |s| s.event("e"));
    every_path_agrees::<Barrier>(&seg, "b", &3, |b| at(b.offset()), |s| s.barrier("b", 3));
    every_path_agrees::<Shared<u64>>(&seg, "s", &42, Shared::offset, |s| s.shared("s", 42u64));
    every_path_agrees::<SharedDict>(&seg, "d", &DictSpec::new(10), SharedDict::offset, |s| {
        s.dict("d", 10)
    });
    every_path_agrees::<FrameRing>(&seg, "f", &frame_spec(), FrameRing::offset, |s| {
        s.frame_ring("f", &frame_spec())
    });
    every_path_agrees::<CommandRing>(&seg, "c", &command_spec(), CommandRing::offset, |s| {
        s.command_ring("c", &command_spec())
    });
    every_path_agrees::<Histogram>(&seg, "h", &(), Histogram::offset, |s| s.histogram("h"));
    every_path_agrees::<TraceBuffer>(&seg, "t", &trace_spec(), TraceBuffer::offset, |s| {
        s.trace_buffer("t", &trace_spec())
    });
    let spec = BytesSpec::new("f64[2]", 8, vec![0; 16]).unwrap();
    // A run-time typed value has no short form: its binding names it through the generic one.
    every_path_agrees::<SharedBytes>(&seg, "v", &spec, SharedBytes::offset, |s| {
        s.open_or_create("v", &spec)
    });
    // Raw memory is not an object: it has no name and no path above reaches it.
    let raw = seg.raw().alloc(64, 64).unwrap();
    assert!(seg.attach::<Mutex>(raw).is_err());
    seg.raw()
        .atomic_u64(raw + 8)
        .unwrap()
        .store(7, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn a_second_process_opens_every_kind_without_repeating_its_parameters() {
    let name = TempSegment::new("openall");
    let seg = Segment::create(&name.0, &CreateOptions::new(4 << 20)).unwrap();
    populate(&seg);
    let mut child = spawn("open_all", std::slice::from_ref(&name.0));
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(30)).code(),
        Some(0)
    );
}

#[test]
fn open_of_a_missing_name_or_another_kind_is_a_typed_error() {
    let name = TempSegment::new("openmissing");
    let seg = Segment::create(&name.0, &CreateOptions::new(4 << 20)).unwrap();
    populate(&seg);
    match seg.open::<FrameRing>("nope") {
        Err(SegmentError::ObjectNotFound { name, kind }) => {
            assert_eq!((name.as_str(), kind), ("nope", "frame ring"))
        }
        other => panic!("expected ObjectNotFound, got {other:?}"),
    }
    assert!(matches!(
        seg.open::<CommandRing>("f"),
        Err(SegmentError::KindMismatch { .. })
    ));
}

#[test]
fn create_refuses_a_taken_name_of_any_kind() {
    let name = TempSegment::new("createtaken");
    let seg = Segment::create(&name.0, &CreateOptions::new(4 << 20)).unwrap();
    populate(&seg);
    let taken = |r: Result<(), SegmentError>| {
        assert!(
            matches!(r, Err(SegmentError::ObjectExists { .. })),
            "expected ObjectExists, got {r:?}"
        )
    };
    taken(seg.create::<Mutex>("m", &()).map(drop));
    taken(seg.create::<Event>("e", &()).map(drop));
    taken(seg.create::<Barrier>("b", &3).map(drop));
    taken(seg.create::<Shared<u64>>("s", &1).map(drop));
    taken(seg.create::<SharedDict>("d", &DictSpec::new(10)).map(drop));
    taken(seg.create::<FrameRing>("f", &frame_spec()).map(drop));
    taken(seg.create::<CommandRing>("c", &command_spec()).map(drop));
    taken(seg.create::<Histogram>("h", &()).map(drop));
    taken(seg.create::<TraceBuffer>("t", &trace_spec()).map(drop));
    // A fresh name is created, once.
    seg.create::<Event>("fresh", &()).unwrap();
    taken(seg.create::<Event>("fresh", &()).map(drop));
}

/// The mismatch message names the object and both sides.
fn assert_names_both(r: Result<(), SegmentError>, name: &str, existing: &str, asked: &str) {
    match r {
        Err(SegmentError::ParamMismatch { name: n, detail }) => {
            assert_eq!(n, name);
            assert!(detail.contains(existing), "{detail:?} lacks {existing:?}");
            assert!(detail.contains(asked), "{detail:?} lacks {asked:?}");
        }
        other => panic!("expected ParamMismatch for {name}, got {other:?}"),
    }
}

#[test]
fn open_or_create_mismatches_name_both_sides_for_every_kind() {
    let name = TempSegment::new("mismatch");
    let seg = Segment::create(&name.0, &CreateOptions::new(4 << 20)).unwrap();
    populate(&seg);
    assert_names_both(
        seg.open_or_create::<Barrier>("b", &5).map(drop),
        "b",
        "3 parties",
        "5 were asked",
    );
    assert_names_both(
        seg.open_or_create::<Shared<u32>>("s", &1).map(drop),
        "s",
        "`u64`",
        "`u32`",
    );
    assert_names_both(
        seg.open_or_create::<SharedDict>("d", &DictSpec::new(20))
            .map(drop),
        "d",
        "10 keys",
        "20 keys",
    );
    let other = FrameSpec::new(4, ElemType::F32, &[48, 64]);
    assert_names_both(
        seg.open_or_create::<FrameRing>("f", &other).map(drop),
        "f",
        "4 slots of u16 [48, 64]",
        "4 slots of f32 [48, 64]",
    );
    let other = CommandSpec {
        slots: 2,
        ..command_spec()
    };
    assert_names_both(
        seg.open_or_create::<CommandRing>("c", &other).map(drop),
        "c",
        "8 slots",
        "2 slots",
    );
    assert_names_both(
        seg.open_or_create::<TraceBuffer>("t", &TraceSpec::default())
            .map(drop),
        "t",
        "64 events and 8 names",
        "65536 and 512 were asked",
    );
    // The short forms check too (a dictionary re-opened with another capacity used to be
    // silently accepted).
    assert!(matches!(
        seg.dict("d", 99),
        Err(SegmentError::ParamMismatch { .. })
    ));
    // Matching parameters open the existing object.
    assert_eq!(
        seg.open_or_create::<FrameRing>("f", &frame_spec())
            .unwrap()
            .stats()
            .last_id,
        1
    );
}

/// Where a header field of a named object lives in the segment file.
fn field_at(seg: &Segment, object: &str, field: usize) -> usize {
    seg.lookup(object).unwrap().unwrap().offset as usize + field
}

#[test]
fn attach_and_the_inspector_return_the_same_verdict_on_corrupt_images() {
    use std::mem::offset_of;
    type F = shm_layout::FrameRingHeader;
    type C = shm_layout::CommandRingHeader;
    type D = shm_layout::DictHeader;
    type S = shm_layout::SharedHeader;
    type B = shm_layout::BarrierLayout;
    type H = shm_layout::HistogramLayout;
    type T = shm_layout::TraceHeader;
    // (object, byte offset of a u32/u64 field, value to write, width)
    let cases: Vec<(&str, usize, u64, usize)> = vec![
        ("f", offset_of!(F, slots), 1, 4),
        ("f", offset_of!(F, slots), 5000, 4),
        ("f", offset_of!(F, elem), 99, 4),
        ("f", offset_of!(F, ndims), 0, 4),
        ("f", offset_of!(F, max_bytes), 7, 8),
        ("f", offset_of!(F, frame_stride), 64, 8),
        ("f", offset_of!(F, frame_stride), u64::MAX / 2, 8),
        ("f", offset_of!(F, frame_offset), 8, 8),
        ("f", offset_of!(F, shape) + 12, 3, 4),
        ("c", offset_of!(C, slots), 0, 4),
        ("c", offset_of!(C, slots), 2000, 4),
        ("c", offset_of!(C, slot_stride), 65, 8),
        ("c", offset_of!(C, slot_stride), 64, 8),
        ("c", offset_of!(C, max_request), 0, 4),
        ("c", offset_of!(C, max_reply), 1 << 31, 4),
        ("d", offset_of!(D, slots), 3, 4),
        ("d", offset_of!(D, max_entries), 0, 4),
        ("d", offset_of!(D, data_capacity), 1 << 40, 8),
        ("s", offset_of!(S, size), 1 << 20, 8),
        ("s", offset_of!(S, align), 3, 4),
        ("b", offset_of!(B, parties), 0, 4),
        // A trace buffer's geometry is checked.
        ("t", offset_of!(T, events), 100, 4),
        ("t", offset_of!(T, events), 1 << 25, 4),
        ("t", offset_of!(T, names), 0, 4),
        ("t", offset_of!(T, names), 9, 4),
        ("t", offset_of!(T, events_offset), 64, 8),
        // Intact fields stay valid: the table also holds cases both accept.
        ("f", offset_of!(F, total_written), 12345, 8),
        ("c", offset_of!(C, next_ticket), 77, 8),
        // Any bytes are a histogram: counts, maximum and an odd (killed reset's) generation.
        ("h", offset_of!(H, generation), 3, 8),
        ("h", offset_of!(H, max), u64::MAX, 8),
        ("h", offset_of!(H, buckets) + 8 * 975, u64::MAX, 8),
        // A trace buffer's head and drop count may be anything (reading stays bounded).
        ("t", offset_of!(T, head), u64::MAX - 3, 8),
        ("t", offset_of!(T, head), u64::MAX, 8),
        ("t", offset_of!(T, dropped), 5, 8),
    ];
    for (i, &(object, field, value, width)) in cases.iter().enumerate() {
        let name = TempSegment::new(&format!("corrupt{i}"));
        let seg = Segment::create(&name.0, &CreateOptions::new(4 << 20)).unwrap();
        populate(&seg);
        let at = field_at(&seg, object, field);
        let path = format!("/dev/shm/{}", name.0);
        let mut image = std::fs::read(&path).unwrap();
        image[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        std::fs::write(&path, &image).unwrap();
        let live = Segment::open(&name.0).unwrap();
        let offset = live.lookup(object).unwrap().unwrap().offset;
        let attached: Result<(), SegmentError> = match object {
            "f" => live.attach::<FrameRing>(offset).map(drop),
            "c" => live.attach::<CommandRing>(offset).map(drop),
            "d" => live.attach::<SharedDict>(offset).map(drop),
            "s" => live.attach::<Shared<u64>>(offset).map(drop),
            "b" => live.attach::<Barrier>(offset).map(drop),
            "h" => live.attach::<Histogram>(offset).map(|h| {
                // Reading hostile counts saturates instead of overflowing.
                let s = h.snapshot();
                let _ = (s.count(), s.quantile(0.99), s.mean());
            }),
            "t" => live.attach::<TraceBuffer>(offset).map(|t| {
                // A hostile head: reading and recording stay typed and bounded.
                let mut cursor = t.cursor_from_oldest();
                let mut out = Vec::new();
                t.read_rest(&mut cursor, &mut out);
                if let Ok(name) = t.name("x") {
                    t.instant(name, None);
                }
            }),
            _ => unreachable!(),
        };
        let inspected = inspect_image(&name.0, &image).unwrap();
        let state = &inspected
            .objects
            .iter()
            .find(|o| o.name == object)
            .unwrap()
            .state;
        let case = format!("case {i}: {object} field {field} = {value}");
        match (&attached, state) {
            (Err(e), ObjectState::Corrupt { detail, .. }) => {
                assert_eq!(&e.to_string(), detail, "{case}: same words")
            }
            (Ok(()), ObjectState::Corrupt { detail, .. }) => {
                panic!("{case}: attach accepts what the inspector calls corrupt: {detail}")
            }
            (Err(e), other) => {
                panic!("{case}: attach rejects ({e}) what the inspector decodes: {other:?}")
            }
            (Ok(()), _) => {}
        }
        let rejected = i < cases.len() - 8;
        assert_eq!(attached.is_err(), rejected, "{case}: {attached:?}");
    }
}
