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
        let mut slot = w.claim().unwrap();
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
