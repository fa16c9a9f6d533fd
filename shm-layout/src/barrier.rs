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
//!
//! `arrived == parties` means the last party has arrived and is running the barrier's action;
//! nobody is released until it ends the generation.
//!
//! # Party slots
//! After the 64-byte header come [`barrier_slots`]`(parties)` [`BarrierPartySlot`]s, so that a
//! party killed while it waits can be told from one that is merely slow. A party claims a
//! free slot (its thread's record, by compare-and-swap) *before* it arrives, writes the
//! generation and arrival index it is about to take into `tag`, and frees the slot when its
//! wait returns. Waiters check the record of the slot tagged with the next arrival index of
//! their generation; a dead one breaks the generation. Twice `parties` slots leave room for
//! parties of a generation that has ended but which have not yet run to free their slot.
//!
//! | `tag` bits | field                                         |
//! |------------|-----------------------------------------------|
//! | 0          | valid: 1 once a party has written it          |
//! | 16..=31    | arrival index the party is taking             |
//! | 32..=63    | generation the party is arriving in           |

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

/// One party's slot after the barrier's header (see the module's table for `tag`).
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BarrierPartySlot {
    /// The waiting thread's identity record; 0 when the slot is free.
    pub record: u64,
    /// Generation and arrival index the holder is taking (valid bit 0).
    pub tag: u64,
}

/// Bit of a slot's `tag`: it has been written.
pub const BARRIER_TAG_VALID: u64 = 1;
/// Shift of the arrival index in a slot's `tag`.
pub const BARRIER_TAG_INDEX_SHIFT: u32 = 16;
/// Shift of the generation in a slot's `tag`.
pub const BARRIER_TAG_GENERATION_SHIFT: u32 = 32;

/// Number of party slots a barrier for `parties` has.
pub const fn barrier_slots(parties: u32) -> u32 {
    parties.saturating_mul(2)
}

/// Bytes a barrier for `parties` occupies: the header and its party slots.
pub const fn barrier_size(parties: u32) -> u64 {
    size_of::<BarrierLayout>() as u64
        + barrier_slots(parties) as u64 * size_of::<BarrierPartySlot>() as u64
}

const _: () = {
    assert!(size_of::<BarrierLayout>() == 64);
    assert!(size_of::<BarrierPartySlot>() == 16);
    assert!(offset_of!(BarrierPartySlot, record) == 0);
    assert!(offset_of!(BarrierPartySlot, tag) == 8);
    assert!(offset_of!(BarrierLayout, seq) == 0);
    assert!(offset_of!(BarrierLayout, parties) == 4);
    assert!(offset_of!(BarrierLayout, state) == 8);
    assert!(BARRIER_HISTORY_SHIFT + BARRIER_HISTORY_LEN == BARRIER_GENERATION_SHIFT);
};
