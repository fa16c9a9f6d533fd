//! Unit tests on a real (small) segment: events read back whole, named, in order; a reader
//! that falls behind counts what it lost; writers on several threads lose nothing silently.

use super::*;
use crate::segment::{CreateOptions, SegmentError, SegmentObjects};

fn segment(tag: &str) -> Segment {
    let name = format!("shmkit-unit-trace-{tag}-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(&name, &CreateOptions::new(4 << 20)).unwrap();
    let _ = Segment::unlink(&name);
    seg
}

fn small() -> TraceSpec {
    TraceSpec {
        events: 64,
        names: 16,
    }
}

/// The records that are not thread or process names.
fn user_events(records: &[TraceRecord]) -> Vec<TraceRecord> {
    records
        .iter()
        .filter(|r| {
            !matches!(
                r.kind,
                TraceRecordKind::ThreadName | TraceRecordKind::ProcessName
            )
        })
        .copied()
        .collect()
}

#[test]
fn spans_instants_and_counters_read_back_whole_with_their_names_and_threads() {
    let seg = segment("kinds");
    let t: TraceBuffer = seg.create("trace", &small()).unwrap();
    let mut cursor = t.cursor_from_now();
    let centroid = t.name("centroid").unwrap();
    let flux = t.name("flux").unwrap();
    let before = monotonic_ns();
    {
        let _s = t.span(centroid).with_arg(42);
        t.instant(flux, None);
        t.counter(flux, 2.5);
    }
    let after = monotonic_ns();
    let mut out = Vec::new();
    t.read(&mut cursor, &mut out);
    let events = user_events(&out);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].kind, TraceRecordKind::Instant);
    assert_eq!(events[1].kind, TraceRecordKind::Counter { value: 2.5 });
    let TraceRecordKind::Span { duration_ns } = events[2].kind else {
        panic!("{:?}", events[2]);
    };
    assert_eq!(events[2].arg, Some(42));
    assert_eq!(t.name_at(events[2].name).as_deref(), Some("centroid"));
    assert!(before <= events[2].ts_ns && events[2].ts_ns + duration_ns <= after);
    assert!(events[2].ts_ns <= events[0].ts_ns);
    let me = current_thread();
    assert!(events.iter().all(|e| e.pid == me.pid && e.tid == me.tid));
    let thread_named = out
        .iter()
        .any(|r| r.kind == TraceRecordKind::ThreadName && r.tid == me.tid);
    assert!(thread_named, "{out:?}");
    assert_eq!(cursor.missed(), 0);
    assert_eq!(t.dropped(), 0);
}

#[test]
fn a_counter_recorded_from_a_timestamp_reads_back_at_that_time() {
    let seg = segment("counter-at");
    let t: TraceBuffer = seg.create("trace", &small()).unwrap();
    let mut cursor = t.cursor_from_now();
    let age = t.name("frame age").unwrap();
    let at = monotonic_ns() - 1_000_000;
    assert!(t.record_counter(age, at, 3185.5));
    let mut out = Vec::new();
    t.read(&mut cursor, &mut out);
    let events = user_events(&out);
    assert_eq!(events.len(), 1, "{out:?}");
    assert_eq!(events[0].kind, TraceRecordKind::Counter { value: 3185.5 });
    assert_eq!(events[0].ts_ns, at);
    assert_eq!(t.name_at(events[0].name).as_deref(), Some("frame age"));
}

#[test]
fn a_reader_a_lap_behind_counts_what_was_overwritten() {
    let seg = segment("lap");
    let t: TraceBuffer = seg.create("trace", &small()).unwrap();
    let name = t.name("tick").unwrap();
    t.instant(name, None); // names the thread first
    let mut cursor = t.cursor_from_now();
    for i in 0..100 {
        t.instant(name, Some(i));
    }
    let mut out = Vec::new();
    t.read(&mut cursor, &mut out);
    assert_eq!(out.len(), 64);
    assert_eq!(cursor.overwritten(), 36);
    assert_eq!(out.last().unwrap().arg, Some(99));
    assert_eq!(cursor.next(), t.head());
}

#[test]
fn writers_on_several_threads_lose_no_event_silently() {
    let seg = segment("threads");
    let t: TraceBuffer = seg
        .create(
            "trace",
            &TraceSpec {
                events: 1 << 14,
                names: 16,
            },
        )
        .unwrap();
    let mut cursor = t.cursor_from_now();
    let name = t.name("work").unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..2000 {
                    let _span = t.span(name).with_arg(i);
                }
            });
        }
    });
    let mut out = Vec::new();
    t.read_rest(&mut cursor, &mut out);
    let spans = user_events(&out);
    assert_eq!(spans.len() as u64 + t.dropped(), 8000);
    assert_eq!(out.len() as u64 + cursor.missed(), t.head());
    let mut per_thread = std::collections::HashMap::<u32, Vec<u64>>::new();
    for s in &spans {
        per_thread.entry(s.tid).or_default().push(s.arg.unwrap());
    }
    assert_eq!(per_thread.len(), 4);
    for args in per_thread.values() {
        assert!(
            args.windows(2).all(|w| w[0] < w[1]),
            "each thread's spans in order"
        );
    }
}

#[test]
fn names_and_sizes_are_checked() {
    let seg = segment("names");
    let t: TraceBuffer = seg.create("trace", &small()).unwrap();
    assert!(matches!(
        t.name(&"n".repeat(57)),
        Err(TraceError::NameLength { len: 57, .. })
    ));
    for i in 0..16 {
        let _ = t.name(&format!("n{i}"));
    }
    assert!(matches!(
        t.name("one-more"),
        Err(TraceError::NamesFull { names: 16, .. })
    ));
    let bad = TraceSpec {
        events: 100,
        names: 1,
    };
    assert!(matches!(
        seg.create::<TraceBuffer>("bad", &bad),
        Err(SegmentError::InvalidOption(_))
    ));
    let e = seg
        .open_or_create::<TraceBuffer>("trace", &TraceSpec::default())
        .unwrap_err();
    assert!(e.to_string().contains("64 events and 16 names"), "{e}");
}
