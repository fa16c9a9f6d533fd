//! The other half of `lock_holder`: waits for the holder's death, gets the state with the news
//! that its holder died mid-update, puts the mirror back in a safe state and declares the
//! state consistent. Argument: `[SEGMENT]` (default `shmkit-example-lock`).

use shmkit::{Acquired, CreateOptions, Segment};
use std::time::Duration;

const SAFE: u64 = 0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "shmkit-example-lock".into());
    let seg = Segment::open_or_create(&name, &CreateOptions::new(1 << 20))?;
    let state = seg
        .shared("mirror-state", SAFE)?
        .with_lock_timeout(Duration::from_secs(600));
    if !seg.event("holder-ready")?.wait(Duration::from_secs(60)) {
        return Err("no holder took the state (start lock_holder first)".into());
    }
    println!("survivor: waiting for the state (kill the holder)");
    match state.lock()? {
        Acquired::OwnerDied(mut died) => {
            let dead = died.previous_owner().map_or("?".into(), |o| o.to_string());
            println!(
                "survivor: holder {dead} died with the mirror in state {}",
                *died
            );
            *died = SAFE; // the repair: whatever the holder was doing, stop safely
            drop(died.make_consistent());
            println!("survivor: mirror back to safe; the state is consistent again");
        }
        Acquired::Locked(_) => return Err("the holder released it: nothing to repair".into()),
    }
    Segment::unlink(&name)?;
    Ok(())
}
