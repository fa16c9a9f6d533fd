//! Inspection of live segments through the paged reader.

use super::scan::inspect_paged;
use super::ObjectState;
use crate::rings::{ElemType, FrameSpec};
use crate::segment::{CreateOptions, Segment};

#[test]
fn inspect_reads_only_the_pages_it_decodes_not_the_frames() {
    let name = format!("shmkit-inspect-paged-{}", std::process::id());
    let seg = Segment::create(&name, &CreateOptions::new(48 << 20)).unwrap();
    // 8 frames of 4 MiB: 8192 pages of frame data nobody asked to see.
    let ring = seg
        .frame_ring("cam", &FrameSpec::new(8, ElemType::U16, &[1024, 2048]))
        .unwrap();
    let mut w = ring.writer().unwrap();
    for _ in 0..3 {
        let mut slot = w.try_claim().unwrap();
        slot.bytes_mut().fill(7);
        slot.publish();
    }
    seg.event("tick").unwrap();
    let (inspection, pages) = inspect_paged(&name).unwrap();
    let _ = Segment::unlink(&name);
    let cam = inspection.objects.iter().find(|o| o.name == "cam").unwrap();
    assert!(
        matches!(
            cam.state,
            ObjectState::FrameRing {
                frames_written: 3,
                ..
            }
        ),
        "{:?}",
        cam.state
    );
    assert_eq!(inspection.size, 48 << 20);
    // Header, table (1024 entries × 128 B = 32 pages), exception slots (32 pages), block
    // headers and the ring's header and metadata: well under 100 of the segment's 12288 pages.
    assert!(pages < 100, "read {pages} pages");
}

#[test]
fn a_bridged_rings_link_is_shown_down_with_its_last_receive_age() {
    use shm_layout::{LinkStatus, LINK_COMMANDS_IN, LINK_FRAMES_IN};
    let name = format!("shmkit-inspect-link-{}", std::process::id());
    let seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
    let now = crate::sys::clock::monotonic_ns();
    seg.shared(
        "link/cam",
        LinkStatus {
            kind: LINK_FRAMES_IN,
            up: 0,
            last_rx_ns: now - 3_000_000_000,
            received: 40,
            gaps: 2,
            downs: 1,
            ..LinkStatus::default()
        },
    )
    .unwrap();
    seg.shared(
        "link/dm",
        LinkStatus {
            kind: LINK_COMMANDS_IN,
            up: 1,
            ..LinkStatus::default()
        },
    )
    .unwrap();
    // A value named like a link but of another size is only a value.
    seg.shared("link/odd", 7u64).unwrap();
    let (inspection, _) = inspect_paged(&name).unwrap();
    let _ = Segment::unlink(&name);
    let links = &inspection.links;
    assert_eq!(links.len(), 2, "{links:?}");
    let cam = &links[0];
    assert_eq!((cam.ring.as_str(), cam.kind.as_str()), ("cam", "frames in"));
    assert!(!cam.up);
    assert_eq!((cam.received, cam.gaps, cam.downs), (40, 2, 1));
    let age = cam.last_rx_age_s.unwrap();
    assert!((3.0..30.0).contains(&age), "{age}");
    let dm = &links[1];
    assert_eq!(
        (dm.ring.as_str(), dm.kind.as_str(), dm.up),
        ("dm", "commands in", true)
    );
    assert_eq!(dm.last_rx_age_s, None);
}

#[test]
fn a_shared_numbers_value_is_shown_and_other_types_are_not() {
    let name = format!("shmkit-inspect-values-{}", std::process::id());
    let seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
    seg.shared("gain", 0.25f64).unwrap();
    seg.shared("offset", -3i32).unwrap();
    seg.shared("small", 200u8).unwrap();
    seg.shared("pair", [1u32, 2u32]).unwrap();
    let frames = seg.shared("frames", 7u64).unwrap();
    frames.update(|v| *v = 1 << 40).unwrap();
    let inspection = super::inspect(&name).unwrap();
    let _ = Segment::unlink(&name);
    let value = |n: &str| match &inspection
        .objects
        .iter()
        .find(|o| o.name == n)
        .unwrap()
        .state
    {
        ObjectState::Shared { value, .. } => *value,
        other => panic!("{n}: {other:?}"),
    };
    assert_eq!(value("gain"), Some(0.25));
    assert_eq!(value("offset"), Some(-3.0));
    assert_eq!(value("small"), Some(200.0));
    assert_eq!(value("frames"), Some((1u64 << 40) as f64));
    assert_eq!(value("pair"), None);
}
