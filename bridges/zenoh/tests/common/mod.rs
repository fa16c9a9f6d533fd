//! What the bridge's process tests share: spawning a bridge and waiting for it to be up,
//! free ports, per-test segment names removed on drop, bounded waits.
#![allow(dead_code)]

use shmkit::rings::CommandRing;
use shmkit::{Segment, SegmentObjects, Shared};
use shmkit_zenoh::LinkStatus;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A child process killed and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a bridge and waits for its "up" line. A TCP listener gets `--insecure`: these tests
/// measure the bridge on loopback; who may connect is `tests/security.rs`'s business.
pub fn bridge(args: &[&str]) -> Proc {
    let tcp_listener = args
        .windows(2)
        .any(|w| w[0] == "--listen" && w[1].starts_with("tcp/"));
    let insecure: &[&str] = if tcp_listener { &["--insecure"] } else { &[] };
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmkit-zenoh"))
        .args(args)
        .args(insecure)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the bridge binary runs");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    assert!(line.contains(" up:"), "bridge {args:?} said {line:?}");
    // Keep reading, so the bridge's later lines (its summary on SIGTERM) never meet a closed
    // pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Proc(child)
}

/// A segment name unique to this test process.
pub fn name(tag: &str) -> String {
    format!("shmkit-zb-{}-{tag}", std::process::id())
}

/// The link value of `ring` in `segment`, if there is one.
pub fn status(segment: &str, ring: &str) -> Option<LinkStatus> {
    let seg = Segment::open(segment).ok()?;
    let s: Shared<LinkStatus> = seg.open(&format!("link/{ring}")).ok()?;
    s.read().ok()
}

/// Waits until `f` holds, failing the test after `limit`.
pub fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Segments unlinked on drop.
pub struct Segs(pub Vec<String>);

impl Drop for Segs {
    fn drop(&mut self) {
        for s in &self.0 {
            let _ = Segment::unlink(s);
        }
    }
}

/// Serves `ring`, answering each request with its own bytes, until `stop` is set.
pub fn echo_until(ring: &CommandRing, stop: &AtomicBool) {
    let server = ring.server().unwrap();
    let interrupt = || stop.load(Ordering::Relaxed);
    while !interrupt() {
        if let Ok(req) = server.recv_interruptible(
            shmkit::Timeout::After(Duration::from_millis(50)),
            &interrupt,
        ) {
            let echo = req.bytes().to_vec();
            let _ = req.reply(&echo);
        }
    }
}
