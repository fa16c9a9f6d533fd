//! Several processes sharing one segment: they meet at a barrier, wait for an event, contend
//! on a robust mutex, and survive a holder being SIGKILLed.
//!
//! Run with `cargo run --release --example demo`. The parent re-executes this binary as its
//! workers (`demo worker ...`), so the example is self-contained.

use shmkit::{Acquired, CreateOptions, Segment};
use std::process::{Command, ExitCode};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const WORKERS: u32 = 3;
const INCREMENTS: u64 = 200_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("worker") => worker(&args[2..]),
        Some("crasher") => crasher(&args[2..]),
        _ => parent(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Offsets of the shared objects, passed to children on the command line.
struct Layout {
    mutex: u64,
    counter: u64,
    go: u64,
    barrier: u64,
}

impl Layout {
    fn to_args(&self) -> Vec<String> {
        [self.mutex, self.counter, self.go, self.barrier]
            .iter()
            .map(u64::to_string)
            .collect()
    }

    fn from_args(args: &[String]) -> Result<Layout> {
        let n = |i: usize| -> Result<u64> {
            Ok(args.get(i).ok_or("missing offset argument")?.parse()?)
        };
        Ok(Layout {
            mutex: n(0)?,
            counter: n(1)?,
            go: n(2)?,
            barrier: n(3)?,
        })
    }
}

fn parent() -> Result<()> {
    let name = format!("shmkit-demo-{}", std::process::id());
    let seg = Segment::create(&name, &CreateOptions::new(1 << 20))?;
    let result = run_parent(&seg, &name);
    Segment::unlink(&name)?;
    result
}

fn run_parent(seg: &Segment, name: &str) -> Result<()> {
    let mutex = seg.alloc_mutex()?;
    let counter_off = seg.alloc_bytes(8, 64)?;
    let go = seg.alloc_event()?;
    let barrier = seg.alloc_barrier(WORKERS + 1)?;
    let layout = Layout {
        mutex: mutex.offset().ok_or("segment mutex has an offset")?,
        counter: counter_off,
        go: go.offset().ok_or("segment event has an offset")?,
        barrier: barrier.offset().ok_or("segment barrier has an offset")?,
    };
    println!(
        "parent {}: created segment {name:?} ({} KiB)",
        std::process::id(),
        seg.size() / 1024
    );

    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for i in 0..WORKERS {
        let child = Command::new(&exe)
            .arg("worker")
            .arg(name)
            .arg(i.to_string())
            .args(layout.to_args())
            .spawn()?;
        children.push(child);
    }
    let arrival = barrier.wait(Duration::from_secs(30))?;
    println!(
        "parent: all {WORKERS} workers at the barrier (parent arrived {} of {})",
        arrival.index + 1,
        WORKERS + 1
    );
    let start = Instant::now();
    go.set();
    println!("parent: set event 'go'");
    barrier.wait(Duration::from_secs(60))?;
    let total = seg.atomic_u64_at(counter_off)?.load(Ordering::Relaxed);
    println!(
        "parent: workers done in {:?}; counter = {total} (expected {})",
        start.elapsed(),
        u64::from(WORKERS) * INCREMENTS
    );
    for mut c in children {
        let status = c.wait()?;
        if !status.success() {
            return Err(format!("a worker failed: {status}").into());
        }
    }
    if total != u64::from(WORKERS) * INCREMENTS {
        return Err("lost updates: the mutex failed".into());
    }

    // Robustness: a process dies holding the mutex.
    go.clear();
    let mut crasher = Command::new(&exe)
        .arg("crasher")
        .arg(name)
        .arg("0")
        .args(layout.to_args())
        .spawn()?;
    go.wait(Duration::from_secs(30))?;
    println!(
        "parent: crasher {} holds the mutex; sending SIGKILL",
        crasher.id()
    );
    crasher.kill()?;
    let killed = Instant::now();
    match mutex.lock()? {
        Acquired::OwnerDied(guard) => {
            let dead = guard.previous_owner();
            println!(
                "parent: owner died ({}), noticed after {:?}; repairing and making consistent",
                dead.map_or("unknown".into(), |o| o.to_string()),
                killed.elapsed()
            );
            let counter = seg.atomic_u64_at(counter_off)?;
            counter.store(u64::from(WORKERS) * INCREMENTS, Ordering::Relaxed);
            drop(guard.make_consistent());
        }
        Acquired::Locked(_) => return Err("the crasher's death went unnoticed".into()),
    }
    crasher.wait()?;
    println!(
        "parent: mutex is usable again: {}",
        matches!(mutex.try_lock()?, Acquired::Locked(_))
    );
    Ok(())
}

fn worker(args: &[String]) -> Result<()> {
    let name = args.first().ok_or("missing segment name")?;
    let id = args.get(1).ok_or("missing worker id")?;
    let layout = Layout::from_args(&args[2..])?;
    let seg = Segment::open(name)?;
    let mutex = seg.mutex_at(layout.mutex)?;
    let counter = seg.atomic_u64_at(layout.counter)?;
    let go = seg.event_at(layout.go)?;
    let barrier = seg.barrier_at(layout.barrier)?;
    println!(
        "worker {id} (pid {}): attached; waiting at the barrier",
        std::process::id()
    );
    barrier.wait(Duration::from_secs(30))?;
    go.wait(Duration::from_secs(30))?;
    let mut contended = 0u64;
    for _ in 0..INCREMENTS {
        let guard = match mutex.try_lock() {
            Ok(a) => a,
            Err(_) => {
                contended += 1;
                mutex.lock()?
            }
        };
        let _guard = guard.recover_with(|_| {});
        // A plain read-modify-write: only the mutex makes it exact.
        let v = counter.load(Ordering::Relaxed);
        counter.store(v + 1, Ordering::Relaxed);
    }
    println!("worker {id}: {INCREMENTS} increments, {contended} found the mutex held");
    barrier.wait(Duration::from_secs(60))?;
    Ok(())
}

fn crasher(args: &[String]) -> Result<()> {
    let name = args.first().ok_or("missing segment name")?;
    let layout = Layout::from_args(&args[2..])?;
    let seg = Segment::open(name)?;
    let mutex = seg.mutex_at(layout.mutex)?;
    let go = seg.event_at(layout.go)?;
    let counter = seg.atomic_u64_at(layout.counter)?;
    let _guard = mutex.lock()?.recover_with(|_| {});
    counter.store(u64::MAX, Ordering::Relaxed); // half-way through an update...
    go.set();
    loop {
        std::thread::sleep(Duration::from_secs(1)); // ...and never finishing it.
    }
}
