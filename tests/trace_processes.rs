//! Trace buffers across processes: events from several processes are read back whole, in
//! each thread's order, with the names each process gave itself and its thread; a process
//! killed in the middle of writing an event leaves the buffer readable (the half-written
//! event counted, then its slot taken over two laps on).

mod common;

use common::{spawn, wait_exit, TempSegment};
use shmkit::shared::{TraceBuffer, TraceRecordKind, TraceSpec};
use shmkit::test_support::{arm, CrashPoint};
use shmkit::{CreateOptions, Segment, SegmentObjects};
use std::collections::HashMap;
use std::time::Duration;

fn spec(events: u32) -> TraceSpec {
    TraceSpec { events, names: 64 }
}

crate::child_roles!(|role, args| match role {
    // Names itself "tracer-K" / "worker", then records `n` "frame" spans (arg i), each
    // enclosing a "centroid" span, and a counter.
    "trace" => {
        let seg = Segment::open(&args[0]).unwrap();
        let t: TraceBuffer = seg.open("trace").unwrap();
        let (k, n): (u64, u64) = (args[1].parse().unwrap(), args[2].parse().unwrap());
        t.name_process(&format!("tracer-{k}")).unwrap();
        t.name_thread("worker").unwrap();
        let (frame, centroid, flux) = (
            t.name("frame").unwrap(),
            t.name("centroid").unwrap(),
            t.name("flux").unwrap(),
        );
        for i in 0..n {
            let _f = t.span(frame).with_arg(i);
            let _c = t.span(centroid).with_arg(i);
            t.counter(flux, i as f64);
        }
        0
    }
    // Dies (SIGKILL) with one event claimed and not one field of it written.
    "die_mid_event" => {
        let seg = Segment::open(&args[0]).unwrap();
        let t: TraceBuffer = seg.open("trace").unwrap();
        let name = t.name("doomed").unwrap();
        t.instant(name, None); // names the thread and process first
        arm(Some(CrashPoint::TraceEventClaimed));
        t.instant(name, Some(1));
        1
    }
    other => panic!("unknown role {other}"),
});

#[test]
fn events_from_three_processes_are_read_whole_in_order_and_named() {
    let name = TempSegment::new("trace3");
    let seg = Segment::create(&name.0, &CreateOptions::new(8 << 20)).unwrap();
    let t: TraceBuffer = seg.create("trace", &spec(1 << 16)).unwrap();
    let mut cursor = t.cursor_from_now();
    let n = 3000u64;
    let mut children: Vec<_> = (0..3u64)
        .map(|k| spawn("trace", &[name.0.clone(), k.to_string(), n.to_string()]))
        .collect();
    for child in &mut children {
        assert_eq!(wait_exit(child, Duration::from_secs(60)).code(), Some(0));
    }
    let mut out = Vec::new();
    t.read_rest(&mut cursor, &mut out);
    assert_eq!(cursor.missed(), 0);
    assert_eq!(t.dropped(), 0);
    let mut frames: HashMap<u32, Vec<u64>> = HashMap::new();
    let mut names: HashMap<u32, (String, String)> = HashMap::new();
    for r in &out {
        let name = t.name_at(r.name).unwrap();
        match r.kind {
            TraceRecordKind::Span { duration_ns } if name == "frame" => {
                frames.entry(r.pid).or_default().push(r.arg.unwrap());
                let _ = duration_ns;
            }
            TraceRecordKind::ProcessName => names.entry(r.pid).or_default().0 = name,
            TraceRecordKind::ThreadName => names.entry(r.pid).or_default().1 = name,
            _ => {}
        }
    }
    assert_eq!(frames.len(), 3);
    for (pid, args) in &frames {
        assert_eq!(
            args,
            &(0..n).collect::<Vec<_>>(),
            "pid {pid}: every frame, in order"
        );
        let (process, thread) = &names[pid];
        assert!(process.starts_with("tracer-"), "{process}");
        assert_eq!(thread, "worker");
    }
    // Each centroid span lies inside its frame span.
    let spans = |what: &str| -> HashMap<(u32, u64), (u64, u64)> {
        out.iter()
            .filter(|r| t.name_at(r.name).as_deref() == Some(what))
            .filter_map(|r| match r.kind {
                TraceRecordKind::Span { duration_ns } => {
                    Some(((r.pid, r.arg.unwrap()), (r.ts_ns, r.ts_ns + duration_ns)))
                }
                _ => None,
            })
            .collect()
    };
    let (outer, inner) = (spans("frame"), spans("centroid"));
    assert_eq!(inner.len(), 3 * n as usize);
    for (key, (start, end)) in &inner {
        let (o_start, o_end) = outer[key];
        assert!(o_start <= *start && end <= &o_end, "{key:?}");
    }
}

#[test]
fn a_process_killed_mid_event_leaves_the_buffer_readable() {
    let name = TempSegment::new("tracekill");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let t: TraceBuffer = seg.create("trace", &spec(64)).unwrap();
    let mut cursor = t.cursor_from_now();
    let mut child = spawn("die_mid_event", std::slice::from_ref(&name.0));
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let doomed = t.head() - 1; // the event it died writing
    let tick = t.name("tick").unwrap();
    let mut out = Vec::new();
    // The rest of the lap: everything but the dead event reads.
    while t.head() < 64 {
        assert!(t.instant(tick, None));
    }
    t.read_rest(&mut cursor, &mut out);
    assert_eq!(cursor.unfinished(), 1);
    assert!(out.iter().all(|r| r.number != doomed));
    assert_eq!((out.len() as u64 + 1, cursor.overwritten()), (t.head(), 0));
    // One lap on, the slot is still the dead writer's: that event is given up, and counted.
    let slot_lap1 = doomed + 64;
    while t.head() < slot_lap1 {
        t.instant(tick, None);
    }
    assert!(!t.instant(tick, None));
    assert_eq!(t.dropped(), 1);
    // Two laps on, it is taken over.
    while t.head() < doomed + 128 {
        t.instant(tick, None);
    }
    assert!(t.instant(tick, Some(7)));
    let mut fresh = t.cursor_from_oldest();
    let mut last = Vec::new();
    t.read_rest(&mut fresh, &mut last);
    let taken = last.iter().find(|r| r.number == doomed + 128).unwrap();
    assert_eq!(taken.arg, Some(7));
    assert_eq!(fresh.missed(), 0);
}
