//! Shared by the fuzz targets: valid template images, byte edits, opening an image as a
//! real segment, and opening an object there with attach and inspect held to one verdict.

use shmkit::{OpenOptions, Segment};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// The image of a fresh segment after `build` ran on it.
pub fn template(tag: &str, size: u64, table: u32, build: impl FnOnce(&Segment)) -> Vec<u8> {
    let name = format!("shmkit-fuzz-template-{tag}-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(
        &name,
        &shmkit::CreateOptions::new(size)
            .table_capacity(table)
            .exception_slots(1),
    )
    .expect("template segment");
    build(&seg);
    let image = shmkit::inspect::snapshot(&seg);
    let _ = Segment::unlink(&name);
    image
}

/// Applies `edits`, read as (offset: u16, byte) triples, to `image[range]`.
pub fn apply_edits(image: &mut [u8], range: std::ops::Range<usize>, edits: &[u8]) {
    let len = range.len().max(1);
    for e in edits.chunks_exact(3) {
        let at = range.start + usize::from(u16::from_le_bytes([e[0], e[1]])) % len;
        if let Some(b) = image.get_mut(at) {
            *b = e[2];
        }
    }
}

/// Writes `image` to a fresh shared memory object, opens it as a segment that never waits
/// for creators, and runs `f` on it.
pub fn with_image(tag: &str, image: &[u8], f: impl FnOnce(&Segment)) {
    let name = format!("shmkit-fuzz-{tag}-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let written = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(format!("/dev/shm/{name}"))
        .and_then(|mut file| file.write_all(image));
    if written.is_ok() {
        let opts = OpenOptions {
            init_timeout: Duration::ZERO,
            create_wait: Duration::ZERO,
            ..OpenOptions::default()
        };
        if let Ok(seg) = Segment::open_with(&name, &opts) {
            f(&seg);
        }
    }
    let _ = Segment::unlink(&name);
}

/// Opens object `name` of kind `T` by name alone (geometry read from the fuzzed bytes) and
/// asserts that the live attach and the inspector, which share `shm_layout::validate`, reach
/// the same verdict on `image`.
pub fn open_agreeing<T: shmkit::SegmentObject + std::fmt::Debug>(
    seg: &Segment,
    image: &[u8],
    name: &str,
) -> Result<T, shmkit::SegmentError> {
    use shmkit::SegmentObjects;
    let opened = seg.open::<T>(name);
    let inspected = shmkit::inspect::inspect_image("fuzz", image)
        .ok()
        .and_then(|i| i.objects.into_iter().find(|o| o.name == name));
    if let Some(object) = inspected {
        let corrupt = matches!(object.state, shmkit::inspect::ObjectState::Corrupt { .. });
        assert_eq!(
            opened.is_err(),
            corrupt,
            "attach and inspect disagree: {opened:?}"
        );
    }
    opened
}
