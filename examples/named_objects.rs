//! A pair made of one program run twice: the first run creates the named objects, the second
//! finds them by name; they meet at a barrier, count together under a robust mutex, and meet
//! again to compare the total.
//!
//! Run `cargo run --example named_objects` in two terminals (argument: `[SEGMENT]`, default
//! `shmkit-example-named`).

use shmkit::{CreateOptions, Segment};
use std::time::Duration;

const PER_PROCESS: u64 = 100_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "shmkit-example-named".into());
    // Whoever comes first creates; the names below are then found, never made twice.
    let seg = Segment::open_or_create(&name, &CreateOptions::new(1 << 20))?;
    let meet = seg.barrier("meet", 2)?;
    let lock = seg.mutex("count-lock")?;
    let count = seg.shared("count", 0u64)?;
    let log = seg.dict("who", 8)?;
    let me = std::process::id();

    println!("{me}: objects found by name in {name:?}; waiting for the other process");
    let arrival = meet.wait(Duration::from_secs(60))?;
    log.insert(&format!("arrival {}", arrival.index), &me)?;
    for _ in 0..PER_PROCESS {
        // The value has a robust mutex of its own; this one guards the read-modify-write
        // across two operations, to show a named mutex shared by both processes.
        let _held = lock.lock(shmkit::DEFAULT_LOCK_TIMEOUT)?;
        let n = count.read()?;
        count.update(|c| *c = n + 1)?;
    }
    meet.wait(Duration::from_secs(60))?;
    let total = count.read()?;
    println!(
        "{me}: total {total} (expected {}); arrivals {:?}",
        2 * PER_PROCESS,
        log.keys()?
    );
    if arrival.index == 0 {
        Segment::unlink(&name)?; // the first to arrive cleans up; the other keeps its mapping
    }
    if total != 2 * PER_PROCESS {
        return Err("lost updates".into());
    }
    Ok(())
}
