//! The only place in this crate that calls the operating system directly, as `sys/` is in
//! the core: the clocks a stream is stamped on, the page size and the effective user, mapping
//! a stream file, and initialising a semaphore. Everything else the crate needs from the OS
//! (signals, futexes, the SIGBUS guard, identities) it takes from `shmkit::os`.

use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;

/// A clock a stream's times are on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    /// `CLOCK_TAI`: ImageStreamIO's `CLOCK_ISIO`, the stream's `atime` and `writetime`.
    Tai,
    /// `CLOCK_MONOTONIC`: shmkit's frame times.
    Monotonic,
    /// `CLOCK_BOOTTIME`: the clock process start times are kept on.
    Boot,
}

/// Now on `clock`, in nanoseconds.
pub(crate) fn now_ns(clock: Clock) -> u64 {
    let id = match clock {
        Clock::Tai => libc::CLOCK_TAI,
        Clock::Monotonic => libc::CLOCK_MONOTONIC,
        Clock::Boot => libc::CLOCK_BOOTTIME,
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live local; all three clocks exist on every Linux since 3.10.
    unsafe { libc::clock_gettime(id, &mut ts) };
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec.max(0) as u64)
}

/// The system's page size.
pub(crate) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// This process's effective user id.
pub(crate) fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Maps `len` bytes of `file` from `offset` (page-aligned), writable unless `read_only`.
pub(crate) fn map(file: &File, offset: u64, len: u64, read_only: bool) -> std::io::Result<MmapRaw> {
    let mut options = MmapOptions::new();
    options.offset(offset).len(len as usize);
    if read_only {
        options.map_raw_read_only(file)
    } else {
        options.map_raw(file)
    }
}

/// Initialises a process-shared semaphore at 0.
///
/// # Safety
/// `sem` points to 32 writable bytes of a live mapping, aligned to 8, that no other thread
/// uses as a semaphore while it is initialised.
pub(crate) unsafe fn sem_init(sem: *mut libc::sem_t) -> std::io::Result<()> {
    // SAFETY: the caller's contract; pshared = 1 (the semaphore lives in a shared mapping).
    // glibc's sem_init only stores to our own fresh bytes: it cannot abort.
    if unsafe { libc::sem_init(sem, 1, 0) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
