//! One half of a pair: a server that adds two numbers for its clients over a command ring.
//!
//! Terminal 1: `cargo run --example command_server`; terminal 2: `cargo run --example
//! command_client`. Arguments: `[SEGMENT] [REQUESTS]` (defaults `shmkit-example`, 1000).

use shmkit::rings::CommandSpec;
use shmkit::{CreateOptions, Segment};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "shmkit-example".into());
    let requests: u64 = args.next().map_or(Ok(1000), |n| n.parse())?;

    let seg = Segment::open_or_create(&name, &CreateOptions::new(8 << 20))?;
    let spec = CommandSpec {
        slots: 4,
        max_request: 64,
        max_reply: 64,
    };
    let ring = seg.command_ring("adder", &spec)?;
    // One server per ring; a dead server's role is taken over by the next one.
    let server = ring.server()?;

    println!("server: adding numbers for clients of {name:?}/adder");
    for served in 1..=requests {
        let request = server.recv(Duration::from_secs(30))?;
        let (a, b): (i64, i64) = request.decode()?;
        request.reply_typed(&(a + b))?;
        if served % 250 == 0 {
            println!("server: {served} requests answered");
        }
    }
    Ok(())
}
