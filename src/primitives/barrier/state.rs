//! The barrier's shared words and the packed state codec: one 64-bit word holding the arrival
//! count, the broken flag, the outcome history and the generation, decided by one CAS.

use crate::sync::{shared_view, Reserved};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use shm_layout::{
    BarrierLayout, BarrierPartySlot, BARRIER_ARRIVED_MASK, BARRIER_BROKEN,
    BARRIER_GENERATION_SHIFT, BARRIER_HISTORY_LEN, BARRIER_HISTORY_SHIFT,
    BARRIER_TAG_GENERATION_SHIFT, BARRIER_TAG_INDEX_SHIFT, BARRIER_TAG_VALID,
};

shared_view! {
    /// The barrier's shared state; byte-for-byte [`shm_layout::BarrierLayout`].
    pub(crate) struct BarrierState mirrors BarrierLayout, align(64) {
        pub(super) seq: AtomicU32,
        pub(super) parties: AtomicU32,
        pub(super) state: AtomicU64,
        pub(super) reserved: Reserved<[u64; 6]>,
    }
}

shared_view! {
    /// One party slot; byte-for-byte [`shm_layout::BarrierPartySlot`].
    pub(crate) struct PartySlot mirrors BarrierPartySlot, align(8) {
        pub(super) record: AtomicU64,
        pub(super) tag: AtomicU64,
    }
}

impl BarrierState {
    /// A barrier for `parties` (checked by the caller: 1..=`BARRIER_MAX_PARTIES`).
    pub(crate) fn new(parties: u32) -> Self {
        BarrierState {
            seq: AtomicU32::new(0),
            parties: AtomicU32::new(parties),
            state: AtomicU64::new(0),
            reserved: Reserved::new(),
        }
    }
}

impl BarrierState {
    /// The stored party count, unchecked (for the attach-time validator).
    pub(crate) fn parties_raw(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }
}

impl PartySlot {
    pub(crate) fn new() -> Self {
        PartySlot {
            record: AtomicU64::new(0),
            tag: AtomicU64::new(0),
        }
    }
}

/// The tag a party writes into its slot before it arrives at `index` of `generation`.
pub(super) fn tag(generation: u32, index: u32) -> u64 {
    u64::from(generation) << BARRIER_TAG_GENERATION_SHIFT
        | u64::from(index) << BARRIER_TAG_INDEX_SHIFT
        | BARRIER_TAG_VALID
}

/// The generation a tag names, if it was ever written.
pub(super) fn tag_generation(tag: u64) -> Option<u32> {
    (tag & BARRIER_TAG_VALID != 0).then_some((tag >> BARRIER_TAG_GENERATION_SHIFT) as u32)
}

/// The decoded `state` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Packed {
    pub(super) arrived: u32,
    pub(super) broken: bool,
    pub(super) history: u32,
    pub(super) generation: u32,
}

impl Packed {
    pub(super) fn decode(raw: u64) -> Packed {
        Packed {
            arrived: (raw & BARRIER_ARRIVED_MASK) as u32,
            broken: raw & BARRIER_BROKEN != 0,
            history: ((raw >> BARRIER_HISTORY_SHIFT) & ((1 << BARRIER_HISTORY_LEN) - 1)) as u32,
            generation: (raw >> BARRIER_GENERATION_SHIFT) as u32,
        }
    }

    pub(super) fn encode(self) -> u64 {
        u64::from(self.arrived)
            | if self.broken { BARRIER_BROKEN } else { 0 }
            | (u64::from(self.history) & ((1 << BARRIER_HISTORY_LEN) - 1)) << BARRIER_HISTORY_SHIFT
            | u64::from(self.generation) << BARRIER_GENERATION_SHIFT
    }

    /// This state with its generation ended (completed, or broken), nobody waiting.
    pub(super) fn end_generation(self, broken: bool) -> Packed {
        Packed {
            arrived: 0,
            broken: self.broken,
            history: (self.history << 1) | u32::from(broken),
            generation: self.generation.wrapping_add(1),
        }
    }

    /// This state's generation ended broken, and the barrier broken until `reset`.
    pub(super) fn broken_off(self) -> Packed {
        Packed {
            broken: true,
            ..self
        }
        .end_generation(true)
    }

    /// How generation `g` ended, if this state remembers it.
    pub(super) fn outcome_of(self, g: u32) -> Option<bool> {
        let back = self.generation.wrapping_sub(g);
        (1..=BARRIER_HISTORY_LEN)
            .contains(&back)
            .then(|| self.history >> (back - 1) & 1 == 1)
    }
}
