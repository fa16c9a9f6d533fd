//! Helpers for multi-process tests: each test binary re-executes itself as a child process.
//!
//! A child is the same test binary run with the filter `child_entry --exact` and two
//! environment variables: the role to play and its arguments. Every test binary defines a
//! `child_entry` test that calls [`dispatch`] with its roles; in the parent that test is a
//! no-op.
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
        .args([
            "child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
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

/// Runs the child's role (if this process is a child) and exits with its code.
pub fn dispatch(run: impl FnOnce(&str, &[String]) -> i32) {
    if let Some((role, args)) = role() {
        let code = run(&role, &args);
        std::process::exit(code);
    }
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
