//! Shared by the benchmarks: shared memory for the peers, CPU pinning, bare futex calls, and
//! the child process that plays the other side of a cross-process benchmark.
#![allow(dead_code)]

use std::ffi::CString;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
///
/// A watchdog thread turns a child that dies on its own (a panic, an unknown role) or a
/// benchmark that outlives [`child_deadline`] into a failed benchmark run (exit code 1 with
/// a message naming the role), so a broken peer can never leave the parent waiting forever.
pub struct ChildProc(pub Child, Arc<AtomicBool>);

/// How long one child may serve before the run is declared hung: `SHMKIT_BENCH_DEADLINE_S`
/// seconds, 600 by default (a full criterion group takes well under a minute).
pub fn child_deadline() -> Duration {
    let secs = std::env::var("SHMKIT_BENCH_DEADLINE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

impl ChildProc {
    pub fn spawn(role: &str, args: &[String]) -> ChildProc {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ROLE, role)
            .env(CHILD_ARGS, args.join(" "))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn bench child");
        let done = Arc::new(AtomicBool::new(false));
        let (pid, role, flag) = (child.id(), role.to_owned(), Arc::clone(&done));
        std::thread::spawn(move || watch_child(pid, &role, &flag));
        ChildProc(child, done)
    }
}

/// Polls the child without reaping it; exits the whole benchmark if it ends before its
/// `ChildProc` is dropped, or if it is still serving at the deadline.
fn watch_child(pid: u32, role: &str, done: &AtomicBool) {
    let deadline = Instant::now() + child_deadline();
    loop {
        std::thread::sleep(Duration::from_millis(5));
        // SeqCst: pairs with the store in `Drop`, which happens before the kill.
        if done.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: a zeroed siginfo_t is a valid out-parameter; WNOWAIT leaves the child
        // for `Child::wait` to reap.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid siginfo_t; the call only writes it.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (si_pid 0 means the child is still running).
        let exited = rc == 0 && unsafe { info.si_pid() } != 0;
        if done.load(Ordering::SeqCst) {
            return;
        }
        if exited || rc != 0 {
            // SAFETY: as above; si_status is the exit code or the signal.
            let status = unsafe { info.si_status() };
            eprintln!(
                "benchmark failed: its child `{role}` (pid {pid}) ended on its own \
                 (code or signal {status}); see its output above"
            );
            std::process::exit(1);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "benchmark failed: its child `{role}` (pid {pid}) was still serving after \
                 {:?} (SHMKIT_BENCH_DEADLINE_S): the benchmark hangs",
                child_deadline()
            );
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            std::process::exit(1);
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.1.store(true, Ordering::SeqCst);
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

/// A bench binary's `main`: a re-executed child plays its role (`CHILD_ROLE`), the parent
/// runs the criterion groups and prints the summary.
pub fn bench_main(child_main: fn(&str), benches: fn()) {
    if let Ok(role) = std::env::var(CHILD_ROLE) {
        child_main(&role);
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}

/// Serves `ring` forever, echoing each request as its reply.
pub fn serve_echo_commands(ring: &shmkit::rings::CommandRing) -> ! {
    let server = ring.server().unwrap();
    loop {
        let req = server.recv(Duration::from_secs(60)).unwrap();
        let mut echo = [0u8; 64];
        let len = req.bytes().len();
        echo[..len].copy_from_slice(req.bytes());
        req.reply(&echo[..len]).unwrap();
    }
}
