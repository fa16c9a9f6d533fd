//! The trace buffer: spans, instants and counters from every process, in one bounded ring of
//! 64-byte events (the oldest overwritten), with a table of the names they use.
//!
//! Block layout: [`TraceHeader`] (128 bytes), then `names` × [`TraceNameEntry`] (64 bytes
//! each), then `events` × [`TraceEvent`] (64 bytes each), `events` a power of two.
//!
//! An event's `seq` says where it is in its life; event number `n` (the `n`-th claimed from
//! `head`, counting from 0) lives in slot `n % events`:
//!
//! | `seq` | meaning |
//! |---|---|
//! | 0 | never written |
//! | `2n + 1` | event `n` is being written (a writer killed here leaves it so) |
//! | `2n + 2` | event `n` is complete: its fields and `check` agree |
//!
//! A writer claims `n = head.fetch_add(1)`, then moves its slot's `seq` from an earlier
//! lap's value to `2n + 1` with one CAS, writes the fields, and CASes `2n + 1` to `2n + 2`
//! (Release). It gives the event up (counting it in `dropped`) when the slot is not from an
//! earlier lap, or when the previous lap's writer is still writing it; a writer odd from two
//! or more laps back is taken over (it died, or stalled for two laps: `check` protects readers
//! from its late stores). A reader copies a slot between two reads of `seq`; the copy is event
//! `n` when both are `2n + 2` and `check` matches [`trace_check`] of the fields.
//!
//! A name entry's `word` is `hash << 32 | len << 8 | state` (`state` 0 free, 1 being written,
//! 2 ready); a name is found by probing from `hash % names`, and an event names it by index.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Longest name, in bytes of UTF-8.
pub const TRACE_NAME_MAX: usize = 56;
/// Fewest events a buffer holds.
pub const TRACE_MIN_EVENTS: u32 = 64;
/// Most events a buffer holds.
pub const TRACE_MAX_EVENTS: u32 = 1 << 24;
/// Most names a buffer holds.
pub const TRACE_MAX_NAMES: u32 = 4096;
/// Name entry state: free.
pub const TRACE_NAME_FREE: u64 = 0;
/// Name entry state: claimed, its bytes being written.
pub const TRACE_NAME_WRITING: u64 = 1;
/// Name entry state: ready (final).
pub const TRACE_NAME_READY: u64 = 2;

/// What an event is (its `kind`).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKind {
    /// A span: `ts_ns` its start, `value` its duration in nanoseconds.
    Span = 1,
    /// An instant: `ts_ns` when.
    Instant = 2,
    /// A counter's value at `ts_ns`: `value` is an `f64`'s bits.
    Counter = 3,
    /// The thread `tid` is called `name` (`value` 0), or its process is (`value` 1).
    Name = 4,
}

impl TraceKind {
    /// Decodes a raw value.
    pub const fn from_raw(raw: u8) -> Option<TraceKind> {
        match raw {
            1 => Some(Self::Span),
            2 => Some(Self::Instant),
            3 => Some(Self::Counter),
            4 => Some(Self::Name),
            _ => None,
        }
    }
}

/// The buffer's header. Line 0 holds only `head`, which every writer increments; line 1 is
/// geometry (written once) and the drop count.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct TraceHeader {
    /// Events claimed so far: the next event's number.
    pub head: u64,
    /// Reserved; zero.
    pub reserved0: [u64; 7],
    /// Event slots (a power of two, [`TRACE_MIN_EVENTS`]..=[`TRACE_MAX_EVENTS`]).
    pub events: u32,
    /// Name entries (1..=[`TRACE_MAX_NAMES`]).
    pub names: u32,
    /// Offset of the first name entry from the buffer's start (128).
    pub names_offset: u64,
    /// Offset of the first event slot from the buffer's start.
    pub events_offset: u64,
    /// Events writers gave up (their slot was busy) or lost (taken over).
    pub dropped: u64,
    /// Reserved; zero.
    pub reserved1: [u64; 4],
}

/// One name of the table.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct TraceNameEntry {
    /// `hash << 32 | len << 8 | state` (see the module's documentation).
    pub word: u64,
    /// The name's UTF-8 bytes (`len` of them).
    pub bytes: [u8; TRACE_NAME_MAX],
}

/// One event.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct TraceEvent {
    /// See the module's table.
    pub seq: u64,
    /// CLOCK_MONOTONIC nanoseconds: a span's start, or when.
    pub ts_ns: u64,
    /// A span's duration in ns, a counter's `f64` bits, a name's target (0 thread, 1 process).
    pub value: u64,
    /// The caller's argument (a frame id, say); 0 when none.
    pub arg: u64,
    /// The recording process.
    pub pid: u32,
    /// The recording thread.
    pub tid: u32,
    /// `check << 32 | has_arg << 24 | kind << 16 | name`: the name's index in the name
    /// table, the [`TraceKind`], 1 when `arg` was given, and [`trace_check`] of the fields.
    pub meta: u64,
    /// Reserved; zero.
    pub reserved: [u64; 2],
}

/// The check word of event `n`'s fields (`pid_tid` is `tid << 32 | pid`, `meta_low` the
/// low half of `meta`) (a multiply-rotate mix, not cryptographic):
/// what a reader compares to tell a whole event from one a stalled writer's late stores tore.
#[inline]
pub const fn trace_check(
    n: u64,
    ts_ns: u64,
    value: u64,
    arg: u64,
    pid_tid: u64,
    meta_low: u32,
) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = n.wrapping_mul(K);
    h = (h ^ ts_ns).wrapping_mul(K).rotate_left(29);
    h = (h ^ value).wrapping_mul(K).rotate_left(29);
    h = (h ^ arg).wrapping_mul(K).rotate_left(29);
    h = (h ^ pid_tid).wrapping_mul(K).rotate_left(29);
    h = (h ^ meta_low as u64).wrapping_mul(K);
    (h >> 32) as u32
}

/// The hash a name is filed under (FNV-1a, folded to 32 bits, never 0).
pub const fn trace_name_hash(name: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < name.len() {
        h ^= name[i] as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
        i += 1;
    }
    let folded = (h ^ (h >> 32)) as u32;
    if folded == 0 {
        1
    } else {
        folded
    }
}

const _: () = {
    assert!(size_of::<TraceHeader>() == 128);
    assert!(offset_of!(TraceHeader, head) == 0);
    assert!(offset_of!(TraceHeader, events) == 64);
    assert!(offset_of!(TraceHeader, names) == 68);
    assert!(offset_of!(TraceHeader, names_offset) == 72);
    assert!(offset_of!(TraceHeader, events_offset) == 80);
    assert!(offset_of!(TraceHeader, dropped) == 88);
    assert!(size_of::<TraceNameEntry>() == 64);
    assert!(offset_of!(TraceNameEntry, bytes) == 8);
    assert!(size_of::<TraceEvent>() == 64);
    assert!(offset_of!(TraceEvent, ts_ns) == 8);
    assert!(offset_of!(TraceEvent, value) == 16);
    assert!(offset_of!(TraceEvent, arg) == 24);
    assert!(offset_of!(TraceEvent, pid) == 32);
    assert!(offset_of!(TraceEvent, tid) == 36);
    assert!(offset_of!(TraceEvent, meta) == 40);
};
