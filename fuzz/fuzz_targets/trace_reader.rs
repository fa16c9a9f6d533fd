//! Arbitrary bytes in a trace buffer (header, name table, event slots), then a reader follows
//! it and a writer records into it: typed errors or counted losses, never a panic, a hang or
//! undefined behaviour; attach and the inspector reach the same verdict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::shared::{TraceBuffer, TraceSpec};
use shmkit_fuzz::{apply_edits, open_agreeing, template, with_image};
use std::sync::OnceLock;
use std::time::Duration;

fn spec() -> TraceSpec {
    TraceSpec {
        events: 64,
        names: 4,
    }
}

fn base() -> &'static (Vec<u8>, std::ops::Range<usize>) {
    static BASE: OnceLock<(Vec<u8>, std::ops::Range<usize>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut range = 0..0;
        let image = template("trace", 1 << 16, 4, |seg| {
            let t = seg.trace_buffer("trace", &spec()).unwrap();
            let name = t.name("step").unwrap();
            for i in 0..80 {
                let _span = t.span(name).with_arg(i);
            }
            t.counter(name, 1.5);
            let info = seg.lookup("trace").unwrap().unwrap();
            range = info.offset as usize..(info.offset + info.size) as usize;
        });
        (image, range)
    })
}

fuzz_target!(|edits: &[u8]| {
    let (image, range) = base();
    let mut image = image.clone();
    apply_edits(&mut image, range.clone(), edits);
    with_image("trace", &image, |seg| {
        let Ok(t) = open_agreeing::<TraceBuffer>(seg, &image, "trace") else {
            return;
        };
        let mut cursor = t.cursor_from_oldest();
        let mut out = Vec::new();
        t.read_rest(&mut cursor, &mut out);
        for r in &out {
            let _ = t.name_at(r.name);
        }
        let _ = (t.head(), t.dropped(), cursor.missed());
        if let Ok(name) = t.name("fuzz") {
            let _ = t.instant(name, Some(1));
            let _ = t.record_span(name, 0, Duration::from_nanos(5), None);
        }
    });
});
