//! shmkit: shared-memory IPC for laboratory hardware.
//!
//! Several processes share one memory-mapped [`Segment`]. In it live robust reentrant
//! [`Mutex`]es (a holder that dies is detected and its lock handed over as an "owner died"
//! outcome), [`Event`]s and [`Barrier`]s, all process-shared, all with deadlines. A call is an
//! atomic instruction on the uncontended path and a futex when it must wait.
//!
//! Layers, bottom up (see `ARCHITECTURE.md`): `shm-layout` (the bytes), `sys` (the only OS calls),
//! `sync` (atomics facade for loom), [`primitives`], [`segment`].
//!
//! ```no_run
//! use shmkit::{CreateOptions, Segment};
//! use std::time::Duration;
//!
//! let seg = Segment::create("lab", &CreateOptions::new(1 << 20))?;
//! // The first caller in any process creates each object; later callers get the same one.
//! let mutex = seg.mutex("stage")?;
//! let ready = seg.event("ready")?;
//! {
//!     let _guard = mutex.lock(Duration::from_secs(5))?.recover_with(|died| eprintln!("{:?} died", died.previous_owner()));
//!     // ... critical section ...
//! }
//! ready.set();
//! assert!(ready.wait(Duration::from_secs(1)), "set above, so no timeout");
//! Segment::unlink("lab")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
// Under loom only the primitives are built (no segment), leaving some helpers unused.
#![cfg_attr(loom, allow(dead_code, unused_imports, unused_macros))]

#[cfg(not(loom))]
pub mod codec;
#[cfg(not(loom))]
mod fault;
#[cfg(not(loom))]
pub mod inspect;
#[cfg(not(loom))]
pub mod os;
pub mod primitives;
#[cfg(not(loom))]
pub mod process;
#[cfg(not(loom))]
pub mod rings;
#[cfg(loom)]
mod shared {
    //! Under loom only the histogram's and the trace buffer's protocols are built (and model-checked).
    mod histogram {
        #[allow(dead_code)]
        pub(crate) mod protocol;
    }
    mod trace {
        #[allow(dead_code)]
        pub(crate) mod protocol;
    }
}
#[cfg(loom)]
mod rings {
    //! Under loom only the slot protocols are built (and model-checked).
    #[allow(dead_code)]
    mod cmd_state;
    #[allow(dead_code)]
    mod hold_count;
    #[allow(dead_code)]
    mod slot_word;
}
#[cfg(not(loom))]
pub mod segment;
#[cfg(not(loom))]
pub mod shared;
mod sync;
mod sys;
mod table;

pub use primitives::{
    lock_all, Acquired, Barrier, BarrierError, BarrierWait, Event, EventError, Held, LockError,
    Mutex, MutexGuard, OwnerDiedGuard, OwnerInfo, SavedHold, UnlockError, DEFAULT_LOCK_TIMEOUT,
};
#[cfg(not(loom))]
pub use segment::{
    CreateOptions, MemoryOptions, OpenOptions, Segment, SegmentError, SegmentObject, SegmentObjects,
};
#[cfg(not(loom))]
pub use shared::{
    BytesSpec, DictError, Histogram, HistogramSnapshot, PlainData, Shared, SharedBytes, SharedDict,
    SharedError, TraceBuffer, TraceSpec,
};
pub use sync::{Interrupt, InvalidTimeout, NoInterrupt, Timeout, WaitStrategy, INTERRUPT_POLL};

/// The names most programs need: `use shmkit::prelude::*;` brings the objects, the
/// [`Timeout`] every blocking call takes, the outcome types a lock or a wait returns, every
/// error, and [`SegmentObjects`] (so `seg.open::<FrameRing>(name)` works).
#[cfg(not(loom))]
pub mod prelude {
    pub use crate::process::{ChildError, ProcessError};
    pub use crate::rings::{
        CommandError, CommandRing, CommandSpec, ElemType, FrameRing, FrameSpec, Outcome, ReadMode,
        RingError,
    };
    pub use crate::shared::{DictSpec, Histogram, Shared, SharedDict, TraceBuffer, TraceSpec};
    pub use crate::{
        Acquired, Barrier, BarrierError, BarrierWait, CreateOptions, DictError, Event, EventError,
        Interrupt, LockError, Mutex, Segment, SegmentError, SegmentObject, SegmentObjects,
        SharedError, Timeout, UnlockError,
    };
}

/// An error and its whole `source()` chain on one line, each message once
/// ("open on segment \"lab\" failed: No such file or directory"): shmkit's errors print
/// only their own message and expose what caused it as their source.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Real-time mode for a control loop's thread: locked memory and a `SCHED_FIFO` priority,
/// with errors that name the missing limit or capability.
#[cfg(not(loom))]
pub mod realtime {
    pub use crate::sys::realtime::{enter, leave, Realtime, RealtimeError};
}

/// The clock shmkit stamps frames and keeps deadlines on.
#[cfg(not(loom))]
pub mod clock {
    /// Nanoseconds on `CLOCK_MONOTONIC` (time since boot, not counting suspend): the clock
    /// of frame timestamps (`Frame::ts_ns`) and device reply times, so latencies can be taken
    /// against them without calling the OS yourself.
    pub use crate::sys::clock::monotonic_ns;
}

/// Hooks for tests of this crate and of code built on it (feature `test-support`): arm a
/// [`CrashPoint`](test_support::CrashPoint) to make this process die by `SIGKILL` at an
/// exact step of a protocol.
#[cfg(all(feature = "test-support", not(loom)))]
pub mod test_support {
    pub use crate::fault::{arm, CrashPoint};
    pub use crate::segment::named::claim_and_stall_for_test;
}
pub use sys::identity::{Liveness, ProcessIdentity, Record, ThreadIdentity};

/// The README's Rust snippets, compiled by `cargo test` as doctests so that the README cannot
/// drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
