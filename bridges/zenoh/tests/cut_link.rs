//! A cut link, not a killed process: two bridges in two network namespaces joined by a veth
//! pair (made by the test itself), every packet dropped mid-stream. No TCP reset reaches either
//! side, so only the lease can tell: the importer must show the link down within it, its
//! remote calls must fail fast, and everything must come back when the link does.
//! Needs root, `ip` and `tc` (Debian's iproute2): ignored unless asked for
//! (`--include-ignored`, which `scripts/test-all` passes as root), and a failure saying what is
//! missing when asked for where it cannot run.

mod common;

use common::net::{bridge_in, Net};
use common::{eventually, name, status, Segs, Source};
use shmkit::rings::{CommandRing, ReadMode};
use shmkit::{Segment, SegmentObjects};
use shmkit_zenoh::cmd_wire::{RemoteError, WireOutcome};
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs root: network namespaces, a veth pair and a tc blackhole"]
fn a_cut_link_is_seen_within_the_lease_calls_fail_fast_and_it_all_comes_back() {
    let net = Net::make().unwrap_or_else(|e| {
        panic!("cannot make two network namespaces here (needs root and iproute2): {e}")
    });
    let (src, dst) = (name("cut-a"), name("cut-b"));
    let _segs = Segs(vec![src.clone(), dst.clone()]);
    let _source = Source::start(&src);

    let ep = format!("tcp/{}:{}", net.addr_a, 7447);
    let (export, export_cmd) = (format!("{src}/cam"), format!("{src}/dm"));
    let _a = bridge_in(
        &net.a,
        &[
            "--host",
            "hostA",
            "--listen",
            &ep,
            "--insecure",
            "--lease-ms",
            "1000",
            "--export",
            &export,
            "--export-cmd",
            &export_cmd,
        ],
    );
    let (import, import_cmd) = (
        format!("hostA/{src}/cam={dst}/cam"),
        format!("hostA/{src}/dm={dst}/dm"),
    );
    let _b = bridge_in(
        &net.b,
        &[
            "--host",
            "hostB",
            "--connect",
            &ep,
            "--lease-ms",
            "1000",
            "--import",
            &import,
            "--import-cmd",
            &import_cmd,
        ],
    );
    let local = Segment::open(&dst).unwrap();
    let frames: shmkit::rings::FrameRing = local.open("cam").unwrap();
    let calls: CommandRing = local.open("dm").unwrap();
    let mut reader = frames.reader(ReadMode::NewestOnly).unwrap();
    eventually("frames arrive", Duration::from_secs(10), || {
        reader.next(Duration::from_millis(100)).is_ok()
    });
    assert_eq!(calls.call(b"hi", Duration::from_secs(5)).unwrap(), b"hi");

    net.cut(true).unwrap();
    let cut = Instant::now();
    eventually(
        "the cut seen by the frame link",
        Duration::from_secs(4),
        || status(&dst, "cam").is_some_and(|s| s.up == 0),
    );
    eventually(
        "the cut seen by the command link",
        Duration::from_secs(1),
        || status(&dst, "dm").is_some_and(|s| s.up == 0),
    );
    let seen = cut.elapsed();
    eprintln!("the cut was seen after {seen:?} (lease 1 s)");
    // The README's claim: seen within the lease (1 s), asserted with a 500 ms margin.
    assert!(
        seen < Duration::from_millis(1000 + 500),
        "seen after {seen:?} (lease 1 s)"
    );
    let started = Instant::now();
    let e = calls.call(b"hi", Duration::from_secs(20)).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(200), "fails fast");
    assert_eq!(
        RemoteError::of(&e),
        Some(RemoteError::BridgeDown {
            host: "hostA".into(),
            outcome: WireOutcome::NotExecuted
        })
    );

    net.cut(false).unwrap();
    eventually("the link comes back", Duration::from_secs(30), || {
        status(&dst, "cam").is_some_and(|s| s.up == 1)
    });
    eventually("frames flow again", Duration::from_secs(10), || {
        reader.next(Duration::from_millis(100)).is_ok()
    });
    eventually("calls go through again", Duration::from_secs(10), || {
        calls.call(b"hi", Duration::from_secs(2)).is_ok()
    });
    let s = status(&dst, "cam").unwrap();
    assert!(s.downs >= 1, "{s:?}");
}
