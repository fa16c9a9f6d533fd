//! The command ring across real processes: four clients and a server; a server killed
//! mid-call; a client killed mid-call.

mod common;

use common::{eventually, sigkill, spawn, wait_exit, TempSegment};
use shmkit::rings::{CommandError, CommandSpec, Outcome};
use shmkit::{CreateOptions, Segment};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const CALLS: u64 = 100_000;

fn spec() -> CommandSpec {
    CommandSpec {
        slots: 8,
        max_request: 64,
        max_reply: 64,
    }
}

crate::child_roles!(|role, args| {
    let seg = Segment::open(&args[0]).expect("child opens the segment");
    let ring = seg.command_ring("dm", &spec()).unwrap();
    match role {
        "serve" => {
            // Answers (client, n) with (client, n * 3 + 1) until killed or idle for 5 s.
            let server = ring.server().unwrap();
            let flag = seg.raw().atomic_u64(args[1].parse().unwrap()).unwrap();
            flag.store(1, Ordering::Release);
            let hold = args.get(2).is_some_and(|a| a == "hold");
            loop {
                let Ok(req) = server.recv(Duration::from_secs(5)) else {
                    return 0;
                };
                if hold {
                    // Take the request and never answer: the test kills us now.
                    flag.store(2, Ordering::Release);
                    std::thread::sleep(Duration::from_secs(60));
                }
                let (client, n): (u32, u64) = req.decode().unwrap();
                req.reply_typed(&(client, n * 3 + 1)).unwrap();
            }
        }
        "call" => {
            let me: u32 = args[1].parse().unwrap();
            for n in 0..CALLS {
                let (client, m): (u32, u64) =
                    ring.call_typed(&(me, n), Duration::from_secs(30)).unwrap();
                if client != me || m != n * 3 + 1 {
                    eprintln!("client {me}: call {n} got ({client}, {m})");
                    return 1;
                }
            }
            0
        }
        "call_and_hang" => {
            // A call whose client is killed while waiting.
            let flag = seg.raw().atomic_u64(args[1].parse().unwrap()).unwrap();
            flag.store(1, Ordering::Release);
            let _ = ring.call(b"never collected", Duration::from_secs(60));
            0
        }
        other => panic!("unknown role {other}"),
    }
});

fn setup(tag: &str) -> (TempSegment, Segment, u64) {
    let name = TempSegment::new(tag);
    let seg = Segment::create(&name.0, &CreateOptions::new(4 << 20)).unwrap();
    seg.command_ring("dm", &spec()).unwrap();
    let flag = seg.raw().alloc(8, 64).unwrap();
    (name, seg, flag)
}

#[test]
fn four_clients_times_100k_calls_each_get_their_own_replies() {
    let (name, seg, flag) = setup("calls");
    let mut server = spawn("serve", &[name.0.clone(), flag.to_string()]);
    assert!(eventually(Duration::from_secs(10), || seg
        .raw()
        .atomic_u64(flag)
        .unwrap()
        .load(Ordering::Acquire)
        == 1));
    let mut clients: Vec<_> = (0..4)
        .map(|i| spawn("call", &[name.0.clone(), i.to_string()]))
        .collect();
    for c in &mut clients {
        assert!(
            wait_exit(c, Duration::from_secs(300)).success(),
            "a reply did not match its request"
        );
    }
    sigkill(&server);
    let _ = server.wait();
}

#[test]
fn a_server_killed_mid_call_is_noticed_within_100ms() {
    let (name, seg, flag) = setup("serverdied");
    let flag_word = seg.raw().atomic_u64(flag).unwrap();
    let mut server = spawn("serve", &[name.0.clone(), flag.to_string(), "hold".into()]);
    assert!(eventually(Duration::from_secs(10), || flag_word
        .load(Ordering::Acquire)
        == 1));
    let ring = seg.command_ring("dm", &spec()).unwrap();
    let caller = {
        let ring = ring.clone();
        std::thread::spawn(move || {
            let result = ring.call(b"x", Duration::from_secs(30));
            (result, Instant::now())
        })
    };
    assert!(eventually(Duration::from_secs(10), || flag_word
        .load(Ordering::Acquire)
        == 2));
    let killed = Instant::now();
    sigkill(&server);
    let (result, noticed) = caller.join().unwrap();
    assert!(
        matches!(result, Err(CommandError::ServerDied { pid, outcome: Outcome::Unknown }) if pid == server.id()),
        "{result:?}"
    );
    let latency = noticed.duration_since(killed);
    assert!(
        latency < Duration::from_millis(100),
        "noticed after {latency:?}"
    );
    let _ = server.wait();
}

#[test]
fn a_client_killed_mid_call_leaks_no_slot() {
    let (name, seg, flag) = setup("clientdied");
    let flag_word = seg.raw().atomic_u64(flag).unwrap();
    let ring = seg.command_ring("dm", &spec()).unwrap();
    let server = ring.server().unwrap();
    // Eight clients, one per slot, each killed while its call waits.
    for _ in 0..8 {
        flag_word.store(0, Ordering::Relaxed);
        let mut client = spawn("call_and_hang", &[name.0.clone(), flag.to_string()]);
        assert!(eventually(Duration::from_secs(10), || flag_word
            .load(Ordering::Acquire)
            == 1));
        // Its request is queued once it sleeps waiting for the answer.
        common::wait_until_futex_wait(client.id() as i32, Duration::from_secs(10));
        sigkill(&client);
        let _ = client.wait();
    }
    // The server may answer the dead clients' requests: the answers go nowhere.
    while let Ok(req) = server.recv(Duration::from_millis(10)) {
        let _ = req.reply(b"to nobody");
    }
    // The ring runs at full capacity again: eight calls at once, all answered.
    let callers: Vec<_> = (0..8u64)
        .map(|i| {
            let ring = ring.clone();
            std::thread::spawn(move || ring.call(&i.to_le_bytes(), Duration::from_secs(30)))
        })
        .collect();
    let mut answered = 0;
    while answered < 8 {
        let req = server
            .recv(Duration::from_secs(30))
            .expect("every slot usable again");
        let echo = req.bytes().to_vec();
        assert!(req.reply(&echo).unwrap());
        answered += 1;
    }
    for (i, c) in callers.into_iter().enumerate() {
        assert_eq!(c.join().unwrap().unwrap(), (i as u64).to_le_bytes());
    }
}
