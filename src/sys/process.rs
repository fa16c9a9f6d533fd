//! Waiting for a child process to exit, with a deadline, without reaping it early.

use super::clock::Deadline;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use std::io;

/// How one wait for a child's exit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitWait {
    /// The process has exited (it is not reaped).
    Exited,
    /// The deadline passed first.
    TimedOut,
    /// A signal interrupted the wait (`EINTR`): the caller looks at its interrupt check.
    Signal,
}

/// A pidfd on one of our children, to wait for its exit with a deadline without reaping it.
/// The wake-up is immediate (the kernel signals the pidfd), not polled.
pub struct ExitWatch {
    fd: rustix::fd::OwnedFd,
}

impl ExitWatch {
    /// Opens a pidfd on process `pid`.
    pub fn new(pid: u32) -> io::Result<ExitWatch> {
        let pid = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(ExitWatch {
            fd: pidfd_open(pid, PidfdFlags::empty())?,
        })
    }

    /// Waits until the process has exited, `deadline` passes or a signal arrives.
    pub fn wait(&self, deadline: Deadline) -> io::Result<ExitWait> {
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let timeout = deadline.as_ns().map(|d| {
            let left = d.saturating_sub(super::clock::monotonic_ns());
            Timespec {
                tv_sec: (left / 1_000_000_000) as i64,
                tv_nsec: (left % 1_000_000_000) as _,
            }
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(n) if n > 0 => Ok(ExitWait::Exited),
            Ok(_) => Ok(ExitWait::TimedOut),
            Err(Errno::INTR) => Ok(ExitWait::Signal),
            Err(e) => Err(e.into()),
        }
    }
}

/// The conventional name of signal `signal` (`SIGKILL`, ...).
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSYS => "SIGSYS",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "unknown signal",
    }
}

/// Ends this process at once with `SIGKILL`, as an outside killer would (no unwinding, no
/// exit handlers): for crash-injection tests.
#[cfg(feature = "test-support")]
pub fn kill_self() -> ! {
    // SAFETY: kill and getpid have no memory preconditions.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    // SIGKILL cannot be caught or ignored; the process is gone before this runs.
    std::process::abort()
}
