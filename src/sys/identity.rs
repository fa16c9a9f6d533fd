//! Who a process or thread is, in a way that survives pid reuse, and whether it is still alive.
//!
//! A pid (or tid) alone is not an identity: the kernel hands it to a new process once the old
//! one is gone. Paired with the start time the kernel records for it (`/proc/PID/stat` field
//! 22, clock ticks since boot) it is: a live process with the same pid but another start time
//! is somebody else. Linux resolves `/proc/TID` for any thread id, not only for thread-group
//! leaders, so the same check works for threads.
//!
//! The current thread's identity is read once and cached in a thread-local; a `fork` child
//! drops the cached copy it inherited (see [`current_thread`]).

use std::fmt;

/// A process: pid plus start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessIdentity {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// A thread: its process id, its thread id and its own start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThreadIdentity {
    /// Process (thread group) id.
    pub pid: u32,
    /// Thread id (equal to `pid` for the main thread).
    pub tid: u32,
    /// Start time of this thread in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcessIdentity {
    /// The calling process.
    pub fn current() -> ProcessIdentity {
        current_process()
    }

    /// Whether this process is still running (same pid and start time, not a zombie).
    pub fn liveness(&self) -> Liveness {
        process_liveness(*self)
    }

    /// The 64-bit record rings keep for a role holder: `(pid << 32) | low 32 bits of start`.
    pub fn record(&self) -> u64 {
        (u64::from(self.pid) << 32) | (self.start_ticks & 0xFFFF_FFFF)
    }
}

/// Whether the process named by a [`ProcessIdentity::record`] is still running. A process's
/// main thread has the pid as its tid and the process's start time.
pub fn record_liveness(record: u64) -> Liveness {
    thread_liveness((record >> 32) as u32, record as u32)
}

impl ThreadIdentity {
    /// The calling thread (cached per thread after the first call).
    pub fn current() -> ThreadIdentity {
        current_thread()
    }

    /// Whether this thread is still running (same tid and start time, not a zombie).
    pub fn liveness(&self) -> Liveness {
        liveness(self.tid, |start| start == self.start_ticks)
    }

    /// The 64-bit record a mutex stores for its holder: `(tid << 32) | low 32 bits of start`.
    #[inline]
    pub fn owner_record(&self) -> u64 {
        (u64::from(self.tid) << 32) | (self.start_ticks & shm_layout::OWNER_RECORD_START_MASK)
    }
}

/// Whether a process or thread named by an identity is still running.
// repr(u32): with a one-byte tag, the padding after it in `OwnerInfo` made the compiler copy
// lock results with overlapping unaligned moves that defeat store forwarding (3x slower locks).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Running (or stopped), with the recorded start time.
    Alive,
    /// Exited, a zombie, or its id now belongs to someone else.
    Dead,
    /// `/proc` could not tell (for example `hidepid`): callers must treat this as alive.
    Unknown,
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Liveness::Alive => "alive",
            Liveness::Dead => "dead",
            Liveness::Unknown => "liveness unknown",
        })
    }
}

/// What `/proc/ID/stat` says about a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskStat {
    /// One-letter state (`R`, `S`, `D`, `T`, `Z`, `X`, ...).
    pub state: u8,
    /// Field 22: start time in clock ticks after boot.
    pub start_ticks: u64,
}

/// Parses the contents of `/proc/ID/stat`. The command name (field 2) is in parentheses and may
/// itself contain spaces and parentheses, so parsing starts after the *last* `)`.
pub(crate) fn parse_stat(text: &str) -> Option<TaskStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // `rest` begins at field 3 (state); start time is field 22, i.e. 19 further on.
    let state = *fields.next()?.as_bytes().first()?;
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(TaskStat { state, start_ticks })
}

#[cfg(not(any(miri, loom)))]
mod imp {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use std::sync::Once;

    /// tid 0 means "not read yet" (no thread has tid 0), which keeps the fast path to one
    /// compare instead of an `Option` tag check.
    const UNSET: ThreadIdentity = ThreadIdentity {
        pid: 0,
        tid: 0,
        start_ticks: 0,
    };

    thread_local! {
        static CURRENT: Cell<ThreadIdentity> = const { Cell::new(UNSET) };
    }

    extern "C" fn forget_after_fork() {
        // Runs in the fork child, on the thread that forked: the one whose cached identity was
        // copied from the parent.
        CURRENT.with(|c| c.set(UNSET));
    }

    fn read_stat(path: &str) -> std::io::Result<Option<TaskStat>> {
        Ok(parse_stat(&std::fs::read_to_string(path)?))
    }

    fn gettid() -> u32 {
        // SAFETY: gettid has no preconditions and cannot fail.
        (unsafe { libc::syscall(libc::SYS_gettid) }) as u32
    }

    #[inline]
    pub fn current_thread() -> ThreadIdentity {
        let id = CURRENT.with(Cell::get);
        if id.tid != 0 {
            return id;
        }
        current_thread_slow()
    }

    #[cold]
    fn current_thread_slow() -> ThreadIdentity {
        static ATFORK: Once = Once::new();
        ATFORK.call_once(|| {
            // SAFETY: registering a handler that only touches this module's thread-local.
            unsafe { libc::pthread_atfork(None, None, Some(forget_after_fork)) };
        });
        let pid = std::process::id();
        let tid = gettid();
        let start_ticks = read_stat("/proc/thread-self/stat")
            .ok()
            .flatten()
            .map_or(0, |s| s.start_ticks);
        let id = ThreadIdentity {
            pid,
            tid,
            start_ticks,
        };
        CURRENT.with(|c| c.set(id));
        id
    }

    /// The cached process identity: `PROCESS_PID` 0 means not cached yet (or forgotten by a
    /// fork child). `getpid` is a real system call (~140 ns here), too slow for a ring's
    /// per-call path, so the pid is cached too and the fork handler clears it.
    static PROCESS_PID: AtomicU32 = AtomicU32::new(0);
    static PROCESS_START: AtomicU64 = AtomicU64::new(0);

    extern "C" fn forget_process_after_fork() {
        PROCESS_PID.store(0, Ordering::Relaxed);
    }

    #[inline]
    pub fn current_process() -> ProcessIdentity {
        // Acquire: pairs with the Release store in `current_process_slow`; the start time
        // written before it is visible.
        let pid = PROCESS_PID.load(Ordering::Acquire);
        if pid != 0 {
            return ProcessIdentity {
                pid,
                start_ticks: PROCESS_START.load(Ordering::Relaxed),
            };
        }
        current_process_slow()
    }

    #[cold]
    fn current_process_slow() -> ProcessIdentity {
        static ATFORK: Once = Once::new();
        ATFORK.call_once(|| {
            // SAFETY: registering a handler that only stores to this module's atomics.
            unsafe { libc::pthread_atfork(None, None, Some(forget_process_after_fork)) };
        });
        let pid = std::process::id();
        let start_ticks = read_stat("/proc/self/stat")
            .ok()
            .flatten()
            .map_or(0, |s| s.start_ticks);
        // Racing first callers compute the same values; whichever store lands is right.
        PROCESS_START.store(start_ticks, Ordering::Relaxed);
        PROCESS_PID.store(pid, Ordering::Release);
        ProcessIdentity { pid, start_ticks }
    }

    /// Reads `/proc/ID/stat`: `Ok(None)` if the task does not exist.
    pub fn task_stat(id: u32) -> Result<Option<TaskStat>, ()> {
        if id == 0 || id > super::MAX_ID {
            return Ok(None);
        }
        match read_stat(&format!("/proc/{id}/stat")) {
            Ok(Some(stat)) => Ok(Some(stat)),
            Ok(None) => Err(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
            Err(_) => Err(()),
        }
    }
}

#[cfg(any(miri, loom))]
mod imp {
    //! Stand-ins: Miri and loom cannot read `/proc`. Each thread gets a distinct small id and
    //! every identity is reported alive, which is all the heap-memory tests rely on.
    use super::*;

    #[cfg(not(loom))]
    use std::{cell::Cell, sync::atomic::AtomicU32, sync::atomic::Ordering};
    #[cfg(loom)]
    use {loom::sync::atomic::AtomicU32, std::cell::Cell, std::sync::atomic::Ordering};

    #[cfg(not(loom))]
    std::thread_local! {
        static TID: Cell<u32> = const { Cell::new(0) };
    }
    #[cfg(loom)]
    loom::thread_local! {
        static TID: Cell<u32> = Cell::new(0);
    }
    #[cfg(not(loom))]
    static NEXT: AtomicU32 = AtomicU32::new(1000);
    #[cfg(loom)]
    loom::lazy_static! {
        static ref NEXT: AtomicU32 = AtomicU32::new(1000);
    }

    pub fn current_thread() -> ThreadIdentity {
        let tid = TID.with(|t| {
            if t.get() == 0 {
                t.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            t.get()
        });
        ThreadIdentity {
            pid: 1,
            tid,
            start_ticks: 7,
        }
    }

    pub fn current_process() -> ProcessIdentity {
        ProcessIdentity {
            pid: 1,
            start_ticks: 7,
        }
    }

    pub fn task_stat(id: u32) -> Result<Option<TaskStat>, ()> {
        if id == 0 || id > super::MAX_ID {
            return Ok(None);
        }
        Ok(Some(TaskStat {
            state: b'R',
            start_ticks: 7,
        }))
    }
}

/// Largest id Linux hands out (`PID_MAX_LIMIT` on 64-bit): anything above is corrupt.
const MAX_ID: u32 = 4 * 1024 * 1024;

/// The calling thread's identity (cached after the first call on each thread).
#[inline]
pub fn current_thread() -> ThreadIdentity {
    imp::current_thread()
}

/// The calling process's identity.
pub fn current_process() -> ProcessIdentity {
    imp::current_process()
}

fn liveness(id: u32, matches: impl FnOnce(u64) -> bool) -> Liveness {
    match imp::task_stat(id) {
        Ok(None) => Liveness::Dead,
        Ok(Some(stat)) if matches!(stat.state, b'Z' | b'X' | b'x') => Liveness::Dead,
        Ok(Some(stat)) if !matches(stat.start_ticks) => Liveness::Dead,
        Ok(Some(_)) => Liveness::Alive,
        Err(()) => Liveness::Unknown,
    }
}

/// Is the process `id` still alive (same pid, same start time, not a zombie)?
pub fn process_liveness(id: ProcessIdentity) -> Liveness {
    liveness(id.pid, |start| start == id.start_ticks)
}

/// Is thread `tid` alive, and does its start time match the low 32 bits in `start_low`?
pub fn thread_liveness(tid: u32, start_low: u32) -> Liveness {
    liveness(tid, |start| start as u32 == start_low)
}

/// Does any live thread have id `tid` (whoever it is)? Used when no start time was recorded.
pub fn tid_liveness(tid: u32) -> Liveness {
    liveness(tid, |_| true)
}

/// The verdict on a holder named by `tid` in a claim word (a mutex's futex word, a table
/// entry's state), given the record `(tid << 32) | start_low` that holders store right after
/// claiming and clear before releasing. See `primitives/mutex/raw.rs` for the table.
pub fn holder_liveness(tid: u32, record: u64, me: &ThreadIdentity) -> Liveness {
    if tid == me.tid {
        // We are alive and not the holder (the caller checked), so a holder with our tid is a
        // dead predecessor that had it.
        return Liveness::Dead;
    }
    if (record >> 32) as u32 == tid {
        return thread_liveness(tid, record as u32);
    }
    match tid_liveness(tid) {
        Liveness::Dead => Liveness::Dead,
        // A live thread with that tid and no record of it: the holder is between its claim and
        // its record store, or the record was cleared by a recoverer that lost.
        _ => Liveness::Alive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_stat_handles_parentheses_in_the_command_name() {
        let line =
            "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.state, b'S');
        assert_eq!(stat.start_ticks, 987654);
    }

    #[test]
    fn parse_stat_rejects_truncated_text() {
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn ids_out_of_range_are_dead() {
        assert_eq!(tid_liveness(0), Liveness::Dead);
        assert_eq!(tid_liveness(u32::MAX), Liveness::Dead);
    }

    #[cfg(not(miri))]
    #[test]
    fn the_current_thread_is_alive_and_a_wrong_start_time_is_not() {
        let me = current_thread();
        assert_eq!(
            thread_liveness(me.tid, me.start_ticks as u32),
            Liveness::Alive
        );
        assert_eq!(
            thread_liveness(me.tid, (me.start_ticks as u32).wrapping_add(1)),
            Liveness::Dead
        );
        let p = current_process();
        assert_eq!(process_liveness(p), Liveness::Alive);
        assert_eq!(ProcessIdentity::current().liveness(), Liveness::Alive);
        assert_eq!(ThreadIdentity::current().liveness(), Liveness::Alive);
        let stale = ProcessIdentity {
            start_ticks: p.start_ticks + 1,
            ..p
        };
        assert_eq!(
            stale.liveness(),
            Liveness::Dead,
            "a reused pid is somebody else"
        );
    }

    #[cfg(not(miri))]
    #[test]
    fn an_exited_thread_is_dead() {
        let id = std::thread::spawn(current_thread).join().unwrap();
        // `join` returns when the kernel clears the thread's tid word, a moment before the
        // task is released from /proc: allow that moment (the mutex checks every 20 ms).
        let start = std::time::Instant::now();
        while thread_liveness(id.tid, id.start_ticks as u32) != Liveness::Dead {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(1),
                "still alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
