//! Arbitrary bytes in a command ring (header, slot states, lengths, buffers), then a server and
//! a client use it: typed errors, never a panic, a hang or undefined behaviour.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::rings::{CommandRing, CommandSpec};
use shmkit_fuzz::{apply_edits, open_agreeing, template, with_image};
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

fuzz_target!(|edits: &[u8]| {
    let (image, range) = base();
    let mut image = image.clone();
    apply_edits(&mut image, range.clone(), edits);
    with_image("commands", &image, |seg| {
        let Ok(ring) = open_agreeing::<CommandRing>(seg, &image, "dm") else {
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
