//! Every blocking call, interrupted the way a language binding interrupts it: a signal
//! handler (installed without `SA_RESTART`, as CPython installs its own) sets a flag, and
//! the call's interrupt check reads it. Each call runs in its own child process, blocked on
//! a condition this process holds, and is signalled while it sleeps:
//!
//! - `heeded`: the check returns the flag: the call must end with its `Interrupted` outcome
//!   within 100 ms of the signal;
//! - `ignored`: the check never says stop: the signals must neither end the call early nor
//!   keep it from ending at its deadline (no hang, no spurious outcome).

mod common;

use common::{eventually, spawn, wait_exit, TempSegment};
use shmkit::prelude::*;
use shmkit::rings::{CommandError, RingError};
use shmkit::{BarrierError, LockError, SharedError, Timeout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CALLS: [&str; 8] = [
    "lock", "event", "barrier", "frame", "call", "recv", "claim", "shared",
];
/// Deadline of an `ignored` wait.
const IGNORED_DEADLINE: Duration = Duration::from_millis(400);

static FLAG: AtomicBool = AtomicBool::new(false);
static SIGNALLED_NS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr1(_: libc::c_int) {
    // Async-signal-safe: atomics, and clock_gettime (POSIX lists it as safe).
    if SIGNALLED_NS.load(Ordering::Relaxed) == 0 {
        SIGNALLED_NS.store(shmkit::clock::monotonic_ns(), Ordering::Relaxed);
    }
    FLAG.store(true, Ordering::Relaxed);
}

fn install_handler() {
    // SAFETY: a zeroed sigaction is valid; the handler only touches atomics and the clock;
    // no SA_RESTART, so blocking system calls see EINTR as under CPython.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_usr1 as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_flags = 0;
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
}

fn segment_for(name: &str) -> Segment {
    Segment::open(name).expect("child opens the segment")
}

/// Exit codes of a child.
const OK: i32 = 0;
const WRONG_OUTCOME: i32 = 10;
const TOO_SLOW: i32 = 11;

crate::child_roles!(|role, args| {
    install_handler();
    let seg = segment_for(&args[0]);
    let heeded = role == "heeded";
    let call = args[1].as_str();
    let ready = seg.raw().atomic_u64(args[2].parse().unwrap()).unwrap();
    let check = || heeded && FLAG.load(Ordering::Relaxed);
    let timeout = if heeded {
        Timeout::Forever
    } else {
        Timeout::After(IGNORED_DEADLINE)
    };
    // Conditions the parent holds: mutex "m" locked, event "e" clear, barrier "b" of 2
    // parties nobody else joins, ring "cam" with no writer, ring "dm" served by nobody
    // but attached by the parent, ring "idle" nobody calls, ring "full" whose one slot a
    // writer may take is pinned by the parent's reader, shared value "v" locked.
    let m = seg.mutex("m").unwrap();
    let e = seg.event("e").unwrap();
    let b = seg.barrier("b", 2).unwrap();
    let cam: FrameRing = seg.open("cam").unwrap();
    let dm: CommandRing = seg.open("dm").unwrap();
    let idle: CommandRing = seg.open("idle").unwrap();
    let mut reader = cam.reader(ReadMode::NewestOnly).unwrap();
    let server = if call == "recv" {
        Some(idle.server().unwrap())
    } else {
        None
    };
    let full: FrameRing = seg.open("full").unwrap();
    let mut writer = if call == "claim" {
        Some(full.writer().unwrap())
    } else {
        None
    };
    let v = seg.shared("v", 0u64).unwrap();
    let started = Instant::now();
    ready.store(1, Ordering::Release);
    // `Some(true)`: ended interrupted; `Some(false)`: ended at its deadline; `None`: any
    // other outcome.
    let interrupted: Option<bool> = match call {
        "lock" => match m.lock_interruptible(timeout, &check) {
            Err(LockError::Interrupted { .. }) => Some(true),
            Err(LockError::Timeout { .. }) => Some(false),
            _ => None,
        },
        "event" => match e.wait_interruptible(timeout, &check) {
            Err(_) => Some(true),
            Ok(false) => Some(false),
            Ok(true) => None,
        },
        "barrier" => match b.wait_interruptible(timeout, &check) {
            Err(BarrierError::Interrupted) => Some(true),
            Err(BarrierError::Timeout { .. }) => Some(false),
            _ => None,
        },
        "frame" => match reader.next_interruptible(timeout, &check) {
            Err(RingError::Interrupted) => Some(true),
            Err(RingError::Timeout { .. }) => Some(false),
            _ => None,
        },
        "call" => match dm.call_interruptible(b"x", timeout, &check) {
            Err(CommandError::Interrupted { .. }) => Some(true),
            Err(CommandError::Timeout { .. }) => Some(false),
            _ => None,
        },
        "recv" => match server.as_ref().unwrap().recv_interruptible(timeout, &check) {
            Err(CommandError::Interrupted { .. }) => Some(true),
            Err(CommandError::Timeout { .. }) => Some(false),
            _ => None,
        },
        "claim" => match writer
            .as_mut()
            .unwrap()
            .claim_interruptible(timeout, &check)
        {
            Err(RingError::Interrupted) => Some(true),
            Err(RingError::AllSlotsHeld { .. }) => Some(false),
            _ => None,
        },
        "shared" => match v.lock_interruptible(timeout, &check) {
            Err(SharedError::Lock(LockError::Interrupted { .. })) => Some(true),
            Err(SharedError::Lock(LockError::Timeout { .. })) => Some(false),
            _ => None,
        },
        other => panic!("unknown call {other}"),
    };
    let ended = shmkit::clock::monotonic_ns();
    let took = started.elapsed();
    match (heeded, interrupted) {
        (true, Some(true)) => {
            let after_signal = ended.saturating_sub(SIGNALLED_NS.load(Ordering::Relaxed));
            if after_signal < 100_000_000 {
                OK
            } else {
                eprintln!("{call}: returned {after_signal} ns after the signal");
                TOO_SLOW
            }
        }
        (false, Some(false)) => {
            if took >= IGNORED_DEADLINE && took < IGNORED_DEADLINE + Duration::from_millis(100) {
                OK
            } else {
                eprintln!("{call}: ignored signals, ended after {took:?}");
                TOO_SLOW
            }
        }
        (_, other) => {
            eprintln!("{call} ({role}): outcome {other:?}");
            WRONG_OUTCOME
        }
    }
});

/// Sets up the conditions every call blocks on.
fn blocking_segment(tag: &str) -> (TempSegment, Segment, u64, shmkit::rings::CommandServer) {
    let name = TempSegment::new(tag);
    let seg = Segment::create(&name.0, &CreateOptions::new(4 << 20)).unwrap();
    seg.event("e").unwrap();
    seg.barrier("b", 2).unwrap();
    seg.frame_ring(
        "cam",
        &FrameSpec {
            slots: 2,
            elem: ElemType::U8,
            shape: vec![64],
        },
    )
    .unwrap();
    let cmd = CommandSpec {
        slots: 2,
        max_request: 64,
        max_reply: 64,
    };
    let dm = seg.command_ring("dm", &cmd).unwrap();
    seg.command_ring("idle", &cmd).unwrap();
    let server = dm.server().unwrap();
    let ready = seg.raw().alloc(8, 64).unwrap();
    (name, seg, ready, server)
}

fn run(role: &str, call: &str) {
    let (name, seg, ready_off, _server) = blocking_segment(&format!("{role}-{call}"));
    let m = seg.mutex("m").unwrap();
    let _held = m.lock(shmkit::DEFAULT_LOCK_TIMEOUT).unwrap();
    let v = seg.shared("v", 0u64).unwrap();
    let _v_held = v.lock().unwrap();
    // Ring "full": two frames published, the older pinned, so a writer can take no slot
    // (never the newest frame's).
    let full = seg
        .frame_ring("full", &FrameSpec::new(2, ElemType::U8, &[64]))
        .unwrap();
    let mut pin = full.reader(ReadMode::OldestFirst).unwrap().into_owned();
    {
        let mut writer = full.writer().unwrap();
        writer.try_claim().unwrap().publish();
        writer.try_claim().unwrap().publish();
    }
    let _pinned = pin.next(Duration::from_secs(1)).unwrap();
    let ready = seg.raw().atomic_u64(ready_off).unwrap();
    let mut child = spawn(
        role,
        &[name.0.clone(), call.to_owned(), ready_off.to_string()],
    );
    assert!(eventually(Duration::from_secs(20), || ready
        .load(Ordering::Acquire)
        == 1));
    // Signal it once it sleeps in its call (several times, spaced, when ignored).
    common::wait_until_asleep(child.id() as i32, Duration::from_secs(20));
    let signals = if role == "heeded" { 1 } else { 5 };
    for _ in 0..signals {
        // SAFETY: a pid we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(30));
    }
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(OK), "{call} ({role}): {status:?}");
}

#[test]
fn every_blocking_call_returns_interrupted_within_100ms_of_a_heeded_signal() {
    for call in CALLS {
        run("heeded", call);
    }
}

#[test]
fn signals_the_check_ignores_neither_end_a_call_early_nor_make_it_hang() {
    for call in CALLS {
        run("ignored", call);
    }
}
