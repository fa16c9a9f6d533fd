//! Several processes sharing one segment: they meet at a barrier, wait for an event, contend
//! on a robust mutex, and survive a holder being SIGKILLed.
//!
//! Run with `cargo run --release --example demo`. The parent starts its workers with the
//! library's own spawn (`shmkit::process`): this binary re-executed into a registered entry,
//! which finds the segment in its environment and reports how it ended through the segment,
//! so the example is self-contained and `join` names what went wrong in a child.

use shmkit::process::{self, ChildContext, ChildError, Entries};
use shmkit::{Acquired, Barrier, CreateOptions, Event, Mutex, Segment, Shared, SharedDict};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const WORKERS: u32 = 3;
const INCREMENTS: u64 = 200_000;

fn main() -> ExitCode {
    // In a child this runs its entry and exits; in the parent it returns at once.
    Entries::new()
        .entry("worker", worker)
        .entry("crasher", crasher)
        .dispatch();
    match parent() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {}", shmkit::error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Every shared object is found by name: children need only the segment's name.
struct Objects {
    mutex: Mutex,
    counter: Shared<u64>,
    go: Event,
    barrier: Barrier,
    log: SharedDict,
}

impl Objects {
    fn find(seg: &Segment) -> Result<Objects> {
        Ok(Objects {
            mutex: seg.mutex("crash-demo")?,
            counter: seg.shared("counter", 0u64)?,
            go: seg.event("go")?,
            barrier: seg.barrier("start-line", WORKERS + 1)?,
            log: seg.dict("worker-log", 16)?,
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
    let objects = Objects::find(seg)?;
    println!(
        "parent {}: created segment {name:?} ({} KiB) and {} named objects",
        std::process::id(),
        seg.info().total_size / 1024,
        seg.entries()?.len()
    );

    let mut children = Vec::new();
    for i in 0..WORKERS {
        children.push(process::spawn(seg, "worker", &i)?);
    }
    let arrival = objects.barrier.wait(Duration::from_secs(30))?;
    println!(
        "parent: all {WORKERS} workers at the barrier (parent arrived {} of {})",
        arrival.index + 1,
        WORKERS + 1
    );
    let start = Instant::now();
    objects.go.set();
    println!("parent: set event 'go'");
    objects.barrier.wait(Duration::from_secs(60))?;
    let total = objects.counter.read()?;
    println!(
        "parent: workers done in {:?}; counter = {total} (expected {})",
        start.elapsed(),
        u64::from(WORKERS) * INCREMENTS
    );
    for (worker, contended) in objects.log.items::<u64>()? {
        println!("parent: {worker} found the counter locked {contended} times");
    }
    for mut c in children {
        // A worker's error or panic comes back here, named.
        c.join(Duration::from_secs(30))?;
    }
    if total != u64::from(WORKERS) * INCREMENTS {
        return Err("lost updates: the mutex failed".into());
    }

    // Robustness: a process dies holding a mutex.
    objects.go.clear();
    let mut crasher = process::spawn(seg, "crasher", &())?;
    if !objects.go.wait(Duration::from_secs(30)) {
        return Err("the crasher never said it holds the mutex".into());
    }
    println!(
        "parent: crasher {} holds the mutex 'crash-demo'; sending SIGKILL",
        crasher.pid()
    );
    crasher.kill()?;
    let killed = Instant::now();
    match objects.mutex.lock(shmkit::DEFAULT_LOCK_TIMEOUT)? {
        Acquired::OwnerDied(guard) => {
            let dead = guard.previous_owner();
            println!(
                "parent: owner died ({}), noticed after {:?}; repairing and making consistent",
                dead.map_or("unknown".into(), |o| o.to_string()),
                killed.elapsed()
            );
            drop(guard.make_consistent());
        }
        Acquired::Locked(_) => return Err("the crasher's death went unnoticed".into()),
    }
    match crasher.join(Duration::from_secs(10)) {
        Err(ChildError::Signaled { signal_name, .. }) => {
            println!("parent: the crasher ended by {signal_name}, as join reports")
        }
        other => return Err(format!("the crasher ended otherwise: {other:?}").into()),
    }
    println!(
        "parent: mutex is usable again: {}",
        matches!(objects.mutex.try_lock()?, Acquired::Locked(_))
    );
    Ok(())
}

/// A child's entry returns a concrete error type; the demo's own is boxed, so it travels
/// as an `io::Error` carrying it (its message reaches `join` in the parent).
fn worker(ctx: &ChildContext, id: u32) -> std::io::Result<()> {
    work(ctx, id).map_err(std::io::Error::other)
}

fn work(ctx: &ChildContext, id: u32) -> Result<()> {
    let objects = Objects::find(ctx.segment())?;
    println!(
        "worker {id} (pid {}): attached by name; waiting at the barrier",
        std::process::id()
    );
    objects.barrier.wait(Duration::from_secs(30))?;
    if !objects.go.wait(Duration::from_secs(30)) {
        return Err("the parent never said go".into());
    }
    let mut contended = 0u64;
    for _ in 0..INCREMENTS {
        if objects.counter.mutex().owner().is_some() {
            contended += 1;
        }
        // A read-modify-write of a plain u64: only the value's mutex makes it exact.
        objects.counter.update(|c| *c += 1)?;
    }
    objects.log.insert(&format!("worker {id}"), &contended)?;
    println!("worker {id}: {INCREMENTS} increments done");
    objects.barrier.wait(Duration::from_secs(60))?;
    Ok(())
}

fn crasher(ctx: &ChildContext, _: ()) -> std::io::Result<()> {
    let objects = Objects::find(ctx.segment()).map_err(std::io::Error::other)?;
    let _guard = objects
        .mutex
        .lock(shmkit::DEFAULT_LOCK_TIMEOUT)
        .map_err(std::io::Error::other)?
        .recover_with(|_| {});
    objects.go.set();
    loop {
        std::thread::sleep(Duration::from_secs(1)); // holding the mutex until killed
    }
}
