//! The stream's semaphores: unnamed process-shared glibc `sem_t`s inside the mapped file,
//! waited on and posted by this module's own code, never by glibc's.
//!
//! The bytes are foreign (any process that can write the file can write them), and glibc's
//! `sem_post` / `sem_timedwait` `abort()` the process when the futex call they make fails on
//! a garbage `private` word. So this module speaks glibc's protocol itself, on the layout
//! glibc uses on 64-bit targets (`struct new_sem` with 64-bit atomics, glibc ≥ 2.21):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0–7 | `data` | low 32 bits: the value; high 32 bits: the number of waiters |
//! | 8–11 | `private` | 128 (`FUTEX_SHARED` in glibc's terms) for a process-shared semaphore |
//! | 12–31 | — | padding |
//!
//! Post: add one to the value (never past [`SEMAPHORE_MAXVAL`]), then, if anyone waits, wake
//! one through a shared futex on the value's word. Wait: take a unit if the value is non-zero;
//! otherwise count ourselves a waiter, sleep on the value's word while it is zero, and take a
//! unit and stop counting ourselves in one compare-and-swap. That is what glibc does, so C
//! readers and writers of the stream interoperate with these. A semaphore whose value is
//! beyond `SEM_VALUE_MAX` or whose `private` word is neither glibc's shared nor private value
//! is [`SemError::Corrupt`]: a typed error, never an abort. Every loop is bounded by a deadline
//! or a retry count, so a word another process keeps changing cannot hold a call forever.

use super::layout::SEMAPHORE_MAXVAL;
use shmkit::os::clock::Deadline;
use shmkit::os::futex::{self, FutexWait};
use shmkit::{Interrupt, NoInterrupt, Timeout, INTERRUPT_POLL};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The value's bits of `data`.
const VALUE_MASK: u64 = 0xffff_ffff;
/// One waiter, in `data`'s high half.
const ONE_WAITER: u64 = 1 << 32;
/// glibc's `SEM_VALUE_MAX` (`INT_MAX`).
const SEM_VALUE_MAX: u64 = i32::MAX as u64;
/// The `private` words glibc writes: process-private (0) and process-shared (128).
const PRIVATE_WORDS: [u32; 2] = [0, 128];
/// Compare-and-swap retries before a post gives up on a word that keeps changing.
const CAS_RETRIES: u32 = 10_000;

/// A semaphore's bytes that glibc would not have written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SemError {
    /// The value or the `private` word is out of glibc's range.
    #[error("corrupt semaphore (data word {data:#018x}, private word {private:#x})")]
    Corrupt {
        /// The `data` word as read.
        data: u64,
        /// The `private` word as read.
        private: u32,
    },
}

/// The semaphore's two words.
struct Sem<'a> {
    data: &'a AtomicU64,
    private: &'a AtomicU32,
}

impl Sem<'_> {
    /// # Safety
    /// `sem` points to 32 bytes of a live mapping, aligned to 8, that stay mapped for `'a`.
    unsafe fn at<'a>(sem: *mut libc::sem_t) -> Sem<'a> {
        // SAFETY: the caller's contract: bytes 0–7 and 8–11 are in the mapping and aligned for
        // their types; the mapping is shared memory, accessed only through atomics here.
        unsafe {
            Sem {
                data: AtomicU64::from_ptr(sem.cast::<u64>()),
                private: AtomicU32::from_ptr(sem.cast::<u32>().add(2)),
            }
        }
    }

    /// The value's 32-bit word, as the futex address. Only the kernel reads it through this
    /// reference (futex wait compares it, wake names it): every Rust access to these bytes is
    /// the 64-bit `data` atomic, so no two atomic accesses of different sizes race.
    fn value_word(&self) -> &AtomicU32 {
        // SAFETY: the low half of an aligned u64 on a little-endian target is an aligned u32
        // inside the same live mapping.
        unsafe { AtomicU32::from_ptr(self.data.as_ptr().cast::<u32>()) }
    }

    /// Checks the words glibc's range allows.
    fn check(&self, data: u64) -> Result<(), SemError> {
        let private = self.private.load(Ordering::Relaxed);
        if data & VALUE_MASK > SEM_VALUE_MAX || !PRIVATE_WORDS.contains(&private) {
            return Err(SemError::Corrupt { data, private });
        }
        Ok(())
    }
}

#[cfg(not(target_endian = "little"))]
compile_error!("the ImageStreamIO semaphore protocol is written for little-endian targets");

/// Initialises a process-shared semaphore at 0 (glibc's `sem_init`: the one call into libc,
/// in `sys.rs`).
///
/// # Safety
/// As for `sys::sem_init`.
pub(crate) unsafe fn init(sem: *mut libc::sem_t) -> std::io::Result<()> {
    // SAFETY: the caller's contract, passed on.
    unsafe { super::sys::sem_init(sem) }
}

/// Posts `sem` unless its value already reached [`SEMAPHORE_MAXVAL`] (the reference
/// writer's rule: a reader that fell behind catches up with at most that many posts).
/// Returns whether it posted.
///
/// # Safety
/// `sem` points to 32 bytes of a live mapping, aligned to 8.
pub(crate) unsafe fn post_capped(sem: *mut libc::sem_t) -> Result<bool, SemError> {
    // SAFETY: the caller's contract.
    let s = unsafe { Sem::at(sem) };
    let mut data = s.data.load(Ordering::Relaxed);
    for _ in 0..CAS_RETRIES {
        s.check(data)?;
        if data & VALUE_MASK >= SEMAPHORE_MAXVAL as u64 {
            return Ok(false);
        }
        // Release: pairs with the Acquire of the waiter's take: what was written before the
        // post (the frame) is visible to the reader that takes it.
        match s
            .data
            .compare_exchange_weak(data, data + 1, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => {
                if data >> 32 != 0 {
                    futex::wake(s.value_word(), 1);
                }
                return Ok(true);
            }
            Err(now) => data = now,
        }
    }
    Ok(false)
}

/// Takes every pending post (a reader starting up ignores what it missed).
///
/// # Safety
/// As [`post_capped`].
pub(crate) unsafe fn flush(sem: *mut libc::sem_t) -> Result<(), SemError> {
    // At most a bounded number: a hostile value cannot keep this loop going.
    for _ in 0..=SEMAPHORE_MAXVAL {
        // SAFETY: the caller's contract.
        if !unsafe { try_take(&Sem::at(sem)) }? {
            break;
        }
    }
    Ok(())
}

/// Posts, waits (without sleeping) and flushes a semaphore made of `bytes`, as the importer
/// and exporter would on a stream's bytes: what each returned. For the fuzz target
/// (`fuzz/fuzz_targets/isio_semaphore.rs`): arbitrary bytes give typed errors, never a
/// panic, an abort or a hang.
#[doc(hidden)]
pub fn exercise(bytes: [u8; 32]) -> [Result<bool, SemError>; 3] {
    #[repr(C, align(8))]
    struct Aligned([u8; 32]);
    const _: () = assert!(std::mem::size_of::<libc::sem_t>() == 32);
    let mut sem = Aligned(bytes);
    let ptr = sem.0.as_mut_ptr().cast::<libc::sem_t>();
    // SAFETY: `ptr` is 32 bytes we own, aligned to 8, alive for these calls.
    unsafe {
        [
            post_capped(ptr),
            wait(ptr, Duration::ZERO),
            flush(ptr).map(|()| true),
        ]
    }
}

/// Takes one unit if the value is non-zero (one compare-and-swap attempt round).
fn try_take(s: &Sem<'_>) -> Result<bool, SemError> {
    let mut data = s.data.load(Ordering::Relaxed);
    for _ in 0..CAS_RETRIES {
        s.check(data)?;
        if data & VALUE_MASK == 0 {
            return Ok(false);
        }
        // Acquire: pairs with the poster's Release increment.
        match s
            .data
            .compare_exchange_weak(data, data - 1, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => return Ok(true),
            Err(now) => data = now,
        }
    }
    Ok(false)
}

/// Waits up to `timeout` for a post; `Ok(true)` if one was taken.
///
/// # Safety
/// As [`post_capped`].
pub(crate) unsafe fn wait(sem: *mut libc::sem_t, timeout: Duration) -> Result<bool, SemError> {
    // SAFETY: the caller's contract, passed on.
    match unsafe { wait_interruptible(sem, Timeout::After(timeout), &NoInterrupt) }? {
        Waited::Posted => Ok(true),
        Waited::TimedOut | Waited::Interrupted => Ok(false),
    }
}

/// How an interruptible semaphore wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// A unit was taken.
    Posted,
    /// The timeout passed.
    TimedOut,
    /// The interrupt check said stop (checked at least every `INTERRUPT_POLL` while asleep).
    Interrupted,
}

/// [`wait`] within `timeout`, giving up within `INTERRUPT_POLL` (50 ms) of `interrupt`
/// saying stop.
///
/// # Safety
/// As for [`wait`].
pub(crate) unsafe fn wait_interruptible(
    sem: *mut libc::sem_t,
    timeout: Timeout,
    interrupt: &dyn Interrupt,
) -> Result<Waited, SemError> {
    // SAFETY: the caller's contract.
    let s = unsafe { Sem::at(sem) };
    if try_take(&s)? {
        return Ok(Waited::Posted);
    }
    let deadline = match timeout {
        Timeout::After(d) => Deadline::after(d),
        Timeout::Forever => Deadline::NEVER,
    };
    // Counted as a waiter, so that a poster (ours or glibc's) wakes us. Wrapping: a hostile
    // count is the poster's problem (one more wake call), never ours.
    s.data.fetch_add(ONE_WAITER, Ordering::Relaxed);
    let outcome = loop {
        let data = s.data.load(Ordering::Relaxed);
        if let Err(e) = s.check(data) {
            break Err(e);
        }
        if data & VALUE_MASK != 0 {
            // Take a unit and stop counting ourselves a waiter in one step, as glibc does.
            // Acquire: pairs with the poster's Release increment.
            let taken = data.wrapping_sub(1).wrapping_sub(ONE_WAITER);
            if s.data
                .compare_exchange_weak(data, taken, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(Waited::Posted);
            }
            if deadline.expired() {
                break Ok(Waited::TimedOut);
            }
            continue;
        }
        if interrupt.should_stop() {
            break Ok(Waited::Interrupted);
        }
        // In slices when there is an interrupt to consult, in one piece otherwise.
        let until = if interrupt.is_active() {
            deadline.capped(INTERRUPT_POLL)
        } else {
            deadline
        };
        match futex::wait(s.value_word(), 0, until) {
            FutexWait::TimedOut
            | FutexWait::Woken
            | FutexWait::Changed
            | FutexWait::Interrupted => {
                if deadline.expired() {
                    break Ok(Waited::TimedOut);
                }
            }
        }
    };
    s.data.fetch_sub(ONE_WAITER, Ordering::Relaxed);
    outcome
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// 32 aligned bytes for one semaphore, leaked so that they outlive every thread of a test;
    /// every access below goes through the returned pointer.
    fn new_sem() -> *mut libc::sem_t {
        let sem = Box::leak(Box::new([0u64; 4]))
            .as_mut_ptr()
            .cast::<libc::sem_t>();
        // SAFETY: 32 aligned bytes, never freed.
        unsafe { init(sem).unwrap() };
        sem
    }

    fn words(sem: *mut libc::sem_t) -> Sem<'static> {
        // SAFETY: a semaphore from `new_sem`, never freed.
        unsafe { Sem::at(sem) }
    }

    fn value(sem: *mut libc::sem_t) -> i32 {
        let mut v = 0;
        // SAFETY: an initialised semaphore from `new_sem`.
        unsafe { libc::sem_getvalue(sem, &mut v) };
        v
    }

    #[test]
    fn posts_stop_at_the_cap_and_waits_take_them() {
        let sem = new_sem();
        // SAFETY: a semaphore from `new_sem`.
        unsafe {
            for _ in 0..15 {
                post_capped(sem).unwrap();
            }
            assert_eq!(value(sem), SEMAPHORE_MAXVAL);
            assert!(wait(sem, Duration::from_millis(10)).unwrap());
            flush(sem).unwrap();
            assert!(!wait(sem, Duration::from_millis(10)).unwrap(), "flushed");
        }
    }

    /// Our post wakes glibc's `sem_timedwait`, glibc's `sem_post` wakes our wait: a C reader
    /// or writer of the stream interoperates.
    #[test]
    fn glibc_and_this_module_wake_each_other() {
        let sem = new_sem();
        let at = sem as usize;
        let glibc_waiter = std::thread::spawn(move || {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: a live local; a semaphore from `new_sem`.
            unsafe {
                libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
                ts.tv_sec += 10;
                libc::sem_timedwait(at as *mut libc::sem_t, &ts)
            }
        });
        // Post only once glibc counts itself a waiter (the high half of `data`), so the wake
        // is what ends its sleep.
        while words(sem).data.load(Ordering::Acquire) >> 32 == 0 {
            std::thread::yield_now();
        }
        // SAFETY: a semaphore from `new_sem`.
        assert!(unsafe { post_capped(sem) }.unwrap());
        assert_eq!(
            glibc_waiter.join().unwrap(),
            0,
            "glibc's wait took our post"
        );

        let ours = std::thread::spawn(move || {
            // SAFETY: a semaphore from `new_sem`.
            unsafe { wait(at as *mut libc::sem_t, Duration::from_secs(10)) }
        });
        while words(sem).data.load(Ordering::Acquire) >> 32 == 0 {
            std::thread::yield_now();
        }
        // SAFETY: a semaphore from `new_sem`.
        assert_eq!(unsafe { libc::sem_post(sem) }, 0);
        assert_eq!(ours.join().unwrap(), Ok(true), "our wait took glibc's post");
        assert_eq!(
            words(sem).data.load(Ordering::Acquire),
            0,
            "no unit, no waiter left"
        );
    }

    /// The bytes that make glibc abort (a garbage `private` word, a waiter count set) are a
    /// typed error or a harmless extra wake here.
    #[test]
    fn vandalised_words_are_typed_errors_never_an_abort() {
        let sem = new_sem();
        let w = words(sem);
        // SAFETY: every call below is on a semaphore from `new_sem`.
        unsafe {
            w.private.store(0xdead_beef, Ordering::Relaxed);
            assert!(matches!(post_capped(sem), Err(SemError::Corrupt { .. })));
            assert!(matches!(
                wait(sem, Duration::from_millis(5)),
                Err(SemError::Corrupt { .. })
            ));
            assert!(flush(sem).is_err());
            w.private.store(128, Ordering::Relaxed);
            w.data.store(7 << 32, Ordering::Relaxed); // seven waiters that do not exist
            assert_eq!(post_capped(sem), Ok(true), "posted, and woke no one");
            assert_eq!(wait(sem, Duration::from_millis(5)), Ok(true));
            assert_eq!(wait(sem, Duration::from_millis(5)), Ok(false), "timed out");
            assert_eq!(
                w.data.load(Ordering::Relaxed),
                7 << 32,
                "our own count came back"
            );
            w.data.store(u64::MAX, Ordering::Relaxed); // a value past SEM_VALUE_MAX
            assert!(matches!(post_capped(sem), Err(SemError::Corrupt { .. })));
            assert!(wait(sem, Duration::from_millis(5)).is_err());
        }
    }
}
