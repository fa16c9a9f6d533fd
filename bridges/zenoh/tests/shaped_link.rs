//! A camera faster than its link: 8 MiB frames published at 100 Hz through a link shaped to
//! 800 Mbit/s (about 12 frames/s), two bridges in two network namespaces (made by the test
//! itself). With flow control the link carries frames at its own pace, each the newest the
//! exporter could take; without it each frame queued behind a half-sent one is dropped and
//! almost nothing arrives whole (measured before flow control: one 8 MiB frame per 22.7 s on
//! an 800 Mbit/s link whose own pace was 84 ms).
//! Needs root, `ip` and `tc`: ignored unless asked for (`scripts/test-all` asks as root).

mod common;

use common::net::{bridge_in, Net};
use common::{eventually, name, status, Segs};
use shmkit::rings::{ElemType, FrameSpec, ReadMode};
use shmkit::{CreateOptions, Segment, SegmentObjects};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FRAME: u32 = 8 << 20;
/// The link's rate in bytes per second (`tc`'s 800mbit).
const LINK_BYTES_PER_S: f64 = 800e6 / 8.0;

#[test]
#[ignore = "needs root: network namespaces, a veth pair and a tc token bucket"]
fn a_camera_faster_than_the_link_gets_its_frames_through_at_the_links_pace() {
    let net = Net::make().unwrap_or_else(|e| {
        panic!("cannot make two network namespaces here (needs root and iproute2): {e}")
    });
    net.shape("800mbit").unwrap();
    let (src, dst) = (name("shaped-a"), name("shaped-b"));
    let _segs = Segs(vec![src.clone(), dst.clone()]);
    let seg = Segment::create(&src, &CreateOptions::new(96 << 20)).unwrap();
    let ring = seg
        .frame_ring("cam", &FrameSpec::new(8, ElemType::U8, &[FRAME]))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let camera = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut w = ring.writer().unwrap();
            let mut id = 0u64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let mut slot = w.try_claim().unwrap();
                slot.set_len(u64::from(FRAME));
                slot.set_user(0, id);
                slot.publish();
                std::thread::sleep(Duration::from_millis(10));
            }
            id
        }
    });

    let ep = format!("tcp/{}:{}", net.addr_a, 7447);
    let export = format!("{src}/cam");
    let _a = bridge_in(
        &net.a,
        &[
            "--host",
            "hostA",
            "--listen",
            &ep,
            "--insecure",
            "--export",
            &export,
        ],
    );
    let import = format!("hostA/{src}/cam={dst}/cam");
    let _b = bridge_in(
        &net.b,
        &["--host", "hostB", "--connect", &ep, "--import", &import],
    );
    eventually("the first frame arrives", Duration::from_secs(20), || {
        status(&dst, "cam").is_some_and(|s| s.received > 0)
    });
    let local = Segment::open(&dst).unwrap();
    let frames: shmkit::rings::FrameRing = local.open("cam").unwrap();
    let mut reader = frames.reader(ReadMode::OldestFirst).unwrap();

    let window = Duration::from_secs(5);
    let before = status(&dst, "cam").unwrap();
    let t0 = Instant::now();
    let (mut read, mut last_user) = (0u64, 0u64);
    while t0.elapsed() < window {
        if let Ok(f) = reader.next(Duration::from_millis(100)) {
            assert_eq!(f.bytes().len(), FRAME as usize, "a whole frame");
            assert!(f.user(0) > last_user, "frames in order");
            last_user = f.user(0);
            read += 1;
        }
    }
    let after = status(&dst, "cam").unwrap();
    stop.store(true, Ordering::Relaxed);
    let published = camera.join().unwrap();

    let received = after.received - before.received;
    let pace = window.as_secs_f64() * LINK_BYTES_PER_S / f64::from(FRAME);
    eprintln!(
        "shaped link: {received} frames of 8 MiB received in {window:?} (the link's pace: \
         {pace:.0}; the camera published {published} in all); lost on the way {}, \
         passed over by the exporter {}, rejected {}",
        after.gaps - before.gaps,
        after.remote_skipped - before.remote_skipped,
        after.rejected - before.rejected,
    );
    // At the link's pace, give or take the acknowledgements' round trips: at least half of
    // it (without flow control: a few frames at most).
    assert!(
        received as f64 >= 0.5 * pace,
        "{received} frames received, the link carries {pace:.0}"
    );
    assert!(read >= received / 2, "the local reader read {read}");
    assert_eq!(after.rejected, before.rejected, "no frame rejected");
}
