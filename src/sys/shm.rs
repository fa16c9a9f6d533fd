//! POSIX shared memory objects: open, create, stat, size, unlink, and memory locking.
//!
//! Names are handed in already validated and prefixed with `/` (see `segment::name`). Creation
//! is `O_CREAT | O_EXCL | O_NOFOLLOW`, so it never adopts an object somebody else made and never
//! follows a symlink planted in `/dev/shm`.

use rustix::fs::{fchmod, fstat, ftruncate, Mode};
use rustix::shm::{self as posix_shm, OFlags};
use std::ffi::CStr;
use std::io;
use std::os::fd::OwnedFd;

use super::last_os_error;

/// Ownership and size of an open shared memory object.
#[derive(Debug, Clone, Copy)]
pub struct ObjectStat {
    /// Size in bytes.
    pub size: u64,
    /// Owner user id.
    pub uid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

/// `O_NOFOLLOW`: never open through a symlink planted in `/dev/shm` (rustix's shm flags
/// carry any open flag; `O_CLOEXEC` it adds itself).
fn no_follow() -> OFlags {
    OFlags::from_bits_retain(rustix::fs::OFlags::NOFOLLOW.bits())
}

/// Opens an existing object read-write.
pub fn open(name: &CStr) -> io::Result<OwnedFd> {
    Ok(posix_shm::open(
        name,
        OFlags::RDWR | no_follow(),
        Mode::empty(),
    )?)
}

/// Creates a new object with exactly `mode` (the umask is overridden with `fchmod`).
pub fn create(name: &CStr, mode: u32) -> io::Result<OwnedFd> {
    let mode = Mode::from_bits_truncate(mode);
    let fd = posix_shm::open(
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | no_follow(),
        mode,
    )?;
    if let Err(e) = fchmod(&fd, mode) {
        let _ = unlink(name);
        return Err(e.into());
    }
    Ok(fd)
}

/// Removes the name; mappings that exist stay valid until unmapped.
pub fn unlink(name: &CStr) -> io::Result<()> {
    Ok(posix_shm::unlink(name)?)
}

/// Size, owner and mode of an open object.
pub fn stat(fd: &OwnedFd) -> io::Result<ObjectStat> {
    let st = fstat(fd)?;
    Ok(ObjectStat {
        size: st.st_size as u64,
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
    })
}

/// Sets the object's size (new bytes read as zero).
pub fn set_size(fd: &OwnedFd, size: u64) -> io::Result<()> {
    Ok(ftruncate(fd, size)?)
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
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

/// Maps `len` bytes of the shared memory object `file`, `MAP_SHARED` and read-write.
pub fn map_shared(file: &std::fs::File, len: usize) -> io::Result<memmap2::MmapRaw> {
    memmap2::MmapOptions::new().len(len).map_raw(file)
}
