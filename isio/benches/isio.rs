//! ImageStreamIO export and import, beside what they cannot avoid.
//!
//! Export (64 KiB and 1 MiB frames): the reference writer's own cost is one `memcpy` of the
//! frame into the stream file's mapping (`memcpy`, the same source each time); `write` is
//! shmkit's whole write sequence from that source (flag, copy, keywords, timestamps, counter,
//! ten semaphore posts). `exporter_step` takes the newest frame from the ring (an unfilled
//! publish + pin + write), each from another of the ring's 4 slots, so it compares with
//! `memcpy_rotating` (the same copy from 4 rotating sources); its inverse is the export's
//! frames/s. `latency` is ring publish → the exporter thread wakes and writes → a
//! milk reader's semaphore wait returns, beside `latency_floor`: a bare ring reader thread
//! that wakes, makes the same `memcpy` and posts one bare semaphore.
//!
//! Import (192 × 192 u16, a typical wavefront-sensor frame): `round` is a stream write → the
//! importer thread wakes, copies tear-checked into the ring, publishes → a ring reader gets
//! it, frames checked; its inverse is the importer's sustained rate in lockstep (the issue's
//! target: ≥ 2 kHz). The run ends by asserting that no torn frame was published.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmkit::rings::{ElemType, FrameRing, FrameSpec, ReadMode};
use shmkit::{CreateOptions, NoInterrupt, Segment, Timeout};
use shmkit_isio::{
    ExportOptions, Exporter, FrameMeta, ImportOptions, Importer, StreamOptions, StreamReader,
    StreamWriter,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    name: String,
    dir: PathBuf,
    seg: Segment,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let name = format!("shmkit-bench-isio-{tag}-{}", std::process::id());
        let _ = Segment::unlink(&name);
        let seg = Segment::create(&name, &CreateOptions::new(64 << 20)).expect("segment");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).expect("stream directory");
        Fixture { name, dir, seg }
    }

    fn stream_options(&self) -> StreamOptions {
        StreamOptions {
            dir: self.dir.clone(),
            ..StreamOptions::default()
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A shared mapping of a file in the stream directory: where the reference writer's memcpy
/// lands.
fn file_mapping(dir: &std::path::Path, len: usize) -> memmap2::MmapMut {
    let path = dir.join("memcpy-target");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("target file");
    file.set_len(len as u64).expect("size");
    // SAFETY: a file this benchmark alone created and maps.
    let map = unsafe { memmap2::MmapMut::map_mut(&file) }.expect("map");
    let _ = std::fs::remove_file(&path);
    map
}

fn publish(ring_writer: &mut shmkit::rings::FrameWriter, seed: u16) {
    let mut slot = ring_writer.try_claim().expect("a free slot");
    slot.typed_mut::<u16>().expect("u16 ring").fill(seed);
    slot.publish();
}

fn export(c: &mut Criterion) {
    let mut group = c.benchmark_group("isio_export");
    for (label, shape) in [("64KiB", [128u32, 256]), ("1MiB", [512, 1024])] {
        let fx = Fixture::new(label);
        let ring = fx
            .seg
            .frame_ring("cam", &FrameSpec::new(4, ElemType::U16, &shape))
            .expect("ring");
        let bytes = ring.max_bytes() as usize;
        group.throughput(Throughput::Bytes(bytes as u64));
        let mut w = ring.writer().expect("writer");
        publish(&mut w, 1);
        let mut reader = ring.reader(ReadMode::NewestOnly).expect("reader");
        let mut target = file_mapping(&fx.dir, bytes);
        {
            let frame = reader.latest().expect("ring").expect("a frame");
            group.bench_function(BenchmarkId::new("memcpy", label), |b| {
                b.iter(|| target.copy_from_slice(std::hint::black_box(frame.bytes())))
            });
            // As the exporter meets them: a new frame each time, from the ring's 4 slots.
            let sources: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; bytes]).collect();
            let mut i = 0;
            group.bench_function(BenchmarkId::new("memcpy_rotating", label), |b| {
                b.iter(|| {
                    i = (i + 1) % sources.len();
                    target.copy_from_slice(std::hint::black_box(&sources[i]))
                })
            });
            let mut stream =
                StreamWriter::create("bench_w", ElemType::U16, &shape, &fx.stream_options())
                    .expect("stream");
            let meta = FrameMeta {
                id: frame.id(),
                ts_ns: frame.ts_ns(),
                atime: None,
                user: [0; 5],
            };
            group.bench_function(BenchmarkId::new("write", label), |b| {
                b.iter(|| stream.write(std::hint::black_box(frame.bytes()), &meta))
            });
        }
        drop(reader);
        let options = ExportOptions {
            stream: fx.stream_options(),
            max_rate: None,
        };
        {
            let mut exporter = Exporter::new(&ring, "bench_step", &options).expect("exporter");
            // Every slot written once, so the unfilled publishes below hand over real pages
            // (an untouched shared page reads as the one zero page: a cache-hot fake).
            for seed in 0..8 {
                publish(&mut w, seed);
            }
            group.bench_function(BenchmarkId::new("exporter_step", label), |b| {
                b.iter(|| {
                    // The frame's bytes are the camera's business: published as they are.
                    let mut slot = w.try_claim().expect("a free slot");
                    slot.set_len(bytes as u64);
                    slot.publish();
                    assert!(exporter
                        .step(Timeout::After(Duration::from_secs(1)), &NoInterrupt)
                        .expect("step"));
                })
            });
        }
        // Latency through a running exporter thread, seen by a milk reader's semaphore.
        let stop = Arc::new(AtomicBool::new(false));
        let mut exporter = Exporter::new(&ring, "bench_lat", &options).expect("exporter");
        let path = exporter.writer().path().to_owned();
        let exporting = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                exporter
                    .run(&move || stop.load(Ordering::Relaxed))
                    .expect("export")
            }
        });
        let milk_reader = StreamReader::open(&path, 0).expect("stream reader");
        group.bench_function(BenchmarkId::new("latency", label), |b| {
            b.iter(|| {
                publish(&mut w, 7);
                assert!(milk_reader.wait(Duration::from_secs(1)).expect("wait"));
            })
        });
        stop.store(true, Ordering::Relaxed);
        exporting.join().expect("exporter thread");
        // The floor: a bare reader thread wakes, copies, posts one bare semaphore.
        let posted = Box::new(BareSem::new());
        let posted_ptr = &*posted as *const BareSem as usize;
        let stop = Arc::new(AtomicBool::new(false));
        let floor = std::thread::spawn({
            let stop = Arc::clone(&stop);
            let ring = ring.clone();
            move || {
                let mut r = ring.reader(ReadMode::NewestOnly).expect("reader");
                let mut target = vec![0u8; bytes];
                // SAFETY: the semaphore outlives this thread (joined before it is dropped).
                let posted = unsafe { &*(posted_ptr as *const BareSem) };
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(f) = r.next(Duration::from_millis(50)) {
                        target.copy_from_slice(f.bytes());
                        drop(f);
                        posted.post();
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        group.bench_function(BenchmarkId::new("latency_floor", label), |b| {
            b.iter(|| {
                publish(&mut w, 9);
                posted.wait();
            })
        });
        stop.store(true, Ordering::Relaxed);
        floor.join().expect("floor thread");
        drop(posted);
    }
    group.finish();
}

/// A process-private POSIX semaphore for the latency floor.
struct BareSem(std::cell::UnsafeCell<libc::sem_t>);

// SAFETY: a POSIX semaphore is made to be used from several threads.
unsafe impl Sync for BareSem {}

impl BareSem {
    fn new() -> BareSem {
        // SAFETY: all-zero bytes are storage for `sem_init` to initialise.
        let s = BareSem(std::cell::UnsafeCell::new(unsafe { std::mem::zeroed() }));
        // SAFETY: the storage is live; pshared 0 (threads of this process).
        unsafe { libc::sem_init(s.0.get(), 0, 0) };
        s
    }

    fn post(&self) {
        // SAFETY: initialised in `new`.
        unsafe { libc::sem_post(self.0.get()) };
    }

    fn wait(&self) {
        // SAFETY: initialised in `new`; EINTR just retries.
        while unsafe { libc::sem_wait(self.0.get()) } != 0 {}
    }
}

fn import(c: &mut Criterion) {
    let mut group = c.benchmark_group("isio_import");
    let fx = Fixture::new("import");
    let shape = [192u32, 192];
    let n = 192 * 192;
    let mut stream = StreamWriter::create("bench_cam", ElemType::U16, &shape, &fx.stream_options())
        .expect("stream");
    let path = stream.path().to_owned();
    let mut importer =
        Importer::new(&path, &fx.seg, "imported", &ImportOptions::default()).expect("importer");
    let ring: FrameRing = importer.ring().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let importing = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            importer
                .run(&move || stop.load(Ordering::Relaxed))
                .expect("import")
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    let mut reader = ring.reader(ReadMode::NewestOnly).expect("reader");
    let mut frame = vec![0u16; n];
    let mut k = 0u16;
    let mut checked = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("round_192x192_u16", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            frame[0] = k;
            frame[n - 1] = k;
            let bytes: &[u8] = zerocopy_bytes(&frame);
            stream.write(
                bytes,
                &FrameMeta {
                    id: u64::from(k),
                    ts_ns: 0,
                    atime: None,
                    user: [u64::from(k), 0, 0, 0, 0],
                },
            );
            let f = reader
                .next(Duration::from_secs(1))
                .expect("the imported frame");
            let px = f.typed::<u16>().expect("u16");
            assert!(px[0] == k && px[n - 1] == k, "frame {k} arrived whole");
            checked += 1;
        })
    });
    stop.store(true, Ordering::Relaxed);
    let stats = importing.join().expect("importer thread");
    group.finish();
    assert_eq!(stats.torn, 0, "no torn frame in lockstep: {stats:?}");
    eprintln!("isio_import: {checked} frames checked whole; importer {stats:?}");
}

fn zerocopy_bytes(v: &[u16]) -> &[u8] {
    // SAFETY: u16 has no padding; the byte view covers the same memory for the same lifetime.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = export, import
}
criterion_main!(benches);
