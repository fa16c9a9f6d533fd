//! Arbitrary bytes as a segment image: validation must return a typed error or a description,
//! never panic, hang or touch memory out of bounds.
//!
//! An input whose first byte is odd is taken as edits (offset: u16, byte) to a valid template
//! image holding one object of each kind, so the fuzzer reaches the block walk and the
//! attachment checks instead of stopping at the magic; other inputs are raw images. Each image
//! is checked twice: as plain bytes (`validate_image`), and as a real shared memory object
//! handed to `Segment::open`, whose blocks are walked and whose objects are attached and used.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::segment::validate_image;
use shmkit::{Barrier, Event, Mutex, Shared, SharedDict};
use shmkit_fuzz::{apply_edits, template, with_image};
use std::sync::OnceLock;
use std::time::Duration;

fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        template("open", 16384, 4, |seg| {
            seg.mutex("m").unwrap();
            seg.event("e").unwrap();
            seg.barrier("b", 2).unwrap();
            seg.raw().alloc(40, 256).unwrap();
            seg.shared("s", 3u64).unwrap();
        })
    })
}

fuzz_target!(|input: &[u8]| {
    let edited;
    let data: &[u8] = match input.split_first() {
        Some((mode, edits)) if mode & 1 == 1 => {
            let mut image = base().to_vec();
            let len = image.len();
            apply_edits(&mut image, 0..len, edits);
            edited = image;
            &edited
        }
        _ => input,
    };
    let _ = validate_image(data);
    with_image("open", data, |seg| {
        if let Ok(blocks) = shmkit::inspect::blocks(seg) {
            for b in blocks {
                let _ = seg
                    .attach::<Mutex>(b.offset)
                    .map(|m| m.try_lock().map(drop));
                let _ = seg.attach::<Event>(b.offset).map(|e| e.is_set());
                let _ = seg
                    .attach::<Barrier>(b.offset)
                    .map(|b| b.wait(Duration::ZERO));
                let _ = seg.raw().atomic_u64(b.offset);
                let quick = Duration::from_millis(1);
                let _ = seg
                    .attach::<SharedDict>(b.offset)
                    .map(|d| d.with_lock_timeout(quick).keys());
                let _ = seg
                    .attach::<Shared<u64>>(b.offset)
                    .map(|s| s.with_lock_timeout(quick).read());
            }
        }
        let _ = seg.entries();
    });
});
