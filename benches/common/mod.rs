//! Shared by the benchmarks: shared memory for the peers, CPU pinning, bare futex calls, and
//! the child process that plays the other side of a cross-process benchmark.
#![allow(dead_code)]

use std::ffi::CString;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Environment variable naming the role a re-executed bench binary plays.
pub const CHILD_ROLE: &str = "SHMKIT_BENCH_CHILD";
/// Environment variable carrying the role's arguments (space-separated).
pub const CHILD_ARGS: &str = "SHMKIT_BENCH_ARGS";
pub const RAW_SIZE: usize = 1 << 16;

pub struct RawShm {
    ptr: *mut u8,
    name: CString,
    owner: bool,
}

impl RawShm {
    pub fn create(name: &str) -> RawShm {
        Self::map(name, true)
    }

    pub fn open(name: &str) -> RawShm {
        Self::map(name, false)
    }

    fn map(name: &str, create: bool) -> RawShm {
        let cname = CString::new(format!("/{name}")).unwrap();
        let flags = if create {
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR
        } else {
            libc::O_RDWR
        };
        // SAFETY: valid C string; the fd is closed below after mapping.
        let fd = unsafe { libc::shm_open(cname.as_ptr(), flags, 0o600) };
        assert!(
            fd >= 0,
            "shm_open {name}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `fd` is open.
        if create && unsafe { libc::ftruncate(fd, RAW_SIZE as libc::off_t) } != 0 {
            panic!("ftruncate: {}", std::io::Error::last_os_error());
        }
        // SAFETY: mapping a fresh shared object of RAW_SIZE bytes.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                RAW_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        // SAFETY: `fd` is ours; the mapping stays valid after close.
        unsafe { libc::close(fd) };
        RawShm {
            ptr: ptr.cast(),
            name: cname,
            owner: create,
        }
    }

    /// A pointer `offset` bytes in (each user takes its own 256-byte-aligned slot).
    pub fn at(&self, offset: usize) -> *mut u8 {
        assert!(offset + 256 <= RAW_SIZE);
        // SAFETY: in bounds of the mapping.
        unsafe { self.ptr.add(offset) }
    }

    pub fn atomic(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: in bounds, 4-aligned (offsets are multiples of 64), mapping outlives self.
        unsafe { AtomicU32::from_ptr(self.at(offset).cast()) }
    }
}

impl Drop for RawShm {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; unlinking the name we created.
        unsafe {
            libc::munmap(self.ptr.cast(), RAW_SIZE);
            if self.owner {
                libc::shm_unlink(self.name.as_ptr());
            }
        }
    }
}

pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

pub fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: a valid aligned word; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: a valid aligned word.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// A glibc mutex: process-shared, robust, recursive, initialised at `mem`.
///
/// # Safety
/// `mem` must be valid for a `pthread_mutex_t` for as long as the mutex is used.
pub unsafe fn pthread_robust_recursive_init(mem: *mut u8) -> *mut libc::pthread_mutex_t {
    let m = mem.cast::<libc::pthread_mutex_t>();
    // SAFETY: the caller provides the memory; attr is initialised before use.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_RECURSIVE);
        assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
        libc::pthread_mutexattr_destroy(&mut attr);
    }
    m
}

/// A child process killed and reaped when dropped.
pub struct ChildProc(pub Child);

impl ChildProc {
    pub fn spawn(role: &str, args: &[String]) -> ChildProc {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ROLE, role)
            .env(CHILD_ARGS, args.join(" "))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn bench child");
        ChildProc(child)
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's arguments.
pub fn child_args() -> Vec<String> {
    std::env::var(CHILD_ARGS)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Serves the bare peers' side of a round trip (`raw_futex`, `raw_spin`, `pipe`) until
/// killed. Returns false for other roles.
pub fn serve_raw_peer(role: &str) -> bool {
    let args = child_args();
    match role {
        "raw_futex" | "raw_spin" => {
            let shm = RawShm::open(&args[0]);
            let word = shm.atomic(0);
            let spin = role == "raw_spin";
            loop {
                while word.load(Ordering::Acquire) != 1 {
                    if spin {
                        std::hint::spin_loop();
                    } else {
                        futex_wait(word, 0);
                    }
                }
                word.store(0, Ordering::Release);
                if !spin {
                    futex_wake(word);
                }
            }
        }
        "pipe" => {
            use std::io::{Read, Write};
            let mut stdin = std::io::stdin().lock();
            let mut stdout = std::io::stdout().lock();
            let mut byte = [0u8; 1];
            while stdin.read_exact(&mut byte).is_ok() {
                if stdout
                    .write_all(&byte)
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
            true
        }
        _ => false,
    }
}

/// One round trip against a bare peer started with [`serve_raw_peer`].
pub fn raw_round_trip(word: &AtomicU32, spin: bool) {
    word.store(1, Ordering::Release);
    if !spin {
        futex_wake(word);
    }
    while word.load(Ordering::Acquire) != 0 {
        if spin {
            std::hint::spin_loop();
        } else {
            futex_wait(word, 1);
        }
    }
}

/// Runs `iters` round trips (each given its index) and returns the total time.
pub fn timed(iters: u64, mut round_trip: impl FnMut(u64)) -> std::time::Duration {
    let start = std::time::Instant::now();
    for n in 0..iters {
        round_trip(n);
    }
    start.elapsed()
}
