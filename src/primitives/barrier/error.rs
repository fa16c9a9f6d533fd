//! What a barrier wait tells its caller, why it can fail, and the action's type.

use std::time::Duration;

/// What a successful [`Barrier::wait`](super::Barrier::wait) tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWait {
    /// Arrival order in this generation, `0..parties` (`parties - 1` arrived last), as the
    /// value `threading.Barrier.wait` returns.
    pub index: u32,
    /// The generation that was completed.
    pub generation: u32,
}

impl BarrierWait {
    /// Exactly one caller per generation is the leader: the last to arrive (the one that ran
    /// the action).
    pub fn is_leader(&self, parties: u32) -> bool {
        self.index + 1 == parties
    }
}

/// Why a barrier wait failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarrierError {
    /// The barrier was broken (by another party's timeout, interrupt, death or failed action,
    /// or by `abort` or `reset`); call `reset` before using it again.
    #[error("barrier is broken (a party timed out, was interrupted or died, the action failed, or it was aborted or reset)")]
    Broken,
    /// This caller's deadline passed; the barrier is now broken for every party. (A caller
    /// that arrives while the last party runs the action waits for the next generation; if its
    /// deadline passes then, it gets this error and breaks nothing.)
    #[error("timed out after {waited:?} with {arrived} of {parties} parties arrived; the barrier is now broken")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
        /// Parties that had arrived.
        arrived: u32,
        /// Parties expected.
        parties: u32,
    },
    /// The caller's interrupt check said stop; the barrier is now broken for every party
    /// (the others will not wait for a party that left).
    #[error("interrupted while waiting at the barrier; the barrier is now broken")]
    Interrupted,
    /// The party that arrived after this caller died while waiting (or while arriving); this
    /// caller found it and broke the barrier for everyone.
    #[error("a party (thread {tid}) died while waiting at the barrier; the barrier is now broken")]
    PartyDied {
        /// The dead party's thread id (0 if its slot was gone).
        tid: u32,
    },
    /// This caller arrived last and the barrier's action returned an error; the barrier is
    /// broken for every party.
    #[error("the barrier action failed: {message}; the barrier is now broken")]
    ActionFailed {
        /// The action's error, as text.
        message: String,
    },
    /// The barrier's bytes hold values no shmkit process writes.
    #[error("corrupt barrier: {what}")]
    Corrupt {
        /// Which field.
        what: &'static str,
    },
}

/// What a barrier runs when its last party arrives: an error breaks the barrier.
pub type BarrierAction =
    dyn Fn() -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + Sync;
