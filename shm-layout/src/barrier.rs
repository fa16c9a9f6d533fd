//! The barrier: a 64-bit state word, a 32-bit futex sequence word, and the party count.
//!
//! `state` packs everything an arrival decides on, so an arrival is one compare-and-swap:
//!
//! | bits    | field      | meaning                                                          |
//! |---------|------------|------------------------------------------------------------------|
//! | 0..=15  | arrived    | parties waiting in the current generation                        |
//! | 16      | broken     | sticky: arrivals fail until `reset`                              |
//! | 17..=31 | history    | shift register: bit *k* is 1 when the generation *k + 1* back ended broken |
//! | 32..=63 | generation | incremented each time a generation ends (completed or broken)    |
//!
//! Every change of `state` that a waiter must notice is followed by an increment of `seq` and
//! a futex wake on it; waiters sleep on `seq`, never on `state` (a futex word is 32 bits).

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bit of `state`: the barrier is broken.
pub const BARRIER_BROKEN: u64 = 1 << 16;
/// Mask of the `arrived` field of `state`.
pub const BARRIER_ARRIVED_MASK: u64 = 0xFFFF;
/// Shift of the `history` field of `state`.
pub const BARRIER_HISTORY_SHIFT: u32 = 17;
/// Number of generations `history` remembers.
pub const BARRIER_HISTORY_LEN: u32 = 15;
/// Shift of the `generation` field of `state`.
pub const BARRIER_GENERATION_SHIFT: u32 = 32;
/// Largest party count the 16-bit `arrived` field can count.
pub const BARRIER_MAX_PARTIES: u32 = 0xFFFF;

/// A process-shared reusable barrier (like Python's `threading.Barrier`).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BarrierLayout {
    /// Futex word: incremented after every change of `state`.
    pub seq: u32,
    /// Number of parties, fixed at creation (1..=[`BARRIER_MAX_PARTIES`]).
    pub parties: u32,
    /// Packed state (see the module's table).
    pub state: u64,
    /// Reserved; zero.
    pub reserved: [u64; 6],
}

const _: () = {
    assert!(size_of::<BarrierLayout>() == 64);
    assert!(offset_of!(BarrierLayout, seq) == 0);
    assert!(offset_of!(BarrierLayout, parties) == 4);
    assert!(offset_of!(BarrierLayout, state) == 8);
    assert!(BARRIER_HISTORY_SHIFT + BARRIER_HISTORY_LEN == BARRIER_GENERATION_SHIFT);
};
