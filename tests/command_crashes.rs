//! The command server's crash points, injected deterministically (feature `test-support`):
//! a server killed at each step of take → execute → answer, with inline and buffer-sized
//! messages, retry-safe or not. Delivery is at most once: the client gets the right reply or
//! a `ServerDied` naming whether the request ran; a request never runs twice unless it was
//! marked retry-safe; a reply is never run as a request; no slot leaks.

mod common;

use common::{eventually, sigkill, spawn, wait_exit, TempSegment};
use shmkit::rings::{CommandError, CommandRing, CommandSpec, Outcome};
use shmkit::test_support::{arm, CrashPoint};
use shmkit::{CreateOptions, Segment};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn spec(slots: u32) -> CommandSpec {
    CommandSpec {
        slots,
        max_request: 128,
        max_reply: 128,
    }
}

/// The request for call `n`: 8 bytes (inline) or 64 (in the request buffer).
fn request(n: u64, inline: bool) -> Vec<u8> {
    let mut r = n.to_le_bytes().to_vec();
    if !inline {
        r.resize(64, 0xA5);
    }
    r
}

/// The one right reply to `req`: 24 bytes (inline) or 100 (in the reply buffer), so a reply
/// run as a request would give another reply.
fn reply_to(req: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(req[..8].try_into().unwrap());
    let len = if req.len() <= 32 { 24 } else { 100 };
    (0..len)
        .map(|i| (n as u8).wrapping_mul(7) ^ (i as u8) ^ (req.len() as u8))
        .collect()
}

/// Serves `ring` until `recv` times out, counting executions in `executed`.
fn serve(ring: &CommandRing, executed: &AtomicU64, idle: Duration) {
    let server = ring.server().expect("take the server role");
    while let Ok(req) = server.recv(idle) {
        executed.fetch_add(1, Ordering::SeqCst);
        let reply = reply_to(req.bytes());
        let _ = req.reply(&reply);
    }
}

crate::child_roles!(|role, args| {
    let seg = Segment::open(&args[0]).expect("child opens the segment");
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    let ring = seg.command_ring("dm", &spec(num(1) as u32)).unwrap();
    let ready = seg.raw().atomic_u64(num(2)).unwrap();
    let executed = seg.raw().atomic_u64(num(3)).unwrap();
    match role {
        "crash_serve" => {
            arm(Some(CrashPoint::SERVER[num(4) as usize]));
            let server = ring.server().unwrap();
            ready.store(1, Ordering::SeqCst);
            let req = server.recv(Duration::from_secs(20)).unwrap();
            executed.fetch_add(1, Ordering::SeqCst);
            let reply = reply_to(req.bytes());
            let _ = req.reply(&reply);
            // Reached only past the crash point (`ServerPublished` kills us here).
            std::thread::sleep(Duration::from_secs(20));
            0
        }
        "hold" => {
            let server = ring.server().unwrap();
            ready.store(1, Ordering::SeqCst);
            let _req = server.recv(Duration::from_secs(20)).unwrap();
            ready.store(2, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(60));
            0
        }
        other => panic!("unknown role {other}"),
    }
});

struct Bench {
    name: TempSegment,
    seg: Segment,
    ready: u64,
    executed: u64,
    slots: u32,
}

impl Bench {
    fn new(tag: &str, slots: u32) -> Bench {
        let name = TempSegment::new(tag);
        let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
        seg.command_ring("dm", &spec(slots)).unwrap();
        let ready = seg.raw().alloc(8, 64).unwrap();
        let executed = seg.raw().alloc(8, 64).unwrap();
        Bench {
            name,
            seg,
            ready,
            executed,
            slots,
        }
    }

    fn ring(&self) -> CommandRing {
        self.seg.command_ring("dm", &spec(self.slots)).unwrap()
    }

    fn word(&self, off: u64) -> &AtomicU64 {
        self.seg.raw().atomic_u64(off).unwrap()
    }

    fn spawn(&self, role: &str, extra: &[String]) -> std::process::Child {
        let mut args = vec![
            self.name.0.clone(),
            self.slots.to_string(),
            self.ready.to_string(),
            self.executed.to_string(),
        ];
        args.extend_from_slice(extra);
        let child = spawn(role, &args);
        let ready = self.word(self.ready);
        assert!(eventually(Duration::from_secs(10), || ready
            .load(Ordering::SeqCst)
            >= 1));
        child
    }
}

/// What a call must end with when the server dies at `point`.
fn expected(point: CrashPoint, retry_safe: bool) -> (Result<(), Outcome>, u64) {
    match (point, retry_safe) {
        (CrashPoint::ServerTaken, false) => (Err(Outcome::Unknown), 0),
        (CrashPoint::ServerTaken, true) => (Ok(()), 1),
        (CrashPoint::ServerBeforeAnswer, false) => (Err(Outcome::Unknown), 1),
        // Retry-safe: the successor runs it again.
        (CrashPoint::ServerBeforeAnswer, true) => (Ok(()), 2),
        // It ran and its reply was being written: never run again, retry-safe or not.
        (CrashPoint::ServerAnswering | CrashPoint::ServerReplyWritten, _) => {
            (Err(Outcome::Executed), 1)
        }
        (CrashPoint::ServerPublished, _) => (Ok(()), 1),
        (other, _) => panic!("{other:?} is not a command server's crash point"),
    }
}

#[test]
fn every_crash_point_of_the_server_gives_the_at_most_once_outcome() {
    for (index, point) in CrashPoint::SERVER.into_iter().enumerate() {
        for inline in [true, false] {
            for retry_safe in [false, true] {
                let case = format!("{point:?}, inline {inline}, retry-safe {retry_safe}");
                let b = Bench::new("crash", 2);
                let mut crasher = b.spawn("crash_serve", &[index.to_string()]);
                let crasher_pid = crasher.id();
                let executed = b.word(b.executed);
                std::thread::scope(|s| {
                    // The successor: starts as soon as the crashed server is gone.
                    let successor = s.spawn(|| {
                        let status = wait_exit(&mut crasher, Duration::from_secs(20));
                        assert!(status.code().is_none(), "{case}: the server was not killed");
                        serve(&b.ring(), executed, Duration::from_millis(500));
                    });
                    let req = request(7, inline);
                    let got = b
                        .ring()
                        .with_retry_safe(retry_safe)
                        .call(&req, Duration::from_secs(10));
                    let (want, runs) = expected(point, retry_safe);
                    match (&got, want) {
                        (Ok(reply), Ok(())) => {
                            assert_eq!(reply, &reply_to(&req), "{case}: wrong reply")
                        }
                        (Err(CommandError::ServerDied { pid, outcome }), Err(o)) => {
                            assert_eq!(*outcome, o, "{case}");
                            assert_eq!(*pid, crasher_pid, "{case}: names the dead server");
                        }
                        _ => panic!("{case}: got {got:?}, want {want:?}"),
                    }
                    // No slot leaked: both slots answer at once, from the successor.
                    let calls: Vec<_> = (0..2u64)
                        .map(|n| {
                            let ring = b.ring();
                            s.spawn(move || {
                                let req = request(100 + n, inline);
                                let reply = ring.call(&req, Duration::from_secs(10));
                                (req, reply)
                            })
                        })
                        .collect();
                    for c in calls {
                        let (req, reply) = c.join().unwrap();
                        assert_eq!(reply.unwrap(), reply_to(&req), "{case}: later call");
                    }
                    successor.join().unwrap();
                    assert_eq!(
                        executed.load(Ordering::SeqCst),
                        runs + 2,
                        "{case}: executions (the two later calls included)"
                    );
                });
            }
        }
    }
}

/// A client that timed out while the server held its request leaves the slot `ABANDONED`;
/// when that server dies, its successor frees the slot (before: `RingFull` for ever).
#[test]
fn a_slot_abandoned_to_a_server_that_then_dies_is_freed_by_its_successor() {
    let b = Bench::new("abandoned", 1);
    let mut holder = b.spawn("hold", &[]);
    let ring = b.ring();
    let ready = b.word(b.ready);
    let got = std::thread::scope(|s| {
        let call = s.spawn(|| ring.call(b"held", Duration::from_millis(300)));
        assert!(eventually(Duration::from_secs(10), || ready
            .load(Ordering::SeqCst)
            == 2));
        call.join().unwrap()
    });
    assert!(matches!(got, Err(CommandError::Timeout { .. })), "{got:?}");
    sigkill(&holder);
    let _ = holder.wait();
    // No successor yet: the ring says its server is dead rather than "full".
    let early = ring.call(b"early", Duration::from_secs(1));
    assert!(
        matches!(
            early,
            Err(CommandError::ServerDied {
                outcome: Outcome::NotExecuted,
                ..
            })
        ),
        "{early:?}"
    );
    let executed = b.word(b.executed);
    std::thread::scope(|s| {
        let successor = s.spawn(|| serve(&ring, executed, Duration::from_millis(300)));
        // The successor takes the role (and settles the slot) before serving.
        let req = request(1, true);
        assert!(eventually(Duration::from_secs(5), || {
            matches!(ring.call(&req, Duration::from_secs(5)), Ok(r) if r == reply_to(&req))
        }));
        successor.join().unwrap();
    });
}
