//! Segments across processes: racing creators, ownership checks, attachment by offset.

mod common;

use common::{require_root, spawn, wait_exit, TempSegment};
use shmkit::{CreateOptions, OpenOptions, Segment, SegmentError};
use std::time::Duration;

crate::child_roles!(|role, args| match role {
    "open_or_create" => {
        let seg = Segment::open_or_create(&args[0], &CreateOptions::new(1 << 20))
            .expect("open_or_create");
        // Every racer creates a mutex of its own: all must land in the one segment.
        seg.mutex(&format!("racer-{}", std::process::id()))
            .expect("create");
        0
    }
    "open_as_nobody" => {
        // SAFETY: plain system calls; this child process is single-threaded here.
        unsafe {
            assert_eq!(libc::setgid(65534), 0);
            assert_eq!(libc::setuid(65534), 0);
        }
        match Segment::open(&args[0]) {
            Err(SegmentError::PermissionDenied { .. }) => 0,
            other => {
                eprintln!("expected PermissionDenied, got {other:?}");
                1
            }
        }
    }
    other => panic!("unknown role {other}"),
});

#[test]
#[ignore = "needs root: becomes another user"]
fn another_user_is_denied_a_private_segment() {
    require_root("becoming another user to test the 0600 default");
    let name = TempSegment::new("private");
    let _seg = Segment::create(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let mut child = spawn("open_as_nobody", std::slice::from_ref(&name.0));
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(30)).code(),
        Some(0)
    );
}

#[test]
fn racing_open_or_create_makes_exactly_one_segment() {
    let name = TempSegment::new("race");
    let mut children: Vec<_> = (0..6)
        .map(|_| spawn("open_or_create", std::slice::from_ref(&name.0)))
        .collect();
    for c in &mut children {
        assert!(wait_exit(c, Duration::from_secs(30)).success());
    }
    let seg = Segment::open(&name.0).unwrap();
    let mutexes = shmkit::inspect::blocks(&seg)
        .unwrap()
        .iter()
        .filter(|b| b.kind == shmkit::segment::BlockKind::Mutex)
        .count();
    assert_eq!(mutexes, 6, "one segment holds every racer's mutex");
}

#[test]
#[ignore = "needs root: gives a segment to another user"]
fn a_segment_owned_by_another_user_is_refused_unless_allowed() {
    require_root("giving a segment to another user");
    let name = TempSegment::new("owner");
    let seg = Segment::create(&name.0, &CreateOptions::new(1 << 20).mode(0o666)).unwrap();
    let path = std::ffi::CString::new(format!("/dev/shm/{}", name.0)).unwrap();
    // SAFETY: `path` is a valid C string; chown to uid/gid 65534 (nobody).
    assert_eq!(unsafe { libc::chown(path.as_ptr(), 65534, 65534) }, 0);
    match Segment::open(&name.0) {
        Err(SegmentError::WrongOwner {
            owner: 65534,
            ours: 0,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let allow = OpenOptions {
        allow_other_owner: true,
        ..OpenOptions::default()
    };
    let other = Segment::open_with(&name.0, &allow).unwrap();
    assert_eq!(other.info().creator, seg.info().creator);
}
