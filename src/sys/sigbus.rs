//! Mappings of files another process can shrink: a fault in one is survived, not fatal.
//!
//! A process that truncates a file this process maps makes the next access to the vanished
//! pages raise `SIGBUS`, whose default action kills the process. Stream files
//! (the `shmkit-isio` crate) are shared with processes shmkit does not control, and their protocol
//! needs atomics and futex waits *inside* the mapping (the semaphores, the counters), so
//! copying through `pread` cannot replace every access. Instead a mapping is registered here
//! ([`Guard::register`]) and a process-wide `SIGBUS` handler, installed on first use, answers a
//! fault inside a registered range by mapping a private zero page over the faulting page and
//! returning: the access is retried, reads zeros (writes go nowhere), and the owner of the
//! mapping notices on its next size check that the file shrank and reports a typed error.
//! A fault anywhere else is handed to the handler that was installed before (or to the
//! default action), exactly as if this one were not there.
//!
//! The registry is a fixed array of ranges read with atomics only, because a signal handler
//! may not lock or allocate. Replaced pages stay replaced until the mapping is unmapped:
//! a guarded mapping whose file shrank is poisoned and must be dropped and mapped again.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

/// Guarded ranges at once: each open stream holds one or two.
const SLOTS: usize = 1024;

/// A slot's start address; 0 when free, [`CLAIMED`] while being filled or emptied.
static STARTS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
/// A slot's length (meaningful while its start is an address).
static LENS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
/// Whether a slot's mapping had a page replaced (its file shrank under it).
static POISONED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
/// A start value no mapping has (page-aligned addresses are never 1).
const CLAIMED: usize = 1;

/// Faults answered with a zero page since the process started.
static ANSWERED: AtomicU64 = AtomicU64::new(0);

/// The page size, read once before the handler is installed (not async-signal-safe to ask).
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The action that was installed for `SIGBUS` before ours.
static mut PREVIOUS: Option<libc::sigaction> = None;

static INSTALL: Once = Once::new();

/// Every guard slot is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{SLOTS} file mappings are already guarded in this process")]
pub struct TooManyGuards;

/// A registered range: unregistered when dropped, which must happen before it is unmapped.
#[derive(Debug)]
pub struct Guard {
    slot: usize,
}

impl Guard {
    /// Guards `len` bytes of a file mapping at `start` (installing the handler on first use).
    ///
    /// # Safety
    ///
    /// `start..start + len` must be a mapping this process made of a file, which stays mapped
    /// for as long as the returned guard lives, and whose contents the caller is prepared to
    /// see replaced by zeros (and its writes lost) after the file shrinks.
    pub unsafe fn register(start: *mut u8, len: usize) -> Result<Guard, TooManyGuards> {
        install();
        let start = start as usize;
        for slot in 0..SLOTS {
            if STARTS[slot]
                .compare_exchange(0, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                LENS[slot].store(len, Ordering::Relaxed);
                POISONED[slot].store(false, Ordering::Relaxed);
                // Release: pairs with the handler's Acquire load of the start: it sees the
                // length stored above.
                STARTS[slot].store(start, Ordering::Release);
                return Ok(Guard { slot });
            }
        }
        Err(TooManyGuards)
    }

    /// Has a page of this mapping been replaced by zeros (its file shrank under it)? A
    /// poisoned mapping never sees the file again, even if the file grows back.
    pub fn poisoned(&self) -> bool {
        POISONED[self.slot].load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        STARTS[self.slot].store(CLAIMED, Ordering::Release);
        LENS[self.slot].store(0, Ordering::Relaxed);
        STARTS[self.slot].store(0, Ordering::Release);
    }
}

/// Faults inside guarded mappings answered with a zero page so far (in this process).
#[cfg(test)]
fn answered() -> u64 {
    ANSWERED.load(Ordering::Relaxed)
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: a zeroed sigaction is a valid value to fill; the handler is an
        // `extern "C"` function with the SA_SIGINFO signature; PREVIOUS is written once,
        // here, before our handler can run (it is installed by the second sigaction call).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = handler as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut new.sa_mask);
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                return;
            }
            PREVIOUS = Some(old);
            libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut());
        }
    });
}

/// The slot of the guarded range `addr` is in.
fn guarded(addr: usize) -> Option<usize> {
    (0..SLOTS).find(|&slot| {
        // Acquire: pairs with the Release store in `register`.
        let s = STARTS[slot].load(Ordering::Acquire);
        s > CLAIMED && addr >= s && addr - s < LENS[slot].load(Ordering::Relaxed)
    })
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    // SAFETY: as above.
    let code = unsafe { (*info).si_code };
    let slot = if code == libc::BUS_ADRERR {
        guarded(addr)
    } else {
        None
    };
    if let Some(slot) = slot {
        let page = PAGE.load(Ordering::Relaxed);
        let base = addr & !(page - 1);
        // SAFETY: `base` is a page of a guarded file mapping (the registrant promised it
        // stays mapped and that zeros may replace it); MAP_FIXED replaces exactly that page
        // with private anonymous memory. mmap is a plain system call, safe in a handler.
        let mapped = unsafe {
            libc::mmap(
                base as *mut libc::c_void,
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if mapped != libc::MAP_FAILED {
            // Release: pairs with the Acquire load in `poisoned`.
            POISONED[slot].store(true, Ordering::Release);
            ANSWERED.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    // Not ours: whatever was there before handles it.
    // SAFETY: PREVIOUS was written before this handler was installed and never after.
    let previous = unsafe { *std::ptr::addr_of!(PREVIOUS) };
    match previous {
        Some(old) if old.sa_sigaction == libc::SIG_IGN => {}
        Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous SA_SIGINFO handler, called as the kernel would.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(old.sa_sigaction) };
            f(signal, info, context);
        }
        Some(old) if old.sa_sigaction != libc::SIG_DFL => {
            // SAFETY: the previous plain handler, called as the kernel would.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(old.sa_sigaction) };
            f(signal);
        }
        _ => {
            // The default action: restore it and return; the faulting access runs again and
            // the kernel kills the process with SIGBUS, as it would have without us.
            // SAFETY: a zeroed sigaction with SIG_DFL is valid; sigaction is async-signal-safe.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_guarded_mapping_reads_zeros_after_its_file_shrinks() {
        let path = std::env::temp_dir().join(format!("shmkit-sigbus-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file.write_all_at(&[7u8; 3 * 4096], 0).unwrap();
        let map = memmap2::MmapOptions::new()
            .len(3 * 4096)
            .map_raw(&file)
            .unwrap();
        // SAFETY: the mapping above lives until the end of the test, after the guard.
        let guard = unsafe { Guard::register(map.as_mut_ptr(), 3 * 4096) }.unwrap();
        let before = answered();
        file.set_len(4096).unwrap();
        // SAFETY: inside the mapping; a vanished page is answered by the handler.
        let (first, third) = unsafe {
            (
                std::ptr::read_volatile(map.as_ptr()),
                std::ptr::read_volatile(map.as_ptr().add(2 * 4096 + 5)),
            )
        };
        assert_eq!(first, 7, "the page still in the file keeps its bytes");
        assert_eq!(third, 0, "a vanished page reads as zeros");
        assert_eq!(answered(), before + 1);
        assert!(guard.poisoned());
        drop(guard);
    }
}
