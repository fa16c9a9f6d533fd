//! Handles: every object handle is a `Box` handed to C as a raw pointer, made here from a
//! segment and a name, and freed here.

use crate::args::{out, put, text};
use crate::segment::shmkit_segment;
use crate::status::{run, shmkit_status};
use std::ffi::c_char;

/// Opens the object `name` of a segment (or creates it), boxes it and hands it out.
pub(crate) fn open_object<T, H>(
    segment: *const shmkit_segment,
    name: *const c_char,
    out_ptr: *mut *mut H,
    open: impl FnOnce(&shmkit::Segment, &str) -> Result<T, shmkit::SegmentError>,
    wrap: impl FnOnce(T) -> H,
) -> shmkit_status {
    run(|| {
        out(out_ptr, "out")?;
        // SAFETY: the C contract: a live segment handle and a NUL-terminated name.
        let (segment, name) = unsafe { (shmkit_segment::arg(segment)?, text(name, "name")?) };
        let object = open(segment, name)?;
        // SAFETY: checked non-NULL above; writable by the C contract.
        unsafe { put(out_ptr, Box::into_raw(Box::new(wrap(object)))) };
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Frees a handle made by `Box::into_raw` (NULL is a no-op).
///
/// # Safety
/// `ptr` is NULL or a live handle of this type, unused by any other thread from now on.
pub(crate) unsafe fn free<H>(ptr: *mut H) {
    if !ptr.is_null() {
        // SAFETY: the caller's promise: it came from `Box::into_raw` and is freed once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}
