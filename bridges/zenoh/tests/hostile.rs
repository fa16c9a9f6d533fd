//! Hostile samples on an imported ring's key: a session that is not the exporting bridge
//! publishes frames whose header lies (length, shape, element type, checksum, version, none
//! at all). Each is counted as rejected in the link and never reaches a local reader; a
//! good frame sent after them still arrives whole.

mod common;

use common::{eventually, free_port, name, status, Segs};
use shmkit::rings::{ElemType, FrameRing, FrameSpec, ReadMode};
use shmkit::{CreateOptions, Segment, SegmentObjects};
use shmkit_zenoh::header::{checksum, FrameHeader};
use shmkit_zenoh::{Bridge, BridgeConfig, ExportRing, ImportRing};
use std::time::Duration;
use zenoh::Wait;

/// What a lying sample is, its payload and its attachment.
type Lie = (&'static str, Vec<u8>, Option<Vec<u8>>);

#[test]
fn lying_samples_are_rejected_and_counted_and_never_reach_a_reader() {
    let (src, dst) = (name("hsrc"), name("hdst"));
    let _segs = Segs(vec![src.clone(), dst.clone()]);
    let seg = Segment::create(&src, &CreateOptions::new(8 << 20)).unwrap();
    // The exported ring is never written: every frame the importer sees is the test's.
    seg.frame_ring("cam", &FrameSpec::new(4, ElemType::U16, &[4, 8]))
        .unwrap();
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let a = Bridge::start(BridgeConfig {
        host: "hostH".into(),
        listen: vec![ep.clone()],
        insecure: true,
        export: vec![ExportRing {
            segment: src.clone(),
            ring: "cam".into(),
            max_rate: None,
            decimate: 1,
            max_bytes_per_s: None,
            low_latency: false,
            allow: Vec::new(),
        }],
        ..BridgeConfig::default()
    })
    .unwrap();
    // The intruder connects to the importer itself.
    let ep_b = format!("tcp/127.0.0.1:{}", free_port());
    let b = Bridge::start(BridgeConfig {
        host: "hostI".into(),
        connect: vec![ep.clone()],
        listen: vec![ep_b.clone()],
        insecure: true,
        import: vec![ImportRing {
            host: "hostH".into(),
            segment: src.clone(),
            ring: "cam".into(),
            local_segment: dst.clone(),
            local_ring: "cam".into(),
            slots: 4,
            peer: None,
        }],
        ..BridgeConfig::default()
    })
    .unwrap();
    let local: FrameRing = Segment::open(&dst).unwrap().open("cam").unwrap();
    let mut reader = local.reader(ReadMode::OldestFirst).unwrap();

    let intruder = zenoh::open(
        BridgeConfig {
            connect: vec![ep_b],
            ..BridgeConfig::default()
        }
        .zenoh()
        .unwrap(),
    )
    .wait()
    .unwrap();
    let key = format!("shmkit/hostH/{src}/frames/cam");
    let publisher = intruder.declare_publisher(&key).wait().unwrap();
    let good_payload: Vec<u8> = (0..64u8).collect();
    let good = FrameHeader {
        elem: ElemType::U16,
        shape: vec![4, 8],
        id: 1,
        ts_ns: 1,
        user: [7, 0, 0, 0, 0],
        seq: 1,
        skipped: 0,
        checksum: checksum(&good_payload),
        len: 64,
    };
    // A lie told in the header alone: the good payload under `h`.
    let header_lie = |what, h: FrameHeader| (what, good_payload.clone(), Some(h.encode().to_vec()));
    let mut flipped = good_payload.clone();
    flipped[17] ^= 1;
    let mut other_version = good.encode().to_vec();
    other_version[4] = 0xff;
    let long = FrameHeader {
        len: 128,
        checksum: checksum(&[0u8; 128]),
        ..good.clone()
    };
    let lies: Vec<Lie> = vec![
        ("a flipped bit", flipped, Some(good.encode().to_vec())),
        ("no header", good_payload.clone(), None),
        (
            "another header version",
            good_payload.clone(),
            Some(other_version),
        ),
        (
            "a header cut short",
            good_payload.clone(),
            Some(good.encode()[..40].to_vec()),
        ),
        (
            "longer than the ring",
            vec![0u8; 128],
            Some(long.encode().to_vec()),
        ),
        header_lie(
            "a length that lies",
            FrameHeader {
                len: 65,
                ..good.clone()
            },
        ),
        header_lie(
            "another shape",
            FrameHeader {
                shape: vec![8, 4],
                ..good.clone()
            },
        ),
        header_lie(
            "another element type",
            FrameHeader {
                elem: ElemType::I16,
                ..good.clone()
            },
        ),
    ];
    // The importer's subscriber must be matched before anything is sent.
    eventually(
        "the intruder's publisher matches",
        Duration::from_secs(10),
        || {
            publisher
                .matching_status()
                .wait()
                .is_ok_and(|m| m.matching())
        },
    );
    for (what, payload, attachment) in &lies {
        let before = status(&dst, "cam").unwrap().rejected;
        let mut put = publisher.put(payload.clone());
        if let Some(a) = attachment {
            put = put.attachment(a.clone());
        }
        put.wait().unwrap();
        eventually(what, Duration::from_secs(5), || {
            status(&dst, "cam").is_some_and(|s| s.rejected == before + 1)
        });
        assert!(
            reader.next(Duration::from_millis(20)).is_err(),
            "{what}: nothing published"
        );
    }
    publisher
        .put(good_payload.clone())
        .attachment(good.encode().to_vec())
        .wait()
        .unwrap();
    let f = reader.next(Duration::from_secs(5)).expect("the good frame");
    assert_eq!((f.bytes(), f.user(0)), (&good_payload[..], 7));
    // The link value is updated just after the frame is published: wait for it.
    eventually("the good frame counted", Duration::from_secs(5), || {
        status(&dst, "cam").is_some_and(|s| s.received == 1)
    });
    let s = status(&dst, "cam").unwrap();
    assert_eq!((s.rejected, s.received), (lies.len() as u64, 1), "{s:?}");
    drop(f);

    // Valid frames with crafted sequence numbers and skipped counts: the counters saturate
    // (an overflow would panic inside Zenoh's callback, poison the receiver and silently drop
    // every later frame), and each frame still arrives.
    for (n, (seq, skipped)) in [(u64::MAX, u64::MAX), (1, 5), (2, 10), (3, 10)]
        .into_iter()
        .enumerate()
    {
        let crafted = FrameHeader {
            seq,
            skipped,
            user: [100 + n as u64, 0, 0, 0, 0],
            ..good.clone()
        };
        publisher
            .put(good_payload.clone())
            .attachment(crafted.encode().to_vec())
            .wait()
            .unwrap();
        let f = reader
            .next(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("frame {n} (seq {seq}, skipped {skipped}): {e}"));
        assert_eq!(f.user(0), 100 + n as u64);
    }
    // The link value is updated just after a frame is published.
    eventually("the last frame counted", Duration::from_secs(5), || {
        status(&dst, "cam").is_some_and(|s| s.received == 5)
    });
    let s = status(&dst, "cam").unwrap();
    assert_eq!(s.remote_skipped, u64::MAX, "saturated, not wrapped: {s:?}");
    b.stop().unwrap();
    a.stop().unwrap();
}
