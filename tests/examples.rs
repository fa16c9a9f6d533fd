//! The example pairs (`examples/{frames,command,lock}_*.rs`, `named_objects.rs`), run as a
//! user runs them in two terminals: both halves as separate processes, started in either
//! order, each checked for what it prints and how it exits.
//!
//! `cargo test` builds the examples before running this; the binaries are found beside the
//! test's own (`target/<profile>/examples/`).

use std::io::{BufRead, BufReader, Lines};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("the test's own path");
    let path: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (`cargo test` does; `cargo build --examples`)",
        path.display()
    );
    Command::new(path)
}

/// A segment name no other test (or run) uses.
fn segment(tag: &str) -> String {
    format!("shmkit-test-example-{tag}-{}", std::process::id())
}

fn spawn(mut cmd: Command) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the example");
    let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    (child, lines)
}

fn succeeded(what: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_frame_reader_checks_frames_the_writer_publishes() {
    let seg = segment("frames");
    // The reader first: it waits for the writer's segment and ring to appear.
    let reader = example("frames_reader")
        .args([&seg, "300"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let writer = example("frames_writer")
        .args([&seg, "3000"])
        .output()
        .unwrap();
    let read = succeeded("frames_reader", reader.wait_with_output().unwrap());
    succeeded("frames_writer", writer);
    assert!(read.contains("300 frames checked"), "{read}");
    let _ = shmkit::Segment::unlink(&seg);
}

#[test]
fn the_command_client_gets_every_sum_from_the_server() {
    let seg = segment("command");
    let server = example("command_server")
        .args([&seg, "500"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let client = succeeded(
        "command_client",
        example("command_client")
            .args([&seg, "500"])
            .output()
            .unwrap(),
    );
    succeeded("command_server", server.wait_with_output().unwrap());
    assert!(client.contains("500 calls answered correctly"), "{client}");
    let _ = shmkit::Segment::unlink(&seg);
}

#[test]
fn named_objects_run_twice_count_together() {
    let seg = segment("named");
    let first = example("named_objects")
        .arg(&seg)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let second = example("named_objects")
        .arg(&seg)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for (what, child) in [("first", first), ("second", second)] {
        let out = succeeded(what, child.wait_with_output().unwrap());
        assert!(out.contains("total 200000 (expected 200000)"), "{out}");
    }
    let _ = shmkit::Segment::unlink(&seg);
}

#[test]
fn a_killed_lock_holder_is_repaired_by_the_survivor() {
    let seg = segment("lock");
    let mut holder_cmd = example("lock_holder");
    holder_cmd.arg(&seg);
    let (mut holder, mut holder_says) = spawn(holder_cmd);
    let line = holder_says.next().expect("the holder reports").unwrap();
    assert!(line.contains("kill me"), "{line}");

    let mut survivor_cmd = example("lock_survivor");
    survivor_cmd.arg(&seg);
    let (mut survivor, mut survivor_says) = spawn(survivor_cmd);
    let line = survivor_says.next().expect("the survivor reports").unwrap();
    assert!(line.contains("waiting for the state"), "{line}");
    holder.kill().unwrap(); // SIGKILL: it dies holding the state
    holder.wait().unwrap();
    let rest: Vec<String> = survivor_says.map(Result::unwrap).collect();
    let status = survivor.wait().unwrap();
    assert!(status.success(), "survivor failed: {rest:?}");
    assert!(
        rest[0].contains("died with the mirror in state 1"),
        "{rest:?}"
    );
    assert!(rest[1].contains("consistent again"), "{rest:?}");
    let _ = shmkit::Segment::unlink(&seg);
}
