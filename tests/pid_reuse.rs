//! A role holder killed and replaced by a stand-in process that the kernel gave the same pid,
//! started within the same clock tick (so pid + start time cannot tell them apart), must still
//! be seen as dead: its mutex handed over as owner-died, its ring roles taken over.
//!
//! Pids are recycled on purpose through `/proc/sys/kernel/ns_last_pid` (root only; reported
//! SKIPPED otherwise, a failure under `SHMKIT_REQUIRE_ALL=1`). The holders are plain `fork` children of this single-threaded test binary, so
//! holder, kill, reap and stand-in fit in well under a clock tick; an attempt whose stand-in
//! started in another tick than the holder is retried.

#[path = "common/own_main.rs"]
mod own_main;

use own_main::run_tests;
use shmkit::rings::{CommandSpec, ElemType, FrameSpec};
use shmkit::{Acquired, CreateOptions, Segment};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Attempts before giving up on getting holder and stand-in into one tick.
const ATTEMPTS: usize = 200;

fn main() {
    let tests: [(&str, fn()); 3] = [
        (
            "a_mutex_holder_replaced_within_its_tick_is_seen_dead",
            a_mutex_holder_replaced_within_its_tick_is_seen_dead,
        ),
        (
            "a_frame_writer_replaced_within_its_tick_is_taken_over",
            a_frame_writer_replaced_within_its_tick_is_taken_over,
        ),
        (
            "a_command_server_replaced_within_its_tick_is_taken_over",
            a_command_server_replaced_within_its_tick_is_taken_over,
        ),
    ];
    run_tests(&tests);
}

fn can_recycle_pids() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/kernel/ns_last_pid")
        .is_ok()
}

/// Start time of `pid` in clock ticks (`/proc/PID/stat` field 22).
fn start_ticks(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Forks a child that runs `body` and then sleeps until killed.
fn fork_child(body: impl FnOnce()) -> i32 {
    // SAFETY: this test binary is single-threaded when it forks (the runner calls tests on
    // the main thread and no test leaves a thread behind), so the child may run Rust code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        body();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    pid
}

fn kill_and_reap(pid: i32) {
    // SAFETY: plain system calls on our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// Makes the kernel hand out `pid` next (it must be free).
fn recycle(pid: i32) {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
        .expect("write ns_last_pid");
}

/// Runs `take(attempt)` (a holder taking its role, then raising `ready`) in a forked holder,
/// kills it, starts a stand-in with the same pid in the same clock tick, and returns the
/// stand-in's pid (alive, to be killed by the caller) and the attempt once that happened.
/// Each attempt should use a fresh object: recovering the previous attempt's would take the
/// holder past its tick.
fn holder_replaced_within_its_tick(
    ready: &AtomicU64,
    take: impl Fn(usize),
) -> Option<(i32, usize)> {
    let (mut other_pid, mut other_tick) = (0, 0);
    for attempt in 0..ATTEMPTS {
        ready.store(0, Ordering::SeqCst);
        let holder = fork_child(|| take(attempt));
        let t0 = Instant::now();
        while ready.load(Ordering::SeqCst) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "holder never took its role"
            );
            std::hint::spin_loop();
        }
        let holder_start = start_ticks(holder);
        kill_and_reap(holder);
        recycle(holder);
        let stand_in = fork_child(|| {});
        if stand_in == holder && holder_start.is_some() && start_ticks(stand_in) == holder_start {
            return Some((stand_in, attempt));
        }
        if stand_in == holder {
            other_tick += 1;
        } else {
            other_pid += 1;
        }
        kill_and_reap(stand_in);
    }
    println!(
        "{ATTEMPTS} attempts: {other_pid} stand-ins got another pid, {other_tick} another tick"
    );
    None
}

struct Fixture {
    name: String,
    seg: Segment,
    ready_off: u64,
}

impl Fixture {
    /// The fixture, or a visible skip where pids cannot be recycled.
    fn new(tag: &str) -> Fixture {
        if !can_recycle_pids() {
            own_main::skip("recycling pids needs root (/proc/sys/kernel/ns_last_pid)");
        }
        let name = format!("shmkit-pidreuse-{}-{tag}", std::process::id());
        let _ = Segment::unlink(&name);
        let seg = Segment::create(&name, &CreateOptions::new(16 << 20)).unwrap();
        let ready_off = seg.raw().alloc(8, 64).unwrap();
        Fixture {
            name,
            seg,
            ready_off,
        }
    }

    fn ready(&self) -> &AtomicU64 {
        self.seg.raw().atomic_u64(self.ready_off).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name);
    }
}

fn a_mutex_holder_replaced_within_its_tick_is_seen_dead() {
    let f = Fixture::new("mutex");
    let mutexes: Vec<_> = (0..ATTEMPTS)
        .map(|i| f.seg.mutex(&format!("m{i}")).unwrap())
        .collect();
    let (stand_in, attempt) = holder_replaced_within_its_tick(f.ready(), |i| {
        std::mem::forget(mutexes[i].lock(shmkit::DEFAULT_LOCK_TIMEOUT).unwrap());
        f.ready().store(1, Ordering::SeqCst);
    })
    .expect("no stand-in started within the holder's clock tick");
    let t0 = Instant::now();
    let outcome = mutexes[attempt].lock(Duration::from_secs(2));
    let waited = t0.elapsed();
    kill_and_reap(stand_in);
    match outcome {
        Ok(Acquired::OwnerDied(g)) => drop(g.make_consistent()),
        other => panic!("expected owner-died, got {other:?} after {waited:?}"),
    }
    assert!(waited < Duration::from_millis(200), "took {waited:?}");
}

/// One object per attempt (`make(i)`); a forked holder takes its role with `take`, is killed
/// and replaced within its tick; returns what `take` then gives this process on that attempt's
/// object, tried while the stand-in lives.
fn take_from_replaced_holder<O, T, E: std::fmt::Debug>(
    f: &Fixture,
    make: impl Fn(usize) -> O,
    take: impl Fn(&O) -> Result<T, E>,
) -> Result<T, E> {
    let objects: Vec<O> = (0..ATTEMPTS).map(make).collect();
    let (stand_in, attempt) = holder_replaced_within_its_tick(f.ready(), |i| {
        std::mem::forget(take(&objects[i]).unwrap());
        f.ready().store(1, Ordering::SeqCst);
    })
    .expect("no stand-in started within the holder's clock tick");
    let taken = take(&objects[attempt]);
    kill_and_reap(stand_in);
    taken
}

fn a_frame_writer_replaced_within_its_tick_is_taken_over() {
    let f = Fixture::new("writer");
    let spec = FrameSpec {
        slots: 4,
        elem: ElemType::U16,
        shape: vec![8, 8],
    };
    let taken = take_from_replaced_holder(
        &f,
        |i| f.seg.frame_ring(&format!("writer{i}"), &spec).unwrap(),
        |ring| ring.writer(),
    );
    assert!(taken.is_ok(), "the dead writer looked alive: {taken:?}");
}

fn a_command_server_replaced_within_its_tick_is_taken_over() {
    let f = Fixture::new("server");
    let spec = CommandSpec {
        slots: 2,
        max_request: 64,
        max_reply: 64,
    };
    let taken = take_from_replaced_holder(
        &f,
        |i| f.seg.command_ring(&format!("server{i}"), &spec).unwrap(),
        |ring| ring.server(),
    );
    assert!(taken.is_ok(), "the dead server looked alive: {taken:?}");
}
