//! The other half of `frames_writer`: reads the newest frames in place (no copy) and checks
//! each one. Arguments: `[SEGMENT] [FRAMES]` (defaults `shmkit-example`, 500).

use shmkit::rings::{FrameRing, ReadMode};
use shmkit::{Segment, SegmentObjects};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "shmkit-example".into());
    let frames: u64 = args.next().map_or(Ok(500), |n| n.parse())?;

    let ring = wait_for_ring(&name, Duration::from_secs(30))?;
    // NewestOnly: a slow reader skips frames instead of holding the writer back.
    let mut reader = ring.reader(ReadMode::NewestOnly)?;
    let (mut last, mut skipped, start) = (None, 0, Instant::now());
    for _ in 0..frames {
        let frame = reader.next(Duration::from_secs(5))?; // borrowed from the ring's slot
        let n = frame.user(0);
        if frame.typed::<u16>()?.iter().any(|&p| p != n as u16) {
            return Err(format!("frame {} is not all {n}", frame.id()).into());
        }
        if let Some(prev) = last {
            skipped += frame.id() - prev - 1;
        }
        last = Some(frame.id());
    }
    let rate = frames as f64 / start.elapsed().as_secs_f64();
    println!("reader: {frames} frames checked ({rate:.0}/s), {skipped} skipped as newest-only");
    Ok(())
}

/// The writer may start second: wait for its segment and ring to appear.
fn wait_for_ring(name: &str, patience: Duration) -> Result<FrameRing, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + patience;
    loop {
        match Segment::open(name).and_then(|seg| seg.open::<FrameRing>("camera")) {
            Ok(ring) => return Ok(ring),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
