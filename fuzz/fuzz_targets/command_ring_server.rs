//! Arbitrary bytes in a command ring (header, slot states, lengths, buffers), then a server and
//! a client use it: typed errors, never a panic, a hang or undefined behaviour.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::rings::{CommandRing, CommandSpec};
use shmkit::SegmentObjects;
use shmkit_fuzz::{apply_edits, template, with_image};
use std::sync::OnceLock;
use std::time::Duration;

const SPEC: CommandSpec = CommandSpec {
    slots: 4,
    max_request: 32,
    max_reply: 32,
};

fn base() -> &'static (Vec<u8>, std::ops::Range<usize>) {
    static BASE: OnceLock<(Vec<u8>, std::ops::Range<usize>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut range = 0..0;
        let image = template("commands", 1 << 16, 4, |seg| {
            seg.command_ring("dm", &SPEC).unwrap();
            let info = seg.lookup("dm").unwrap().unwrap();
            range = info.offset as usize..(info.offset + info.size) as usize;
        });
        (image, range)
    })
}

/// The inspector's verdict on object `name` of `image`: is it corrupt? The fuzz targets
/// compare it with the live attach's (both run the shared `shm_layout::validate` checks).
fn inspector_says_corrupt(image: &[u8], name: &str) -> Option<bool> {
    let inspection = shmkit::inspect::inspect_image("fuzz", image).ok()?;
    let object = inspection.objects.iter().find(|o| o.name == name)?;
    Some(matches!(
        object.state,
        shmkit::inspect::ObjectState::Corrupt { .. }
    ))
}

fuzz_target!(|edits: &[u8]| {
    let (image, range) = base();
    let mut image = image.clone();
    apply_edits(&mut image, range.clone(), edits);
    with_image("commands", &image, |seg| {
        let opened = seg.open::<CommandRing>("dm");
        if let Some(corrupt) = inspector_says_corrupt(&image, "dm") {
            assert_eq!(
                opened.is_err(),
                corrupt,
                "attach and inspect disagree: {opened:?}"
            );
        }
        let Ok(ring) = opened else {
            return;
        };
        ring.reclaim_dead_clients();
        if let Ok(server) = ring.server() {
            for _ in 0..4 {
                match server.recv(Duration::ZERO) {
                    Ok(req) => {
                        let echo = req.bytes().to_vec();
                        let _ = req.reply(&echo);
                    }
                    Err(_) => break,
                }
            }
            let _ = ring.call(b"ping", Duration::ZERO);
        }
    });
});
