//! The one place that chooses between std atomics and loom's model-checked ones.
//!
//! Algorithms in `primitives` import `AtomicU32`, `AtomicU64`, `Ordering` and the futex and
//! spin helpers from here and carry no `cfg` of their own. Under `--cfg loom` the atomics are
//! loom's and the futex is modelled as "re-check, then yield" (a futex wait may always return
//! spuriously, so every algorithm already tolerates that), which lets loom explore every
//! interleaving of the same code that runs in the segment.

mod patience;
#[cfg(not(loom))]
mod record_word;
mod view;
mod wait;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64};

pub use patience::{Interrupt, InvalidTimeout, NoInterrupt, Timeout, INTERRUPT_POLL};
pub(crate) use patience::{Stop, Waiting};
#[cfg(not(loom))]
pub(crate) use record_word::RecordWord;
pub(crate) use view::{shared_view, size_of_field, Reserved, SharedWord};
pub use wait::WaitStrategy;
pub(crate) use wait::{futex_wait, futex_wake, spin_hint, SpinCounter};
