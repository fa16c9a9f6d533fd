//! The other half of `command_server`: calls it and checks every answer.
//! Arguments: `[SEGMENT] [CALLS]` (defaults `shmkit-example`, 1000).

use shmkit::rings::{CommandError, CommandRing};
use shmkit::{Segment, SegmentObjects};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "shmkit-example".into());
    let calls: i64 = args.next().map_or(Ok(1000), |n| n.parse())?;

    let ring = wait_for_ring(&name, Duration::from_secs(30))?;
    let start = Instant::now();
    for i in 0..calls {
        // A call waits for its reply at most 5 s; a dead server is an error, not a hang.
        let sum: i64 = if i == 0 {
            first_call(&ring, Duration::from_secs(30))?
        } else {
            ring.call_typed(&(i, 2 * i), Duration::from_secs(5))?
        };
        if sum != 3 * i {
            return Err(format!("{i} + {} came back as {sum}", 2 * i).into());
        }
    }
    let each = start.elapsed() / calls.max(1) as u32;
    println!("client: {calls} calls answered correctly, {each:?} per round trip");
    Ok(())
}

/// The first call, `0 + 0`: the server creates the ring before it becomes the ring's server,
/// so until then a call finds no server; retried (a call that found none did not run).
fn first_call(ring: &CommandRing, patience: Duration) -> Result<i64, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + patience;
    loop {
        match ring.call_typed(&(0i64, 0i64), Duration::from_secs(5)) {
            Err(CommandError::NoServer) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => return Ok(other?),
        }
    }
}

/// The server may start second: wait for its segment and ring to appear.
fn wait_for_ring(
    name: &str,
    patience: Duration,
) -> Result<CommandRing, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + patience;
    loop {
        match Segment::open(name).and_then(|seg| seg.open::<CommandRing>("adder")) {
            Ok(ring) => return Ok(ring),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
