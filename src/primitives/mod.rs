//! The process-shared synchronisation primitives: robust reentrant [`Mutex`], [`Event`] and
//! [`Barrier`].
//!
//! Each primitive is a `#[repr(C)]` state struct of atomics whose bytes match its layout type in
//! `shm-layout` (asserted at compile time), an algorithm over that struct written against the
//! `sync` facade, and a handle that keeps the memory alive. The same code runs on a segment
//! mapping and on the heap (where Miri and loom can check it); nothing here knows which.
//!
//! Their semantics are `threading`'s: the mutex is an `RLock` (owner re-acquires, only the
//! owner releases, depth readable and saved/restored whole), the event a `threading.Event`
//! (`wait` returns whether it was set), the barrier a `threading.Barrier` (action, `n_waiting`,
//! `broken`, `reset`, `abort`). A holder's death follows the one owner-died contract in
//! `ARCHITECTURE.md`.

mod barrier;
mod event;
pub(crate) mod mutex;
mod place;

pub use barrier::{Barrier, BarrierAction, BarrierError, BarrierWait};
pub(crate) use barrier::{BarrierState, PartySlot};
pub(crate) use event::EventState;
pub use event::{Event, EventError};
pub(crate) use mutex::MutexState;
pub use mutex::{
    lock_all, Acquired, Held, LockError, Mutex, MutexGuard, OwnerDiedGuard, OwnerInfo, SavedHold,
    UnlockError, DEATH_CHECK_INTERVAL,
};
pub(crate) use place::{StateRef, StateSlice};

/// The default deadline for acquiring a mutex: 60 s, the Python system's `DEFAULT_TIMEOUT`.
pub const DEFAULT_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[cfg(all(test, loom))]
mod loom_tests;
