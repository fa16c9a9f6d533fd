//! Child processes and the exception slot array, with real children: errors with cause
//! chains, panics, signals, deadlines, slot reuse, reclaiming, truncation, parent death.
//!
//! This test binary has its own `main` (no libtest harness) because a program that spawns
//! shmkit children must dispatch them at the top of `main`.

#[path = "common/own_main.rs"]
mod own_main;

use shmkit::process::{
    ChildContext, ChildError, Entries, ProcessError, SpawnOptions, TRUNCATION_MARKER,
};
use shmkit::{CreateOptions, Segment};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
#[error("inner failed")]
struct Inner;

#[derive(Debug, thiserror::Error)]
#[error("middle failed")]
struct Middle(#[source] Inner);

#[derive(Debug, thiserror::Error)]
#[error("outer failed")]
struct Outer(#[source] Middle);

type Never = std::convert::Infallible;

fn fail_chain(_: &ChildContext, _: ()) -> Result<(), Outer> {
    Err(Outer(Middle(Inner)))
}

fn panic_entry(_: &ChildContext, n: u32) -> Result<(), Never> {
    panic!("boom {n}");
}

fn signal_entry(_: &ChildContext, what: String) -> Result<(), Never> {
    match what.as_str() {
        "kill" => {
            // SAFETY: raising a signal at ourselves.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        "segv" => {
            // The Rust runtime handles SIGSEGV (stack-overflow detection); restore the default
            // action, as a real fault outside a guard page would get.
            // SAFETY: setting a signal disposition, then raising it at ourselves.
            unsafe {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::raise(libc::SIGSEGV);
            }
        }
        "abort" => std::process::abort(),
        _ => std::process::exit(7),
    }
    unreachable!("the signal ends the process")
}

fn ok_entry(_: &ChildContext, _: ()) -> Result<(), Never> {
    Ok(())
}

fn sleeper(ctx: &ChildContext, event: String) -> Result<(), Never> {
    ctx.segment().event(&event).expect("event").set();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Huge(String);

fn huge_error(_: &ChildContext, len: usize) -> Result<(), Huge> {
    Err(Huge("x".repeat(len)))
}

fn spawn_watcher(ctx: &ChildContext, _: ()) -> Result<(), Never> {
    let grandchild =
        shmkit::process::spawn(ctx.segment(), "watch_parent", &()).expect("spawn grandchild");
    std::mem::forget(grandchild);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn watch_parent(ctx: &ChildContext, _: ()) -> Result<(), Never> {
    ctx.segment().event("watching").expect("event").set();
    let start = Instant::now();
    while ctx.parent_alive() {
        std::thread::sleep(Duration::from_millis(10));
        if start.elapsed() > Duration::from_secs(60) {
            std::process::exit(9);
        }
    }
    ctx.segment().event("parent-gone").expect("event").set();
    Ok(())
}

fn printer(_: &ChildContext, lines: u32) -> Result<(), Never> {
    for i in 0..lines {
        println!("line {i}");
    }
    Ok(())
}

struct Temp(String, Segment);

impl Temp {
    fn new(tag: &str, slots: u32) -> Temp {
        let name = format!("shmkit-children-{}-{tag}", std::process::id());
        let _ = Segment::unlink(&name);
        let seg =
            Segment::create(&name, &CreateOptions::new(1 << 20).exception_slots(slots)).unwrap();
        Temp(name, seg)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

const JOIN: Duration = Duration::from_secs(30);

fn an_error_with_a_two_level_cause_chain_reaches_join() {
    let t = Temp::new("chain", 4);
    let err = shmkit::process::spawn(&t.1, "fail_chain", &())
        .unwrap()
        .join(JOIN)
        .unwrap_err();
    let ChildError::Failed { report, .. } = &err else {
        panic!("{err}")
    };
    assert!(report.type_name.ends_with("Outer"), "{}", report.type_name);
    assert_eq!(report.message, "outer failed");
    assert_eq!(report.chain, ["middle failed", "inner failed"]);
    assert!(!report.backtrace.is_empty());
    let shown = err.to_string();
    for part in ["outer failed", "middle failed", "inner failed", "Outer"] {
        assert!(shown.contains(part), "{part} missing from {shown}");
    }
    assert_eq!(shmkit::process::exception_slots_in_use(&t.1), 0);
}

fn a_panic_reports_its_message_and_location() {
    let t = Temp::new("panic", 4);
    match shmkit::process::spawn(&t.1, "panic", &7u32)
        .unwrap()
        .join(JOIN)
    {
        Err(ChildError::Panicked { report, .. }) => {
            assert_eq!(report.message, "boom 7");
            let location = report.location.unwrap();
            assert!(location.contains("children.rs:"), "{location}");
        }
        other => panic!("{other:?}"),
    }
}

fn signals_and_exit_codes_are_named() {
    let t = Temp::new("signals", 4);
    for (what, signal, name) in [
        ("kill", libc::SIGKILL, "SIGKILL"),
        ("segv", libc::SIGSEGV, "SIGSEGV"),
        ("abort", libc::SIGABRT, "SIGABRT"),
    ] {
        match shmkit::process::spawn(&t.1, "signal", &what.to_string())
            .unwrap()
            .join(JOIN)
        {
            Err(ChildError::Signaled {
                signal: s,
                signal_name,
                ..
            }) => {
                assert_eq!((s, signal_name), (signal, name), "{what}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    match shmkit::process::spawn(&t.1, "signal", &"exit".to_string())
        .unwrap()
        .join(JOIN)
    {
        Err(ChildError::Exited { code: 7, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(shmkit::process::exception_slots_in_use(&t.1), 0);
}

fn a_child_that_never_exits_is_still_running_at_the_deadline() {
    let t = Temp::new("deadline", 4);
    let mut child = shmkit::process::spawn(&t.1, "sleeper", &"started".to_string()).unwrap();
    let start = Instant::now();
    match child.join(Duration::from_millis(100)) {
        Err(ChildError::StillRunning { pid, .. }) => assert_eq!(pid, child.pid()),
        other => panic!("{other:?}"),
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_millis(150),
        "{took:?}"
    );
    child.kill().unwrap();
    assert!(matches!(
        child.join(JOIN),
        Err(ChildError::Signaled {
            signal: libc::SIGKILL,
            ..
        })
    ));
}

fn five_hundred_children_spawned_and_joined_leak_no_slot() {
    let t = Temp::new("many", 2);
    for _ in 0..500 {
        shmkit::process::spawn(&t.1, "ok", &())
            .unwrap()
            .join(JOIN)
            .unwrap();
    }
    assert_eq!(shmkit::process::exception_slots_in_use(&t.1), 0);
}

fn children_killed_without_join_have_their_slots_reclaimed() {
    let t = Temp::new("reclaim", 8);
    let started = t.1.event("started").unwrap();
    for i in 0..20 {
        started.clear();
        let child = shmkit::process::spawn(&t.1, "sleeper", &"started".to_string())
            .unwrap_or_else(|e| panic!("spawn {i}: {e}"));
        assert!(started.wait(JOIN));
        // SAFETY: kill a child we spawned and have not reaped.
        unsafe { libc::kill(child.pid() as libc::pid_t, libc::SIGKILL) };
        // Never joined: it stays a zombie (which reads as dead) and its slot stays taken.
        wait_until_zombie(child.pid());
        std::mem::forget(child);
    }
    // Each spawn past the eighth reclaimed a dead child's slot; a sweep frees the rest.
    shmkit::process::reclaim_exception_slots(&t.1);
    assert_eq!(shmkit::process::exception_slots_in_use(&t.1), 0);
}

fn wait_until_zombie(pid: u32) {
    let start = Instant::now();
    while !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")) {
        assert!(start.elapsed() < JOIN, "child {pid} did not die");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn a_full_slot_array_is_an_error_at_spawn() {
    let t = Temp::new("full", 2);
    let a = shmkit::process::spawn(&t.1, "sleeper", &"a".to_string()).unwrap();
    let b = shmkit::process::spawn(&t.1, "sleeper", &"b".to_string()).unwrap();
    match shmkit::process::spawn(&t.1, "ok", &()) {
        Err(ProcessError::SlotsFull { slots: 2 }) => {}
        other => panic!("{other:?}"),
    }
    for mut c in [a, b] {
        c.kill().unwrap();
        let _ = c.join(JOIN);
    }
    assert!(shmkit::process::spawn(&t.1, "ok", &())
        .unwrap()
        .join(JOIN)
        .is_ok());
}

fn an_oversized_message_is_truncated_with_the_marker() {
    let t = Temp::new("huge", 2);
    match shmkit::process::spawn(&t.1, "huge", &100_000usize)
        .unwrap()
        .join(JOIN)
    {
        Err(ChildError::Failed { report, .. }) => {
            assert!(report.truncated);
            assert!(
                report.message.ends_with(TRUNCATION_MARKER),
                "{}",
                &report.message[report.message.len() - 60..]
            );
            assert!(report.message.len() < 4096);
        }
        other => panic!("{other:?}"),
    }
}

/// The README's claim: within `PARENT_CHECK` (200 ms) of polling, asserted with a 300 ms
/// scheduling margin (three processes on a loaded 2-core machine).
fn a_child_learns_within_200ms_that_its_parent_died() {
    let t = Temp::new("orphan", 4);
    let watching = t.1.event("watching").unwrap();
    let gone = t.1.event("parent-gone").unwrap();
    let mut parent = shmkit::process::spawn(&t.1, "spawn_watcher", &()).unwrap();
    assert!(watching.wait(JOIN));
    parent.kill().unwrap();
    let killed = Instant::now();
    assert!(gone.wait(Duration::from_secs(5)));
    let took = killed.elapsed();
    assert!(
        took < shmkit::process::PARENT_CHECK + Duration::from_millis(300),
        "noticed after {took:?}"
    );
    let _ = parent.join(JOIN);
}

fn output_can_be_prefixed_with_the_childs_name() {
    let t = Temp::new("prefix", 2);
    let options = SpawnOptions {
        name: Some("printer-1".into()),
        prefix_output: true,
        ..SpawnOptions::default()
    };
    let mut child = shmkit::process::spawn_with(&t.1, "printer", &3u32, &options).unwrap();
    assert_eq!(child.name(), "printer-1");
    child.join(JOIN).unwrap();
}

/// Run through a host program (a shell that execs this binary with an extra argument): the
/// entry sees the host's argument, so the host really ran, and was still found by name.
fn hosted(_: &ChildContext, expect: String) -> Result<(), Huge> {
    if std::env::args().any(|a| a == expect) {
        Ok(())
    } else {
        Err(Huge(format!(
            "argument {expect:?} missing: {:?}",
            std::env::args().collect::<Vec<_>>()
        )))
    }
}

fn a_child_spawned_through_a_host_program_finds_its_entry() {
    let t = Temp::new("host", 2);
    let exe = std::env::current_exe().unwrap();
    let options = SpawnOptions {
        program: Some(shmkit::process::HostProgram::new(
            "/bin/sh",
            [
                std::ffi::OsString::from("-c"),
                "exec \"$0\" --from-host".into(),
                exe.into_os_string(),
            ],
        )),
        ..SpawnOptions::default()
    };
    let mut child =
        shmkit::process::spawn_with(&t.1, "hosted", &"--from-host".to_string(), &options).unwrap();
    child.join(JOIN).unwrap();
    // The host program's own failure is reported as such, not as a shmkit entry's.
    let bad = SpawnOptions {
        program: Some(shmkit::process::HostProgram::new(
            "/bin/sh",
            ["-c", "exit 9"],
        )),
        ..SpawnOptions::default()
    };
    match shmkit::process::spawn_with(&t.1, "hosted", &String::new(), &bad)
        .unwrap()
        .join(JOIN)
    {
        Err(ChildError::Exited { code: 9, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(shmkit::process::exception_slots_in_use(&t.1), 0);
}

static JOIN_FLAG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn set_join_flag(_: libc::c_int) {
    JOIN_FLAG.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A join interrupted by a signal whose handler sets the flag the check reads (as a binding
/// checks for Ctrl+C): it returns within 100 ms, the child still runs and joins again.
fn an_interrupted_join_returns_within_100ms_and_the_child_is_joinable_again() {
    use std::sync::atomic::Ordering;
    let t = Temp::new("joinint", 2);
    // SAFETY: a zeroed sigaction is valid; the handler stores to an atomic only; no
    // SA_RESTART, as CPython installs its handlers.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = set_join_flag as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()),
            0
        );
    }
    let mut child = shmkit::process::spawn(&t.1, "sleeper", &"jstarted".to_string()).unwrap();
    assert!(t.1.event("jstarted").unwrap().wait(JOIN));
    // SAFETY: pthread_self names this thread.
    let me = unsafe { libc::pthread_self() };
    let signaller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(80));
        let at = Instant::now();
        // SAFETY: `me` is the joining thread, alive until it has joined this thread.
        unsafe { libc::pthread_kill(me, libc::SIGUSR2) };
        at
    });
    let check = || JOIN_FLAG.load(Ordering::Relaxed);
    let got = child.join_interruptible(shmkit::Timeout::Forever, &check);
    let returned = Instant::now();
    let sent = signaller.join().unwrap();
    assert!(
        matches!(got, Err(ChildError::Interrupted { .. })),
        "{got:?}"
    );
    assert!(returned.duration_since(sent) < Duration::from_millis(100));
    // Signals the check ignores end nothing early.
    let start = Instant::now();
    let ignore = || false;
    let signaller = std::thread::spawn(move || {
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(30));
            // SAFETY: as above.
            unsafe { libc::pthread_kill(me, libc::SIGUSR2) };
        }
    });
    let got = child.join_interruptible(shmkit::Timeout::After(Duration::from_millis(250)), &ignore);
    signaller.join().unwrap();
    assert!(
        matches!(got, Err(ChildError::StillRunning { .. })),
        "{got:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(250));
    child.kill().unwrap();
    assert!(matches!(child.join(JOIN), Err(ChildError::Signaled { .. })));
}

fn main() {
    Entries::new()
        .entry("hosted", hosted)
        .entry("fail_chain", fail_chain)
        .entry("panic", panic_entry)
        .entry("signal", signal_entry)
        .entry("ok", ok_entry)
        .entry("sleeper", sleeper)
        .entry("huge", huge_error)
        .entry("spawn_watcher", spawn_watcher)
        .entry("watch_parent", watch_parent)
        .entry("printer", printer)
        .dispatch();

    let tests: [(&str, fn()); 12] = [
        (
            "a_child_spawned_through_a_host_program_finds_its_entry",
            a_child_spawned_through_a_host_program_finds_its_entry,
        ),
        (
            "an_interrupted_join_returns_within_100ms_and_the_child_is_joinable_again",
            an_interrupted_join_returns_within_100ms_and_the_child_is_joinable_again,
        ),
        (
            "an_error_with_a_two_level_cause_chain_reaches_join",
            an_error_with_a_two_level_cause_chain_reaches_join,
        ),
        (
            "a_panic_reports_its_message_and_location",
            a_panic_reports_its_message_and_location,
        ),
        (
            "signals_and_exit_codes_are_named",
            signals_and_exit_codes_are_named,
        ),
        (
            "a_child_that_never_exits_is_still_running_at_the_deadline",
            a_child_that_never_exits_is_still_running_at_the_deadline,
        ),
        (
            "five_hundred_children_spawned_and_joined_leak_no_slot",
            five_hundred_children_spawned_and_joined_leak_no_slot,
        ),
        (
            "children_killed_without_join_have_their_slots_reclaimed",
            children_killed_without_join_have_their_slots_reclaimed,
        ),
        (
            "a_full_slot_array_is_an_error_at_spawn",
            a_full_slot_array_is_an_error_at_spawn,
        ),
        (
            "an_oversized_message_is_truncated_with_the_marker",
            an_oversized_message_is_truncated_with_the_marker,
        ),
        (
            "a_child_learns_within_200ms_that_its_parent_died",
            a_child_learns_within_200ms_that_its_parent_died,
        ),
        (
            "output_can_be_prefixed_with_the_childs_name",
            output_can_be_prefixed_with_the_childs_name,
        ),
    ];
    own_main::run_tests(&tests);
}
