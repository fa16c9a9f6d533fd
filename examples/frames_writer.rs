//! One half of a pair: a camera that publishes 64 × 64 frames into a frame ring.
//!
//! Terminal 1: `cargo run --example frames_writer`; terminal 2: `cargo run --example
//! frames_reader`. Arguments: `[SEGMENT] [FRAMES]` (defaults `shmkit-example`, 2000). Every
//! pixel of frame `n` is `n` (mod 65536), so a reader can check what it gets.

use shmkit::rings::{ElemType, FrameSpec};
use shmkit::{CreateOptions, Segment};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "shmkit-example".into());
    let frames: u64 = args.next().map_or(Ok(2000), |n| n.parse())?;

    // The first of the pair to start creates the segment; the other opens it.
    let seg = Segment::open_or_create(&name, &CreateOptions::new(8 << 20))?;
    let ring = seg.frame_ring("camera", &FrameSpec::new(8, ElemType::U16, &[64, 64]))?;
    let mut writer = ring.writer()?; // one writer per ring: a second one is refused

    println!("writer: publishing {frames} frames into {name:?}/camera at 500 Hz");
    for n in 0..frames {
        // The slot is written in place: readers see it only once it is published.
        let mut slot = writer.try_claim()?;
        slot.typed_mut::<u16>()?.fill(n as u16);
        slot.set_user(0, n);
        let id = slot.publish();
        if id % 500 == 0 {
            println!("writer: published frame {id}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!("writer: done at {:.0} frames/s", ring.stats().rate_hz);
    Ok(())
}
