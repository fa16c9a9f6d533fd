//! Who a process or thread is, exactly, and whether it is still alive.
//!
//! A pid (or tid) alone is not an identity: the kernel hands it to a new task once the old one
//! is gone. Each task is therefore named by its id plus a *token*:
//!
//! - on kernels with pidfs (Linux 6.9+), the inode number of a pidfd for the task: a 64-bit
//!   counter the kernel never reuses while it runs, so two tasks never share a token, even a
//!   stand-in given a dead holder's pid within the same clock tick;
//! - elsewhere, the start time the kernel records for the task (`/proc/ID/stat` field 22,
//!   clock ticks since boot) — exact unless a pid is recycled within one tick (10 ms).
//!
//! Bit [`TOKEN_TICKS`] of a token says which scheme produced it, so every check uses the one
//! its token was made with. Tokens are kept to [`TOKEN_BITS`] bits, so `(id << 42) | token`
//! fits one `u64` ([`Record`]) that a role can be claimed with in one compare-and-swap. Two
//! pidfs tokens of the same id collide only if 2^41 (2·10^12) tasks were created between
//! them — more than three years at 20 000 forks per second.
//!
//! The current thread's and process's identities are read once and cached; a `fork` child
//! drops the cached copies it inherited.

use std::fmt;

/// Bits of a token (the scheme bit included).
pub const TOKEN_BITS: u32 = 42;
/// Mask of a token's value bits.
pub const TOKEN_VALUE_MASK: u64 = (1 << (TOKEN_BITS - 1)) - 1;
/// Bit of a token set when it is a start time in clock ticks rather than a pidfs inode.
pub const TOKEN_TICKS: u64 = 1 << (TOKEN_BITS - 1);
/// Largest id Linux hands out (`PID_MAX_LIMIT` on 64-bit is 2^22): anything above is corrupt.
const MAX_ID: u32 = (1 << (64 - TOKEN_BITS)) - 1;

/// A process: its pid plus its token (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessIdentity {
    /// Process id.
    pub pid: u32,
    /// Identity token: a pidfs inode, or start ticks with bit 41 set.
    pub token: u64,
}

/// A thread: its process id, its thread id and its own token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThreadIdentity {
    /// Process (thread group) id.
    pub pid: u32,
    /// Thread id (equal to `pid` for the main thread).
    pub tid: u32,
    /// Identity token of this thread.
    pub token: u64,
}

/// A role holder's identity in one word: `(id << 42) | token`, 0 for nobody. The id is a pid
/// for process roles (ring writers, readers, servers, clients, device servers, exception
/// slots) and a tid for thread roles (mutex owners, table claimers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Record(u64);

impl Record {
    /// Nobody.
    pub const NONE: Record = Record(0);

    /// The record of `id` with `token`.
    pub const fn new(id: u32, token: u64) -> Record {
        Record(((id as u64) << TOKEN_BITS) | (token & (TOKEN_VALUE_MASK | TOKEN_TICKS)))
    }

    /// A record as stored in the segment (any bits: a corrupt one names a dead nobody).
    pub const fn from_raw(raw: u64) -> Record {
        Record(raw)
    }

    /// The stored form.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Is this nobody?
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The pid (process roles) or tid (thread roles) it names.
    pub const fn id(self) -> u32 {
        (self.0 >> TOKEN_BITS) as u32
    }

    /// The token it carries.
    pub const fn token(self) -> u64 {
        self.0 & (TOKEN_VALUE_MASK | TOKEN_TICKS)
    }

    /// Is the process named by this record still running? (For process roles.)
    pub fn process_liveness(self) -> Liveness {
        if self.is_none() {
            return Liveness::Dead;
        }
        imp::liveness(self.id(), self.token(), false)
    }

    /// Is the process named by this record known to be gone (or is the record empty)? The
    /// question every role takeover asks; `Unknown` counts as not dead.
    pub fn process_dead(self) -> bool {
        self.process_liveness() == Liveness::Dead
    }

    /// Sends `signal` to the process named by this record if it is still that process;
    /// returns whether it was sent. The identity is checked on a pidfd opened first, and the
    /// signal goes through that pidfd, so a process that reused the pid meanwhile is never hit.
    pub fn signal_process(self, signal: i32) -> bool {
        !self.is_none() && imp::signal(self.id(), self.token(), signal)
    }

    /// Is the thread named by this record still running? (For thread roles.)
    pub fn thread_liveness(self) -> Liveness {
        if self.is_none() {
            return Liveness::Dead;
        }
        imp::liveness(self.id(), self.token(), true)
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            f.write_str("nobody")
        } else {
            write!(f, "{} (token {:#x})", self.id(), self.token())
        }
    }
}

impl ProcessIdentity {
    /// The calling process.
    pub fn current() -> ProcessIdentity {
        current_process()
    }

    /// Whether this process is still running (same pid and token, not a zombie).
    pub fn liveness(&self) -> Liveness {
        if self.pid == 0 {
            return Liveness::Dead;
        }
        imp::liveness(self.pid, self.token, false)
    }

    /// The one-word record rings and devices keep for a role holder.
    #[inline]
    pub fn record(&self) -> Record {
        Record::new(self.pid, self.token)
    }
}

impl ThreadIdentity {
    /// The calling thread (cached per thread after the first call).
    pub fn current() -> ThreadIdentity {
        current_thread()
    }

    /// Whether this thread is still running (same tid and token, not a zombie).
    pub fn liveness(&self) -> Liveness {
        imp::liveness(self.tid, self.token, true)
    }

    /// The one-word record a mutex or a table entry stores for its holder.
    #[inline]
    pub fn owner_record(&self) -> Record {
        Record::new(self.tid, self.token)
    }
}

/// Whether a process or thread named by an identity is still running.
// repr(u32): with a one-byte tag, the padding after it in `OwnerInfo` made the compiler copy
// lock results with overlapping unaligned moves that defeat store forwarding (3x slower locks).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Running (or stopped), with the recorded token.
    Alive,
    /// Exited, a zombie, or its id now belongs to someone else.
    Dead,
    /// The system could not tell (for example `hidepid`, or out of file descriptors):
    /// callers must treat this as alive.
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

/// The token of a start time.
fn ticks_token(start_ticks: u64) -> u64 {
    TOKEN_TICKS | (start_ticks & TOKEN_VALUE_MASK)
}

#[cfg(not(any(miri, loom)))]
mod imp {
    use super::*;
    use crate::sys::pidfd;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use std::sync::Once;

    /// tid 0 means "not read yet" (no thread has tid 0), which keeps the fast path to one
    /// compare instead of an `Option` tag check.
    const UNSET: ThreadIdentity = ThreadIdentity {
        pid: 0,
        tid: 0,
        token: 0,
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
        rustix::thread::gettid().as_raw_nonzero().get() as u32
    }

    /// The calling task's token: its pidfs inode where the kernel has pidfs, else its start
    /// time (read from `stat_path`).
    fn own_token(id: u32, thread: bool, stat_path: &str) -> u64 {
        if let Ok(fd) = pidfd::open(id, thread) {
            if let Ok(Some(ino)) = pidfd::unique_inode(&fd) {
                return ino & TOKEN_VALUE_MASK;
            }
        }
        ticks_token(
            read_stat(stat_path)
                .ok()
                .flatten()
                .map_or(0, |s| s.start_ticks),
        )
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
        let id = ThreadIdentity {
            pid,
            tid,
            token: own_token(tid, true, "/proc/thread-self/stat"),
        };
        CURRENT.with(|c| c.set(id));
        id
    }

    /// The cached process identity: `PROCESS_PID` 0 means not cached yet (or forgotten by a
    /// fork child). `getpid` is a real system call (~140 ns here), too slow for a ring's
    /// per-call path, so the pid is cached too and the fork handler clears it.
    static PROCESS_PID: AtomicU32 = AtomicU32::new(0);
    static PROCESS_TOKEN: AtomicU64 = AtomicU64::new(0);

    extern "C" fn forget_process_after_fork() {
        PROCESS_PID.store(0, Ordering::Relaxed);
    }

    #[inline]
    pub fn current_process() -> ProcessIdentity {
        // Acquire: pairs with the Release store in `current_process_slow`; the token written
        // before it is visible.
        let pid = PROCESS_PID.load(Ordering::Acquire);
        if pid != 0 {
            return ProcessIdentity {
                pid,
                token: PROCESS_TOKEN.load(Ordering::Relaxed),
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
        let token = own_token(pid, false, "/proc/self/stat");
        // Racing first callers compute the same values; whichever store lands is right.
        PROCESS_TOKEN.store(token, Ordering::Relaxed);
        PROCESS_PID.store(pid, Ordering::Release);
        ProcessIdentity { pid, token }
    }

    /// Reads `/proc/ID/stat`: `Ok(None)` if the task does not exist.
    fn task_stat(id: u32) -> Result<Option<TaskStat>, ()> {
        match read_stat(&format!("/proc/{id}/stat")) {
            Ok(Some(stat)) => Ok(Some(stat)),
            Ok(None) => Err(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
            Err(_) => Err(()),
        }
    }

    /// Is task `id` with `token` alive? `thread`: a thread role (any thread), else a process
    /// role (a thread-group leader, alive while any of its threads runs).
    pub fn liveness(id: u32, token: u64, thread: bool) -> Liveness {
        if id == 0 || id > MAX_ID {
            return Liveness::Dead;
        }
        if token & TOKEN_TICKS != 0 {
            return stat_liveness(id, |start| ticks_token(start) == token);
        }
        let fd = match pidfd::open(id, thread) {
            Ok(fd) => fd,
            // No such task, or (process roles) the id is now a non-leader thread of someone.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESRCH | libc::EINVAL)) => {
                return Liveness::Dead
            }
            Err(_) => return Liveness::Unknown,
        };
        match (pidfd::inode(&fd), pidfd::exited(&fd)) {
            (Ok(ino), _) if ino & TOKEN_VALUE_MASK != token => Liveness::Dead,
            (Ok(_), Ok(true)) => Liveness::Dead,
            (Ok(_), Ok(false)) => Liveness::Alive,
            _ => Liveness::Unknown,
        }
    }

    /// Sends `signal` to process `id` if it is the one with `token` (see `Record::signal_process`).
    pub fn signal(id: u32, token: u64, signal: i32) -> bool {
        if id == 0 || id > MAX_ID {
            return false;
        }
        // The pidfd pins the process: whatever is checked below is about the one we signal.
        let Ok(fd) = pidfd::open(id, false) else {
            return false;
        };
        let same = if token & TOKEN_TICKS != 0 {
            stat_liveness(id, |start| ticks_token(start) == token) == Liveness::Alive
        } else {
            matches!(pidfd::inode(&fd), Ok(ino) if ino & TOKEN_VALUE_MASK == token)
        };
        same && matches!(pidfd::exited(&fd), Ok(false)) && pidfd::send_signal(&fd, signal).is_ok()
    }

    /// Does any live thread have id `tid` (whoever it is)? For claim words whose holder has
    /// not stored its record yet.
    pub fn any_task(tid: u32) -> Liveness {
        if tid == 0 || tid > MAX_ID {
            return Liveness::Dead;
        }
        stat_liveness(tid, |_| true)
    }

    /// Is `pid` a live process that started no later than `by_boot_ns` (`CLOCK_BOOTTIME`)?
    pub fn started_by(pid: u32, by_boot_ns: u64) -> Liveness {
        if pid == 0 || pid > MAX_ID {
            return Liveness::Dead;
        }
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        stat_liveness(pid, |ticks| {
            // The kernel rounds the start down to a tick: a task that started by the bound
            // shows a tick at or before it.
            ticks.saturating_mul(1_000_000_000 / hz) <= by_boot_ns
        })
    }

    /// What `/proc/ID/stat` says: no task or a zombie is dead, a task whose start time
    /// `matches` is alive, another is dead (the id was reused); unreadable is unknown.
    fn stat_liveness(id: u32, matches: impl FnOnce(u64) -> bool) -> Liveness {
        match task_stat(id) {
            Ok(None) => Liveness::Dead,
            Ok(Some(stat)) if matches!(stat.state, b'Z' | b'X' | b'x') => Liveness::Dead,
            Ok(Some(stat)) if !matches(stat.start_ticks) => Liveness::Dead,
            Ok(Some(_)) => Liveness::Alive,
            Err(()) => Liveness::Unknown,
        }
    }
}

#[cfg(any(miri, loom))]
mod imp {
    //! Stand-ins: Miri and loom cannot call the kernel. Each thread gets a distinct small id
    //! and every identity is reported alive, which is all the heap-memory tests rely on.
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

    const TOKEN: u64 = 7;

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
            token: TOKEN,
        }
    }

    pub fn current_process() -> ProcessIdentity {
        ProcessIdentity {
            pid: 1,
            token: TOKEN,
        }
    }

    pub fn liveness(id: u32, token: u64, _thread: bool) -> Liveness {
        if id == 0 || id > MAX_ID || token != TOKEN {
            return Liveness::Dead;
        }
        Liveness::Alive
    }

    pub fn any_task(tid: u32) -> Liveness {
        if tid == 0 || tid > MAX_ID {
            return Liveness::Dead;
        }
        Liveness::Alive
    }

    pub fn started_by(_pid: u32, _by_boot_ns: u64) -> Liveness {
        Liveness::Alive
    }

    pub fn signal(_id: u32, _token: u64, _signal: i32) -> bool {
        false
    }
}

/// The calling thread's identity (cached after the first call on each thread).
#[inline]
pub fn current_thread() -> ThreadIdentity {
    imp::current_thread()
}

/// The calling process's identity.
pub fn current_process() -> ProcessIdentity {
    imp::current_process()
}

/// Does any live thread have id `tid` (whoever it is)? Used when no record was stored yet.
pub fn tid_liveness(tid: u32) -> Liveness {
    imp::any_task(tid)
}

/// Is `pid` a live process that started no later than `by_boot_ns` on `CLOCK_BOOTTIME`? For
/// formats that store a bare pid beside a time it must have been alive at (a milk stream's
/// creator and its creation time): a pid handed to a later process fails the time test.
/// Exact to a clock tick (10 ms).
pub fn started_by(pid: u32, by_boot_ns: u64) -> Liveness {
    imp::started_by(pid, by_boot_ns)
}

/// The verdict on a holder named by `tid` in a claim word (a mutex's futex word, a table
/// entry's state), given the record that holders store right after claiming and clear before
/// releasing. See `primitives/mutex/raw.rs` for the table.
pub fn holder_liveness(tid: u32, record: Record, me: &ThreadIdentity) -> Liveness {
    if tid == me.tid {
        // We are alive and not the holder (the caller checked), so a holder with our tid is a
        // dead predecessor that had it.
        return Liveness::Dead;
    }
    if !record.is_none() && record.id() == tid {
        return record.thread_liveness();
    }
    match tid_liveness(tid) {
        Liveness::Dead => Liveness::Dead,
        // A live thread with that tid and no record of it: the holder is between its claim and
        // its record store, or the record was cleared by a recoverer that lost.
        _ => Liveness::Alive,
    }
}

#[cfg(test)]
mod tests;

/// The name the kernel keeps for task `tid` of process `pid` (`/proc/PID/task/TID/comm`, at
/// most 15 bytes); `None` once it is gone.
#[cfg(not(loom))]
pub fn task_name(pid: u32, tid: u32) -> Option<String> {
    comm(&format!("/proc/{pid}/task/{tid}/comm"))
}

/// The name the kernel keeps for process `pid` (`/proc/PID/comm`); `None` once it is gone.
#[cfg(not(loom))]
pub fn process_name(pid: u32) -> Option<String> {
    comm(&format!("/proc/{pid}/comm"))
}

#[cfg(not(loom))]
fn comm(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let name = text.trim_end_matches('\n');
    (!name.is_empty()).then(|| name.to_owned())
}
