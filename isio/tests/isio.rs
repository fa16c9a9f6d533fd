//! ImageStreamIO export and import: round trips checksummed end to end, a writer that tears on
//! purpose, re-created streams, live writers' streams refused, and a stream read and written
//! by an independent reader/writer (`tests/isio_peer.py`, Python's `struct`, `mmap` and
//! `ctypes` only, written from the format's public definition).

#[path = "../../tests/common/mod.rs"]
mod common;

use common::TempSegment;
use shmkit::rings::{ElemType, FrameRing, FrameSpec, ReadMode};
use shmkit::{CreateOptions, NoInterrupt, Segment, Timeout};
use shmkit_isio::layout::{offsets, parse, Layout};
use shmkit_isio::{
    list, ExportOptions, Exporter, FrameMeta, ImportOptions, ImportStats, Importer, IsioError,
    StreamOptions, StreamReader, StreamWriter,
};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A private stream directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("shmkit-isio-{}-{tag}-{n}", std::process::id()));
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

/// The pattern a frame with `seed` holds: every element differs and depends on the seed.
fn pattern(seed: u64, len: usize) -> Vec<u16> {
    (0..len as u64)
        .map(|i| (seed.wrapping_mul(7919).wrapping_add(i * 31) & 0xFFFF) as u16)
        .collect()
}

fn segment(tag: &str) -> (TempSegment, Segment) {
    let name = TempSegment::new(tag);
    let seg = Segment::create(&name.0, &CreateOptions::new(32 << 20)).unwrap();
    (name, seg)
}

/// Publishes `count` frames of `pattern(id)` into `ring`, `period` apart, user word 0 = id;
/// with `lockstep`, frame `id` only once `lockstep` has reached `id - 1` (the consumer's count;
/// `u64::MAX` once it stopped) or 1 s has passed.
fn publish(ring: &FrameRing, count: u64, period: Duration, lockstep: Option<&AtomicU64>) {
    let mut w = ring.writer().unwrap();
    let len = ring.max_bytes() as usize / 2;
    for id in 1..=count {
        if let Some(consumed) = lockstep {
            let give_up = Instant::now() + Duration::from_secs(1);
            while consumed.load(Ordering::Acquire) < id - 1 && Instant::now() < give_up {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        let mut slot = w.claim(Duration::from_secs(1)).unwrap();
        slot.typed_mut::<u16>()
            .unwrap()
            .copy_from_slice(&pattern(id, len));
        slot.set_user(0, id);
        slot.set_user(4, id ^ 0xABCD);
        assert_eq!(slot.publish(), id);
        std::thread::sleep(period);
    }
}

#[test]
fn a_ring_exported_and_imported_back_arrives_whole_with_its_user_words() {
    let dir = TempDir::new("rt");
    let (_n, seg) = segment("rt");
    let shape = [48u32, 64];
    let source = seg
        .frame_ring("camera", &FrameSpec::new(8, ElemType::U16, &shape))
        .unwrap();
    let options = ExportOptions {
        stream: dir.options(),
        max_rate: None,
    };
    let mut exporter = Exporter::new(&source, "rt_cam", &options).unwrap();
    let path = exporter.writer().path().to_owned();
    assert_eq!(path, dir.0.join("rt_cam.im.shm"));

    let mut importer = Importer::new(&path, &seg, "imported", &ImportOptions::default()).unwrap();
    let imported = importer.ring().clone();
    assert_eq!(imported.spec(), FrameSpec::new(8, ElemType::U16, &shape));
    let mut consumer = imported.reader(ReadMode::OldestFirst).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let stop_check = {
        let stop = Arc::clone(&stop);
        move || stop.load(Ordering::Relaxed)
    };
    let export_thread = std::thread::spawn({
        let stop_check = stop_check.clone();
        move || {
            let stats = exporter.run(&stop_check).unwrap();
            (stats, exporter)
        }
    });
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let import_thread = std::thread::spawn(move || {
        tid_tx.send(common::gettid()).unwrap();
        importer.run(&stop_check).unwrap()
    });
    // The importer has flushed its semaphore once it sleeps on it (a frame published before
    // would only count as missed).
    common::wait_until_futex_wait(tid_rx.recv().unwrap(), Duration::from_secs(10));
    const FRAMES: u64 = 300;
    // Lockstep: each frame is published once the previous one came back, so every frame must
    // cross both bridges whole, whatever the machine's load (the paced, lossy cases are the
    // rate-limit and tearing tests').
    let consumed = Arc::new(AtomicU64::new(0));
    let publisher = std::thread::spawn({
        let consumed = Arc::clone(&consumed);
        move || publish(&source, FRAMES, Duration::ZERO, Some(&consumed))
    });

    let len = 48 * 64;
    let (mut whole, mut last) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(20);
    while last < FRAMES && Instant::now() < deadline {
        let Ok(f) = consumer.next(Duration::from_millis(200)) else {
            continue;
        };
        let id = f.user(0);
        assert!(id > last, "ids increase: {id} after {last}");
        assert_eq!(
            f.typed::<u16>().unwrap(),
            &pattern(id, len)[..],
            "frame {id}"
        );
        assert_eq!(f.user(4), id ^ 0xABCD, "user words travel");
        whole += 1;
        last = id;
        consumed.store(id, Ordering::Release);
    }
    consumed.store(u64::MAX, Ordering::Release); // the publisher waits for nobody now
    publisher.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (export, exporter) = export_thread.join().unwrap();
    let import: ImportStats = import_thread.join().unwrap();
    eprintln!("round trip: {whole} whole of {FRAMES}; {export:?}; {import:?}");
    assert_eq!(last, FRAMES, "the last frame arrives");
    assert_eq!(
        import.torn + import.busy,
        0,
        "a writer in lockstep never tears: {import:?}"
    );
    assert_eq!(whole, import.published, "every published frame was checked");
    assert_eq!(
        export.written + export.skipped,
        FRAMES,
        "every frame is written or counted skipped: {export:?}"
    );
    assert_eq!(
        import.published + import.missed,
        export.written,
        "the importer accounts for every stream write: {import:?}"
    );
    assert_eq!(
        (whole, export.skipped, import.missed),
        (FRAMES, 0, 0),
        "in lockstep every frame arrives whole"
    );
    drop(exporter);
    assert!(!path.exists(), "a clean exit removes the stream");
}

#[test]
fn the_rate_limit_holds_the_stream_to_its_rate() {
    let dir = TempDir::new("rate");
    let (_n, seg) = segment("rate");
    let source = seg
        .frame_ring("fast", &FrameSpec::new(4, ElemType::U8, &[16]))
        .unwrap();
    let options = ExportOptions {
        stream: dir.options(),
        max_rate: Some(50.0),
    };
    let mut exporter = Exporter::new(&source, "rate", &options).unwrap();
    let publisher = std::thread::spawn(move || publish_bytes(&source, Duration::from_secs(1)));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        exporter
            .step(Timeout::After(Duration::from_millis(20)), &NoInterrupt)
            .unwrap();
    }
    publisher.join().unwrap();
    let s = exporter.stats();
    // 50 Hz for one second from a ~2 kHz source.
    assert!((40..=60).contains(&s.written), "{s:?}");
    assert!(s.skipped > 500, "{s:?}");
    assert!(matches!(
        Exporter::new(
            &seg.frame_ring("fast", &FrameSpec::new(4, ElemType::U8, &[16]))
                .unwrap(),
            "rate2",
            &ExportOptions {
                stream: dir.options(),
                max_rate: Some(0.0)
            }
        ),
        Err(IsioError::Rate { .. })
    ));
}

fn publish_bytes(ring: &FrameRing, for_: Duration) {
    let mut w = ring.writer().unwrap();
    let start = Instant::now();
    while start.elapsed() < for_ {
        let slot = w.claim(Duration::from_secs(1)).unwrap();
        slot.publish();
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Maps a stream file as a foreign writer would: the raw bytes.
struct RawStream {
    map: memmap2::MmapRaw,
    layout: Layout,
}

impl RawStream {
    fn open(path: &Path) -> RawStream {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut header = [0u8; 384];
        file.read_exact_at(&mut header, 0).unwrap();
        let len = file.metadata().unwrap().len();
        let layout = parse(&header, len).unwrap().layout;
        let map = memmap2::MmapOptions::new()
            .len(layout.total as usize)
            .map_raw(&file)
            .unwrap();
        RawStream { map, layout }
    }

    fn ptr(&self, offset: u64) -> *mut u8 {
        assert!(offset < self.layout.total);
        // SAFETY: inside the mapping (asserted).
        unsafe { self.map.as_mut_ptr().add(offset as usize) }
    }

    fn set_write(&self, v: u8) {
        // SAFETY: the header's `write` byte.
        unsafe { std::sync::atomic::AtomicU8::from_ptr(self.ptr(offsets::WRITE as u64)) }
            .store(v, Ordering::SeqCst);
    }

    fn set_cnt0(&self, v: u64) {
        // SAFETY: the header's 8-aligned `cnt0`.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.ptr(offsets::CNT0 as u64).cast()) }
            .store(v, Ordering::SeqCst);
    }

    fn fill(&self, from: usize, to: usize, byte: u8) {
        assert!(to as u64 <= self.layout.data_len);
        // SAFETY: inside the data region (`to` ≤ its length, asserted).
        unsafe { std::ptr::write_bytes(self.ptr(self.layout.data + from as u64), byte, to - from) };
    }

    fn post_all(&self) {
        for i in 0..self.layout.sem {
            // SAFETY: semaphore `i` of the layout, initialised by its creator.
            unsafe { libc::sem_post(self.ptr(self.layout.semaphores + 32 * u64::from(i)).cast()) };
        }
    }
}

/// Reads frames from the importer's ring until `deadline`, checking each is uniform (all
/// bytes the same value): returns (uniform, corrupt).
fn check_uniform(ring: &FrameRing, stop: &AtomicBool) -> (u64, u64) {
    let mut r = ring.reader(ReadMode::NewestOnly).unwrap();
    let (mut good, mut bad) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        if let Ok(f) = r.next(Duration::from_millis(50)) {
            let b = f.bytes();
            if b.iter().all(|&x| x == b[0]) {
                good += 1;
            } else {
                bad += 1;
            }
        }
    }
    (good, bad)
}

#[test]
fn a_writer_that_tears_on_purpose_is_caught_and_nothing_torn_is_published() {
    let dir = TempDir::new("tear");
    let (_n, seg) = segment("tear");
    // 2 MiB frames, so copies take long enough to overlap the writer's.
    let shape = [1024u32, 1024];
    let writer = StreamWriter::create("tear", ElemType::U16, &shape, &dir.options()).unwrap();
    let path = writer.path().to_owned();
    let raw = RawStream::open(&path);
    let mut importer = Importer::new(&path, &seg, "torn", &ImportOptions::default()).unwrap();
    let ring = importer.ring().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let checker = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || check_uniform(&ring, &stop)
    });
    let importing = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || importer.run(&move || stop.load(Ordering::Relaxed)).unwrap()
    });
    std::thread::sleep(Duration::from_millis(50));
    let len = 2 * 1024 * 1024;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut k = 0u64;
    let mut rng = fastrand::Rng::with_seed(7);
    // Two writers take turns. The honest one (the reference's order) writes whole frames and
    // pauses at random, so some copies overlap a write and some do not. The tearing one
    // bumps the counter and posts *before* it has finished the data — with the write flag
    // still up, as the format requires of any writer.
    while Instant::now() < deadline && k < 600 {
        k += 1;
        let byte = (k % 251) as u8;
        if k % 2 == 0 {
            raw.set_write(1);
            raw.fill(0, len / 2, byte);
            raw.set_cnt0(k);
            raw.post_all();
            // Long enough for the importer to wake and look while the data is half old.
            std::thread::sleep(Duration::from_millis(1));
            raw.fill(len / 2, len, byte);
            raw.set_write(0);
        } else {
            raw.set_write(1);
            raw.fill(0, len, byte);
            raw.set_cnt0(k);
            raw.set_write(0);
            raw.post_all();
        }
        std::thread::sleep(Duration::from_micros(rng.u64(0..1500)));
    }
    stop.store(true, Ordering::Relaxed);
    let stats = importing.join().unwrap();
    let (uniform, corrupt) = checker.join().unwrap();
    drop(writer);
    assert_eq!(corrupt, 0, "no torn frame is ever published: {stats:?}");
    assert!(stats.published > 10, "{stats:?}");
    assert!(
        stats.torn + stats.busy > 10,
        "tearing is noticed and counted: {stats:?}"
    );
    assert!(uniform > 0);
}

#[test]
fn a_recreated_stream_is_reattached_and_one_of_another_shape_is_an_error() {
    let dir = TempDir::new("re");
    let (_n, seg) = segment("re");
    let shape = [8u32, 8];
    let mut w = StreamWriter::create("re", ElemType::F32, &shape, &dir.options()).unwrap();
    let path = w.path().to_owned();
    let mut importer = Importer::new(&path, &seg, "re", &ImportOptions::default()).unwrap();
    let meta = |id| FrameMeta {
        id,
        ts_ns: 0,
        atime: None,
        user: [id, 0, 0, 0, 0],
    };
    let data = vec![1u8; 256];
    w.write(&data, &meta(1));
    let step = importer
        .step(Timeout::After(Duration::from_secs(2)), &NoInterrupt)
        .unwrap();
    assert!(
        matches!(step, shmkit_isio::import::Step::Published(_)),
        "{step:?}"
    );
    let old_inode = importer.reader().inode();
    drop(w); // removes the file
    let mut w = StreamWriter::create("re", ElemType::F32, &shape, &dir.options()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while importer.stats().published < 2 && Instant::now() < deadline {
        w.write(&data, &meta(2));
        let _ = importer
            .step(Timeout::After(Duration::from_millis(150)), &NoInterrupt)
            .unwrap();
    }
    assert_eq!(importer.stats().reattached, 1);
    assert_eq!(importer.stats().published, 2);
    assert_ne!(importer.reader().inode(), old_inode);
    drop(w);
    let _w = StreamWriter::create("re", ElemType::F32, &[4, 4], &dir.options()).unwrap();
    let err = importer
        .step(Timeout::After(Duration::from_secs(1)), &NoInterrupt)
        .unwrap_err();
    assert!(matches!(err, IsioError::Changed { .. }), "{err}");
}

/// Makes the stream at `path` claim `pid` as its creator and owner.
fn claim_for(path: &Path, pid: i32) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&pid.to_ne_bytes(), offsets::CREATOR_PID as u64)
        .unwrap();
    file.write_all_at(&pid.to_ne_bytes(), offsets::OWNER_PID as u64)
        .unwrap();
}

#[test]
fn a_live_writers_stream_is_refused_and_a_dead_ones_replaced() {
    let dir = TempDir::new("live");
    // The "writer": a live process that started before the stream was created.
    let mut writer = Command::new("sleep").arg("30").spawn().unwrap();
    let w = StreamWriter::create("owned", ElemType::U8, &[4], &dir.options()).unwrap();
    let path = w.path().to_owned();
    let pid = writer.id() as i32;
    claim_for(&path, pid);
    std::mem::forget(w); // keep the file: it is "theirs" now
    let err = StreamWriter::create("owned", ElemType::U8, &[4], &dir.options()).unwrap_err();
    assert!(
        matches!(err, IsioError::InUse { pid: p, .. } if p == pid),
        "{err}"
    );
    writer.kill().unwrap();
    writer.wait().unwrap();
    let w = StreamWriter::create("owned", ElemType::U8, &[4], &dir.options()).unwrap();
    assert!(w.still_current());
}

#[test]
fn a_writers_pid_given_to_a_later_process_does_not_keep_its_stream() {
    let dir = TempDir::new("reuse");
    let w = StreamWriter::create("reused", ElemType::U8, &[4], &dir.options()).unwrap();
    let path = w.path().to_owned();
    std::mem::forget(w);
    // Two clock ticks after the creation, so the kernel's start time of the stand-in (kept
    // in 10 ms ticks) is after it.
    let created = Instant::now();
    while created.elapsed() < Duration::from_millis(25) {
        std::thread::yield_now();
    }
    // A live process holding the pid the stream names, started after the stream: what pid
    // reuse looks like. `kill(pid, 0)` would call it the writer.
    let mut stand_in = Command::new("sleep").arg("30").spawn().unwrap();
    claim_for(&path, stand_in.id() as i32);
    let replaced = StreamWriter::create("reused", ElemType::U8, &[4], &dir.options());
    stand_in.kill().unwrap();
    stand_in.wait().unwrap();
    assert!(replaced.unwrap().still_current());
}

#[test]
fn shapes_and_names_a_stream_cannot_hold_are_refused_before_any_file_is_made() {
    let dir = TempDir::new("bad");
    for shape in [&[][..], &[0, 4][..], &[2, 2, 2, 2][..]] {
        let e = StreamWriter::create("bad", ElemType::U8, shape, &dir.options()).unwrap_err();
        assert!(matches!(e, IsioError::Unexportable { .. }), "{e}");
    }
    for name in ["", "a/b", "..", "white space"] {
        let e = StreamWriter::create(name, ElemType::U8, &[4], &dir.options()).unwrap_err();
        assert!(matches!(e, IsioError::Name { .. }), "{e}");
    }
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0);
}

#[test]
fn readers_claim_distinct_semaphores_and_give_them_back() {
    let dir = TempDir::new("sem");
    let w = StreamWriter::create("sem", ElemType::U8, &[4], &dir.options()).unwrap();
    let a = StreamReader::open(w.path(), 3).unwrap();
    assert_eq!(a.semaphore(), 3);
    // Same process: the reference hands a process the index it already holds.
    let b = StreamReader::open(w.path(), 5).unwrap();
    assert_eq!(b.semaphore(), 3);
    drop(b);
    drop(a);
    let c = StreamReader::open(w.path(), 5).unwrap();
    assert_eq!(c.semaphore(), 5, "index 3 was given back, 5 was free");
}

#[test]
fn a_reader_waiting_for_a_post_ends_within_100ms_of_an_interrupt() {
    let dir = TempDir::new("intr");
    let w = StreamWriter::create("intr", ElemType::U8, &[4], &dir.options()).unwrap();
    let r = StreamReader::open(w.path(), 0).unwrap();
    let start = std::time::Instant::now();
    let asked = start + Duration::from_millis(200);
    let check = || std::time::Instant::now() >= asked;
    match r.wait_interruptible(shmkit::Timeout::Forever, &check) {
        Err(IsioError::Interrupted) => {}
        other => panic!("expected Interrupted, got {other:?}"),
    }
    let late = start.elapsed().saturating_sub(Duration::from_millis(200));
    assert!(
        late < Duration::from_millis(100),
        "ended {late:?} after the interrupt"
    );
    assert!(
        !r.wait(Duration::from_millis(20)).unwrap(),
        "no post: a timeout"
    );
}

/// This process's mappings of `path`: (permissions, file offset, length).
fn mappings_of(path: &Path) -> Vec<(String, u64, u64)> {
    let path = path.to_str().unwrap();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(path))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (a, b) = f[0].split_once('-').unwrap();
            let len = u64::from_str_radix(b, 16).unwrap() - u64::from_str_radix(a, 16).unwrap();
            (f[1].to_owned(), u64::from_str_radix(f[2], 16).unwrap(), len)
        })
        .collect()
}

#[test]
fn a_reader_maps_header_data_and_keywords_read_only() {
    let dir = TempDir::new("ro");
    // A frame of several pages: all but its last page must be out of the reader's reach.
    let w = StreamWriter::create("ro", ElemType::U16, &[64, 64], &dir.options()).unwrap();
    let writer_maps = mappings_of(w.path());
    let r = StreamReader::open(w.path(), 0).unwrap();
    let layout = r.parsed().layout;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let mut reader_maps = mappings_of(w.path());
    for m in &writer_maps {
        let i = reader_maps.iter().position(|x| x == m).unwrap();
        reader_maps.remove(i);
    }
    reader_maps.sort_by_key(|m| m.1);
    let whole = layout.total.div_ceil(page) * page;
    let tail_from = layout.semaphores / page * page;
    assert_eq!(
        reader_maps,
        vec![
            ("r--s".to_owned(), 0, whole),
            ("rw-s".to_owned(), tail_from, whole - tail_from),
        ],
        "the reader's mappings (writer's: {writer_maps:?}, layout: {layout:?})"
    );
    // The reader still does what the protocol has it write: claim its semaphore, wait on it.
    assert_eq!(r.semaphore(), 0);
    let mut w = w;
    let meta = FrameMeta {
        id: 1,
        ts_ns: 0,
        atime: None,
        user: [0; 5],
    };
    w.write(&vec![7u8; layout.data_len as usize], &meta);
    assert!(r.wait(Duration::from_secs(5)).unwrap());
}

// ------------------------------------------------------------ the independent peer

fn python() -> Command {
    let mut c = Command::new("python3");
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/isio_peer.py"));
    c
}

#[test]
fn an_independent_reader_accepts_the_export_frame_by_frame() {
    let dir = TempDir::new("peer-r");
    let (_n, seg) = segment("peer-r");
    let shape = [30u32, 40];
    let source = seg
        .frame_ring("cam", &FrameSpec::new(4, ElemType::U16, &shape))
        .unwrap();
    let options = ExportOptions {
        stream: dir.options(),
        max_rate: None,
    };
    let mut exporter = Exporter::new(&source, "peer_cam", &options).unwrap();
    let path = exporter.writer().path().to_owned();
    const FRAMES: u64 = 40;
    let mut peer = python()
        .args(["read", path.to_str().unwrap(), &FRAMES.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the independent reader");
    let mut out = BufReader::new(peer.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the peer claimed a semaphore");
    let stop = Arc::new(AtomicBool::new(false));
    let exporting = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            exporter.run(&move || stop.load(Ordering::Relaxed)).unwrap();
            exporter
        }
    });
    // Paced well below what a Python reader keeps up with: it must see every frame.
    publish(&source, FRAMES, Duration::from_millis(20), None);
    line.clear();
    out.read_line(&mut line).unwrap();
    let status = peer.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let exporter = exporting.join().unwrap();
    assert!(status.success(), "peer failed: {line}");
    let report: serde_json::Value = serde_json::from_str(&line).expect(&line);
    assert_eq!(report["frames"], FRAMES, "{report}");
    assert_eq!(report["bad"], 0, "{report}");
    assert_eq!(report["last_id"], FRAMES, "{report}");
    assert_eq!(report["writer_pid"], std::process::id(), "{report}");
    assert_eq!(
        report["shape"],
        serde_json::json!([40, 30]),
        "x first: {report}"
    );
    drop(exporter);
}

#[test]
fn a_stream_written_by_an_independent_writer_imports_whole() {
    let dir = TempDir::new("peer-w");
    let (_n, seg) = segment("peer-w");
    let path = dir.0.join("peer_src.im.shm");
    const FRAMES: u64 = 60;
    let mut peer = python()
        .args(["write", path.to_str().unwrap(), &FRAMES.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the independent writer");
    let mut out = BufReader::new(peer.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "created");
    let mut importer = Importer::new(&path, &seg, "from_peer", &ImportOptions::default()).unwrap();
    // The peer writes 24 × 32 u16 frames of pattern(k) with k = cnt0.
    assert_eq!(importer.ring().shape(), &[24, 32]);
    assert_eq!(importer.ring().elem(), ElemType::U16);
    let mut reader = importer.ring().reader(ReadMode::OldestFirst).unwrap();
    {
        use std::io::Write;
        writeln!(peer.stdin.as_mut().unwrap(), "go").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = 0;
    while importer.stats().last_cnt0 < FRAMES && Instant::now() < deadline {
        if let shmkit_isio::import::Step::Published(_) = importer
            .step(Timeout::After(Duration::from_millis(200)), &NoInterrupt)
            .unwrap()
        {
            let f = reader.next(Duration::from_secs(1)).unwrap();
            let cnt0 = f.user(0);
            assert_eq!(
                f.typed::<u16>().unwrap(),
                &pattern(cnt0, 24 * 32)[..],
                "frame {cnt0}"
            );
            assert!(f.user(1) > 0, "atime carried");
            seen += 1;
            use std::io::Write;
            writeln!(peer.stdin.as_mut().unwrap(), "next").unwrap();
        }
    }
    drop(peer.stdin.take()); // a peer still waiting for "next" (a failed run) ends now
    assert!(peer.wait().unwrap().success());
    let stats = importer.stats();
    assert_eq!(stats.last_cnt0, FRAMES, "{stats:?}");
    assert_eq!(stats.torn + stats.busy, 0, "{stats:?}");
    assert_eq!(seen, stats.published);
    assert_eq!(
        (stats.published, stats.missed),
        (FRAMES, 0),
        "the writer waits for each import, so every frame arrives whole: {stats:?}"
    );
}

/// A FIFO or a symbolic link planted under a stream's name (in a shared directory such as
/// `/tmp`) is refused at once: opening it as a stream, listing the directory, exporting
/// over it. Before, a FIFO hung `milk ls` (an open for reading waits for a writer) and a
/// link was followed to whatever file it named.
#[test]
fn a_fifo_or_a_symlink_under_a_stream_name_is_refused_at_once() {
    let dir = std::env::temp_dir().join(format!("shmkit-isio-planted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo.im.shm");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let real = StreamWriter::create(
        "real",
        ElemType::U16,
        &[4, 4],
        &StreamOptions {
            dir: dir.clone(),
            ..StreamOptions::default()
        },
    )
    .unwrap();
    let link = dir.join("link.im.shm");
    std::os::unix::fs::symlink(dir.join("real.im.shm"), &link).unwrap();

    // Each call runs on a thread so that a hang fails the test instead of stalling it.
    fn at_once<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{what} hung"))
    }
    for (path, found) in [(fifo.clone(), "a FIFO"), (link.clone(), "a symbolic link")] {
        let p = path.clone();
        let e = at_once("opening a planted file", move || StreamReader::open(&p, 0))
            .err()
            .unwrap_or_else(|| panic!("{} was opened as a stream", path.display()));
        assert!(
            matches!(&e, IsioError::NotAFile { found: f, .. } if *f == found),
            "{e}"
        );
    }
    let d = dir.clone();
    let listed = at_once("listing the directory", move || list(&d)).unwrap();
    let error_of = |name: &str| {
        listed
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
            .error
            .clone()
    };
    assert!(error_of("fifo").is_some_and(|e| e.contains("FIFO")));
    assert!(error_of("link").is_some_and(|e| e.contains("symbolic link")));
    assert_eq!(error_of("real"), None, "the real stream reads as one");
    drop(real);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dropping_a_writer_leaves_a_stream_re_created_under_its_name_and_no_litter() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("drop");
    let w = StreamWriter::create("kept", ElemType::U8, &[4], &dir.options()).unwrap();
    let path = w.path().to_owned();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"another process's stream").unwrap();
    let theirs = std::fs::metadata(&path).unwrap().ino();
    drop(w);
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), theirs);
    let ours = StreamWriter::create("gone", ElemType::U8, &[4], &dir.options()).unwrap();
    drop(ours);
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec!["kept.im.shm".to_owned()],
        "only their stream is left"
    );
}

#[test]
#[ignore = "needs root: gives a stream file to another user"]
fn a_stream_owned_by_another_user_is_refused_unless_that_owner_is_trusted() {
    common::require_root("giving a stream file to another user");
    let dir = TempDir::new("owner");
    let w = StreamWriter::create("planted", ElemType::U8, &[4], &dir.options()).unwrap();
    let path = w.path().to_owned();
    const NOBODY: u32 = 65534;
    std::os::unix::fs::chown(&path, Some(NOBODY), None).unwrap();
    let err = StreamReader::open(&path, 0).unwrap_err();
    assert!(
        matches!(err, IsioError::Owner { owner, .. } if owner == NOBODY),
        "{err}"
    );
    let (_n, seg) = segment("owner");
    let err = Importer::new(&path, &seg, "planted", &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, IsioError::Owner { .. }), "{err}");
    let trusting = ImportOptions {
        trusted_owners: vec![NOBODY],
        ..ImportOptions::default()
    };
    Importer::new(&path, &seg, "planted", &trusting).unwrap();
}
