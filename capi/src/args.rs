//! Arguments from C, checked once: pointers for NULL, names for UTF-8, timeouts from
//! nanoseconds, and out-parameters written only on success.

use crate::status::{shmkit_status, CResult, Failure};
use shmkit::Timeout;
use std::ffi::{c_char, CStr};
use std::time::Duration;

/// The timeout a C caller spells as nanoseconds: negative waits forever, zero polls.
pub(crate) fn timeout(ns: i64) -> Timeout {
    match u64::try_from(ns) {
        Ok(ns) => Timeout::After(Duration::from_nanos(ns)),
        Err(_) => Timeout::Forever,
    }
}

/// `ptr` as a reference, or `SHMKIT_E_NULL` naming the argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` that no one mutates for `'a`.
pub(crate) unsafe fn get<'a, T>(ptr: *const T, what: &str) -> CResult<&'a T> {
    // SAFETY: the caller's promise for a non-NULL pointer; NULL is refused by `as_ref`.
    unsafe { ptr.as_ref() }.ok_or_else(|| null(what))
}

/// `ptr` as a unique reference, or `SHMKIT_E_NULL` naming the argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` that nothing else reads or writes for `'a`.
pub(crate) unsafe fn get_mut<'a, T>(ptr: *mut T, what: &str) -> CResult<&'a mut T> {
    // SAFETY: the caller's promise for a non-NULL pointer; NULL is refused by `as_mut`.
    unsafe { ptr.as_mut() }.ok_or_else(|| null(what))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, what: &str) -> CResult<&'a str> {
    if ptr.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's promise.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|_| {
        Failure::new(
            shmkit_status::SHMKIT_E_INVALID,
            format!("argument `{what}` is not valid UTF-8"),
        )
    })
}

/// `len` bytes at `ptr` (NULL allowed only when `len` is 0).
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes that live for `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> CResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-NULL, `len` readable bytes by the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Writes `value` through the out-parameter `out` (checked for NULL by the caller first).
///
/// # Safety
/// `out` must be valid for a write of `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T) {
    // SAFETY: the caller's promise; `write` does not drop the uninitialised old value.
    unsafe { out.write(value) }
}

/// Refuses a NULL out-parameter before any work is done.
pub(crate) fn out<T>(ptr: *mut T, what: &str) -> CResult<()> {
    if ptr.is_null() {
        Err(null(what))
    } else {
        Ok(())
    }
}

fn null(what: &str) -> Failure {
    Failure::new(
        shmkit_status::SHMKIT_E_NULL,
        format!("argument `{what}` is NULL"),
    )
}
