//! The operating-system services the core lends to shmkit's other crates (devices and the
//! testbed, the simulated bench, ImageStreamIO): the monotonic clock and deadlines, process
//! identities whose liveness survives pid reuse, signals as polled flags, careful file
//! operations, futex words and mappings that survive their file shrinking.
//!
//! Each is a re-export of the core's private `sys` layer, which stays the only code that calls
//! the operating system; this module is the part of it other crates may name.

/// The monotonic clock (`CLOCK_MONOTONIC`) and absolute deadlines on it.
pub mod clock {
    pub use crate::sys::clock::{monotonic_ns, Deadline};
}

/// Who a process is, and whether it still runs, in a form that survives pid reuse.
pub mod identity {
    pub use crate::sys::identity::{
        current_process, process_name, started_by, task_name, Liveness, ProcessIdentity, Record,
    };
}

/// Signals as flags a loop polls (no work in a signal handler).
pub mod signals {
    pub use crate::sys::signals::{catch, caught, ignore, precise_timers, take};
}

/// Opening a file only if it is a regular one, and removing a name only while it is still the
/// same file.
pub mod files {
    pub use crate::sys::files::{open_regular, remove_if_same, OpenRegularError};
}

/// Waiting on and waking a 32-bit word shared between processes.
pub mod futex {
    pub use crate::sys::futex::{wait, wake, FutexWait};
}

/// Mappings of files another process may shrink: a fault reads zeros instead of killing the
/// process.
pub mod sigbus {
    pub use crate::sys::sigbus::{Guard, TooManyGuards};
}
