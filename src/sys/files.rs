//! Removing a file by name only if it is still the file it was — the one safe
//! check-then-remove for names in shared directories (`/dev/shm`, `/tmp`) another process may
//! re-create at any instant — and proving that no other process has a file open or mapped
//! (an exclusive lease), which `/proc` cannot prove for processes it does not show.

use std::path::Path;

/// Removes the file at `path` only if it is the file `inode`. Checking and then unlinking
/// would leave a window in which another process re-creates the name and loses its new
/// file; so the name is first moved aside (a rename is atomic), the moved file checked,
/// and a file that is not ours put back under its name — never over a file created there
/// meanwhile (`RENAME_NOREPLACE`); in that last, triple race the moved file had already
/// lost its name to a newer file and is removed. Returns whether the file `inode` was
/// removed by this call.
pub fn remove_if_same(path: &Path, inode: u64) -> bool {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use std::os::unix::fs::MetadataExt;
    let Some(name) = path.file_name() else {
        return false;
    };
    let stamp = crate::sys::clock::monotonic_ns();
    let aside = path.with_file_name(format!(
        ".{}.{}.{stamp}.removing",
        name.to_string_lossy(),
        std::process::id()
    ));
    if std::fs::rename(path, &aside).is_err() {
        return false; // gone already
    }
    let ours = std::fs::symlink_metadata(&aside).is_ok_and(|m| m.ino() == inode);
    if !ours && renameat_with(CWD, &aside, CWD, path, RenameFlags::NOREPLACE).is_ok() {
        return false;
    }
    std::fs::remove_file(&aside).is_ok() && ours
}

/// An exclusive (write) lease on an open file: while it is held, no other open file
/// description of the file exists — no process in any PID namespace has it open or mapped
/// (a mapping keeps its file open). Released on drop.
#[derive(Debug)]
pub struct ExclusiveLease<'f> {
    file: &'f std::fs::File,
}

impl<'f> ExclusiveLease<'f> {
    /// Takes the lease. `Ok(None)`: another process has the file open or mapped (the kernel
    /// refused with `EAGAIN`); an error: leases are unavailable here (not the file's owner
    /// and no `CAP_LEASE`, leases disabled, a file system without them).
    pub fn take(file: &'f std::fs::File) -> std::io::Result<Option<ExclusiveLease<'f>>> {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a descriptor `file` owns for the call's duration; F_SETLEASE
        // takes an int argument and touches no memory of ours.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
        if rc == 0 {
            return Ok(Some(ExclusiveLease { file }));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EAGAIN) {
            Ok(None)
        } else {
            Err(e)
        }
    }
}

impl Drop for ExclusiveLease<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as in `take`; releasing a lease cannot fail in a way we could act on.
        unsafe {
            libc::fcntl(self.file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
        }
    }
}

/// Why [`open_regular`] refused a path.
#[derive(Debug)]
pub enum OpenRegularError {
    /// Something other than a regular file is there: `"a FIFO"`, `"a symbolic link"`, ….
    NotRegular(&'static str),
    /// Opening or `fstat` failed.
    Io(std::io::Error),
}

/// Opens `path` for reading (and writing if `write`) only if it is a regular file: never
/// through a symbolic link (`O_NOFOLLOW`), never waiting for a FIFO's other end
/// (`O_NONBLOCK`, which a regular file ignores), and checking the file actually opened
/// (`fstat`), not the name — so a FIFO or link planted under a name in a shared directory is
/// refused at once instead of hanging the caller or leading it to another file.
pub fn open_regular(
    path: &Path,
    write: bool,
) -> Result<(std::fs::File, std::fs::Metadata), OpenRegularError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => OpenRegularError::NotRegular("a symbolic link"),
            _ => OpenRegularError::Io(e),
        })?;
    let meta = file.metadata().map_err(OpenRegularError::Io)?;
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok((file, meta));
    }
    Err(OpenRegularError::NotRegular(if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "a special file"
    }))
}
