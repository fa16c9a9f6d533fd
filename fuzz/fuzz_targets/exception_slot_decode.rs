//! Arbitrary exception-slot bytes (header and payload) → a typed error or a report, never a
//! panic or undefined behaviour.
//!
//! An input whose first byte is odd is taken as edits (offset: u16, byte) to a valid slot
//! holding a report, so the fuzzer reaches the report decoder; other inputs are raw slots.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::process::{decode_slot_image, ChildReport};
use shmkit_fuzz::apply_edits;
use std::sync::OnceLock;

fn valid_slot() -> &'static [u8] {
    static SLOT: OnceLock<Vec<u8>> = OnceLock::new();
    SLOT.get_or_init(|| {
        let report = ChildReport {
            type_name: "my_crate::Error".into(),
            message: "camera timed out".into(),
            chain: vec!["usb read failed".into(), "device gone".into()],
            location: Some("src/main.rs:10:5".into()),
            backtrace: "0: main\n1: start".into(),
            truncated: false,
        };
        let payload = postcard::to_allocvec(&report).expect("encode");
        let mut slot = vec![0u8; 4096];
        slot[0..4].copy_from_slice(&3u32.to_le_bytes()); // REPORTED
        slot[20..24].copy_from_slice(&1u32.to_le_bytes()); // REPORT_ERROR
        slot[32..36].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        slot[64..64 + payload.len()].copy_from_slice(&payload);
        slot
    })
}

fuzz_target!(|input: &[u8]| {
    match input.split_first() {
        Some((mode, edits)) if mode & 1 == 1 => {
            let mut slot = valid_slot().to_vec();
            let len = slot.len();
            apply_edits(&mut slot, 0..len, edits);
            let _ = decode_slot_image(&slot);
        }
        _ => {
            let _ = decode_slot_image(input);
        }
    }
});
