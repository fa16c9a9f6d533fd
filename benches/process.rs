//! Spawning and joining a child, beside `std::process::Command` on the same binary, in the same
//! run. Run: `cargo bench --bench process`.

use criterion::{criterion_group, Criterion};
use shmkit::process::{ChildContext, Entries};
use shmkit::{CreateOptions, Segment};
use std::process::Command;
use std::time::Duration;

/// Set for `std_command` children: exit before doing anything else.
const EXIT_NOW: &str = "SHMKIT_BENCH_EXIT_NOW";

fn noop(_: &ChildContext, _: ()) -> Result<(), std::convert::Infallible> {
    Ok(())
}

fn spawn_join(c: &mut Criterion) {
    let name = format!("shmkit-bench-process-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
    let mut g = c.benchmark_group("spawn_join");
    g.sample_size(30).measurement_time(Duration::from_secs(6));
    g.bench_function("shmkit", |b| {
        b.iter(|| {
            shmkit::process::spawn(&seg, "noop", &())
                .unwrap()
                .join(Duration::from_secs(30))
                .unwrap()
        })
    });
    let exe = std::env::current_exe().unwrap();
    g.bench_function("std_command", |b| {
        b.iter(|| {
            let status = Command::new(&exe).env(EXIT_NOW, "1").status().unwrap();
            assert!(status.success());
        })
    });
    g.finish();
    let _ = Segment::unlink(&name);
}

criterion_group!(benches, spawn_join);

fn main() {
    if std::env::var_os(EXIT_NOW).is_some() {
        return;
    }
    Entries::new().entry("noop", noop).dispatch();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
