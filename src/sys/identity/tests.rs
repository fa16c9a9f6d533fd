//! The identity layer's unit tests: `/proc/PID/stat` parsing, records, liveness of live, dead
//! and exited ids, and signals that reach only the process a record names.

use super::*;

#[test]
fn parse_stat_handles_parentheses_in_the_command_name() {
    let line =
        "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
    let stat = parse_stat(line).unwrap();
    assert_eq!(stat.state, b'S');
    assert_eq!(stat.start_ticks, 987654);
}

#[test]
fn parse_stat_rejects_truncated_text() {
    assert_eq!(parse_stat("12 (x) S 1 2"), None);
    assert_eq!(parse_stat("no parenthesis"), None);
}

#[test]
fn records_round_trip_id_and_token() {
    let r = Record::new(4_194_303, TOKEN_TICKS | 12345);
    assert_eq!(r.id(), 4_194_303);
    assert_eq!(r.token(), TOKEN_TICKS | 12345);
    assert_eq!(Record::from_raw(r.raw()), r);
    assert!(Record::NONE.is_none());
    assert_eq!(Record::NONE.process_liveness(), Liveness::Dead);
}

#[test]
fn ids_out_of_range_are_dead() {
    assert_eq!(tid_liveness(0), Liveness::Dead);
    assert_eq!(tid_liveness(u32::MAX), Liveness::Dead);
    assert_eq!(Record::from_raw(u64::MAX).thread_liveness(), Liveness::Dead);
}

#[cfg(not(miri))]
#[test]
fn the_current_thread_is_alive_and_another_token_is_not() {
    let me = current_thread();
    assert_eq!(me.owner_record().thread_liveness(), Liveness::Alive);
    assert_eq!(
        Record::new(me.tid, me.token ^ 1).thread_liveness(),
        Liveness::Dead,
        "a reused tid is somebody else"
    );
    let p = current_process();
    assert_eq!(p.liveness(), Liveness::Alive);
    assert_eq!(p.record().process_liveness(), Liveness::Alive);
    assert_eq!(ThreadIdentity::current().liveness(), Liveness::Alive);
    let stale = ProcessIdentity {
        token: p.token ^ 1,
        ..p
    };
    assert_eq!(
        stale.liveness(),
        Liveness::Dead,
        "a reused pid is somebody else"
    );
}

#[cfg(not(any(miri, loom)))]
#[test]
fn this_kernel_gives_exact_tokens_when_it_has_pidfs() {
    let me = current_process();
    let pidfs = crate::sys::pidfd::open(me.pid, false)
        .ok()
        .and_then(|fd| crate::sys::pidfd::unique_inode(&fd).ok().flatten())
        .is_some();
    assert_eq!(me.token & TOKEN_TICKS == 0, pidfs);
    let t = std::thread::spawn(current_thread).join().unwrap();
    assert_ne!(t.token, current_thread().token, "two threads, two tokens");
}

/// A signal reaches the process its record names, and never another process that has
/// its pid but another token.
#[cfg(not(any(miri, loom)))]
#[test]
fn a_signal_goes_only_to_the_process_its_record_names() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id();
    let fd = crate::sys::pidfd::open(pid, false).unwrap();
    let token = match crate::sys::pidfd::unique_inode(&fd).unwrap() {
        Some(ino) => ino & TOKEN_VALUE_MASK,
        None => ticks_token(
            parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap())
                .unwrap()
                .start_ticks,
        ),
    };
    let impostor = Record::new(pid, token ^ 1);
    assert!(
        !impostor.signal_process(libc::SIGKILL),
        "another token: not sent"
    );
    assert!(child.try_wait().unwrap().is_none(), "still running");
    assert!(Record::new(pid, token).signal_process(libc::SIGKILL));
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[cfg(not(miri))]
#[test]
fn an_exited_thread_is_dead() {
    let id = std::thread::spawn(current_thread).join().unwrap();
    // `join` returns when the kernel clears the thread's tid word, a moment before the
    // task is released: allow that moment (the mutex checks every 20 ms).
    let start = std::time::Instant::now();
    while id.liveness() != Liveness::Dead {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "still alive"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
