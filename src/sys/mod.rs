//! The only code that calls the operating system.
//!
//! Everything above this module is portable logic over atomics; everything here is a thin,
//! checked wrapper over one Linux facility: futex wait/wake with absolute `CLOCK_MONOTONIC`
//! deadlines ([`futex`]), the monotonic clock ([`clock`]), POSIX shared memory objects
//! ([`shm`]), process/thread identity with liveness checks that survive pid reuse ([`identity`],
//! over [`pidfd`]s), signals as polled flags ([`signals`]), removing a name only if it is still the same file
//! ([`files`]), file mappings that survive their file shrinking
//! ([`sigbus`]), and a loop thread's real-time mode
//! ([`realtime`]: locked memory, a `SCHED_FIFO` priority). Under Miri and loom the identity functions return stand-ins, because neither
//! can read `/proc`.

pub mod clock;
#[cfg(not(loom))]
pub mod files;
#[cfg(not(loom))]
pub mod futex;
pub mod futex_types;
pub mod identity;
#[cfg(not(any(loom, miri)))]
pub mod pidfd;
#[cfg(not(loom))]
pub mod process;
#[cfg(not(loom))]
pub mod realtime;
#[cfg(not(loom))]
pub mod shm;
#[cfg(not(loom))]
pub mod sigbus;
#[cfg(not(loom))]
pub mod signals;

/// The current thread's `errno` as an [`std::io::Error`].
pub(crate) fn last_os_error() -> std::io::Error {
    std::io::Error::last_os_error()
}
