//! One half of a pair: a process that takes the mirror's state and dies holding it.
//!
//! Terminal 1: `cargo run --example lock_holder` — it marks the mirror "moving" under the
//! state's robust mutex and never lets go; stop it with Ctrl+C (or `kill -9`). Terminal 2:
//! `cargo run --example lock_survivor` gets the state, learns its holder died, and repairs it.
//! Argument: `[SEGMENT]` (default `shmkit-example-lock`).

use shmkit::{Acquired, CreateOptions, Segment};

/// The mirror's state word: 0 safe, 1 moving.
const MOVING: u64 = 1;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "shmkit-example-lock".into());
    let seg = Segment::open_or_create(&name, &CreateOptions::new(1 << 20))?;
    let state = seg.shared("mirror-state", 0u64)?;
    let held = seg.event("holder-ready")?;

    let mut guard = match state.lock()? {
        Acquired::Locked(guard) => guard,
        Acquired::OwnerDied(died) => died.make_consistent(),
    };
    *guard = MOVING; // half-way through a move...
    held.set();
    println!(
        "holder {}: mirror state is 'moving' and locked; kill me",
        std::process::id()
    );
    loop {
        std::thread::park(); // ...and never finishing it
    }
}
