//! What the bridge's process tests share: spawning a bridge and waiting for it to be up,
//! free ports, per-test segment names removed on drop, bounded waits.
#![allow(dead_code)]

pub mod net;

use shmkit::rings::{CommandRing, CommandSpec, ElemType, FrameSpec};
use shmkit::{Segment, SegmentObjects, Shared};
use shmkit_zenoh::LinkStatus;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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
pub fn echo_until(ring: &CommandRing, stop: &AtomicBool, calls: &AtomicU64) {
    let server = ring.server().unwrap();
    let interrupt = || stop.load(Ordering::Relaxed);
    while !interrupt() {
        if let Ok(req) = server.recv_interruptible(
            shmkit::Timeout::After(Duration::from_millis(50)),
            &interrupt,
        ) {
            calls.fetch_add(1, Ordering::Relaxed);
            let echo = req.bytes().to_vec();
            let _ = req.reply(&echo);
        }
    }
}

/// A source segment with a camera (`cam`, 16 × 16 u16, a frame every 5 ms) and a mirror
/// (`dm`, calls echoed by [`echo_until`] and counted in `calls`), both running until drop.
pub struct Source {
    /// Calls the mirror has run.
    pub calls: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    _segment: Segment,
}

impl Source {
    /// Creates segment `name` with `cam` and `dm` and starts both.
    pub fn start(name: &str) -> Source {
        let segment = Segment::create(name, &shmkit::CreateOptions::new(8 << 20)).unwrap();
        let ring = segment
            .frame_ring("cam", &FrameSpec::new(8, ElemType::U16, &[16, 16]))
            .unwrap();
        let spec = CommandSpec {
            slots: 4,
            max_request: 64,
            max_reply: 64,
        };
        let dm = segment.command_ring("dm", &spec).unwrap();
        let (stop, calls) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let server = std::thread::spawn({
            let (stop, calls) = (Arc::clone(&stop), Arc::clone(&calls));
            move || echo_until(&dm, &stop, &calls)
        });
        let camera = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut w = ring.writer().unwrap();
                while !stop.load(Ordering::Relaxed) {
                    w.try_claim().unwrap().publish();
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Source {
            calls,
            stop,
            threads: vec![server, camera],
            _segment: segment,
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
