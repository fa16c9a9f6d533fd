//! Process file descriptors: a handle on one task that cannot be confused with a later task
//! given the same id.
//!
//! On kernels with pidfs (Linux 6.9+) a pidfd's inode number is unique among all tasks the
//! kernel has created since boot, which is what [`super::identity`] uses as an exact token;
//! the fd turns readable once the task has exited (a zombie counts as exited).

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
use std::io;
use std::os::fd::OwnedFd;

/// `PIDFD_THREAD` (= `O_EXCL`): a pidfd for one thread, not only for a thread-group leader.
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;
/// `f_type` of the pidfs file system.
const PIDFS_MAGIC: i64 = 0x5049_4446;

/// Opens a pidfd for process `pid` (`thread == false`; it must be a thread-group leader) or
/// for thread `tid` (`thread == true`).
pub fn open(id: u32, thread: bool) -> io::Result<OwnedFd> {
    let pid = i32::try_from(id)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags = PidfdFlags::from_bits_retain(if thread { PIDFD_THREAD } else { 0 });
    Ok(pidfd_open(pid, flags)?)
}

/// The pidfd's inode number, if the fd lives on pidfs (where the number names exactly one
/// task); `None` on older kernels, whose pidfds all share one anonymous inode.
pub fn unique_inode(fd: &OwnedFd) -> io::Result<Option<u64>> {
    let fs = rustix::fs::fstatfs(fd)?;
    if fs.f_type as i64 != PIDFS_MAGIC {
        return Ok(None);
    }
    inode(fd).map(Some)
}

/// The pidfd's inode number.
pub fn inode(fd: &OwnedFd) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_ino)
}

/// Sends `signal` to the process behind the pidfd (never to a later process given its pid).
pub fn send_signal(fd: &OwnedFd, signal: i32) -> io::Result<()> {
    let signal = Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(pidfd_send_signal(fd, signal)?)
}

/// Has the task behind the pidfd exited (without waiting)?
pub fn exited(fd: &OwnedFd) -> io::Result<bool> {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        match poll(&mut fds, Some(&zero)) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
