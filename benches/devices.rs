//! A command through the device cache's typed client beside the same bytes through a bare
//! command ring, between this process on CPU 0 and a server on CPU 1, both waiting the same
//! way (client and server spin, then block).
//!
//! Run: `cargo bench --bench devices`.

mod common;

use common::{child_args, pin_to_cpu, timed, ChildProc, CHILD_ROLE};
use criterion::{criterion_group, Criterion};
use shmkit::process::Entries;
use shmkit::rings::CommandSpec;
use shmkit::{CreateOptions, Segment, WaitStrategy};
use shmkit_devices::DeviceEntries;
use shmkit_devices::{Device, DeviceCache, DeviceContext, DeviceFailure};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// Echoes a number: the smallest device there is.
struct Echo;

impl Device for Echo {
    type Config = ();
    type Command = u64;
    type Reply = u64;
    const KIND: &'static str = "bench.echo";
    const SERVER_STRATEGY: WaitStrategy = WaitStrategy::SpinThenBlock;

    fn open(_: &(), _: &mut DeviceContext) -> Result<Echo, DeviceFailure> {
        pin_to_cpu(1);
        Ok(Echo)
    }

    fn handle(&mut self, n: u64, _: &mut DeviceContext) -> Result<u64, DeviceFailure> {
        Ok(n)
    }

    fn close(&mut self, _: &mut DeviceContext) {}
}

fn ring_spec() -> CommandSpec {
    CommandSpec {
        slots: 16,
        max_request: 64,
        max_reply: 64,
    }
}

/// The bare ring's server: answers each request with what the device server would send for
/// it (postcard of `Ok::<u64, String>(n)`), so both paths move the same bytes.
fn ring_server() {
    pin_to_cpu(1);
    let args = child_args();
    let seg = Segment::open(&args[0]).unwrap();
    let ring = seg
        .command_ring("bare", &ring_spec())
        .unwrap()
        .with_strategy(WaitStrategy::SpinThenBlock);
    let server = ring.server().unwrap();
    loop {
        let req = server.recv(LONG).unwrap();
        let n: u64 = req.decode().unwrap();
        let mut buf = [0u8; 16];
        let reply = postcard::to_slice(&Ok::<u64, String>(n), &mut buf).unwrap();
        req.reply(reply).unwrap();
    }
}

fn device_call_rtt(c: &mut Criterion) {
    pin_to_cpu(0);
    let name = format!("shmkit-bench-dev-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(&name, &CreateOptions::new(8 << 20)).unwrap();
    let mut g = c.benchmark_group("device_call_rtt");
    g.measurement_time(Duration::from_secs(4));

    let cache = DeviceCache::new(&seg).own().unwrap();
    let echo = cache
        .get::<Echo>("echo", &())
        .unwrap()
        .with_strategy(WaitStrategy::SpinThenBlock);
    g.bench_function("shmkit_device", |b| {
        b.iter_custom(|iters| timed(iters, |n| assert_eq!(echo.call(&n).unwrap(), n)))
    });
    cache.close("echo", Duration::from_secs(2)).unwrap();

    let ring = seg
        .command_ring("bare", &ring_spec())
        .unwrap()
        .with_strategy(WaitStrategy::SpinThenBlock);
    let child = ChildProc::spawn("ring_server", std::slice::from_ref(&name));
    while ring.call(&[0], Duration::from_millis(100)).is_err() {}
    g.bench_function("shmkit_ring", |b| {
        b.iter_custom(|iters| {
            timed(iters, |n| {
                let mut buf = [0u8; 16];
                let request = postcard::to_slice(&n, &mut buf).unwrap();
                let echoed = ring
                    .call_with(request, LONG, |reply| {
                        postcard::from_bytes::<Result<u64, String>>(reply).unwrap()
                    })
                    .unwrap();
                assert_eq!(echoed, Ok(n));
            })
        })
    });
    drop(child);
    g.finish();
    let _ = Segment::unlink(&name);
}

criterion_group!(benches, device_call_rtt);

fn main() {
    Entries::new().device::<Echo>().dispatch();
    if let Ok(role) = std::env::var(CHILD_ROLE) {
        assert_eq!(role, "ring_server");
        ring_server();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
