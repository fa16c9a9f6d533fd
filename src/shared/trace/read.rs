//! Reading a trace buffer from a cursor: every event from the cursor's number up to the
//! buffer's head, once, with every event the reader could not get counted by why.

use super::protocol::{self, Read};
use super::TraceBuffer;
use crate::sys::clock::monotonic_ns;
use shm_layout::TraceKind;

/// How long a reader waits on an event that is not complete before counting it unfinished
/// and reading on (a writer takes microseconds unless it was preempted, killed, or gave the
/// event up).
const PATIENCE_NS: u64 = 20_000_000;

/// Where a reader is in a trace buffer, and what it missed. Made by
/// [`TraceBuffer::cursor_from_now`] or [`TraceBuffer::cursor_from_oldest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceCursor {
    next: u64,
    overwritten: u64,
    torn: u64,
    unfinished: u64,
    waiting: Option<(u64, u64)>,
}

impl TraceCursor {
    pub(super) fn new(next: u64) -> TraceCursor {
        TraceCursor {
            next,
            overwritten: 0,
            torn: 0,
            unfinished: 0,
            waiting: None,
        }
    }

    /// The number of the next event this cursor reads.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Events overwritten before this reader got to them (it fell a whole buffer behind).
    pub fn overwritten(&self) -> u64 {
        self.overwritten
    }

    /// Events whose bytes did not agree with their check word (a stalled writer's late
    /// stores, or bytes written by something that is not a shmkit writer).
    pub fn torn(&self) -> u64 {
        self.torn
    }

    /// Events never completed: given up by their writer (see [`TraceBuffer::dropped`]), or
    /// left half written by a writer that died.
    pub fn unfinished(&self) -> u64 {
        self.unfinished
    }

    /// Every event the reader missed, for whatever reason.
    pub fn missed(&self) -> u64 {
        self.overwritten + self.torn + self.unfinished
    }
}

/// One event read from a trace buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceRecord {
    /// The event's number in its buffer (the order writers claimed them in).
    pub number: u64,
    /// What it is.
    pub kind: TraceRecordKind,
    /// Its name's index in the buffer's table ([`TraceBuffer::name_at`]).
    pub name: u16,
    /// `CLOCK_MONOTONIC` nanoseconds: a span's start, or when.
    pub ts_ns: u64,
    /// The recording process.
    pub pid: u32,
    /// The recording thread.
    pub tid: u32,
    /// The recorder's argument (a frame id, say).
    pub arg: Option<u64>,
}

/// What a [`TraceRecord`] is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceRecordKind {
    /// A span of `duration_ns` from `ts_ns`.
    Span {
        /// How long it lasted.
        duration_ns: u64,
    },
    /// An instant.
    Instant,
    /// A counter's value.
    Counter {
        /// The value.
        value: f64,
    },
    /// The thread `tid` is called `name`.
    ThreadName,
    /// The process `pid` is called `name`.
    ProcessName,
}

impl TraceBuffer {
    /// Appends to `out` every event from `cursor` that is complete, in order, and moves the
    /// cursor past them. It stops at an event still being written (to read it next time),
    /// unless that event has stayed incomplete for 20 ms, which is then counted unfinished.
    /// Call it every few milliseconds to follow the buffer without missing events; call
    /// [`read_rest`](Self::read_rest) once at the end.
    pub fn read(&self, cursor: &mut TraceCursor, out: &mut Vec<TraceRecord>) {
        self.read_from(cursor, out, false);
    }

    /// As [`read`](Self::read), but counts every incomplete event unfinished instead of
    /// stopping at it: the last read of a capture.
    pub fn read_rest(&self, cursor: &mut TraceCursor, out: &mut Vec<TraceRecord>) {
        self.read_from(cursor, out, true);
    }

    fn read_from(&self, cursor: &mut TraceCursor, out: &mut Vec<TraceRecord>, finish: bool) {
        let slots = u64::from(self.geometry.events);
        let head = self.head();
        let oldest = head.saturating_sub(slots);
        if cursor.next < oldest {
            cursor.overwritten = cursor.overwritten.saturating_add(oldest - cursor.next);
            cursor.next = oldest;
        }
        // A head behind the cursor (moved back by a vandal) leaves nothing to read.
        let events = self.events();
        while cursor.next < head {
            let n = cursor.next;
            match protocol::read(&events[(n & (slots - 1)) as usize], n) {
                Read::Event(f) => match record(n, &f) {
                    Some(r) => out.push(r),
                    None => cursor.torn += 1,
                },
                Read::Overwritten => cursor.overwritten += 1,
                Read::Torn => cursor.torn += 1,
                Read::NotYet => {
                    let now = monotonic_ns();
                    let since = match cursor.waiting {
                        Some((w, since)) if w == n => since,
                        _ => now,
                    };
                    if !finish && now.saturating_sub(since) < PATIENCE_NS {
                        cursor.waiting = Some((n, since));
                        return;
                    }
                    cursor.unfinished += 1;
                }
            }
            cursor.waiting = None;
            cursor.next = n + 1;
        }
    }
}

/// The record an event's fields make; `None` for a kind no writer records.
fn record(number: u64, f: &protocol::Fields) -> Option<TraceRecord> {
    let kind = match TraceKind::from_raw(f.kind)? {
        TraceKind::Span => TraceRecordKind::Span {
            duration_ns: f.value,
        },
        TraceKind::Instant => TraceRecordKind::Instant,
        TraceKind::Counter => TraceRecordKind::Counter {
            value: f64::from_bits(f.value),
        },
        TraceKind::Name if f.value == 0 => TraceRecordKind::ThreadName,
        TraceKind::Name if f.value == 1 => TraceRecordKind::ProcessName,
        TraceKind::Name => return None,
    };
    Some(TraceRecord {
        number,
        kind,
        name: f.name,
        ts_ns: f.ts_ns,
        pid: f.pid,
        tid: f.tid,
        arg: f.arg,
    })
}
