//! The bridge beside bare Zenoh, on loopback TCP, in one run.
//!
//! Two bridges ([`Bridge::start`], each its own Zenoh session, peer mode, one connected to the
//! other's `tcp/127.0.0.1` listener) carry a frame ring and a command ring between two
//! segments; two bare Zenoh sessions of the same configuration, on another port, carry the
//! same payloads with a publisher (congestion control Drop, as the bridge's) and a queryable.
//!
//! - `latency/{bridge,zenoh}/SIZE`: one frame at a time, from "published" (a ring publish /
//!   a `put`) to "received" (a ring reader's `next` returns / the subscriber's callback has
//!   handed the sample to the waiting thread). The bridge's path: export thread wakes, copies
//!   and checksums, puts; the far bridge's callback checks, copies into a slot, publishes.
//! - `throughput/{bridge,zenoh}/SIZE`: frames streamed with up to 4 in flight; an iteration
//!   is one frame received whole, so criterion's bytes/s is the delivered payload rate.
//!   Frames passed over (newest-only) or dropped under congestion are counted and printed.
//! - `strict/{bridge,zenoh}/SIZE` (1 MiB, 8 MiB): a camera faster than the link: the
//!   bridge's source publishes the instant the exporter has taken its previous frame (polling
//!   every 50 µs, as a camera would not spin on the bridge), the bare publisher puts back to
//!   back; an iteration is one frame delivered whole.
//! - `command/{bridge,zenoh}`: a 64-byte call answered with its bytes: a local ring call
//!   through both bridges to a server thread on the far ring, beside a bare `get` answered by
//!   a queryable callback.
//!
//! `cargo bench --bench bridge` (in `bridges/zenoh`); sizes 64 B … 8 MiB.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmkit::rings::{CommandRing, CommandSpec, ElemType, FrameRing, FrameSpec, ReadMode};
use shmkit::{CreateOptions, Segment, SegmentObjects};
use shmkit_zenoh::{Bridge, BridgeConfig, ExportCommands, ExportRing, ImportCommands, ImportRing};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

const SIZES: [usize; 5] = [64, 4 << 10, 64 << 10, 1 << 20, 8 << 20];
const WINDOW: u64 = 4;
/// How long the loops wait for an arrival before they take what was on the way as lost
/// (counted and printed, not timed).
const STALL: Duration = Duration::from_millis(200);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

fn config(host: &str, listen: Option<&str>, connect: Option<&str>) -> BridgeConfig {
    BridgeConfig {
        host: host.into(),
        listen: listen.into_iter().map(String::from).collect(),
        connect: connect.into_iter().map(String::from).collect(),
        // Loopback between two bridges of this process: the benchmark measures the bridge.
        insecure: true,
        ..BridgeConfig::default()
    }
}

/// The newest value a receiver has seen, and a way to wait for one.
#[derive(Default)]
struct Arrivals {
    last: Mutex<u64>,
    changed: Condvar,
    count: AtomicU64,
}

impl Arrivals {
    fn arrived(&self, seq: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().expect("arrivals lock");
        *last = (*last).max(seq);
        self.changed.notify_all();
    }

    /// Waits until a value ≥ `seq` arrived (false after `limit`).
    fn wait_within(&self, seq: u64, limit: Duration) -> bool {
        let last = self.last.lock().expect("arrivals lock");
        let (last, _) = self
            .changed
            .wait_timeout_while(last, limit, |l| *l < seq)
            .expect("arrivals lock");
        *last >= seq
    }
}

/// Two bare sessions: a publisher and a subscriber on `bench/frames`, a queryable on
/// `bench/cmd` (answering with the request's bytes).
struct Bare {
    tx: zenoh::Session,
    _rx: zenoh::Session,
    publisher: zenoh::pubsub::Publisher<'static>,
    arrivals: Arc<Arrivals>,
    _subscriber: zenoh::pubsub::Subscriber<()>,
    _queryable: zenoh::query::Queryable<()>,
}

impl Bare {
    fn new() -> Bare {
        let ep = format!("tcp/127.0.0.1:{}", free_port());
        let rx = zenoh::open(config("bare-rx", Some(&ep), None).zenoh().expect("config"))
            .wait()
            .expect("session");
        let tx = zenoh::open(config("bare-tx", None, Some(&ep)).zenoh().expect("config"))
            .wait()
            .expect("session");
        let arrivals = Arc::new(Arrivals::default());
        let subscriber = rx
            .declare_subscriber("bench/frames")
            .callback({
                let arrivals = Arc::clone(&arrivals);
                move |sample| {
                    // The sequence number is the payload's first 8 bytes.
                    let bytes = sample.payload().to_bytes();
                    let mut seq = [0u8; 8];
                    seq.copy_from_slice(&bytes[..8]);
                    arrivals.arrived(u64::from_le_bytes(seq));
                }
            })
            .wait()
            .expect("subscriber");
        let queryable = rx
            .declare_queryable("bench/cmd")
            .callback(|query| {
                let payload = query.payload().map(|p| p.to_bytes().into_owned());
                let _ = query
                    .reply(query.key_expr().clone(), payload.unwrap_or_default())
                    .wait();
            })
            .wait()
            .expect("queryable");
        let publisher = tx
            .declare_publisher("bench/frames")
            .congestion_control(CongestionControl::Drop)
            .wait()
            .expect("publisher");
        let bare = Bare {
            tx,
            _rx: rx,
            publisher,
            arrivals,
            _subscriber: subscriber,
            _queryable: queryable,
        };
        // Wait until a sample goes through: the sessions have met.
        let mut seq = 0;
        loop {
            seq += 1;
            bare.publisher
                .put(seq_payload(seq, 64))
                .wait()
                .expect("put");
            let last = *bare.arrivals.last.lock().expect("lock");
            if last > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bare
    }

    fn next_seq(&self) -> u64 {
        *self.arrivals.last.lock().expect("lock") + 1
    }
}

fn seq_payload(seq: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    v[..8].copy_from_slice(&seq.to_le_bytes());
    v
}

/// Two bridges: hostA exports segment A's `cam` (one per size) and `dm`; hostB imports them.
struct Bridged {
    a: Option<Bridge>,
    b: Option<Bridge>,
    names: (String, String),
    rings: Vec<(FrameRing, FrameRing)>,
    local_dm: CommandRing,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl Bridged {
    fn new() -> Bridged {
        let names = (
            format!("shmkit-bench-zb-a-{}", std::process::id()),
            format!("shmkit-bench-zb-b-{}", std::process::id()),
        );
        let _ = Segment::unlink(&names.0);
        let _ = Segment::unlink(&names.1);
        let seg = Segment::create(&names.0, &CreateOptions::new(160 << 20)).expect("segment");
        let mut source = Vec::new();
        for size in SIZES {
            let ring = seg
                .frame_ring(
                    &format!("cam{size}"),
                    &FrameSpec::new(8, ElemType::U8, &[size as u32]),
                )
                .expect("ring");
            source.push(ring);
        }
        let dm = seg
            .command_ring(
                "dm",
                &CommandSpec {
                    slots: 8,
                    max_request: 4096,
                    max_reply: 4096,
                },
            )
            .expect("command ring");
        let stop = Arc::new(AtomicBool::new(false));
        let server = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let server = dm.server().expect("server");
                let interrupt = || stop.load(Ordering::Relaxed);
                while !interrupt() {
                    if let Ok(req) = server.recv_interruptible(
                        shmkit::Timeout::After(Duration::from_millis(50)),
                        &interrupt,
                    ) {
                        let echo = req.bytes().to_vec();
                        let _ = req.reply(&echo);
                    }
                }
            }
        });
        let ep = format!("tcp/127.0.0.1:{}", free_port());
        let mut ca = config("hostA", Some(&ep), None);
        let mut cb = config("hostB", None, Some(&ep));
        for size in SIZES {
            ca.export.push(ExportRing {
                segment: names.0.clone(),
                ring: format!("cam{size}"),
                max_rate: None,
                decimate: 1,
                max_bytes_per_s: None,
                // The opt-in low-latency wait (its CPU cost is in the closing note).
                low_latency: false,
                allow: Vec::new(),
            });
            cb.import.push(ImportRing {
                host: "hostA".into(),
                segment: names.0.clone(),
                ring: format!("cam{size}"),
                local_segment: names.1.clone(),
                local_ring: format!("cam{size}"),
                slots: 8,
                peer: None,
            });
        }
        ca.export_commands.push(ExportCommands {
            segment: names.0.clone(),
            ring: "dm".into(),
            workers: 4,
            max_call_ms: shmkit_zenoh::config::default_max_call_ms(),
            allow: Vec::new(),
        });
        cb.import_commands.push(ImportCommands {
            host: "hostA".into(),
            segment: names.0.clone(),
            ring: "dm".into(),
            local_segment: names.1.clone(),
            local_ring: "dm".into(),
            workers: 4,
            peer: None,
        });
        // Segment B holds every imported ring: made here at its full size (an importer
        // creating it would size it for the first ring alone).
        let _b_segment =
            Segment::create(&names.1, &CreateOptions::new(160 << 20)).expect("segment B");
        let a = Bridge::start(ca).expect("bridge A");
        let b = Bridge::start(cb).expect("bridge B");
        let local = Segment::open(&names.1).expect("segment B");
        let rings = source
            .into_iter()
            .map(|s| {
                let name = format!("cam{}", s.max_bytes());
                (s, local.open(&name).expect("imported ring"))
            })
            .collect();
        let local_dm = local.open("dm").expect("imported command ring");
        Bridged {
            a: Some(a),
            b: Some(b),
            names,
            rings,
            local_dm,
            stop,
            server: Some(server),
        }
    }
}

impl Drop for Bridged {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(b) = self.b.take() {
            let _ = b.stop();
        }
        if let Some(a) = self.a.take() {
            let _ = a.stop();
        }
        if let Some(s) = self.server.take() {
            let _ = s.join();
        }
        let _ = Segment::unlink(&self.names.0);
        let _ = Segment::unlink(&self.names.1);
    }
}

/// A source ring's writer numbering its frames in user word 0 (the imported ring numbers
/// its frames itself; the user words travel) and in the frame's first 8 bytes.
struct Source {
    writer: shmkit::rings::FrameWriter,
    seq: u64,
}

impl Source {
    /// Fills the next frame (the whole buffer is the frame: its first 8 bytes the number, the
    /// rest as the slot holds them, as a camera's DMA would leave them), then publishes it.
    /// Returns its number and the instant just before the publish.
    fn publish(&mut self) -> (u64, Instant) {
        self.seq += 1;
        let mut slot = self.writer.try_claim().expect("a free slot");
        slot.bytes_mut()[..8].copy_from_slice(&self.seq.to_le_bytes());
        slot.set_user(0, self.seq);
        let t0 = Instant::now();
        slot.publish();
        (self.seq, t0)
    }
}

/// How often the strict loop's source looks whether the exporter has taken its frame.
const POLL: Duration = Duration::from_micros(50);

/// The longest one strict-loop sample may run (a collapsed link delivers almost nothing).
const STRICT_CAP: Duration = Duration::from_secs(30);

/// The strict loop: the source publishes the instant the exporter has taken its previous
/// frame (always one frame ahead, as a camera faster than the link), the bare publisher puts
/// back to back; one iteration is one frame *delivered* whole. A sample that reaches
/// `STRICT_CAP` first reports its time per delivered frame, extrapolated.
#[allow(clippy::too_many_arguments)]
fn strict_loop(
    c: &mut Criterion,
    bridged: &Bridged,
    bare: &Bare,
    i: usize,
    size: usize,
    writer: &mut Source,
    taken: &dyn Fn() -> u64,
    payload: &[u8],
) {
    let import = &bridged.b.as_ref().expect("bridge B").imports[i];
    let mut group = c.benchmark_group("strict");
    group.throughput(Throughput::Bytes(size as u64));
    let (mut published, mut delivered) = (0u64, 0u64);
    // The exporter's count at which the source's last frame has been taken: kept across
    // samples, so a sample never publishes over a frame the last one left untaken (the
    // exporter would pass it over, and each pass-over, counted as taken, would let the source
    // publish twice per frame sent from then on).
    let mut next_at = taken();
    group.bench_function(BenchmarkId::new("bridge", size), |b| {
        b.iter_custom(|iters| {
            let start = import.link().received;
            let t0 = Instant::now();
            let mut got = 0;
            while got < iters && t0.elapsed() < STRICT_CAP {
                let now_taken = taken();
                if now_taken >= next_at {
                    next_at = now_taken + 1;
                    writer.publish();
                    published += 1;
                } else {
                    // A camera does not spin on the bridge: polled, it leaves the CPU to the
                    // copies and the network stack.
                    std::thread::sleep(POLL);
                }
                got = import.link().received - start;
            }
            delivered += got;
            t0.elapsed().mul_f64(iters as f64 / got.max(1) as f64)
        })
    });
    let (mut bare_published, mut bare_delivered) = (0u64, 0u64);
    group.bench_function(BenchmarkId::new("zenoh", size), |b| {
        b.iter_custom(|iters| {
            let count = || bare.arrivals.count.load(Ordering::Relaxed);
            let start = count();
            let mut seq = bare.next_seq() + 1_000_000;
            let t0 = Instant::now();
            while count() - start < iters && t0.elapsed() < STRICT_CAP {
                seq += 1;
                let mut p = payload.to_vec();
                p[..8].copy_from_slice(&seq.to_le_bytes());
                bare.publisher.put(p).wait().expect("put");
                bare_published += 1;
            }
            let got = count() - start;
            bare_delivered += got;
            t0.elapsed().mul_f64(iters as f64 / got.max(1) as f64)
        })
    });
    group.finish();
    let link = import.link();
    eprintln!(
        "strict {size}: bridge {delivered} delivered of {published} published \
         (link totals: {} lost on the way, {} passed over by the exporter, {} ring full), \
         zenoh {bare_delivered} of {bare_published}",
        link.gaps, link.remote_skipped, link.ring_full
    );
}

fn frames(c: &mut Criterion) {
    let bridged = Bridged::new();
    let bare = Bare::new();
    for (i, size) in SIZES.into_iter().enumerate() {
        let (source, imported) = &bridged.rings[i];
        let mut writer = Source {
            writer: source.writer().expect("writer"),
            seq: 0,
        };
        let mut reader = imported.reader(ReadMode::NewestOnly).expect("reader");
        // Until the export sees the import's subscriber, frames are not sent. Each frame is
        // given 2 s to arrive before the next: a newer 8 MiB frame published while the last
        // is still on the wire would only make Zenoh drop it (on a loaded machine, always).
        let started = Instant::now();
        'warm: loop {
            let (id, _) = writer.publish();
            let give_up = Instant::now() + Duration::from_secs(2);
            while Instant::now() < give_up {
                if reader
                    .next(Duration::from_millis(100))
                    .is_ok_and(|f| f.user(0) == id && f.bytes().len() == size)
                {
                    break 'warm;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no frames");
        }

        let mut group = c.benchmark_group("latency");
        group.throughput(Throughput::Bytes(size as u64));
        let mut lost = 0u64;
        group.bench_function(BenchmarkId::new("bridge", size), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let (id, t0) = writer.publish();
                    match reader.next(STALL) {
                        Ok(f) if f.user(0) == id && f.bytes().len() == size => {
                            total += t0.elapsed();
                            done += 1;
                        }
                        // Lost on the way: counted, not timed (its wait is no latency).
                        _ => lost += 1,
                    }
                }
                total
            })
        });
        let payload = seq_payload(1, size);
        let mut bare_lost = 0u64;
        group.bench_function(BenchmarkId::new("zenoh", size), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let seq = bare.next_seq();
                    let mut p = payload.clone();
                    p[..8].copy_from_slice(&seq.to_le_bytes());
                    let t0 = Instant::now();
                    bare.publisher.put(p).wait().expect("put");
                    if bare.arrivals.wait_within(seq, STALL) {
                        total += t0.elapsed();
                        done += 1;
                    } else {
                        bare_lost += 1;
                    }
                }
                total
            })
        });
        group.finish();
        eprintln!("latency {size}: lost bridge {lost}, zenoh {bare_lost}");

        // Throughput counts frames *received*: one iteration is one frame arriving whole,
        // with up to WINDOW frames on the way, for both. The bare publisher puts its next
        // frame as soon as its `put` returns. The bridge's source publishes small frames as
        // fast (the exporter reads every frame the ring holds), and a large one only once the
        // exporter has taken the previous one: it reads those newest-only, one on the wire
        // at a time (`shmkit_zenoh::flow`), so a burst would be passed over, not sent. The
        // exporter's count starts from each sample's first look, so a large frame still on
        // the way from the sample before lets the source run ahead and the exporter pass one
        // over: "received of published" below says how many. A frame lost on the way is
        // waited for STALL, then given up on.
        let paced = shmkit_zenoh::flow::paced(size as u64);
        let export = &bridged.a.as_ref().expect("bridge A").exports[i];
        assert!(export.key.frames().ends_with(&format!("/cam{size}")));
        let taken = || {
            export.counters.sent.load(Ordering::Acquire)
                + export.counters.skipped.load(Ordering::Acquire)
        };
        // Every frame that arrives is read (a newest-only reader would pass over those that
        // arrive together); WINDOW is well inside the ring, so it never overruns.
        let mut reader = imported
            .reader(ReadMode::OldestFirst)
            .expect("an every-frame reader");
        let mut group = c.benchmark_group("throughput");
        group.throughput(Throughput::Bytes(size as u64));
        let (mut sent, mut got, mut stalls) = (0u64, 0u64, 0u64);
        group.bench_function(BenchmarkId::new("bridge", size), |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                let (mut newest, mut received) = (writer.seq, 0);
                let mut published = taken();
                while received < iters {
                    let in_flight = writer.seq - newest;
                    let now_taken = taken();
                    if in_flight < WINDOW && (!paced || in_flight == 0 || now_taken >= published) {
                        writer.publish();
                        published += 1;
                        sent += 1;
                        continue;
                    }
                    if paced && now_taken < published && in_flight < WINDOW {
                        // The exporter is taking it: its wake-up is microseconds away.
                        std::thread::yield_now();
                        continue;
                    }
                    match reader.next(STALL) {
                        Ok(f) => {
                            assert_eq!(f.bytes().len(), size, "a whole frame");
                            newest = f.user(0);
                            received += 1;
                            got += 1;
                        }
                        Err(_) => {
                            stalls += 1;
                            newest = writer.seq;
                        }
                    }
                }
                t0.elapsed()
            })
        });
        let (mut bare_sent, mut bare_got, mut bare_stalls) = (0u64, 0u64, 0u64);
        group.bench_function(BenchmarkId::new("zenoh", size), |b| {
            b.iter_custom(|iters| {
                let count = || bare.arrivals.count.load(Ordering::Relaxed);
                let mut seq = bare.next_seq() - 1;
                let mut newest = seq;
                let start = count();
                let t0 = Instant::now();
                while count() - start < iters {
                    if seq < newest + WINDOW {
                        seq += 1;
                        // The copy into a message is the bridge's too (ring slot → sample).
                        let mut p = payload.clone();
                        p[..8].copy_from_slice(&seq.to_le_bytes());
                        bare.publisher.put(p).wait().expect("put");
                        bare_sent += 1;
                        continue;
                    }
                    if bare.arrivals.wait_within(newest + 1, STALL) {
                        newest = *bare.arrivals.last.lock().expect("lock");
                    } else {
                        bare_stalls += 1;
                        newest = seq;
                    }
                }
                bare_got += count() - start;
                t0.elapsed()
            })
        });
        group.finish();
        eprintln!(
            "throughput {size}: bridge {got} received of {sent} published ({stalls} stalls), \
             zenoh {bare_got} of {bare_sent} ({bare_stalls} stalls)"
        );

        if size >= 1 << 20 {
            strict_loop(c, &bridged, &bare, i, size, &mut writer, &taken, &payload);
        }
    }

    let mut group = c.benchmark_group("command");
    let request = [7u8; 64];
    group.bench_function("bridge", |b| {
        b.iter(|| {
            let reply = bridged
                .local_dm
                .call(&request, Duration::from_secs(5))
                .expect("a remote call");
            assert_eq!(reply.len(), 64);
        })
    });
    group.bench_function("zenoh", |b| {
        b.iter(|| {
            let replies = bare
                .tx
                .get("bench/cmd")
                .payload(request.to_vec())
                .timeout(Duration::from_secs(5))
                .wait()
                .expect("get");
            let reply = replies.recv().expect("a reply");
            let sample = reply.result().expect("an answer");
            assert_eq!(sample.payload().len(), 64);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = frames
}
criterion_main!(benches);
