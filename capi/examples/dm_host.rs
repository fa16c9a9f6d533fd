//! Hosts a simulated deformable mirror (a Rust device server) for C clients:
//! `dm_host SEGMENT` starts the `Dm` device in SEGMENT, prints one line when it runs, and
//! closes it when its standard input closes.

use shmkit::process::Entries;
use shmkit::{CreateOptions, Segment};
use shmkit_devices::DeviceCache;
use shmkit_sim::{SimDm, SimDmConfig};
use std::io::{Read, Write};
use std::time::Duration;

shmkit_devices::devices! {
    /// The one device this host runs.
    pub struct Bench {
        /// A 12 × 12 simulated mirror.
        Dm: SimDm = SimDmConfig::default(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    Bench::entries(Entries::new()).dispatch();
    let name = std::env::args().nth(1).ok_or("usage: dm_host SEGMENT")?;
    let segment = Segment::open_or_create(&name, &CreateOptions::new(32 << 20))?;
    let cache = DeviceCache::new(&segment);
    let dm = Bench::Dm.client_in(&cache)?;
    println!(
        "dm_host: the mirror Dm is running in {name:?} (pid {})",
        dm.status()?.pid
    );
    std::io::stdout().flush()?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let failures = cache.close_all(Bench::NAMES, Duration::from_secs(5));
    if !failures.is_empty() {
        return Err(format!("closing the mirror failed: {failures:?}").into());
    }
    Ok(())
}
