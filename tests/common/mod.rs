//! Helpers for multi-process tests: each test binary re-executes itself as a child process.
//!
//! A child is the same test binary run with two environment variables: the role to play and
//! its arguments. Every test binary names its roles with [`child_roles!`], which runs them
//! from the binary's ELF constructor (`.init_array`), before libtest's `main` starts: a child
//! never enters the harness, and the parent's test list holds only real tests (no helper
//! entry that would pass as a no-op).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "SHMKIT_TEST_ROLE";
const ARGS: &str = "SHMKIT_TEST_ARGS";

/// A segment name unique to this process and call; unlinked when dropped.
pub struct TempSegment(pub String);

impl TempSegment {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TempSegment(format!("shmkit-it-{}-{tag}-{n}", std::process::id()))
    }
}

impl Drop for TempSegment {
    fn drop(&mut self) {
        let _ = shmkit::Segment::unlink(&self.0);
    }
}

/// Starts this test binary as a child playing `role` with `args`.
pub fn spawn(role: &str, args: &[String]) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .env(ROLE, role)
        .env(ARGS, args.join(" "))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child test process")
}

/// In a child: the role and its arguments. `None` in the parent.
pub fn role() -> Option<(String, Vec<String>)> {
    let role = std::env::var(ROLE).ok()?;
    let args = std::env::var(ARGS)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some((role, args))
}

/// Runs the child's role (if this process is a child) and exits with its code; a role that
/// panics exits with 101, as a failed test would (the panic message is on stderr).
pub fn dispatch(run: impl FnOnce(&str, &[String]) -> i32) {
    if let Some((role, args)) = role() {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&role, &args)))
            .unwrap_or(101);
        std::process::exit(code);
    }
}

/// Names this test binary's child roles: `child_roles!(|role, args| match role { … })`, the
/// closure returning the child's exit code. It runs from an ELF constructor, before libtest's
/// `main` (and does nothing in the parent), so no placeholder test is needed to reach it.
#[macro_export]
macro_rules! child_roles {
    ($roles:expr) => {
        #[used]
        #[link_section = ".init_array"]
        static CHILD_ROLES: extern "C" fn() = {
            extern "C" fn run_child_roles() {
                $crate::common::dispatch($roles)
            }
            run_child_roles
        };
    };
}

/// Waits for `child` to exit, at most `timeout`; kills it and panics if it does not.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    cond()
}

/// Sends SIGKILL to `child` without reaping it: until it is waited for it stays a zombie,
/// which liveness checks must treat as dead.
pub fn sigkill(child: &Child) {
    // SAFETY: kill with a pid we spawned and have not reaped yet: it cannot name another
    // process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
}

/// The first line of a test marked `#[ignore = "needs root: …"]`: such a test runs only when
/// asked for (`--include-ignored`, which `scripts/test-all` passes as root), so lacking the
/// privilege then is a failure that says so, never a silent pass.
pub fn require_root(why: &str) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "needs root ({why}); run as root or leave ignored tests out"
    );
}

/// This thread's kernel id (to hand to [`wait_until_futex_wait`] from another thread).
pub fn gettid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// Waits until thread `tid` (of any process: a child's pid is its main thread's tid) sleeps in
/// a futex wait (`/proc/TID/wchan`), at most `timeout`: a test's way to know that a waiter is
/// really waiting before it acts, instead of sleeping and hoping. Panics on timeout.
pub fn wait_until_futex_wait(tid: i32, timeout: Duration) {
    let path = format!("/proc/{tid}/wchan");
    let ok = eventually(timeout, || {
        std::fs::read_to_string(&path).is_ok_and(|w| w.contains("futex"))
    });
    assert!(ok, "thread {tid} never slept in a futex wait");
}

/// Waits until thread `tid` sleeps interruptibly (state `S` in `/proc/TID/stat`: in a futex,
/// a poll, a pidfd wait — any blocking call), at most `timeout`. A child that announced it is
/// about to block is inside its call once this returns. Panics on timeout.
pub fn wait_until_asleep(tid: i32, timeout: Duration) {
    let path = format!("/proc/{tid}/stat");
    let ok = eventually(timeout, || {
        std::fs::read_to_string(&path).is_ok_and(|stat| {
            stat.rfind(')')
                .and_then(|end| stat[end + 1..].split_ascii_whitespace().next())
                == Some("S")
        })
    });
    assert!(ok, "thread {tid} never went to sleep");
}
