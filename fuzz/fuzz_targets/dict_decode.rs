//! Arbitrary bytes in a dictionary's region (header, both index halves, both data halves),
//! then every dictionary operation: typed errors only, never a panic or undefined behaviour.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::SegmentObjects;
use shmkit_fuzz::{apply_edits, template, with_image};
use std::sync::OnceLock;

fn base() -> &'static (Vec<u8>, std::ops::Range<usize>) {
    static BASE: OnceLock<(Vec<u8>, std::ops::Range<usize>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut range = 0..0;
        let image = template("dict", 1 << 16, 4, |seg| {
            let d = seg
                .open_or_create::<shmkit::SharedDict>(
                    "d",
                    &shmkit::shared::DictSpec {
                        max_entries: 8,
                        data_bytes: 512,
                    },
                )
                .unwrap();
            for i in 0..6u64 {
                d.insert(&format!("key{i}"), &(i * 11)).unwrap();
            }
            d.remove("key2").unwrap();
            let info = seg.lookup("d").unwrap().unwrap();
            range = info.offset as usize..(info.offset + info.size) as usize;
        });
        (image, range)
    })
}

fuzz_target!(|edits: &[u8]| {
    let (image, range) = base();
    let mut image = image.clone();
    apply_edits(&mut image, range.clone(), edits);
    with_image("dict", &image, |seg| {
        let Ok(d) = seg.dict("d", 8) else { return };
        let d = d.with_lock_timeout(std::time::Duration::from_millis(1));
        let _ = d.keys();
        let _ = d.items_bytes();
        let _ = d.len();
        for i in 0..8u64 {
            let _ = d.get::<u64>(&format!("key{i}"));
        }
        let _ = d.insert("key7", &7u64);
        let _ = d.update::<u64>("key1", |v| v.map(|v| v + 1));
        let _ = d.remove("key3");
        let _ = d.insert_bytes("big", &[1u8; 200]);
        let _ = d.items::<u64>();
    });
});
