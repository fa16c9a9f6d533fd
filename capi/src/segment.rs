//! Segments from C: create, open, open-or-create, close (which frees the handle) and unlink.

use crate::args::{self, get, out, put, text};
use crate::status::{run, shmkit_status, CResult};
use shmkit::{CreateOptions, Segment};
use std::ffi::c_char;

/// An open segment. Objects opened from it keep the mapping alive after it is closed.
///
/// Thread-safety: a segment handle may be used from any number of threads at once.
pub struct shmkit_segment {
    pub(crate) inner: Segment,
}

impl shmkit_segment {
    /// # Safety
    /// `ptr` is NULL or a handle from `shmkit_segment_*` not yet closed.
    pub(crate) unsafe fn arg<'a>(ptr: *const shmkit_segment) -> CResult<&'a Segment> {
        // SAFETY: the caller's promise.
        Ok(&unsafe { get(ptr, "segment") }?.inner)
    }
}

fn make(
    name: *const c_char,
    out_ptr: *mut *mut shmkit_segment,
    open: impl FnOnce(&str) -> Result<Segment, shmkit::SegmentError>,
) -> shmkit_status {
    run(|| {
        out(out_ptr, "out")?;
        // SAFETY: the C contract of every function here: `name` is a NUL-terminated string.
        let name = unsafe { text(name, "name") }?;
        let segment = open(name)?;
        let handle = Box::into_raw(Box::new(shmkit_segment { inner: segment }));
        // SAFETY: checked non-NULL above; the caller passes a writable pointer.
        unsafe { put(out_ptr, handle) };
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Creates segment `name` (`/dev/shm/NAME`, mode 0600) of `size` bytes; `SHMKIT_E_EXISTS` if
/// it exists. On success `*out` is the new handle (free it with `shmkit_segment_close`).
///
/// # Safety
/// `name` is a NUL-terminated string; `out` is writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_segment_create(
    name: *const c_char,
    size: u64,
    out: *mut *mut shmkit_segment,
) -> shmkit_status {
    make(name, out, |n| Segment::create(n, &CreateOptions::new(size)))
}

/// Opens the existing segment `name` (checking its owner, layout version and header).
///
/// # Safety
/// `name` is a NUL-terminated string; `out` is writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_segment_open(
    name: *const c_char,
    out: *mut *mut shmkit_segment,
) -> shmkit_status {
    make(name, out, Segment::open)
}

/// Opens segment `name`, creating it with `size` bytes if it does not exist (safe against
/// racing creators in any process).
///
/// # Safety
/// `name` is a NUL-terminated string; `out` is writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_segment_open_or_create(
    name: *const c_char,
    size: u64,
    out: *mut *mut shmkit_segment,
) -> shmkit_status {
    make(name, out, |n| {
        Segment::open_or_create(n, &CreateOptions::new(size))
    })
}

/// Closes the handle and frees it (NULL is a no-op). The segment stays until unlinked, and
/// objects opened from it stay usable.
///
/// # Safety
/// `segment` is NULL or a handle not yet closed; it is invalid afterwards.
///
/// Thread-safety: no other thread may use this handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn shmkit_segment_close(segment: *mut shmkit_segment) -> shmkit_status {
    run(|| {
        if segment.is_null() {
            return Ok(shmkit_status::SHMKIT_OK);
        }
        // SAFETY: a handle from `Box::into_raw` above, not yet closed (the caller's promise).
        // Dropped, not `Segment::close`d: objects opened from it may still be in use, and
        // they keep the mapping alive on purpose.
        drop(unsafe { Box::from_raw(segment) });
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Removes segment `name` from the system: processes that have it open keep using it; the
/// memory goes when the last one closes it.
///
/// # Safety
/// `name` is a NUL-terminated string.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_segment_unlink(name: *const c_char) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        let name = unsafe { args::text(name, "name") }?;
        Segment::unlink(name)?;
        Ok(shmkit_status::SHMKIT_OK)
    })
}
