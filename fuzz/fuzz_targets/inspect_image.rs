//! Arbitrary bytes under the `shmkit inspect` decoder: an inspection or a typed error, never
//! a panic, a hang or an out-of-bounds read.
//!
//! An input whose first byte is odd is taken as edits (offset: u16, byte) to a valid template
//! holding one object of each kind the tool decodes (mutex, event, barrier, shared value,
//! dictionary, frame ring, command ring, histogram, trace buffer), so the fuzzer reaches the per-object decoders;
//! other inputs are raw images.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::inspect::inspect_image;
use shmkit::rings::{CommandSpec, ElemType, FrameSpec};
use shmkit_fuzz::{apply_edits, template};
use std::sync::OnceLock;

fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        template("inspect", 65536, 16, |seg| {
            seg.mutex("m").unwrap();
            seg.event("e").unwrap();
            seg.barrier("b", 2).unwrap();
            seg.shared("s", 3u64).unwrap();
            seg.dict("d", 4).unwrap().insert("k", &1u8).unwrap();
            let ring = seg
                .frame_ring(
                    "f",
                    &FrameSpec {
                        slots: 2,
                        elem: ElemType::U8,
                        shape: vec![64],
                    },
                )
                .unwrap();
            ring.writer().unwrap().try_claim().unwrap().publish();
            seg.command_ring(
                "c",
                &CommandSpec {
                    slots: 2,
                    max_request: 16,
                    max_reply: 16,
                },
            )
            .unwrap();
            seg.histogram("h").unwrap().record(1500);
            let trace = seg
                .trace_buffer(
                    "t",
                    &shmkit::shared::TraceSpec {
                        events: 64,
                        names: 2,
                    },
                )
                .unwrap();
            trace.instant(trace.name("i").unwrap(), None);
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
    if let Ok(inspection) = inspect_image("fuzz", data) {
        // Every decoded object serialises (the JSON the tool prints).
        let _ = format!("{inspection:?}");
    }
});
