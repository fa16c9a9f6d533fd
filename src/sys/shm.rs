//! POSIX shared memory objects: open, create, stat, size, unlink, and memory locking.
//!
//! Names are handed in already validated and prefixed with `/` (see `segment::name`). Creation
//! is `O_CREAT | O_EXCL | O_NOFOLLOW`, so it never adopts an object somebody else made and never
//! follows a symlink planted in `/dev/shm`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::last_os_error;

/// Ownership and size of an open shared memory object.
#[derive(Debug, Clone, Copy)]
pub struct ObjectStat {
    /// Size in bytes.
    pub size: u64,
    /// Owner user id.
    pub uid: u32,
}

/// Opens an existing object read-write.
pub fn open(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe {
        libc::shm_open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(last_os_error());
    }
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates a new object with exactly `mode` (the umask is overridden with `fchmod`).
pub fn create(name: &CStr, mode: u32) -> io::Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::shm_open(name.as_ptr(), flags, mode as libc::mode_t) };
    if fd < 0 {
        return Err(last_os_error());
    }
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `fd` is an open descriptor we own.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) } != 0 {
        let err = last_os_error();
        let _ = unlink(name);
        return Err(err);
    }
    Ok(fd)
}

/// Removes the name; mappings that exist stay valid until unmapped.
pub fn unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::shm_unlink(name.as_ptr()) } != 0 {
        return Err(last_os_error());
    }
    Ok(())
}

/// Size, owner and mode of an open object.
pub fn stat(fd: &OwnedFd) -> io::Result<ObjectStat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a writable stat buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(last_os_error());
    }
    Ok(ObjectStat {
        size: st.st_size as u64,
        uid: st.st_uid,
    })
}

/// Sets the object's size (new bytes read as zero).
pub fn set_size(fd: &OwnedFd, size: u64) -> io::Result<()> {
    let size =
        libc::off_t::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fd` is open for writing.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
        return Err(last_os_error());
    }
    Ok(())
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Faults every page of `[ptr, ptr+len)` in for writing, so the first touch in a control loop
/// does not take a page fault.
///
/// # Safety
/// `ptr..ptr+len` must be a mapping owned by the caller for the duration of the call.
pub unsafe fn prefault(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is a live mapping; MADV_POPULATE_WRITE only
    // faults pages in and never changes their contents.
    if unsafe { libc::madvise(ptr.cast(), len, libc::MADV_POPULATE_WRITE) } != 0 {
        return Err(last_os_error());
    }
    Ok(())
}

/// Locks `[ptr, ptr+len)` into RAM (`mlock`): it is never paged out.
///
/// # Safety
/// `ptr..ptr+len` must be a mapping owned by the caller for the duration of the call.
pub unsafe fn lock_in_memory(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is a live mapping; mlock does not touch contents.
    if unsafe { libc::mlock(ptr.cast(), len) } != 0 {
        return Err(last_os_error());
    }
    Ok(())
}
