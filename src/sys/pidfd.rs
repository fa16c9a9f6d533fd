//! Process file descriptors: a handle on one task that cannot be confused with a later task
//! given the same id.
//!
//! On kernels with pidfs (Linux 6.9+) a pidfd's inode number is unique among all tasks the
//! kernel has created since boot, which is what [`super::identity`] uses as an exact token;
//! the fd turns readable once the task has exited (a zombie counts as exited).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `PIDFD_THREAD` (= `O_EXCL`): a pidfd for one thread, not only for a thread-group leader.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
/// `f_type` of the pidfs file system.
const PIDFS_MAGIC: i64 = 0x5049_4446;

/// Opens a pidfd for process `pid` (`thread == false`; it must be a thread-group leader) or
/// for thread `tid` (`thread == true`).
pub fn open(id: u32, thread: bool) -> io::Result<OwnedFd> {
    let flags = if thread { PIDFD_THREAD } else { 0 };
    // SAFETY: pidfd_open takes an id and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, id as libc::pid_t, flags) };
    if fd < 0 {
        return Err(super::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// The pidfd's inode number, if the fd lives on pidfs (where the number names exactly one
/// task); `None` on older kernels, whose pidfds all share one anonymous inode.
pub fn unique_inode(fd: &OwnedFd) -> io::Result<Option<u64>> {
    // SAFETY: a zeroed statfs is a valid out-parameter; fstatfs only writes it.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a valid out-parameter.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut fs) } != 0 {
        return Err(super::last_os_error());
    }
    if fs.f_type as i64 != PIDFS_MAGIC {
        return Ok(None);
    }
    inode(fd).map(Some)
}

/// The pidfd's inode number.
pub fn inode(fd: &OwnedFd) -> io::Result<u64> {
    // SAFETY: a zeroed stat is a valid out-parameter; fstat only writes it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a valid out-parameter.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(super::last_os_error());
    }
    Ok(st.st_ino)
}

/// Sends `signal` to the process behind the pidfd (never to a later process given its pid).
pub fn send_signal(fd: &OwnedFd, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes a valid pidfd, a signal number, a null siginfo (the
    // kernel fills in a default one) and zero flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc != 0 {
        return Err(super::last_os_error());
    }
    Ok(())
}

/// Has the task behind the pidfd exited (without waiting)?
pub fn exited(fd: &OwnedFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call; zero timeout.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let err = super::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
