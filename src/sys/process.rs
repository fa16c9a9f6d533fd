//! Waiting for a child process to exit, with a deadline, without reaping it early.

use super::clock::Deadline;
use std::io;

/// Waits until process `pid` (our child) has exited or `deadline` passes; does not reap it.
/// Returns true if it exited. Uses a pidfd, so the wake-up is immediate, not polled.
pub fn wait_exit(pid: u32, deadline: Deadline) -> io::Result<bool> {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as libc::c_int;
    if fd < 0 {
        return Err(super::last_os_error());
    }
    let result = loop {
        let timeout_ms = match deadline.as_ns() {
            None => -1,
            Some(d) => {
                let left = d.saturating_sub(super::clock::monotonic_ns());
                // Round up so we never wake before the deadline.
                left.div_ceil(1_000_000).min(i32::MAX as u64) as libc::c_int
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc > 0 {
            break Ok(true);
        }
        if rc == 0 {
            if deadline.expired() {
                break Ok(false);
            }
            continue;
        }
        let err = super::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            break Err(err);
        }
    };
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    result
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

/// This process's effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
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
