//! Arbitrary bytes in a frame ring (header, slot words, metadata), then a reader and a writer
//! use it: typed errors, never a panic, a hang or undefined behaviour.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::rings::{ElemType, FrameRing, FrameSpec, ReadMode};
use shmkit_fuzz::{apply_edits, open_agreeing, template, with_image};
use std::sync::OnceLock;
use std::time::Duration;

fn spec() -> FrameSpec {
    FrameSpec {
        slots: 4,
        elem: ElemType::U16,
        shape: vec![8],
    }
}

fn base() -> &'static (Vec<u8>, std::ops::Range<usize>) {
    static BASE: OnceLock<(Vec<u8>, std::ops::Range<usize>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut range = 0..0;
        let image = template("frames", 1 << 16, 4, |seg| {
            let ring = seg.frame_ring("cam", &spec()).unwrap();
            let mut w = ring.writer().unwrap();
            for v in 0..6u16 {
                let mut slot = w.try_claim().unwrap();
                slot.typed_mut::<u16>().unwrap().fill(v);
                slot.publish();
            }
            drop(w);
            let info = seg.lookup("cam").unwrap().unwrap();
            // Header and slot metadata: what readers parse.
            range = info.offset as usize..info.offset as usize + 256 + 4 * 64;
        });
        (image, range)
    })
}

fuzz_target!(|edits: &[u8]| {
    let (image, range) = base();
    let mut image = image.clone();
    apply_edits(&mut image, range.clone(), edits);
    with_image("frames", &image, |seg| {
        // Opened by name alone: the geometry comes from the (edited) bytes, through the
        // validator the inspector shares, and both must reach the same verdict.
        let Ok(ring) = open_agreeing::<FrameRing>(seg, &image, "cam") else {
            return;
        };
        let _ = ring.stats();
        for mode in [ReadMode::NewestOnly, ReadMode::OldestFirst] {
            if let Ok(mut r) = ring.reader(mode) {
                if let Ok(Some(f)) = r.latest() {
                    let _ = f
                        .typed::<u16>()
                        .map(|v| v.iter().map(|&x| u64::from(x)).sum::<u64>());
                    let _ = (f.id(), f.len(), f.user(3), f.ts_ns());
                }
                for _ in 0..3 {
                    let _ = r.next(Duration::ZERO).map(|f| f.bytes().len());
                }
            }
        }
        if let Ok(mut w) = ring.writer() {
            if let Ok(mut slot) = w.try_claim() {
                slot.bytes_mut().fill(1);
                slot.publish();
            }
        }
        ring.reclaim_dead_readers();
    });
});
