//! Sustained recording against the disk's own sequential write rate, in the same run.
//!
//! - `record_sustained/shmkit_record/{1MiB,8MiB}`: a 1 GiB session of 1 MiB or 8 MiB
//!   frames recorded from a ring (long enough for the steady state: in a 256 MiB session of
//!   8 MiB frames every one of its 32 frames was copied into a freshly faulted buffer before
//!   the first came back to be reused), from the first publish to `stop()` returning (every file
//!   synced and renamed). The writer publishes as fast as the recorder takes frames (it never
//!   laps it: the bench measures the recorder, not drops), and sleeps while it waits: on two
//!   CPUs a spinning publisher takes one from the recorder's three threads.
//! - `record_sustained/dd_oflag_direct/{1MiB,8MiB}`: `dd if=/dev/zero bs=<frame> oflag=direct`
//!   writing the same 1 GiB to the same file system: the disk's sequential rate.
//!
//! Throughput is reported in bytes, so criterion prints MiB/s for both. Run:
//! `cargo bench -p shmkit-record --bench throughput`.

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use shmkit::rings::{ElemType, FrameRing, FrameSpec};
use shmkit::{CreateOptions, Segment};
use shmkit_record::{RecordOptions, Recorder};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SESSION: u64 = 1 << 30;

/// Where both write: a directory on the build's file system (not tmpfs, which has no
/// O_DIRECT and no disk).
fn scratch() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("record-throughput");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn dd(dir: &Path, frame: u64) -> Duration {
    let out = dir.join("dd.bin");
    let start = Instant::now();
    let status = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", out.display()))
        .arg(format!("bs={frame}"))
        .arg(format!("count={}", SESSION / frame))
        .arg("oflag=direct")
        .stderr(std::process::Stdio::null())
        .status()
        .expect("dd runs");
    let took = start.elapsed();
    assert!(
        status.success(),
        "dd oflag=direct failed in {}",
        dir.display()
    );
    let _ = std::fs::remove_file(out);
    took
}

fn record(dir: &Path, seg: &Segment, ring: &FrameRing, frame: u64) -> Duration {
    let session = dir.join("session");
    let _ = std::fs::remove_dir_all(&session);
    let slots = u64::from(ring.spec().slots);
    let n = SESSION / frame;
    let rec = Recorder::start(seg, &["cam"], &RecordOptions::new(&session)).unwrap();
    let mut w = ring.writer().unwrap();
    let start = Instant::now();
    for k in 0..n {
        // Never more than slots - 2 frames ahead of the recorder.
        while k >= rec.progress()[0].recorded + slots - 2 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut slot = w.try_claim().unwrap();
        slot.bytes_mut()[..8].copy_from_slice(&k.to_le_bytes());
        slot.publish();
    }
    let m = rec.stop().unwrap();
    let took = start.elapsed();
    assert_eq!(m.rings[0].recorded, n, "every frame recorded");
    let _ = std::fs::remove_dir_all(&session);
    took
}

fn sustained(c: &mut Criterion) {
    let dir = scratch();
    let mut g = c.benchmark_group("record_sustained");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SESSION));
    for (label, shape, slots) in [("1MiB", [512u32, 1024], 16u32), ("8MiB", [2048, 2048], 8)] {
        let frame = u64::from(shape[0]) * u64::from(shape[1]) * 2;
        let name = format!("shmkit-bench-rec-{}-{label}", std::process::id());
        let _ = Segment::unlink(&name);
        let seg = Segment::create(
            &name,
            &CreateOptions::new(u64::from(slots) * frame * 2 + (8 << 20)),
        )
        .unwrap();
        let ring = seg
            .frame_ring("cam", &FrameSpec::new(slots, ElemType::U16, &shape))
            .unwrap();
        g.bench_function(BenchmarkId::new("dd_oflag_direct", label), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| dd(&dir, frame)).sum())
        });
        g.bench_function(BenchmarkId::new("shmkit_record", label), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| record(&dir, &seg, &ring, frame)).sum())
        });
        drop(ring);
        drop(seg);
        let _ = Segment::unlink(&name);
    }
    g.finish();
}

criterion_group!(benches, sustained);
criterion_main!(benches);
