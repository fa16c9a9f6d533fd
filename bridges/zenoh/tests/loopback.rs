//! Two bridge processes on loopback (peer mode, explicit TCP endpoints): a 2 kHz camera ring
//! exported by one and imported by the other, every frame checksummed end to end and the gap
//! accounting exact; a rate limit; a spec mismatch; a SIGKILLed bridge seen down within the
//! lease; a remote subscriber that stalls never slowing the camera; a plain `eclipse-zenoh` Python subscriber decoding exported frames from the
//! documented header. Every wait is bounded.

mod common;

use common::{bridge, eventually, free_port, name, status, Segs};
use shmkit::rings::{ElemType, FrameRing, FrameSpec, ReadMode};
use shmkit::{CreateOptions, Segment, SegmentObjects};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pattern(id: u64, out: &mut [u16]) {
    for (i, v) in out.iter_mut().enumerate() {
        *v = (id.wrapping_mul(2654435761).wrapping_add(i as u64 * 17) & 0xFFFF) as u16;
    }
}

#[test]
fn a_2khz_camera_crosses_two_bridges_whole_and_a_killed_bridge_is_seen_down() {
    let (src, dst) = (name("src"), name("dst"));
    let _segs = Segs(vec![src.clone(), dst.clone()]);
    let seg = Segment::create(&src, &CreateOptions::new(16 << 20)).unwrap();
    let shape = [64u32, 48];
    let ring = seg
        .frame_ring("cam", &FrameSpec::new(8, ElemType::U16, &shape))
        .unwrap();
    let port = free_port();
    let ep = format!("tcp/127.0.0.1:{port}");
    let export = format!("{src}/cam");
    let mut a = bridge(&["--host", "hostA", "--listen", &ep, "--export", &export]);
    let import = format!("hostA/{src}/cam={dst}/cam");
    let _b = bridge(&["--host", "hostB", "--connect", &ep, "--import", &import]);
    let local: FrameRing = Segment::open(&dst).unwrap().open("cam").unwrap();
    assert_eq!(local.spec(), FrameSpec::new(8, ElemType::U16, &shape));
    eventually("link up", Duration::from_secs(5), || {
        status(&dst, "cam").is_some_and(|s| s.up == 1)
    });

    let mut reader = local.reader(ReadMode::OldestFirst).unwrap();
    let camera = std::thread::spawn(move || {
        let mut w = ring.writer().unwrap();
        let start = Instant::now();
        let mut n = 0u64;
        // 2 kHz for 2 s, on the clock.
        while n < 4000 {
            let due = start + Duration::from_micros(500 * n);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            let mut slot = w.try_claim().unwrap();
            let id = ring.stats().last_id + 1;
            pattern(id, slot.typed_mut::<u16>().unwrap());
            slot.set_user(0, id);
            assert_eq!(slot.publish(), id);
            n += 1;
        }
        n
    });
    let mut got = 0u64;
    let mut last = 0u64;
    let mut first = 0u64;
    // This checker is a test process on a shared 2-core machine: if it falls a ring behind,
    // the frames it could not check are counted, not confused with the bridge's accounting.
    let mut unchecked = 0u64;
    // Received frames the checker lost before it saw its first one: they precede `first`.
    let mut missed_before_first = 0u64;
    let mut expect = vec![0u16; 64 * 48];
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        match reader.next(Duration::from_millis(300)) {
            Ok(f) => {
                let id = f.user(0);
                assert!(id > last, "in order");
                if first == 0 {
                    first = id;
                }
                pattern(id, &mut expect);
                assert_eq!(f.typed::<u16>().unwrap(), &expect[..], "frame {id} whole");
                last = id;
                got += 1;
            }
            Err(shmkit::rings::RingError::Timeout { .. }) if camera.is_finished() => break,
            Err(shmkit::rings::RingError::Overrun { missed }) => {
                unchecked += missed;
                if first == 0 {
                    missed_before_first += missed;
                }
            }
            Err(shmkit::rings::RingError::Timeout { .. }) => {}
            Err(e) => panic!("the local reader failed: {e}"),
        }
    }
    let published = camera.join().unwrap();
    let s = status(&dst, "cam").unwrap();
    eprintln!("2 kHz camera: {published} published, frames {first}..={last}, {got} checked, {unchecked} unchecked, {s:?}");
    assert_eq!(s.rejected, 0, "{s:?}");
    assert_eq!(
        s.received,
        got + unchecked,
        "every received frame was published locally: {s:?}"
    );
    assert!(
        unchecked * 10 < got,
        "the checker saw most frames: {unchecked} unchecked"
    );
    // Exact accounting from the first frame sent (frames before it were published while the
    // exporter still saw no subscriber, so it read none): every later camera frame was
    // received, lost on the way, dropped by a full local ring, or not sent.
    assert!(
        first < 2000,
        "sending began within 1 s of the camera: {first}"
    );
    assert_eq!(last, published, "the newest frame always goes out");
    let accounted = s.received + s.gaps + s.ring_full + s.remote_skipped;
    if missed_before_first == 0 {
        assert_eq!(
            accounted,
            last - first + 1,
            "{s:?}, frames {first}..={last}"
        );
    } else {
        // The checker was lapped before its first frame (a loaded machine): the frames it
        // lost were received before `first`, among the span's gaps and skips at most.
        let span = last - first + 1 + missed_before_first;
        assert!(
            (span..=span + s.gaps + s.remote_skipped).contains(&accounted),
            "{s:?}, frames {first}..={last}, {missed_before_first} lost before the first"
        );
    }
    // Loopback at 2 kHz loses little: measured 3909 of 3915 on an idle machine, 3547 of 3947
    // (the rest skipped newest-only by a descheduled exporter, counted above) in a noisy CI
    // run of this debug build. A quarter lost fails: a bridge that lets frames go on its own.
    let sent_span = last - first + 1;
    assert!(
        s.received * 4 >= sent_span * 3,
        "at least 75 % of frames {first}..={last} received: {s:?}"
    );

    // A bridge killed outright is seen down within the lease (2 s) plus a margin.
    let killed = Instant::now();
    a.0.kill().unwrap();
    let _ = a.0.wait();
    eventually("link down", Duration::from_secs(4), || {
        status(&dst, "cam").is_some_and(|s| s.up == 0)
    });
    assert!(killed.elapsed() < Duration::from_secs(4));
}

#[test]
fn an_import_into_a_ring_of_another_shape_is_a_typed_error() {
    let (src, dst) = (name("msrc"), name("mdst"));
    let _segs = Segs(vec![src.clone(), dst.clone()]);
    let seg = Segment::create(&src, &CreateOptions::new(8 << 20)).unwrap();
    seg.frame_ring("cam", &FrameSpec::new(4, ElemType::U16, &[8, 8]))
        .unwrap();
    let other = Segment::create(&dst, &CreateOptions::new(8 << 20)).unwrap();
    other
        .frame_ring("cam", &FrameSpec::new(8, ElemType::F32, &[8, 8]))
        .unwrap();
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let export = format!("{src}/cam");
    let _a = bridge(&["--host", "hostM", "--listen", &ep, "--export", &export]);
    let import = format!("hostM/{src}/cam={dst}/cam");
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit-zenoh"))
        .args(["--host", "hostN", "--connect", &ep, "--import", &import])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the local ring cam is"), "{err}");
}

/// A remote ring whose frames exceed the importer's message limit is refused from its
/// `@spec` alone: nothing is allocated (the local segment is never created).
#[test]
fn a_remote_spec_larger_than_the_message_limit_is_refused_before_anything_is_made() {
    let (src, dst) = (name("bigsrc"), name("bigdst"));
    let _segs = Segs(vec![src.clone(), dst.clone()]);
    let seg = Segment::create(&src, &CreateOptions::new(8 << 20)).unwrap();
    seg.frame_ring("cam", &FrameSpec::new(4, ElemType::U16, &[256, 256]))
        .unwrap();
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let export = format!("{src}/cam");
    let _a = bridge(&["--host", "hostL", "--listen", &ep, "--export", &export]);
    let import = format!("hostL/{src}/cam={dst}/cam");
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit-zenoh"))
        .args(["--host", "hostK", "--connect", &ep, "--import", &import])
        .args(["--max-message-bytes", "65536"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("takes frames up to"), "{err}");
    assert!(Segment::open(&dst).is_err(), "nothing was made");
}

#[test]
fn bad_names_and_limits_are_usage_errors() {
    for args in [
        &["--export", "seg/a*b"][..],
        &["--export", "noslash"],
        &["--host", "a/b"],
        &["--lease-ms", "5"],
        &["--import", "h/s/r"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_shmkit-zenoh"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// The Python with `eclipse-zenoh` (`scripts/test-all` installs it into `.venv/`).
fn python() -> Command {
    let python = std::env::var("SHMKIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut c = Command::new(python);
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python_subscriber.py"
    ));
    c
}

#[test]
fn a_plain_eclipse_zenoh_subscriber_decodes_exported_frames_from_the_header() {
    let src = name("py");
    let _segs = Segs(vec![src.clone()]);
    let seg = Segment::create(&src, &CreateOptions::new(8 << 20)).unwrap();
    let ring = seg
        .frame_ring("cam", &FrameSpec::new(4, ElemType::U16, &[64, 48]))
        .unwrap();
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let export = format!("{src}/cam");
    let _a = bridge(&["--host", "hostP", "--listen", &ep, "--export", &export]);
    let key = format!("shmkit/hostP/{src}/frames/cam");
    let mut py = python()
        .args([ep.as_str(), key.as_str(), "20"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python with eclipse-zenoh (set SHMKIT_PYTHON; scripts/test-all installs it)");
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "subscribed",
        "the subscriber started (is eclipse-zenoh installed?)"
    );
    let mut w = ring.writer().unwrap();
    let mut frame = vec![0u16; 64 * 48];
    let end = Instant::now() + Duration::from_secs(20);
    let mut published = 0u64;
    // 200 Hz until the subscriber has its 20 frames (it needs the match to settle first).
    while Instant::now() < end {
        if let Some(status) = py.try_wait().unwrap() {
            assert!(status.success() || status.code() == Some(1));
            break;
        }
        let mut slot = w.try_claim().unwrap();
        let id = published + 1;
        pattern(id, &mut frame);
        slot.typed_mut::<u16>().unwrap().copy_from_slice(&frame);
        slot.set_user(0, id);
        assert_eq!(slot.publish(), id);
        published = id;
        std::thread::sleep(Duration::from_millis(5));
    }
    line.clear();
    out.read_line(&mut line).unwrap();
    let _ = py.wait();
    let report: serde_json::Value = serde_json::from_str(&line).expect(&line);
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    let frames = report["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 20, "{report}");
    let mut expect = vec![0u16; 64 * 48];
    for f in frames {
        let id = f["id"].as_u64().unwrap();
        assert_eq!(f["user0"].as_u64(), Some(id), "user words decoded: {f}");
        assert_eq!(f["shape"], serde_json::json!([64, 48]));
        pattern(id, &mut expect);
        assert_eq!(
            f["first"].as_u64(),
            Some(u64::from(expect[0])),
            "payload decoded: {f}"
        );
    }
}

#[test]
fn a_100_hz_limit_on_a_2_khz_camera_delivers_100_hz_and_the_camera_keeps_its_rate() {
    let (src, dst) = (name("rsrc"), name("rdst"));
    let _segs = Segs(vec![src.clone(), dst.clone()]);
    let seg = Segment::create(&src, &CreateOptions::new(8 << 20)).unwrap();
    let ring = seg
        .frame_ring("cam", &FrameSpec::new(8, ElemType::U16, &[32, 32]))
        .unwrap();
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let dir = std::env::temp_dir().join(name("rate-config"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bridge.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "host": "hostR",
            "listen": [ep],
            "insecure": true,
            "export": [{"segment": src, "ring": "cam", "max_rate": 100.0}],
        })
        .to_string(),
    )
    .unwrap();
    let _a = bridge(&["--config", config.to_str().unwrap()]);
    let import = format!("hostR/{src}/cam={dst}/cam");
    let _b = bridge(&["--host", "hostS", "--connect", &ep, "--import", &import]);
    eventually("link up", Duration::from_secs(5), || {
        status(&dst, "cam").is_some_and(|s| s.up == 1)
    });
    let mut w = ring.writer().unwrap();
    // Warm up until frames flow (the exporter reads only once the import's subscriber matches).
    let warm = Instant::now() + Duration::from_secs(5);
    while status(&dst, "cam").is_some_and(|s| s.received == 0) {
        assert!(Instant::now() < warm, "no frame arrived");
        w.try_claim().unwrap().publish();
        std::thread::sleep(Duration::from_micros(500));
    }
    let before = status(&dst, "cam").unwrap().received;
    let start = Instant::now();
    let mut n = 0u64;
    let mut late = Duration::ZERO;
    while n < 4000 {
        let due = start + Duration::from_micros(500 * n);
        match due.checked_duration_since(Instant::now()) {
            Some(d) => std::thread::sleep(d),
            None => late = late.max(Instant::now() - due),
        }
        let mut slot = w.try_claim().unwrap();
        slot.typed_mut::<u16>().unwrap().fill(n as u16);
        slot.publish();
        n += 1;
    }
    let took = start.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let delivered = status(&dst, "cam").unwrap().received - before;
    let rate = delivered as f64 / took.as_secs_f64();
    assert!(
        (90.0..=110.0).contains(&rate),
        "{delivered} frames in {took:?}: {rate:.1} Hz"
    );
    assert!(
        took < Duration::from_secs(3),
        "the camera kept its 2 kHz: {took:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stalled_remote_subscriber_never_slows_the_camera() {
    use zenoh::Wait;
    let src = name("stall");
    let _segs = Segs(vec![src.clone()]);
    let seg = Segment::create(&src, &CreateOptions::new(16 << 20)).unwrap();
    // 1 MiB frames at 2 kHz: far more than a stalled receiver's buffers hold.
    let ring = seg
        .frame_ring("cam", &FrameSpec::new(8, ElemType::U16, &[512, 1024]))
        .unwrap();
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let export = format!("{src}/cam");
    let mut a = bridge(&["--host", "hostT", "--listen", &ep, "--export", &export]);
    // A remote subscriber whose callback blocks: it stops taking samples altogether.
    let mut config = zenoh::Config::default();
    config.insert_json5("mode", "\"peer\"").unwrap();
    config
        .insert_json5("connect/endpoints", &format!("[\"{ep}\"]"))
        .unwrap();
    config
        .insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    let session = zenoh::open(config).wait().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<()>();
    let _stalled = session
        .declare_subscriber(format!("shmkit/hostT/{src}/frames/cam"))
        .callback(move |_| {
            let _ = seen_tx.send(());
            std::thread::sleep(Duration::from_secs(3));
        })
        .wait()
        .unwrap();
    let mut w = ring.writer().unwrap();
    // Publish until the subscriber has its first sample (and stalls on it).
    let warm = Instant::now() + Duration::from_secs(5);
    while seen_rx.try_recv().is_err() {
        assert!(Instant::now() < warm, "the subscriber never got a frame");
        w.try_claim().unwrap().publish();
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    for n in 0..2000u64 {
        let due = start + Duration::from_micros(500 * n);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let mut slot = w
            .try_claim()
            .expect("the bridge never holds the camera's slots");
        // Contents do not matter here: filling 1 MiB in a debug build would be the test's own cost.
        slot.set_len(1 << 20);
        slot.set_user(0, n);
        slot.publish();
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the camera kept its 2 kHz: {took:?}"
    );
    assert!(
        a.0.try_wait().unwrap().is_none(),
        "the exporting bridge is still running"
    );
    drop(session);
}
