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
use shmkit::Segment;
use std::io::Write;

/// A valid segment image with a mutex, an event, a barrier and a bytes block.
fn template() -> &'static [u8] {
    static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = format!("shmkit-fuzz-template-{}", std::process::id());
        let _ = Segment::unlink(&name);
        let seg = Segment::create(&name, &shmkit::CreateOptions::new(8192).table_capacity(4)).expect("template");
        seg.alloc_mutex().unwrap();
        seg.alloc_event().unwrap();
        seg.alloc_barrier(2).unwrap();
        seg.alloc_bytes(40, 256).unwrap();
        let image = seg.snapshot();
        let _ = Segment::unlink(&name);
        image
    })
}

fuzz_target!(|input: &[u8]| {
    let edited;
    let data: &[u8] = match input.split_first() {
        Some((mode, edits)) if mode & 1 == 1 => {
            let mut image = template().to_vec();
            for e in edits.chunks_exact(3) {
                let at = usize::from(u16::from_le_bytes([e[0], e[1]])) % image.len();
                image[at] = e[2];
            }
            edited = image;
            &edited
        }
        _ => input,
    };
    let _ = validate_image(data);

    let name = format!("shmkit-fuzz-{}", std::process::id());
    let path = format!("/dev/shm/{name}");
    let _ = Segment::unlink(&name);
    let mut file = match std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode_0600()
        .open(&path)
    {
        Ok(f) => f,
        Err(_) => return,
    };
    if file.write_all(data).is_err() {
        let _ = Segment::unlink(&name);
        return;
    }
    drop(file);
    let opts = shmkit::OpenOptions {
        init_timeout: std::time::Duration::ZERO,
        ..Default::default()
    };
    if let Ok(seg) = Segment::open_with(&name, &opts) {
        if let Ok(blocks) = seg.blocks() {
            for b in blocks {
                let _ = seg.mutex_at(b.offset).map(|m| m.try_lock().map(drop));
                let _ = seg.event_at(b.offset).map(|e| e.is_set());
                let _ = seg
                    .barrier_at(b.offset)
                    .map(|b| b.wait(std::time::Duration::ZERO));
                let _ = seg.atomic_u64_at(b.offset);
            }
        }
    }
    let _ = Segment::unlink(&name);
});

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}
