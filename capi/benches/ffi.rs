//! What the C API's boundary costs, beside the same operations from Rust, and the C frame hop
//! beside ImageStreamIO's.
//!
//! `c_abi_vs_rust` (one thread): a mutex lock + unlock (`rust`: a guard from `Mutex::lock`;
//! `rust_held`: the guard-free `try_acquire_free` / `try_release_fast` the C functions use;
//! `c_abi`: `shmkit_mutex_lock` + `shmkit_mutex_unlock`), and a frame's claim, publish and
//! read (`rust`: `try_claim` / `publish` / a newest-only `FrameReader::next`, whose frame
//! borrows the reader; `rust_owned_reader`: the same with an `OwnedFrameReader`, whose frames
//! own their hold as the C API's do — they may outlive the reader, several at a time; `c_abi`:
//! `shmkit_frame_writer_claim` with timeout 0 (the C spelling of `try_claim`) / `_publish` /
//! `shmkit_frame_reader_next` with timeout 0 / `shmkit_frame_release`, the hold kept in the
//! caller's `shmkit_frame`). The C functions are called through their `extern "C"` symbols
//! from this crate's rlib (no LTO: they are not inlined into the bench), as a C program calls
//! them through the shared library's PLT.
//!
//! `frame_hop` (two threads, blocking waits): one frame of 64 × 64 u16 (8 KiB) from a writer
//! to a waiting reader, half a ping-pong between two rings (`c_abi`: claim, copy the frame in,
//! publish; the reader holds it in place, reads a pixel, releases) or two ImageStreamIO
//! streams (`isio`: the reference writer's sequence — copy into the stream, counters, semaphore
//! posts — and a reader's semaphore wait and tear-checked copy out, shmkit's own
//! implementation of the format, `shmkit-isio`).

use criterion::{criterion_group, criterion_main, Criterion};
use shmkit::rings::{ElemType, FrameSpec, ReadMode};
use shmkit::{CreateOptions, Segment};
use shmkit_c::*;
use shmkit_isio::{FrameMeta, StreamOptions, StreamReader, StreamWriter};
use std::ffi::CString;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHAPE: [u32; 2] = [64, 64];
const FRAME_BYTES: usize = 64 * 64 * 2;

struct Fixture {
    name: String,
    seg: Segment,
    c_seg: *mut shmkit_segment,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let name = format!("shmkit-bench-capi-{tag}-{}", std::process::id());
        let _ = Segment::unlink(&name);
        let seg = Segment::create(&name, &CreateOptions::new(16 << 20)).expect("segment");
        let c_name = CString::new(name.clone()).expect("no NUL");
        let mut c_seg = std::ptr::null_mut();
        // SAFETY: a NUL-terminated name and a writable out-pointer.
        let s = unsafe { shmkit_segment_open(c_name.as_ptr(), &mut c_seg) };
        assert_eq!(s, shmkit_status::SHMKIT_OK);
        Fixture { name, seg, c_seg }
    }

    fn c_ring(&self, name: &str) -> *mut shmkit_frame_ring {
        let c_name = CString::new(name).expect("no NUL");
        let mut ring = std::ptr::null_mut();
        // SAFETY: a live segment handle, a NUL-terminated name, the shape's 2 values, and a
        // writable out-pointer.
        let s = unsafe {
            shmkit_frame_ring_open_or_create(
                self.c_seg,
                c_name.as_ptr(),
                8,
                shmkit_elem::SHMKIT_U16 as u32,
                SHAPE.as_ptr(),
                2,
                &mut ring,
            )
        };
        assert_eq!(s, shmkit_status::SHMKIT_OK);
        ring
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // SAFETY: the handle from `new`, not used again.
        unsafe { shmkit_segment_close(self.c_seg) };
        let _ = Segment::unlink(&self.name);
    }
}

/// A C writer and reader of one ring, the way a C program holds them (with the one frame
/// struct its loop reuses: zeroed once, emptied by every release).
struct CEnds {
    writer: *mut shmkit_frame_writer,
    reader: *mut shmkit_frame_reader,
    frame: std::cell::UnsafeCell<shmkit_frame>,
}

impl CEnds {
    fn new(ring: *mut shmkit_frame_ring) -> CEnds {
        let (mut writer, mut reader) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: a live ring handle and writable out-pointers.
        unsafe {
            assert_eq!(
                shmkit_frame_writer_new(ring, &mut writer),
                shmkit_status::SHMKIT_OK
            );
            assert_eq!(
                shmkit_frame_reader_new(ring, shmkit_read_mode::SHMKIT_NEWEST as u32, &mut reader),
                shmkit_status::SHMKIT_OK
            );
        }
        CEnds {
            writer,
            reader,
            // SAFETY: a zeroed `shmkit_frame` is the documented empty state.
            frame: std::cell::UnsafeCell::new(unsafe { std::mem::zeroed() }),
        }
    }

    /// Claims (waiting up to `timeout_ns`), copies `src` in (or only stamps a byte when `src`
    /// is empty), publishes.
    fn publish(&self, timeout_ns: i64, src: &[u8], stamp: u8) {
        let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
        // SAFETY: the writer is live and used by this thread only; `data` is the claimed
        // slot's buffer of `size >= src.len()` bytes until publish.
        unsafe {
            assert_eq!(
                shmkit_frame_writer_claim(self.writer, timeout_ns, &mut data, &mut size),
                shmkit_status::SHMKIT_OK
            );
            if src.is_empty() {
                *data = stamp;
            } else {
                std::ptr::copy_nonoverlapping(src.as_ptr(), data, src.len());
            }
            assert_eq!(
                shmkit_frame_writer_publish(self.writer, std::ptr::null_mut()),
                shmkit_status::SHMKIT_OK
            );
        }
    }

    /// Takes the next frame (waiting up to `timeout_ns`), reads its first byte, releases it.
    fn read(&self, timeout_ns: i64) -> u8 {
        let frame = self.frame.get();
        // SAFETY: the reader and the frame struct are used by this thread only (`CEnds` is
        // not `Sync`); the struct is empty (zeroed, or released by the previous read).
        unsafe {
            assert_eq!(
                shmkit_frame_reader_next(self.reader, timeout_ns, frame),
                shmkit_status::SHMKIT_OK
            );
            let first = *(*frame).data;
            shmkit_frame_release(frame);
            first
        }
    }
}

impl Drop for CEnds {
    fn drop(&mut self) {
        // SAFETY: the handles from `new`, not used again.
        unsafe {
            shmkit_frame_reader_free(self.reader);
            shmkit_frame_writer_free(self.writer);
        }
    }
}

fn c_abi_vs_rust(c: &mut Criterion) {
    let mut g = c.benchmark_group("c_abi_vs_rust");
    let fx = Fixture::new("same-thread");

    let m = fx.seg.mutex("m").expect("mutex");
    g.bench_function("mutex_lock_unlock/rust", |b| {
        b.iter(|| {
            let guard = m
                .lock(shmkit::DEFAULT_LOCK_TIMEOUT)
                .expect("lock")
                .recover_with(|_| {});
            black_box(&guard);
        })
    });
    g.bench_function("mutex_lock_unlock/rust_held", |b| {
        b.iter(|| {
            black_box(m.try_acquire_free());
            black_box(m.try_release_fast());
        })
    });
    let name = CString::new("m").expect("no NUL");
    let mut cm = std::ptr::null_mut();
    // SAFETY: a live segment, a NUL-terminated name, a writable out-pointer.
    let opened = unsafe { shmkit_mutex_open(fx.c_seg, name.as_ptr(), &mut cm) };
    assert_eq!(opened, shmkit_status::SHMKIT_OK);
    g.bench_function("mutex_lock_unlock/c_abi", |b| {
        b.iter(|| {
            // SAFETY: a live mutex handle, locked and unlocked by this thread.
            unsafe {
                black_box(shmkit_mutex_lock(cm, -1));
                black_box(shmkit_mutex_unlock(cm));
            }
        })
    });
    // SAFETY: the handle from above, not used again.
    unsafe { shmkit_mutex_free(cm) };

    let ring = fx
        .seg
        .frame_ring("rust", &FrameSpec::new(8, ElemType::U16, &SHAPE))
        .expect("ring");
    let mut writer = ring.writer().expect("writer");
    let mut reader = ring.reader(ReadMode::NewestOnly).expect("reader");
    let mut k = 0u8;
    g.bench_function("frame_claim_publish_read/rust", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            let mut slot = writer.try_claim().expect("claim");
            slot.bytes_mut()[0] = k;
            slot.publish();
            let frame = reader.next(Duration::ZERO).expect("frame");
            assert_eq!(black_box(frame.bytes()[0]), k);
        })
    });
    let owned_ring = fx
        .seg
        .frame_ring("owned", &FrameSpec::new(8, ElemType::U16, &SHAPE))
        .expect("ring");
    let mut owned_writer = owned_ring.writer().expect("writer");
    let mut owned = owned_ring
        .reader(ReadMode::NewestOnly)
        .expect("reader")
        .into_owned();
    g.bench_function("frame_claim_publish_read/rust_owned_reader", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            let mut slot = owned_writer.try_claim().expect("claim");
            slot.bytes_mut()[0] = k;
            slot.publish();
            let frame = owned.next(Duration::ZERO).expect("frame");
            assert_eq!(black_box(frame.bytes()[0]), k);
        })
    });
    let ends = CEnds::new(fx.c_ring("c"));
    g.bench_function("frame_claim_publish_read/c_abi", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            // A claim that does not wait, as `try_claim` above (and the C camera's).
            ends.publish(0, &[], k);
            assert_eq!(black_box(ends.read(0)), k);
        })
    });
    g.finish();
}

/// Half the time of `iters` round trips made by `round_trip`.
fn half_round_trips(iters: u64, mut round_trip: impl FnMut(u64)) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        round_trip(i);
    }
    start.elapsed() / 2
}

fn frame_hop(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_hop");
    let fx = Fixture::new("hop");
    let frame = vec![7u8; FRAME_BYTES];

    // C: the main thread owns ping's writer and pong's reader, the echo thread ping's reader
    // and pong's writer, as two C threads would.
    let ping_w = CEnds::new(fx.c_ring("ping"));
    let pong_w = CEnds::new(fx.c_ring("pong"));
    // Split the roles: the echo thread reads ping and writes pong.
    let stop = Arc::new(AtomicBool::new(false));
    let (ping_reader, pong_writer) = (ping_w.reader, pong_w.writer);
    struct EchoEnds(*mut shmkit_frame_reader, *mut shmkit_frame_writer);
    // SAFETY: only the echo thread uses these two handles until it is joined.
    unsafe impl Send for EchoEnds {}
    let ends = EchoEnds(ping_reader, pong_writer);
    let echo = std::thread::spawn({
        let stop = Arc::clone(&stop);
        let frame = frame.clone();
        move || {
            let ends = ends;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: a zeroed frame is empty; this thread alone uses `ends`.
                let mut f: shmkit_frame = unsafe { std::mem::zeroed() };
                // SAFETY: as above.
                let s = unsafe { shmkit_frame_reader_next(ends.0, 100_000_000, &mut f) };
                if s != shmkit_status::SHMKIT_OK {
                    continue;
                }
                // SAFETY: a held frame of FRAME_BYTES bytes, released once.
                let stamp = unsafe {
                    let stamp = *f.data;
                    shmkit_frame_release(&mut f);
                    stamp
                };
                let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
                // SAFETY: this thread alone uses pong's writer; the slot holds FRAME_BYTES.
                unsafe {
                    assert_eq!(
                        shmkit_frame_writer_claim(ends.1, -1, &mut data, &mut size),
                        shmkit_status::SHMKIT_OK
                    );
                    std::ptr::copy_nonoverlapping(frame.as_ptr(), data, FRAME_BYTES);
                    *data = stamp;
                    shmkit_frame_writer_publish(ends.1, std::ptr::null_mut());
                }
            }
        }
    });
    let mut k = 0u8;
    let mut src = frame.clone();
    g.bench_function("c_abi", |b| {
        b.iter_custom(|iters| {
            half_round_trips(iters, |_| {
                k = k.wrapping_add(1);
                src[0] = k;
                ping_w.publish(-1, &src, 0);
                assert_eq!(pong_w.read(-1), k);
            })
        })
    });
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("echo thread");
    drop(ping_w);
    drop(pong_w);

    // ImageStreamIO: the same ping-pong over two streams.
    let dir = std::env::temp_dir().join(&fx.name);
    std::fs::create_dir_all(&dir).expect("stream directory");
    let options = StreamOptions {
        dir: dir.clone(),
        ..StreamOptions::default()
    };
    let mut ping_stream =
        StreamWriter::create("ping", ElemType::U16, &SHAPE, &options).expect("ping stream");
    let mut pong_stream =
        StreamWriter::create("pong", ElemType::U16, &SHAPE, &options).expect("pong stream");
    let mut ping_reader = StreamReader::open(ping_stream.path(), 0).expect("ping reader");
    let mut pong_reader = StreamReader::open(pong_stream.path(), 1).expect("pong reader");
    let stop = Arc::new(AtomicBool::new(false));
    let echo = std::thread::spawn({
        let stop = Arc::clone(&stop);
        let frame = frame.clone();
        move || {
            let mut buf = vec![0u8; FRAME_BYTES];
            let mut reply = frame;
            while !stop.load(Ordering::Relaxed) {
                if !ping_reader.wait(Duration::from_millis(100)).expect("wait") {
                    continue;
                }
                ping_reader.copy_frame(&mut buf).expect("copy");
                reply[0] = buf[0];
                pong_stream.write(&reply, &meta());
            }
        }
    });
    let mut buf = vec![0u8; FRAME_BYTES];
    g.bench_function("isio", |b| {
        b.iter_custom(|iters| {
            half_round_trips(iters, |_| {
                k = k.wrapping_add(1);
                src[0] = k;
                ping_stream.write(&src, &meta());
                assert!(pong_reader.wait(Duration::from_secs(5)).expect("wait"));
                pong_reader.copy_frame(&mut buf).expect("copy");
                assert_eq!(buf[0], k);
            })
        })
    });
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("echo thread");
    let _ = std::fs::remove_dir_all(&dir);
    g.finish();
}

fn meta() -> FrameMeta {
    FrameMeta {
        id: 0,
        ts_ns: 0,
        atime: None,
        user: [0; 5],
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = c_abi_vs_rust, frame_hop
}
criterion_main!(benches);
