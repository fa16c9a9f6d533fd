//! Stream files attacked while in use: truncated at random instants under an importer and an
//! exporter, and their semaphores overwritten with random bytes. Every test runs the
//! importer, the exporter and the attacker as threads of this process, so a `SIGBUS` or an
//! `abort()` anywhere kills the test binary: passing means no access faulted fatally.
//! Each truncation must end in a typed error or a clean re-attach, and nothing the
//! truncation zeroed may ever be published as a frame.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::TempSegment;
use shmkit::rings::{ElemType, FrameRing, FrameSpec, ReadMode, RingError};
use shmkit::{CreateOptions, NoInterrupt, Segment, Timeout};
use shmkit_isio::layout::{parse, Layout};
use shmkit_isio::{
    ExportOptions, Exporter, FrameMeta, ImportOptions, Importer, IsioError, StreamOptions,
    StreamWriter,
};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Attacks per test.
const ROUNDS: u32 = 30;

/// A private stream directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("shmkit-isio-hostile-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn options(&self) -> StreamOptions {
        StreamOptions {
            dir: self.0.clone(),
            ..StreamOptions::default()
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small xorshift generator, seeded from the clock and printed so a failure can be rerun.
struct Rng(u64);

impl Rng {
    fn new(what: &str) -> Rng {
        let seed = std::env::var("SHMKIT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| shmkit_seed() | 1);
        eprintln!("{what}: SHMKIT_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn shmkit_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

const SHAPE: [u32; 2] = [64, 64];

/// Frame `k`'s bytes: all equal to a nonzero value depending on `k`, so a frame holding any
/// zero (a vanished page) or two values (a torn copy) is caught.
fn frame_bytes(k: u64) -> Vec<u8> {
    vec![(k % 255) as u8 + 1; 64 * 64 * 2]
}

fn is_whole(bytes: &[u8]) -> bool {
    bytes[0] != 0 && bytes.iter().all(|&b| b == bytes[0])
}

/// Counts the frames of `ring` that are whole and those that are not, until `stop`.
fn check_frames(ring: FrameRing, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let mut r = ring.reader(ReadMode::NewestOnly).unwrap();
        let (mut good, mut bad) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            if let Ok(f) = r.next(Duration::from_millis(20)) {
                if is_whole(f.bytes()) {
                    good += 1;
                } else {
                    bad += 1;
                }
            }
        }
        (good, bad)
    })
}

fn layout_of(path: &Path) -> Option<Layout> {
    let file = std::fs::File::open(path).ok()?;
    let mut header = [0u8; 384];
    file.read_exact_at(&mut header, 0).ok()?;
    Some(parse(&header, file.metadata().ok()?.len()).ok()?.layout)
}

fn truncate(path: &Path, len: u64) {
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) {
        let _ = f.set_len(len);
    }
}

fn sleep_ms(rng: &mut Rng, max: u64) {
    std::thread::sleep(Duration::from_micros(rng.below(max * 1000)));
}

/// Writes frames into a fresh stream `name` until `stop`, then drops the writer.
fn stream_writer(dir: StreamOptions, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut w = loop {
            match StreamWriter::create("victim", ElemType::U16, &SHAPE, &dir) {
                Ok(w) => break w,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("re-creating the stream: {e}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("the stream cannot be re-created: {e}"),
            }
        };
        let mut k = 0;
        while !stop.load(Ordering::Relaxed) {
            k += 1;
            let meta = FrameMeta {
                id: k,
                ts_ns: 0,
                atime: None,
                user: [k, 0, 0, 0, 0],
            };
            w.write(&frame_bytes(k), &meta);
            std::thread::sleep(Duration::from_micros(300));
        }
        k
    })
}

#[test]
fn a_stream_truncated_at_random_instants_while_imported_never_kills_the_importer() {
    let dir = TempDir::new("imp");
    let seg_name = TempSegment::new("trunc-imp");
    let seg = Segment::create(&seg_name.0, &CreateOptions::new(8 << 20)).unwrap();
    let path = dir.0.join("victim.im.shm");
    let mut rng = Rng::new("truncation under the importer");

    // The first stream exists before the importer starts.
    let stop_writer = Arc::new(AtomicBool::new(false));
    let mut writer = stream_writer(dir.options(), stop_writer.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while layout_of(&path).is_none() {
        assert!(Instant::now() < deadline, "the first stream never appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
    let importer = Importer::new(&path, &seg, "imported", &ImportOptions::default()).unwrap();
    let ring = importer.ring().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let checker = check_frames(ring, stop.clone());

    let truncated_errors = Arc::new(AtomicU64::new(0));
    let published = Arc::new(AtomicU64::new(0));
    let import_thread = {
        let (stop, errors, published, seg_name, path) = (
            stop.clone(),
            truncated_errors.clone(),
            published.clone(),
            seg_name.0.clone(),
            path.clone(),
        );
        std::thread::spawn(move || {
            let seg = Segment::open(&seg_name).unwrap();
            let mut importer = Some(importer);
            while !stop.load(Ordering::Relaxed) {
                let Some(imp) = importer.as_mut() else {
                    // Between a truncation error and a stream good enough to open again.
                    importer =
                        Importer::new(&path, &seg, "imported", &ImportOptions::default()).ok();
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                match imp.step(Timeout::After(Duration::from_millis(20)), &NoInterrupt) {
                    Ok(shmkit_isio::import::Step::Published(_)) => {
                        published.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(IsioError::Changed { reason, .. }) => {
                        assert!(reason.contains("truncated"), "{reason}");
                        errors.fetch_add(1, Ordering::Relaxed);
                        importer = None;
                    }
                    Err(e) => panic!("a truncation gave an unexpected error: {e}"),
                }
            }
        })
    };

    for _ in 0..ROUNDS {
        sleep_ms(&mut rng, 20);
        let total = layout_of(&path).map_or(4096, |l| l.total);
        truncate(&path, rng.below(total));
        sleep_ms(&mut rng, 10);
        stop_writer.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        stop_writer.store(false, Ordering::Relaxed);
        writer = stream_writer(dir.options(), stop_writer.clone());
    }
    // After the last attack the importer must be importing the last stream again.
    let before = published.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while published.load(Ordering::Relaxed) < before + 20 {
        assert!(
            Instant::now() < deadline,
            "the importer did not recover after the last truncation"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    stop_writer.store(true, Ordering::Relaxed);
    import_thread.join().unwrap();
    writer.join().unwrap();
    let (good, bad) = checker.join().unwrap();
    eprintln!(
        "{good} whole frames, {} truncation errors",
        truncated_errors.load(Ordering::Relaxed)
    );
    assert_eq!(bad, 0, "frames holding zeros or torn bytes were published");
    assert!(good > 0);
}

/// A ring publishing whole frames until `stop`.
fn ring_writer(ring: FrameRing, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut w = ring.writer().unwrap();
        let mut k = 0;
        while !stop.load(Ordering::Relaxed) {
            k += 1;
            let mut slot = w.claim(Duration::from_secs(1)).unwrap();
            slot.bytes_mut().copy_from_slice(&frame_bytes(k));
            slot.publish();
            std::thread::sleep(Duration::from_micros(300));
        }
    })
}

#[test]
fn a_stream_truncated_at_random_instants_while_exported_is_a_typed_error_each_time() {
    let dir = TempDir::new("exp");
    let seg_name = TempSegment::new("trunc-exp");
    let seg = Segment::create(&seg_name.0, &CreateOptions::new(8 << 20)).unwrap();
    let ring = seg
        .frame_ring("source", &FrameSpec::new(8, ElemType::U16, &SHAPE))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let source = ring_writer(ring.clone(), stop.clone());
    let mut rng = Rng::new("truncation under the exporter");
    let options = ExportOptions {
        stream: dir.options(),
        ..ExportOptions::default()
    };
    for round in 0..ROUNDS {
        let mut exporter = Exporter::new(&ring, "exported", &options).unwrap();
        let path = exporter.writer().path().to_owned();
        let total = exporter.writer().parsed().layout.total;
        let attacker = {
            let delay = Duration::from_micros(rng.below(20_000));
            let len = rng.below(total);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                truncate(&path, len);
            })
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        let err = loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: the exporter never noticed its stream was truncated"
            );
            match exporter.step(Timeout::After(Duration::from_millis(20)), &NoInterrupt) {
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        attacker.join().unwrap();
        assert!(
            matches!(&err, IsioError::Changed { reason, .. } if reason.contains("truncated")),
            "round {round}: {err}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    source.join().unwrap();
}

#[test]
fn semaphores_overwritten_with_random_bytes_while_streaming_are_typed_errors_never_an_abort() {
    let dir = TempDir::new("sem");
    let seg_name = TempSegment::new("vandal");
    let seg = Segment::create(&seg_name.0, &CreateOptions::new(8 << 20)).unwrap();
    let ring = seg
        .frame_ring("source", &FrameSpec::new(8, ElemType::U16, &SHAPE))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let source = ring_writer(ring.clone(), stop.clone());
    let options = ExportOptions {
        stream: dir.options(),
        ..ExportOptions::default()
    };
    let exporter = Exporter::new(&ring, "vandalised", &options).unwrap();
    let path = exporter.writer().path().to_owned();
    let layout = exporter.writer().parsed().layout;
    let export_thread = {
        let stop = stop.clone();
        let mut exporter = exporter;
        std::thread::spawn(move || {
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match exporter.step(Timeout::After(Duration::from_millis(20)), &NoInterrupt) {
                    Ok(true) => written += 1,
                    Ok(false) => {}
                    Err(e) => panic!("the exporter failed on a vandalised semaphore: {e}"),
                }
            }
            written
        })
    };
    let semaphore_errors = Arc::new(AtomicU64::new(0));
    let import_thread = {
        let (stop, errors, path, seg_name) = (
            stop.clone(),
            semaphore_errors.clone(),
            path.clone(),
            seg_name.0.clone(),
        );
        std::thread::spawn(move || {
            let seg = Segment::open(&seg_name).unwrap();
            let mut importer: Option<Importer> = None;
            while !stop.load(Ordering::Relaxed) {
                let Some(imp) = importer.as_mut() else {
                    match Importer::new(&path, &seg, "imported", &ImportOptions::default()) {
                        Ok(i) => importer = Some(i),
                        Err(IsioError::Semaphore { .. }) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("opening a vandalised stream: {e}"),
                    }
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                match imp.step(Timeout::After(Duration::from_millis(20)), &NoInterrupt) {
                    Ok(_) => {}
                    Err(IsioError::Semaphore { .. }) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        importer = None;
                    }
                    Err(IsioError::Ring(RingError::Interrupted)) => break,
                    Err(e) => panic!("importing a vandalised stream: {e}"),
                }
            }
        })
    };
    let mut rng = Rng::new("vandalised semaphores");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    for _ in 0..ROUNDS {
        sleep_ms(&mut rng, 10);
        let index = rng.below(u64::from(layout.sem));
        let mut garbage = [0u8; 32];
        for b in garbage.iter_mut() {
            *b = rng.next() as u8;
        }
        file.write_all_at(&garbage, layout.semaphores + 32 * index)
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    import_thread.join().unwrap();
    let written = export_thread.join().unwrap();
    source.join().unwrap();
    eprintln!(
        "{written} frames exported, {} semaphore errors",
        semaphore_errors.load(Ordering::Relaxed)
    );
    assert!(written > 0);
}
