//! Waiting for a child process to exit, with a deadline, without reaping it early.

use super::clock::Deadline;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use std::io;

/// Waits until process `pid` (our child) has exited or `deadline` passes; does not reap it.
/// Returns true if it exited. Uses a pidfd, so the wake-up is immediate, not polled.
pub fn wait_exit(pid: u32, deadline: Deadline) -> io::Result<bool> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fd = pidfd_open(pid, PidfdFlags::empty())?;
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        let timeout = deadline.as_ns().map(|d| {
            let left = d.saturating_sub(super::clock::monotonic_ns());
            Timespec {
                tv_sec: (left / 1_000_000_000) as i64,
                tv_nsec: (left % 1_000_000_000) as _,
            }
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(n) if n > 0 => return Ok(true),
            Ok(_) if deadline.expired() => return Ok(false),
            Ok(_) | Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
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
