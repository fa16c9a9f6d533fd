//! A role record in shared memory: one `u64` word holding the [`Record`] of the process that
//! holds a role (ring writer, reader, server, device server), 0 when nobody does.
//!
//! Taking a role is one compare-and-swap from "free or held by a dead process" to our record,
//! so two survivors racing to replace a dead holder cannot both win; giving it up is a
//! compare-and-swap back to 0 that does nothing if a survivor already took it over.

use super::{AtomicU64, Ordering, SharedWord};
use crate::sys::identity::Record;

/// A shared word holding a role holder's [`Record`].
#[repr(transparent)]
pub(crate) struct RecordWord(AtomicU64);

// SAFETY: a transparent wrapper of an atomic.
unsafe impl SharedWord for RecordWord {
    type Plain = u64;
    fn load_plain(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a role could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeldBy(pub Record);

impl RecordWord {
    /// A free role (heap use: tests and loom models).
    #[allow(dead_code)]
    pub(crate) fn new(raw: u64) -> RecordWord {
        RecordWord(AtomicU64::new(raw))
    }

    /// The current holder (`Record::NONE`: free).
    pub(crate) fn load(&self) -> Record {
        // Acquire: pairs with the AcqRel claim, so what the holder wrote before taking the
        // role is visible with its record.
        Record::from_raw(self.0.load(Ordering::Acquire))
    }

    /// The raw word, for the loom-checked protocols that take an `AtomicU64`.
    pub(crate) fn atomic(&self) -> &AtomicU64 {
        &self.0
    }

    /// Takes the role for `me` if it is free or its holder's process is dead. Returns the
    /// dead holder replaced (`Record::NONE` if the role was free), or who holds it.
    pub(crate) fn claim_if_dead(&self, me: Record) -> Result<Record, HeldBy> {
        loop {
            let current = self.load();
            if !current.process_dead() {
                return Err(HeldBy(current));
            }
            // AcqRel: Acquire pairs with the previous holder's release (its last writes are
            // visible to the successor); Release publishes our claim.
            if self
                .0
                .compare_exchange(current.raw(), me.raw(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(current);
            }
        }
    }

    /// Takes the role only if it is free.
    pub(crate) fn claim_free(&self, me: Record) -> bool {
        self.0
            .compare_exchange(0, me.raw(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Gives the role up if `me` still holds it (a survivor may have taken it over).
    pub(crate) fn release(&self, me: Record) {
        // Release: pairs with the next claimer's Acquire.
        let _ = self
            .0
            .compare_exchange(me.raw(), 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}
