//! The stream's semaphores: unnamed process-shared glibc `sem_t`s inside the mapped file.
//!
//! These are raw calls on pointers into the mapping. A hostile file can hold any bytes in a
//! `sem_t`; glibc then returns an error or wakes nobody, but every access stays inside the
//! 32 bytes the layout gives the semaphore, which the mapping holds.

use super::layout::SEMAPHORE_MAXVAL;
use std::io;
use std::time::Duration;

/// Initialises a process-shared semaphore at 0.
///
/// # Safety
/// `sem` points to 32 writable bytes of a live mapping, aligned to 8, that no other thread
/// uses as a semaphore while it is initialised.
pub(crate) unsafe fn init(sem: *mut libc::sem_t) -> io::Result<()> {
    // SAFETY: the caller's contract; pshared = 1 (the semaphore lives in a shared mapping).
    if unsafe { libc::sem_init(sem, 1, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Posts `sem` unless its value already reached [`SEMAPHORE_MAXVAL`] (the reference
/// writer's rule: a reader that fell behind catches up with at most that many posts).
/// Returns whether it posted.
///
/// # Safety
/// `sem` points to 32 bytes of a live mapping, aligned to 8.
pub(crate) unsafe fn post_capped(sem: *mut libc::sem_t) -> bool {
    let mut value: libc::c_int = 0;
    // SAFETY: the caller's contract; `value` is a live local.
    unsafe {
        if libc::sem_getvalue(sem, &mut value) != 0 || value >= SEMAPHORE_MAXVAL {
            return false;
        }
        libc::sem_post(sem) == 0
    }
}

/// Takes every pending post (a reader starting up ignores what it missed).
///
/// # Safety
/// As [`post_capped`].
pub(crate) unsafe fn flush(sem: *mut libc::sem_t) {
    // At most a bounded number: a hostile value cannot keep this loop going.
    for _ in 0..=SEMAPHORE_MAXVAL {
        // SAFETY: the caller's contract.
        if unsafe { libc::sem_trywait(sem) } != 0 {
            break;
        }
    }
}

/// Waits up to `timeout` for a post; `Ok(true)` if one was taken.
///
/// # Safety
/// As [`post_capped`].
pub(crate) unsafe fn wait(sem: *mut libc::sem_t, timeout: Duration) -> io::Result<bool> {
    // sem_timedwait takes an absolute CLOCK_REALTIME deadline.
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a live local.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    let total = (now.tv_nsec as u64).saturating_add(timeout.subsec_nanos() as u64);
    let deadline = libc::timespec {
        tv_sec: now
            .tv_sec
            .saturating_add(timeout.as_secs().min(i64::MAX as u64 / 2) as libc::time_t)
            .saturating_add((total / 1_000_000_000) as libc::time_t),
        tv_nsec: (total % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: the caller's contract; `deadline` is a live local.
        if unsafe { libc::sem_timedwait(sem, &deadline) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ETIMEDOUT) => return Ok(false),
            _ => return Err(e),
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn posts_stop_at_the_cap_and_waits_take_them() {
        let mut storage = [0u64; 4];
        let sem = storage.as_mut_ptr().cast::<libc::sem_t>();
        // SAFETY: 32 aligned bytes owned by this test.
        unsafe {
            init(sem).unwrap();
            for _ in 0..15 {
                post_capped(sem);
            }
            let mut v = 0;
            libc::sem_getvalue(sem, &mut v);
            assert_eq!(v, SEMAPHORE_MAXVAL);
            assert!(wait(sem, Duration::from_millis(10)).unwrap());
            flush(sem);
            assert!(!wait(sem, Duration::from_millis(10)).unwrap(), "flushed");
        }
    }
}
