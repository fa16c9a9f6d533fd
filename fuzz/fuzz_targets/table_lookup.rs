//! Arbitrary bytes in the named-object table, then lookups, listings and find-or-create of
//! every kind: typed errors or objects, never a panic, a hang or undefined behaviour.
//!
//! Input: edits (offset: u16, byte) applied to the table region of a valid template that
//! holds one object of each kind; the names looked up are the template's and a few others.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit_fuzz::{apply_edits, template, with_image};
use std::sync::OnceLock;

const NAMES: [&str; 7] = ["m", "e", "b", "s", "d", "new-one", "é-name"];

fn base() -> &'static (Vec<u8>, std::ops::Range<usize>) {
    static BASE: OnceLock<(Vec<u8>, std::ops::Range<usize>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut range = 0..0;
        let image = template("table", 1 << 16, 8, |seg| {
            seg.mutex("m").unwrap();
            seg.event("e").unwrap();
            seg.barrier("b", 2).unwrap();
            seg.shared("s", 7u64).unwrap();
            seg.dict("d", 4).unwrap();
            let start = seg.info().table_offset as usize;
            range = start..start + 8 * 128;
        });
        (image, range)
    })
}

fuzz_target!(|edits: &[u8]| {
    let (image, range) = base();
    let mut image = image.clone();
    apply_edits(&mut image, range.clone(), edits);
    with_image("table", &image, |seg| {
        let _ = seg.entries();
        for name in NAMES {
            let _ = seg.lookup(name);
        }
        let _ = seg.mutex("m").map(|m| m.try_lock().map(drop));
        let _ = seg.event("e").map(|e| e.is_set());
        let _ = seg.barrier("b", 2).map(|b| b.parties());
        let quick = std::time::Duration::from_millis(1);
        let _ = seg
            .shared("s", 0u64)
            .map(|s| s.with_lock_timeout(quick).read());
        let _ = seg.dict("d", 4).map(|d| d.with_lock_timeout(quick).keys());
        let _ = seg.event("new-one");
    });
});
