//! The event: one futex word in its own cache line.
//!
//! | bit               | meaning                                              |
//! |-------------------|------------------------------------------------------|
//! | `EVENT_SET`       | the event is set                                     |
//! | `EVENT_WAITERS`   | some waiter may be asleep in the futex: `set` wakes  |
//!
//! Other bits are zero; a word with other bits set is corrupt.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bit of `word`: the event is set.
pub const EVENT_SET: u32 = 1;
/// Bit of `word`: a waiter may be sleeping, so `set` must call futex wake.
pub const EVENT_WAITERS: u32 = 2;

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
};
