//! Mutexes, events and barriers from C: found or created by name in a segment, each handle
//! freed by its own function.
//!
//! A mutex is held by the calling *thread* (as a robust recursive pthread mutex is): lock
//! and unlock from the same thread, as many unlocks as locks.

use crate::args::{get, put, timeout};
use crate::handle::{free, open_object};
use crate::interrupt::Flag;
use crate::segment::shmkit_segment;
use crate::status::{run, shmkit_status, CResult};
use shmkit::{Barrier, Event, Held, Mutex, SegmentObjects, Timeout};
use std::ffi::c_char;

/// A process-shared, robust, recursive mutex.
///
/// Thread-safety: one handle may be used from any number of threads at once; each thread
/// holds and releases the mutex for itself.
pub struct shmkit_mutex {
    inner: Mutex,
}

/// A process-shared event (as `threading.Event`).
///
/// Thread-safety: one handle may be used from any number of threads at once.
pub struct shmkit_event {
    inner: Event,
}

/// A process-shared barrier for a fixed number of parties (as `threading.Barrier`).
///
/// Thread-safety: one handle may be used from any number of threads at once.
pub struct shmkit_barrier {
    inner: Barrier,
}

/// Opens the mutex `name` in `segment`, creating it if it does not exist.
///
/// # Safety
/// `segment` is a live handle, `name` a NUL-terminated string, `out` writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_mutex_open(
    segment: *const shmkit_segment,
    name: *const c_char,
    out: *mut *mut shmkit_mutex,
) -> shmkit_status {
    open_object(
        segment,
        name,
        out,
        |s, n| s.mutex(n),
        |inner| shmkit_mutex { inner },
    )
}

/// # Safety
/// `mutex` is NULL or a live handle.
unsafe fn mutex<'a>(mutex: *const shmkit_mutex) -> CResult<&'a Mutex> {
    // SAFETY: the caller's promise.
    Ok(&unsafe { get(mutex, "mutex") }?.inner)
}

fn held(held: Held) -> shmkit_status {
    match held {
        Held::Once | Held::Reentered { .. } => shmkit_status::SHMKIT_OK,
        Held::OwnerDied { .. } => shmkit_status::SHMKIT_OWNER_DIED,
    }
}

/// Locks the mutex, waiting at most `timeout_ns` (negative: forever; 0: do not wait).
/// Re-entrant: a thread that holds it locks it again at once. Returns `SHMKIT_OK`, or
/// `SHMKIT_OWNER_DIED` — also holding it — when its previous holder died inside its critical
/// section: repair the data, then `shmkit_mutex_make_consistent`. Failures:
/// `SHMKIT_E_TIMEOUT`, `SHMKIT_E_WOULD_BLOCK` (zero timeout), `SHMKIT_E_INTERRUPTED`,
/// `SHMKIT_E_NOT_RECOVERABLE`.
///
/// # Safety
/// `mutex` is a live handle.
///
/// Thread-safety: any thread; the calling thread becomes the holder.
#[no_mangle]
pub unsafe extern "C" fn shmkit_mutex_lock(
    mutex: *const shmkit_mutex,
    timeout_ns: i64,
) -> shmkit_status {
    // The uncontended case — one compare-and-swap — before the panic guard, which costs as
    // much again: it is atomics only (a panic there, were one possible, would abort the
    // process: an `extern "C"` function never unwinds).
    // SAFETY: the caller's promise.
    if let Some(m) = unsafe { mutex.as_ref() } {
        if m.inner.try_acquire_free() {
            return shmkit_status::SHMKIT_OK;
        }
    }
    run(|| {
        // SAFETY: the caller's promise.
        let m = unsafe { self::mutex(mutex) }?;
        Ok(held(m.acquire(timeout(timeout_ns), &Flag)?))
    })
}

/// Unlocks one level held by the calling thread. `SHMKIT_E_NOT_OWNER` if it holds none
/// (nothing changes). Unlocking the last level after `SHMKIT_OWNER_DIED` without
/// `shmkit_mutex_make_consistent` makes the mutex not recoverable.
///
/// # Safety
/// `mutex` is a live handle.
///
/// Thread-safety: the thread that locked it.
#[no_mangle]
pub unsafe extern "C" fn shmkit_mutex_unlock(mutex: *const shmkit_mutex) -> shmkit_status {
    // The common case before the panic guard, as in `shmkit_mutex_lock`.
    // SAFETY: the caller's promise.
    if let Some(m) = unsafe { mutex.as_ref() } {
        if m.inner.try_release_fast() {
            return shmkit_status::SHMKIT_OK;
        }
    }
    run(|| {
        // SAFETY: the caller's promise.
        unsafe { self::mutex(mutex) }?.release()?;
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Declares the data repaired after `SHMKIT_OWNER_DIED`; the calling thread must hold the
/// mutex (`SHMKIT_E_NOT_OWNER` otherwise).
///
/// # Safety
/// `mutex` is a live handle.
///
/// Thread-safety: the thread that holds it.
#[no_mangle]
pub unsafe extern "C" fn shmkit_mutex_make_consistent(mutex: *const shmkit_mutex) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        unsafe { self::mutex(mutex) }?.make_consistent()?;
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Frees the handle (NULL is a no-op). A level the calling thread still holds stays held
/// (by the thread, not the handle): unlock through another handle of the same mutex.
///
/// # Safety
/// `mutex` is NULL or a live handle, unused afterwards.
///
/// Thread-safety: no other thread may use this handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn shmkit_mutex_free(mutex: *mut shmkit_mutex) {
    // SAFETY: the caller's promise.
    unsafe { free(mutex) }
}

/// Opens the event `name` in `segment`, creating it (cleared) if it does not exist.
///
/// # Safety
/// `segment` is a live handle, `name` a NUL-terminated string, `out` writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_event_open(
    segment: *const shmkit_segment,
    name: *const c_char,
    out: *mut *mut shmkit_event,
) -> shmkit_status {
    open_object(
        segment,
        name,
        out,
        |s, n| s.event(n),
        |inner| shmkit_event { inner },
    )
}

/// # Safety
/// `event` is NULL or a live handle.
unsafe fn event<'a>(event: *const shmkit_event) -> CResult<&'a Event> {
    // SAFETY: the caller's promise.
    Ok(&unsafe { get(event, "event") }?.inner)
}

/// Sets the event, waking every waiter in every process.
///
/// # Safety
/// `event` is a live handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_event_set(event: *const shmkit_event) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        unsafe { self::event(event) }?.set();
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Clears the event.
///
/// # Safety
/// `event` is a live handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_event_clear(event: *const shmkit_event) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        unsafe { self::event(event) }?.clear();
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Whether the event is set: 1 or 0 (-1 for a NULL handle).
///
/// # Safety
/// `event` is NULL or a live handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_event_is_set(event: *const shmkit_event) -> i32 {
    // SAFETY: the caller's promise.
    match unsafe { event.as_ref() } {
        Some(e) => i32::from(e.inner.is_set()),
        None => -1,
    }
}

/// Waits until the event is set, at most `timeout_ns` (negative: forever; 0: poll).
/// `SHMKIT_OK` once set, `SHMKIT_E_TIMEOUT` or `SHMKIT_E_INTERRUPTED` otherwise.
///
/// # Safety
/// `event` is a live handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_event_wait(
    event: *const shmkit_event,
    timeout_ns: i64,
) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        let e = unsafe { self::event(event) }?;
        let t = timeout(timeout_ns);
        match e.wait_interruptible(t, &Flag) {
            Ok(true) => Ok(shmkit_status::SHMKIT_OK),
            Ok(false) => Err(crate::status::Failure::new(
                shmkit_status::SHMKIT_E_TIMEOUT,
                format!("the event was not set within {}", describe(t)),
            )),
            Err(e) => Err(crate::status::Failure::new(
                shmkit_status::SHMKIT_E_INTERRUPTED,
                e.to_string(),
            )),
        }
    })
}

fn describe(t: Timeout) -> String {
    match t {
        Timeout::After(d) => format!("{d:?}"),
        Timeout::Forever => "forever".into(),
    }
}

/// Frees the handle (NULL is a no-op).
///
/// # Safety
/// `event` is NULL or a live handle, unused afterwards.
///
/// Thread-safety: no other thread may use this handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn shmkit_event_free(event: *mut shmkit_event) {
    // SAFETY: the caller's promise.
    unsafe { free(event) }
}

/// Opens the barrier `name` in `segment` for `parties` parties, creating it if it does not
/// exist (`SHMKIT_E_MISMATCH` if it exists for another number).
///
/// # Safety
/// `segment` is a live handle, `name` a NUL-terminated string, `out` writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_barrier_open(
    segment: *const shmkit_segment,
    name: *const c_char,
    parties: u32,
    out: *mut *mut shmkit_barrier,
) -> shmkit_status {
    open_object(
        segment,
        name,
        out,
        |s, n| s.open_or_create::<Barrier>(n, &parties),
        |inner| shmkit_barrier { inner },
    )
}

/// # Safety
/// `barrier` is NULL or a live handle.
unsafe fn barrier<'a>(barrier: *const shmkit_barrier) -> CResult<&'a Barrier> {
    // SAFETY: the caller's promise.
    Ok(&unsafe { get(barrier, "barrier") }?.inner)
}

/// Waits until all parties arrive, at most `timeout_ns` (negative: forever). On `SHMKIT_OK`,
/// `*index` (if not NULL) is the arrival order, `parties - 1` for the last. A timeout, an
/// interrupt or a party's death breaks the barrier for everyone (`SHMKIT_E_TIMEOUT`,
/// `SHMKIT_E_INTERRUPTED`, `SHMKIT_E_BROKEN`) until `shmkit_barrier_reset`.
///
/// # Safety
/// `barrier` is a live handle; `index` is NULL or writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_barrier_wait(
    barrier: *const shmkit_barrier,
    timeout_ns: i64,
    index: *mut u32,
) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        let b = unsafe { self::barrier(barrier) }?;
        let waited = b.wait_interruptible(timeout(timeout_ns), &Flag)?;
        if !index.is_null() {
            // SAFETY: non-NULL and writable by the caller's promise.
            unsafe { put(index, waited.index) };
        }
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Breaks the barrier: every waiter, now and until `shmkit_barrier_reset`, gets
/// `SHMKIT_E_BROKEN`.
///
/// # Safety
/// `barrier` is a live handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_barrier_abort(barrier: *const shmkit_barrier) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        unsafe { self::barrier(barrier) }?.abort();
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Returns the barrier to its initial state (waiters get `SHMKIT_E_BROKEN`).
///
/// # Safety
/// `barrier` is a live handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_barrier_reset(barrier: *const shmkit_barrier) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        unsafe { self::barrier(barrier) }?.reset();
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Frees the handle (NULL is a no-op).
///
/// # Safety
/// `barrier` is NULL or a live handle, unused afterwards.
///
/// Thread-safety: no other thread may use this handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn shmkit_barrier_free(barrier: *mut shmkit_barrier) {
    // SAFETY: the caller's promise.
    unsafe { free(barrier) }
}
