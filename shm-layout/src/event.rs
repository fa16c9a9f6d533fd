//! The event: one futex word in its own cache line.
//!
//! | bits                        | meaning                                                  |
//! |-----------------------------|----------------------------------------------------------|
//! | 0..31 (`EVENT_COUNTER_MASK`) | the set/clear counter: odd while set (`EVENT_SET` is its low bit) |
//! | 31 (`EVENT_WAITERS`)        | some waiter may be asleep in the futex: `set` wakes      |
//!
//! `set` turns an even counter odd (`fetch_or(EVENT_SET)`, nothing when already set); `clear`
//! turns an odd counter even (`+1`, wrapping within the mask). A waiter remembers the counter
//! it found on entry: any change means a `set` happened since, so it returns even if a
//! `clear` followed at once (Python's `threading.Event`: every thread waiting when `set` is
//! called is awakened). The counter repeats only after 2^30 set/clear pairs.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bit of `word`: the event is set (the counter is odd).
pub const EVENT_SET: u32 = 1;
/// Bit of `word`: a waiter may be sleeping, so `set` must call futex wake.
pub const EVENT_WAITERS: u32 = 1 << 31;
/// Bits of `word` holding the set/clear counter.
pub const EVENT_COUNTER_MASK: u32 = !EVENT_WAITERS;

/// A process-shared event (a flag with waiters, like Python's `threading.Event`).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct EventLayout {
    /// The futex word (see the module's table).
    pub word: u32,
    /// Reserved; zero.
    pub reserved0: u32,
    /// Reserved; zero.
    pub reserved: [u64; 7],
}

const _: () = {
    assert!(size_of::<EventLayout>() == 64);
    assert!(offset_of!(EventLayout, word) == 0);
    assert!(EVENT_SET & EVENT_COUNTER_MASK == EVENT_SET);
};
