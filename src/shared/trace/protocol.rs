//! The trace buffer's event protocol (table in `shm-layout/src/trace.rs`): a writer claims an
//! event number from `head`, takes its slot from an earlier lap with one CAS, writes the
//! fields, and completes it with a second CAS; a reader copies a slot between two reads of
//! its `seq`, seqlock-style, and accepts the copy only if the check word agrees.
//!
//! The functions take the words, not the buffer, so the loom models below check them on one
//! or two slots.

use crate::sync::{fence, shared_view, AtomicU32, AtomicU64, Ordering, Reserved};
use shm_layout::{trace_check, TraceEvent};

shared_view! {
    /// One event slot's words; byte-for-byte [`shm_layout::TraceEvent`].
    pub(crate) struct EventView mirrors TraceEvent, align(64) {
        seq: AtomicU64,
        ts_ns: AtomicU64,
        value: AtomicU64,
        arg: AtomicU64,
        pid: AtomicU32,
        tid: AtomicU32,
        meta: AtomicU64,
        reserved: Reserved<[u64; 2]>,
    }
}

impl EventView {
    /// A zeroed slot (never written), for models and tests on the heap.
    #[cfg(any(test, loom))]
    pub(crate) fn new() -> EventView {
        EventView {
            seq: AtomicU64::new(0),
            ts_ns: AtomicU64::new(0),
            value: AtomicU64::new(0),
            arg: AtomicU64::new(0),
            pid: AtomicU32::new(0),
            tid: AtomicU32::new(0),
            meta: AtomicU64::new(0),
            reserved: Reserved::new(),
        }
    }
}

/// An event's fields, as written and as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) ts_ns: u64,
    pub(crate) value: u64,
    pub(crate) arg: Option<u64>,
    pub(crate) pid: u32,
    pub(crate) tid: u32,
    pub(crate) name: u16,
    pub(crate) kind: u8,
}

impl Fields {
    /// The low half of `meta` (name, kind, has-arg).
    fn meta_low(&self) -> u32 {
        u32::from(self.name) | u32::from(self.kind) << 16 | u32::from(self.arg.is_some()) << 24
    }

    fn check(&self, n: u64) -> u32 {
        let pid_tid = u64::from(self.tid) << 32 | u64::from(self.pid);
        trace_check(
            n,
            self.ts_ns,
            self.value,
            self.arg.unwrap_or(0),
            pid_tid,
            self.meta_low(),
        )
    }
}

/// `seq` of event `n` while it is written (`2n + 1`), wrapping (2^63 events are centuries).
#[inline]
fn writing_seq(n: u64) -> u64 {
    n.wrapping_mul(2).wrapping_add(1)
}

/// Records `fields` as the next event of the ring `events` (a power-of-two number of slots).
/// Returns false when the event was given up and counted in `dropped`: its slot was still
/// being written by the previous lap's writer, or was taken by a later lap first.
#[inline]
pub(crate) fn record(
    head: &AtomicU64,
    dropped: &AtomicU64,
    events: &[EventView],
    fields: &Fields,
) -> bool {
    // Relaxed: the number only picks a slot; the slot's own `seq` orders the event.
    let n = head.fetch_add(1, Ordering::Relaxed);
    let slots = events.len() as u64;
    let slot = &events[(n & (slots - 1)) as usize];
    let writing = writing_seq(n);
    let lap = 2 * slots;
    let current = slot.seq.load(Ordering::Relaxed);
    // Ours when it holds an earlier lap's whole event (or none), or a writer from two or more
    // laps back that never finished (dead, or stalled so long its stores are `check`ed away).
    let takeable = current < writing && (current % 2 == 0 || writing - current > lap);
    // Acquire: pairs with the previous lap's completing CAS (Release), so this writer's
    // stores to the fields come after that writer's in every field's modification order.
    if !takeable
        || slot
            .seq
            .compare_exchange(current, writing, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        dropped.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    #[cfg(not(loom))]
    crate::fault::crash_point(crate::fault::CrashPoint::TraceEventClaimed);
    // Release: the odd `seq` before any field below (pairs with the Acquire fence in `read`:
    // a reader that copied one of these fields then reads a changed `seq`).
    fence(Ordering::Release);
    slot.ts_ns.store(fields.ts_ns, Ordering::Relaxed);
    slot.value.store(fields.value, Ordering::Relaxed);
    slot.arg.store(fields.arg.unwrap_or(0), Ordering::Relaxed);
    slot.pid.store(fields.pid, Ordering::Relaxed);
    slot.tid.store(fields.tid, Ordering::Relaxed);
    let meta = u64::from(fields.check(n)) << 32 | u64::from(fields.meta_low());
    slot.meta.store(meta, Ordering::Relaxed);
    // Release: every field before the even `seq` (pairs with the Acquire load that starts
    // `read`). A CAS, not a store: a writer two laps on may have taken the slot over.
    if slot
        .seq
        .compare_exchange(
            writing,
            writing.wrapping_add(1),
            Ordering::Release,
            Ordering::Relaxed,
        )
        .is_err()
    {
        dropped.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    true
}

/// What reading event `n` from its slot found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// The event, whole.
    Event(Fields),
    /// Not complete (yet): unclaimed, being written, given up, or its writer died; `seq` is
    /// what the slot held.
    NotYet,
    /// A later event took the slot: event `n` is lost to the reader.
    Overwritten,
    /// The fields disagree with the check word: a stalled writer's late stores tore it.
    Torn,
}

/// Reads event `n` from `slot` (the slot `n` maps to).
pub(crate) fn read(slot: &EventView, n: u64) -> Read {
    let done = writing_seq(n).wrapping_add(1);
    // Acquire: pairs with the completing CAS (Release): the fields it published are what the
    // loads below see, or later ones.
    let before = slot.seq.load(Ordering::Acquire);
    if before != done {
        // A later event's writing or complete seq is larger; an earlier lap's, or the
        // odd seq of this event being written, smaller.
        return if before.wrapping_sub(done) < u64::MAX / 2 {
            Read::Overwritten
        } else {
            Read::NotYet
        };
    }
    let ts_ns = slot.ts_ns.load(Ordering::Relaxed);
    let value = slot.value.load(Ordering::Relaxed);
    let arg = slot.arg.load(Ordering::Relaxed);
    let pid = slot.pid.load(Ordering::Relaxed);
    let tid = slot.tid.load(Ordering::Relaxed);
    let meta = slot.meta.load(Ordering::Relaxed);
    // Acquire: pairs with a later writer's Release fence after its claiming CAS: if any load
    // above saw one of its fields, the `seq` below is its odd one.
    fence(Ordering::Acquire);
    if slot.seq.load(Ordering::Relaxed) != before {
        return Read::Overwritten;
    }
    let fields = Fields {
        ts_ns,
        value,
        arg: (meta >> 24 & 1 == 1).then_some(arg),
        pid,
        tid,
        name: meta as u16,
        kind: (meta >> 16) as u8,
    };
    if (meta >> 32) as u32 != fields.check(n) || (meta >> 25) & 0x7f != 0 {
        return Read::Torn;
    }
    Read::Event(fields)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn fields(ts_ns: u64) -> Fields {
        Fields {
            ts_ns,
            value: 7,
            arg: Some(3),
            pid: 10,
            tid: 11,
            name: 2,
            kind: 1,
        }
    }

    fn ring(slots: usize) -> (AtomicU64, AtomicU64, Vec<EventView>) {
        let events = (0..slots).map(|_| EventView::new()).collect();
        (AtomicU64::new(0), AtomicU64::new(0), events)
    }

    #[test]
    fn events_read_back_until_a_later_lap_overwrites_them() {
        let (head, dropped, events) = ring(4);
        for t in 0..6 {
            assert!(record(&head, &dropped, &events, &fields(t)));
        }
        assert_eq!(read(&events[0], 0), Read::Overwritten);
        assert_eq!(read(&events[1], 1), Read::Overwritten);
        for n in 2..6u64 {
            assert_eq!(read(&events[(n % 4) as usize], n), Read::Event(fields(n)));
        }
        assert_eq!(read(&events[2], 6), Read::NotYet);
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_slot_still_written_by_the_previous_lap_is_dropped_and_counted() {
        let (head, dropped, events) = ring(4);
        // Event 1's writer claimed its slot and stalls.
        head.store(2, Ordering::Relaxed);
        events[1].seq.store(writing_seq(1), Ordering::Relaxed);
        head.store(5, Ordering::Relaxed);
        assert!(!record(&head, &dropped, &events, &fields(5)));
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(read(&events[1], 5), Read::NotYet);
    }

    #[test]
    fn a_writer_dead_two_laps_back_is_taken_over() {
        let (head, dropped, events) = ring(4);
        events[1].seq.store(writing_seq(1), Ordering::Relaxed);
        head.store(9, Ordering::Relaxed);
        assert!(record(&head, &dropped, &events, &fields(9)));
        assert_eq!(read(&events[1], 9), Read::Event(fields(9)));
        assert_eq!(read(&events[1], 1), Read::Overwritten);
    }

    #[test]
    fn a_field_changed_after_completion_is_torn() {
        let (head, dropped, events) = ring(4);
        record(&head, &dropped, &events, &fields(1));
        events[0].value.store(8, Ordering::Relaxed);
        assert_eq!(read(&events[0], 0), Read::Torn);
        events[0].value.store(7, Ordering::Relaxed);
        events[0].meta.fetch_or(1 << 30, Ordering::Relaxed);
        assert_eq!(read(&events[0], 0), Read::Torn);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn fields(ts_ns: u64) -> Fields {
        Fields {
            ts_ns,
            value: ts_ns * 3,
            arg: Some(ts_ns + 1),
            pid: 1,
            tid: ts_ns as u32,
            name: 1,
            kind: 1,
        }
    }

    /// A reader racing the writer gets the event whole or not at all.
    #[test]
    fn a_reader_never_accepts_a_half_written_event() {
        loom::model(|| {
            let head = Arc::new(AtomicU64::new(0));
            let dropped = Arc::new(AtomicU64::new(0));
            let events = Arc::new([EventView::new()]);
            let (h, d, e) = (head.clone(), dropped.clone(), events.clone());
            let writer = thread::spawn(move || assert!(record(&h, &d, &e[..], &fields(5))));
            match read(&events[0], 0) {
                Read::Event(f) => assert_eq!(f, fields(5)),
                Read::NotYet => {}
                other => panic!("{other:?}"),
            }
            writer.join().unwrap();
            assert_eq!(read(&events[0], 0), Read::Event(fields(5)));
        });
    }

    /// Two writers on one slot: every event is written or counted dropped, and what the slot
    /// holds at the end is one of them, whole.
    #[test]
    fn two_writers_on_one_slot_write_or_count_every_event() {
        loom::model(|| {
            let head = Arc::new(AtomicU64::new(0));
            let dropped = Arc::new(AtomicU64::new(0));
            let events = Arc::new([EventView::new()]);
            let spawn = |t: u64| {
                let (h, d, e) = (head.clone(), dropped.clone(), events.clone());
                thread::spawn(move || record(&h, &d, &e[..], &fields(t)))
            };
            let (a, b) = (spawn(1), spawn(2));
            let written = u64::from(a.join().unwrap()) + u64::from(b.join().unwrap());
            assert_eq!(written + dropped.load(Ordering::Relaxed), 2);
            let found = [0, 1].map(|n| read(&events[0], n));
            let whole = found
                .iter()
                .filter(|r| matches!(r, Read::Event(f) if *f == fields(1) || *f == fields(2)))
                .count();
            assert!(found.iter().all(|r| !matches!(r, Read::Torn)));
            assert_eq!(whole as u64, written.min(1));
        });
    }

    /// A writer stalled two laps back wakes while its slot is taken over: its late stores
    /// never pass for an event (the reader gets the new event whole, or sees it torn).
    #[test]
    fn a_stalled_writers_late_stores_are_never_read_as_an_event() {
        loom::model(|| {
            let head = Arc::new(AtomicU64::new(2));
            let dropped = Arc::new(AtomicU64::new(0));
            let events = Arc::new([EventView::new()]);
            // Event 0's writer claimed the slot, then stalled for two laps.
            events[0].seq.store(writing_seq(0), Ordering::Relaxed);
            let stale = events.clone();
            let late = thread::spawn(move || {
                let slot = &stale[0];
                slot.ts_ns.store(99, Ordering::Relaxed);
                slot.value.store(99, Ordering::Relaxed);
                let done = slot.seq.compare_exchange(
                    writing_seq(0),
                    writing_seq(0) + 1,
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                done.is_ok()
            });
            let took = record(&head, &dropped, &events[..], &fields(7));
            let late_completed = late.join().unwrap();
            match read(&events[0], 2) {
                Read::Event(f) => assert_eq!(f, fields(7)),
                Read::Torn => assert!(took),
                Read::NotYet | Read::Overwritten => assert!(!took || late_completed),
            }
        });
    }
}
