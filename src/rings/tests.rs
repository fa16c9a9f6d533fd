//! Single-process tests of the frame ring on real segments.

use super::*;
use crate::segment::{CreateOptions, Segment, SegmentError};
use std::sync::atomic::Ordering;
use std::time::Duration;

struct Temp(String, Segment);

impl Temp {
    fn new(tag: &str) -> Temp {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "shmkit-rings-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let seg = Segment::create(
            &name,
            &CreateOptions::new(4 << 20)
                .table_capacity(16)
                .exception_slots(0),
        )
        .unwrap();
        Temp(name, seg)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

fn spec(slots: u32) -> FrameSpec {
    FrameSpec {
        slots,
        elem: ElemType::U16,
        shape: vec![4, 8],
    }
}

fn publish(w: &mut FrameWriter, value: u16) -> u64 {
    let mut slot = w.try_claim().unwrap();
    slot.typed_mut::<u16>().unwrap().fill(value);
    slot.set_user(0, u64::from(value));
    slot.publish()
}

#[test]
fn frames_are_read_in_place_with_their_metadata() {
    let t = Temp::new("basic");
    let ring = t.1.frame_ring("cam", &spec(4)).unwrap();
    assert_eq!(ring.max_bytes(), 64);
    let mut w = ring.writer().unwrap();
    let mut r = ring.reader(ReadMode::OldestFirst).unwrap();
    assert!(matches!(
        r.next(Duration::from_millis(5)),
        Err(RingError::Timeout { .. })
    ));
    assert_eq!(publish(&mut w, 7), 1);
    let f = r.next(Duration::from_secs(1)).unwrap();
    assert_eq!((f.id(), f.len(), f.user(0)), (1, 64, 7));
    assert!(f.typed::<u16>().unwrap().iter().all(|&v| v == 7));
    assert_eq!(f.bytes().len(), 64);
    assert!(matches!(
        f.typed::<f32>(),
        Err(RingError::WrongElemType {
            ring: ElemType::U16,
            asked: ElemType::F32
        })
    ));
    assert!(f.ts_ns() > 0);
    drop(f);
    let stats = ring.stats();
    assert_eq!((stats.total_written, stats.last_id), (1, 1));
}

#[test]
fn newest_only_skips_and_oldest_first_sees_every_frame_or_an_overrun() {
    let t = Temp::new("modes");
    let ring = t.1.frame_ring("cam", &spec(4)).unwrap();
    let mut w = ring.writer().unwrap();
    let mut newest = ring.reader(ReadMode::NewestOnly).unwrap();
    let mut oldest = ring.reader(ReadMode::OldestFirst).unwrap();
    for v in 1..=3 {
        publish(&mut w, v);
    }
    assert_eq!(newest.next(Duration::ZERO).unwrap().id(), 3);
    for id in 1..=3 {
        assert_eq!(oldest.next(Duration::ZERO).unwrap().id(), id);
    }
    for v in 4..=20 {
        publish(&mut w, v);
    }
    assert_eq!(ring.stats().overruns, 0);
    match oldest.next(Duration::ZERO) {
        Err(RingError::Overrun { missed }) => {
            assert!(missed >= 13, "missed {missed}");
            // The ring counts what its readers missed, for whoever watches its health.
            assert_eq!(ring.stats().overruns, missed);
        }
        other => panic!("{other:?}"),
    }
    // Resynchronised: the rest come in order.
    let first = oldest.next(Duration::ZERO).unwrap().id();
    let mut prev = first;
    while let Ok(f) = oldest.next(Duration::ZERO) {
        assert_eq!(f.id(), prev + 1);
        prev = f.id();
    }
    assert_eq!(prev, 20);
    assert_eq!(newest.latest().unwrap().unwrap().id(), 20);
}

#[test]
fn the_period_jitter_is_small_for_a_steady_writer_and_grows_with_irregular_periods() {
    let t = Temp::new("jitter");
    let ring = t.1.frame_ring("cam", &spec(4)).unwrap();
    let mut w = ring.writer().unwrap();
    let period = |ms: u64| {
        let deadline = crate::sys::clock::monotonic_ns() + ms * 1_000_000;
        while crate::sys::clock::monotonic_ns() < deadline {
            std::hint::spin_loop();
        }
    };
    for v in 0..40 {
        period(2);
        publish(&mut w, v);
    }
    let steady = ring.stats().jitter_ns;
    for v in 0..40 {
        period(if v % 2 == 0 { 1 } else { 3 });
        publish(&mut w, v);
    }
    let irregular = ring.stats().jitter_ns;
    // Alternating 1 and 3 ms deviates by about 1 ms from the mean; a steady 2 ms period by
    // this test's own timing (no absolute bound: a preempted spin would break one).
    assert!(irregular > 600_000, "irregular jitter {irregular} ns");
    assert!(
        steady < irregular,
        "steady {steady} ns, irregular {irregular} ns"
    );
}

#[test]
fn a_held_frame_never_changes_and_a_full_ring_is_a_typed_error() {
    let t = Temp::new("held");
    let ring = t.1.frame_ring("cam", &spec(2)).unwrap();
    let mut w = ring.writer().unwrap();
    let mut r = ring.reader(ReadMode::NewestOnly).unwrap();
    publish(&mut w, 1);
    let held = r.latest().unwrap().unwrap();
    publish(&mut w, 2); // the other slot
                        // Slot of frame 1 is held, slot of frame 2 is the newest: nothing to claim.
    assert!(matches!(
        w.try_claim().map(|_| ()),
        Err(RingError::AllSlotsHeld { slots: 2 })
    ));
    assert!(held.typed::<u16>().unwrap().iter().all(|&v| v == 1));
    drop(held);
    publish(&mut w, 3);
    assert_eq!(r.latest().unwrap().unwrap().id(), 3);
}

// ---- owned frames ----

fn reader_bits(ring: &FrameRing) -> u64 {
    (0..ring.slots())
        .map(|s| slot_word::readers_of(ring.word(s).load(Ordering::Relaxed)))
        .fold(0, |a, b| a | b)
}

/// Reader registrations the ring holds.
fn registered(ring: &FrameRing) -> usize {
    ring.header()
        .readers
        .iter()
        .filter(|rec| !rec.load().is_none())
        .count()
}

#[test]
fn owned_frames_are_static_send_and_sync() {
    fn owned<T: Send + Sync + 'static>() {}
    owned::<OwnedFrame>();
    owned::<OwnedFrameReader>();
}

#[test]
fn several_owned_frames_are_held_at_once_and_never_change() {
    let t = Temp::new("owned");
    let ring = t.1.frame_ring("cam", &spec(4)).unwrap();
    let mut w = ring.writer().unwrap();
    let mut r = ring.reader(ReadMode::OldestFirst).unwrap().into_owned();
    for v in 1..=3 {
        publish(&mut w, v);
    }
    let held: Vec<OwnedFrame> = (0..3).map(|_| r.next(Duration::ZERO).unwrap()).collect();
    assert_eq!(held.iter().map(|f| f.id()).collect::<Vec<_>>(), [1, 2, 3]);
    // Three slots held, one free: the writer keeps going through the free one only.
    for v in 4..20 {
        publish(&mut w, v);
        // The newest frame's slot is not claimable either; with 3 held the writer stalls.
        if w.try_claim().map(|_| ()).is_err() {
            break;
        }
    }
    for (f, v) in held.iter().zip(1u16..) {
        assert!(
            f.typed::<u16>().unwrap().iter().all(|&x| x == v),
            "frame {v} changed"
        );
        assert_eq!(f.user(0), u64::from(v));
    }
    drop(held);
    assert_eq!(reader_bits(&ring), 0, "every pin released");
}

#[test]
fn an_owned_frame_dropped_on_another_thread_releases_its_pin() {
    let t = Temp::new("ownedthread");
    let ring = t.1.frame_ring("cam", &spec(2)).unwrap();
    let mut w = ring.writer().unwrap();
    let mut r = ring.reader(ReadMode::NewestOnly).unwrap().into_owned();
    publish(&mut w, 1);
    let f = r.latest().unwrap().unwrap();
    assert_ne!(reader_bits(&ring), 0);
    std::thread::spawn(move || assert_eq!(f.id(), 1))
        .join()
        .unwrap();
    assert_eq!(reader_bits(&ring), 0);
}

#[test]
fn the_same_frame_held_twice_stays_pinned_until_both_are_dropped() {
    let t = Temp::new("ownedtwice");
    let ring = t.1.frame_ring("cam", &spec(2)).unwrap();
    let mut w = ring.writer().unwrap();
    let mut r = ring.reader(ReadMode::NewestOnly).unwrap().into_owned();
    publish(&mut w, 1);
    let a = r.latest().unwrap().unwrap();
    let b = r.latest().unwrap().unwrap();
    assert_eq!((a.id(), b.id()), (1, 1));
    publish(&mut w, 2); // into the other slot
    drop(a);
    // Frame 1 is still held by `b`, frame 2 is the newest: nothing to claim.
    assert!(matches!(
        w.try_claim().map(|_| ()),
        Err(RingError::AllSlotsHeld { slots: 2 })
    ));
    assert!(b.typed::<u16>().unwrap().iter().all(|&x| x == 1));
    drop(b);
    assert_eq!(reader_bits(&ring), 0);
    assert_eq!(publish(&mut w, 3), 3);
}

#[test]
fn an_owned_readers_registration_outlives_it_while_its_frames_live() {
    let t = Temp::new("ownedreg");
    let ring = t.1.frame_ring("cam", &spec(2)).unwrap();
    let mut w = ring.writer().unwrap();
    let mut r = ring.reader(ReadMode::NewestOnly).unwrap().into_owned();
    publish(&mut w, 1);
    let f = r.latest().unwrap().unwrap();
    drop(r);
    assert_eq!(registered(&ring), 1, "the frame keeps the registration");
    assert_eq!(f.id(), 1);
    drop(f);
    assert_eq!(registered(&ring), 0);
}

#[test]
fn an_owned_reader_dropped_while_its_frames_drop_elsewhere_frees_its_registration_once() {
    let t = Temp::new("ownedretire");
    let ring = t.1.frame_ring("cam", &spec(3)).unwrap();
    let mut w = ring.writer().unwrap();
    for round in 0..2_000u16 {
        let mut r = ring.reader(ReadMode::OldestFirst).unwrap().into_owned();
        publish(&mut w, round);
        publish(&mut w, round.wrapping_add(1));
        // Two frames of one slot, one of another: each dropped on its own thread while the
        // reader is dropped on this one.
        let a = r.next(Duration::ZERO).unwrap();
        let b = r.latest().unwrap().unwrap();
        let c = r.latest().unwrap().unwrap();
        assert_eq!((a.id() + 1, c.id()), (b.id(), b.id()));
        let start = std::sync::Arc::new(std::sync::Barrier::new(3));
        let droppers: Vec<_> = [vec![b, c], vec![a]]
            .into_iter()
            .map(|frames| {
                let start = std::sync::Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    drop(frames);
                })
            })
            .collect();
        start.wait();
        drop(r);
        for d in droppers {
            d.join().unwrap();
        }
        assert_eq!(
            registered(&ring),
            0,
            "round {round}: the registration outlived everything"
        );
        assert_eq!(
            reader_bits(&ring),
            0,
            "round {round}: a pin outlived its frame"
        );
    }
}

#[test]
fn owned_frames_dropped_concurrently_with_new_holds_never_lose_a_pin() {
    let t = Temp::new("ownedrace");
    let ring = t.1.frame_ring("cam", &spec(3)).unwrap();
    let mut w = ring.writer().unwrap();
    let mut r = ring.reader(ReadMode::NewestOnly).unwrap().into_owned();
    publish(&mut w, 1);
    let (tx, rx) = std::sync::mpsc::channel::<OwnedFrame>();
    let dropper = std::thread::spawn(move || {
        for f in rx {
            drop(f);
        }
    });
    for _ in 0..20_000 {
        let f = r.latest().unwrap().unwrap();
        let keep = r.latest().unwrap().unwrap();
        tx.send(f).unwrap();
        // `keep` holds the same slot: whatever the dropper does, the pin must stay.
        let slot_word = (0..3)
            .map(|s| ring.word(s).load(Ordering::Relaxed))
            .find(|&w| slot_word::id_of(w) == 1)
            .unwrap();
        assert_ne!(
            slot_word::readers_of(slot_word),
            0,
            "pin lost under a live hold"
        );
        drop(keep);
    }
    drop(tx);
    dropper.join().unwrap();
    assert_eq!(reader_bits(&ring), 0);
}

#[test]
fn an_interrupted_next_returns_within_100ms() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let t = Temp::new("interrupt");
    let ring = t.1.frame_ring("cam", &spec(2)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let mut plain = ring.reader(ReadMode::NewestOnly).unwrap();
    let mut owned = ring.reader(ReadMode::NewestOnly).unwrap().into_owned();
    let waiter = std::thread::spawn(move || {
        let check = || stop2.load(Ordering::Relaxed);
        let a = plain
            .next_interruptible(crate::Timeout::Forever, &check)
            .map(|_| ());
        let t_a = std::time::Instant::now();
        let b = owned
            .next_interruptible(crate::Timeout::Forever, &check)
            .map(|_| ());
        (a, t_a, b, std::time::Instant::now())
    });
    std::thread::sleep(Duration::from_millis(80));
    let asked = std::time::Instant::now();
    stop.store(true, Ordering::Relaxed);
    let (a, t_a, b, t_b) = waiter.join().unwrap();
    assert!(matches!(a, Err(RingError::Interrupted)), "{a:?}");
    assert!(matches!(b, Err(RingError::Interrupted)), "{b:?}");
    assert!(t_a.duration_since(asked) < Duration::from_millis(100));
    assert!(t_b.duration_since(asked) < Duration::from_millis(100));
}

#[test]
fn one_writer_at_a_time_and_a_dropped_claim_leaves_no_frame() {
    let t = Temp::new("writer");
    let ring = t.1.frame_ring("cam", &spec(3)).unwrap();
    let mut w = ring.writer().unwrap();
    assert!(
        matches!(ring.writer().map(|_| ()), Err(RingError::WriterBusy { pid }) if pid == std::process::id())
    );
    publish(&mut w, 1);
    drop(w.try_claim().unwrap()); // unpublished
    assert_eq!(ring.stats().last_id, 1);
    drop(w);
    let mut w2 = ring.writer().unwrap();
    assert_eq!(publish(&mut w2, 2), 2);
}

#[test]
fn an_owned_claim_publishes_abandons_and_hands_the_writer_back() {
    let t = Temp::new("ownedclaim");
    let ring = t.1.frame_ring("cam", &spec(3)).unwrap();
    let mut r = ring.reader(ReadMode::OldestFirst).unwrap();
    let w = ring.writer().unwrap();
    let mut slot = w.claim_owned(Duration::from_secs(1)).unwrap();
    slot.bytes_mut().fill(5);
    slot.set_user(1, 9);
    // Readers see nothing until the publish.
    assert!(r.latest().unwrap().is_none());
    let (id, w) = slot.publish();
    assert_eq!(id, 1);
    let f = r.next(Duration::from_secs(1)).unwrap();
    assert_eq!((f.id(), f.user(1), f.len()), (1, 9, 64));
    assert!(f.bytes().iter().all(|&b| b == 5));
    drop(f);
    // Abandoned: no frame, and the writer is still the writer.
    let w = w.claim_owned(Duration::from_secs(1)).unwrap().abandon();
    assert_eq!(ring.stats().last_id, 1);
    assert!(matches!(
        ring.writer().map(|_| ()),
        Err(RingError::WriterBusy { .. })
    ));
    // Dropped: no frame either, and the role is given up with it.
    drop(w.claim_owned(Duration::from_secs(1)).unwrap());
    assert_eq!(ring.stats().last_id, 1);
    let w = ring.writer().unwrap();
    assert_eq!(w.claim_owned(Duration::ZERO).unwrap().publish().0, 2);
}

#[test]
fn an_owned_claim_that_finds_every_slot_held_hands_the_writer_back() {
    let t = Temp::new("ownedfull");
    let ring = t.1.frame_ring("cam", &spec(2)).unwrap();
    let mut w = ring.writer().unwrap();
    let mut r = ring.reader(ReadMode::NewestOnly).unwrap();
    publish(&mut w, 1);
    let held = r.latest().unwrap().unwrap();
    publish(&mut w, 2); // frame 1's slot is held, frame 2's is the newest
    let (w, e) = w.claim_owned(Duration::from_millis(5)).unwrap_err();
    assert_eq!(e, RingError::AllSlotsHeld { slots: 2 });
    drop(held);
    let (id, _w) = w.claim_owned(Duration::ZERO).unwrap().publish();
    assert_eq!(id, 3);
}

#[test]
fn a_dead_writer_is_replaced_and_its_half_written_slot_discarded() {
    let t = Temp::new("deadwriter");
    let ring = t.1.frame_ring("cam", &spec(3)).unwrap();
    // A writer record of a process that cannot exist, mid-frame in slot 0.
    ring.header()
        .writer
        .atomic()
        .store(crate::Record::new(0x3F_FFF0, 1).raw(), Ordering::Relaxed);
    ring.word(0)
        .store(shm_layout::FRAME_WRITING | 5, Ordering::Relaxed);
    let mut w = ring.writer().unwrap();
    assert_eq!(ring.word(0).load(Ordering::Relaxed), 0);
    assert_eq!(publish(&mut w, 1), 1);
}

#[test]
fn a_dead_readers_holds_are_reclaimed_by_the_writer() {
    let t = Temp::new("deadreader");
    let ring = t.1.frame_ring("cam", &spec(2)).unwrap();
    let mut w = ring.writer().unwrap();
    publish(&mut w, 1);
    publish(&mut w, 2);
    // Reader 5, of a process that cannot exist, holds frame 1.
    ring.header().readers[5]
        .atomic()
        .store(crate::Record::new(0x3F_FFF0, 1).raw(), Ordering::Relaxed);
    let slot1 = (0..2)
        .find(|&s| slot_word::id_of(ring.word(s).load(Ordering::Relaxed)) == 1)
        .unwrap();
    assert!(slot_word::try_pin(ring.word(slot1), 1, 5, false));
    assert_eq!(
        publish(&mut w, 3),
        3,
        "the dead reader's hold was reclaimed"
    );
    assert!(ring.header().readers[5].load().is_none());
}

#[test]
fn specs_are_checked() {
    let t = Temp::new("spec");
    t.1.frame_ring("cam", &spec(4)).unwrap();
    assert!(matches!(
        t.1.frame_ring("cam", &spec(5)),
        Err(SegmentError::ParamMismatch { .. })
    ));
    assert!(matches!(
        t.1.frame_ring("x", &spec(1)),
        Err(SegmentError::InvalidOption(_))
    ));
    let bad = FrameSpec {
        slots: 4,
        elem: ElemType::U8,
        shape: vec![],
    };
    assert!(matches!(
        t.1.frame_ring("y", &bad),
        Err(SegmentError::InvalidOption(_))
    ));
    let offset = t.1.lookup("cam").unwrap().unwrap().offset;
    assert!(matches!(
        t.1.attach::<crate::rings::FrameRing>(offset + 64),
        Err(SegmentError::BadOffset { .. } | SegmentError::Corrupt { .. })
    ));
}

#[test]
fn too_many_readers_is_a_typed_error() {
    let t = Temp::new("readers");
    let ring = t.1.frame_ring("cam", &spec(2)).unwrap();
    let readers: Vec<_> = (0..16)
        .map(|_| ring.reader(ReadMode::NewestOnly).unwrap())
        .collect();
    assert!(matches!(
        ring.reader(ReadMode::NewestOnly).map(|_| ()),
        Err(RingError::TooManyReaders)
    ));
    drop(readers);
    assert!(ring.reader(ReadMode::NewestOnly).is_ok());
}

#[test]
fn a_blocked_reader_is_woken_by_publish() {
    let t = Temp::new("wake");
    let ring = t.1.frame_ring("cam", &spec(4)).unwrap();
    let mut r = ring.reader(ReadMode::OldestFirst).unwrap();
    let ring2 = ring.clone();
    let writer = std::thread::spawn(move || {
        let mut w = ring2.writer().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        publish(&mut w, 9);
    });
    let start = std::time::Instant::now();
    let f = r.next(Duration::from_secs(10)).unwrap();
    assert_eq!(f.id(), 1);
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(f);
    writer.join().unwrap();
}

fn cmd_spec() -> CommandSpec {
    CommandSpec {
        slots: 4,
        max_request: 64,
        max_reply: 64,
    }
}

#[test]
fn calls_get_their_own_replies_and_failures() {
    let t = Temp::new("cmd");
    let ring = t.1.command_ring("dm", &cmd_spec()).unwrap();
    assert!(matches!(
        ring.call(b"x", Duration::from_millis(5)),
        Err(CommandError::NoServer)
    ));
    let server_ring = ring.clone();
    let (attached_tx, attached) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let server = server_ring.server().unwrap();
        attached_tx.send(()).unwrap();
        for _ in 0..3 {
            let req = server.recv(Duration::from_secs(10)).unwrap();
            if req.decode::<String>().is_ok_and(|s| s == "typed") {
                assert!(req.reply_typed(&42u32).unwrap());
                continue;
            }
            match req.bytes() {
                b"bad" => assert!(req.fail("no such actuator").unwrap()),
                other => {
                    let mut echo = other.to_vec();
                    echo.reverse();
                    assert!(req.reply(&echo).unwrap());
                }
            }
        }
    });
    attached.recv().unwrap();
    assert_eq!(ring.call(b"abc", Duration::from_secs(10)).unwrap(), b"cba");
    assert_eq!(
        ring.call_typed::<String, u32>(&"typed".into(), Duration::from_secs(10)),
        Ok(42)
    );
    assert_eq!(
        ring.call(b"bad", Duration::from_secs(10)),
        Err(CommandError::Failed("no such actuator".into()))
    );
    server.join().unwrap();
    assert!(matches!(
        ring.call(&[0; 65], Duration::ZERO),
        Err(CommandError::TooLarge {
            what: "request",
            ..
        })
    ));
}

#[test]
fn a_timed_out_call_never_receives_a_stale_reply_and_leaks_no_slot() {
    let t = Temp::new("cmdstale");
    let ring =
        t.1.command_ring(
            "dm",
            &CommandSpec {
                slots: 1,
                ..cmd_spec()
            },
        )
        .unwrap();
    let server = ring.server().unwrap();
    // Nobody serves yet: the call times out and withdraws its request.
    assert!(matches!(
        ring.call(b"first", Duration::from_millis(10)),
        Err(CommandError::Timeout { .. })
    ));
    assert!(
        matches!(
            server.recv(Duration::ZERO),
            Err(CommandError::Timeout { .. })
        ),
        "withdrawn"
    );
    // A request the server holds when the client gives up: the late reply goes nowhere.
    let ring2 = ring.clone();
    let client = std::thread::spawn(move || ring2.call(b"second", Duration::from_millis(30)));
    let req = server.recv(Duration::from_secs(10)).unwrap();
    assert_eq!(req.bytes(), b"second");
    assert!(matches!(
        client.join().unwrap(),
        Err(CommandError::Timeout { .. })
    ));
    assert!(!req.reply(b"late").unwrap(), "the client had given up");
    // The single slot is free again and the next call gets its own reply.
    let ring3 = ring.clone();
    let client = std::thread::spawn(move || ring3.call(b"third", Duration::from_secs(10)));
    let req = server.recv(Duration::from_secs(10)).unwrap();
    assert_eq!(req.bytes(), b"third");
    req.reply(b"3").unwrap();
    assert_eq!(client.join().unwrap().unwrap(), b"3");
}

/// Runs `wait` in a thread with an interrupt check, sets the check after 80 ms, and returns
/// the outcome and how long after the check was set it came.
fn interrupted_after<T: Send + 'static>(
    wait: impl FnOnce(&dyn crate::Interrupt) -> T + Send + 'static,
) -> (T, Duration) {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let waiter = std::thread::spawn(move || {
        let check = move || stop2.load(Ordering::Relaxed);
        let r = wait(&check);
        (r, std::time::Instant::now())
    });
    std::thread::sleep(Duration::from_millis(80));
    let asked = std::time::Instant::now();
    stop.store(true, Ordering::Relaxed);
    let (r, at) = waiter.join().unwrap();
    (r, at.duration_since(asked))
}

#[test]
fn interrupted_calls_and_receives_return_within_100ms_and_say_what_ran() {
    let t = Temp::new("cmdint");
    let one_slot = CommandSpec {
        slots: 1,
        ..cmd_spec()
    };
    let ring = t.1.command_ring("dm", &one_slot).unwrap();
    let server = ring.server().unwrap();
    // Not taken by the server: withdrawn, did not run.
    let r = ring.clone();
    let (got, took) = interrupted_after(move |stop| {
        r.call_interruptible(b"queued", crate::Timeout::Forever, stop)
    });
    assert_eq!(
        got,
        Err(CommandError::Interrupted {
            outcome: Outcome::NotExecuted
        })
    );
    assert!(took < Duration::from_millis(100), "{took:?}");
    assert!(
        matches!(
            server.recv(Duration::ZERO),
            Err(CommandError::Timeout { .. })
        ),
        "the withdrawn request is gone"
    );
    // Taken and not answered: abandoned, may have run; the late reply goes nowhere.
    let r = ring.clone();
    let client = std::thread::spawn(move || {
        interrupted_after(move |stop| r.call_interruptible(b"taken", crate::Timeout::Forever, stop))
    });
    let req = server.recv(Duration::from_secs(10)).unwrap();
    let (got, took) = client.join().unwrap();
    assert_eq!(
        got,
        Err(CommandError::Interrupted {
            outcome: Outcome::Unknown
        })
    );
    assert!(took < Duration::from_millis(100), "{took:?}");
    assert!(!req.reply(b"late").unwrap());
    // The server's own wait.
    let idle = t.1.command_ring("idle", &one_slot).unwrap();
    let (got, took) = interrupted_after(move |stop| {
        let server = idle.server().unwrap();
        server
            .recv_interruptible(crate::Timeout::Forever, stop)
            .map(|_| ())
    });
    assert_eq!(
        got,
        Err(CommandError::Interrupted {
            outcome: Outcome::NotExecuted
        })
    );
    assert!(took < Duration::from_millis(100), "{took:?}");
    drop(server);
}

#[test]
fn a_second_server_is_busy_and_a_dropped_server_is_noticed() {
    let t = Temp::new("cmdserver");
    let ring = t.1.command_ring("dm", &cmd_spec()).unwrap();
    let server = ring.server().unwrap();
    assert!(matches!(
        ring.server().map(|_| ()),
        Err(CommandError::ServerBusy { .. })
    ));
    let ring2 = ring.clone();
    let client = std::thread::spawn(move || ring2.call(b"x", Duration::from_secs(10)));
    let req = server.recv(Duration::from_secs(10)).unwrap();
    std::mem::forget(req);
    drop(server);
    let start = std::time::Instant::now();
    assert!(matches!(
        client.join().unwrap(),
        Err(CommandError::ServerDied { .. })
    ));
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(
        t.1.command_ring(
            "dm",
            &CommandSpec {
                slots: 5,
                ..cmd_spec()
            }
        ),
        Err(SegmentError::ParamMismatch { .. })
    ));
}

#[test]
fn the_server_sees_how_long_each_caller_still_waits() {
    let t = Temp::new("cmd_deadline");
    let ring = t.1.command_ring("dm", &cmd_spec()).unwrap();
    let server_ring = ring.clone();
    let (attached_tx, attached) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let server = server_ring.server().unwrap();
        attached_tx.send(()).unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let req = server.recv(Duration::from_secs(10)).unwrap();
            seen.push(req.time_left());
            assert!(req.reply(b"").unwrap());
        }
        seen
    });
    attached.recv().unwrap();
    ring.call(b"a", Duration::from_secs(3)).unwrap();
    ring.call_interruptible(
        b"b",
        crate::sync::Timeout::Forever,
        &crate::sync::NoInterrupt,
    )
    .unwrap();
    let seen = server.join().unwrap();
    match seen[0] {
        crate::sync::Timeout::After(left) => assert!(
            left > Duration::from_secs(1) && left <= Duration::from_secs(3),
            "a 3 s call still had {left:?}"
        ),
        other => panic!("a 3 s call seen as {other:?}"),
    }
    assert_eq!(seen[1], crate::sync::Timeout::Forever);
}
