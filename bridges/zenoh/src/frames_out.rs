//! Frames out: a ring read (every frame it holds when small, newest-only when large) and
//! published on its key, with the limits a slow link needs (max rate, decimation, bytes per
//! second). Publishing drops rather than blocks under
//! congestion, and nothing is read while no remote subscriber matches, so a stalled or absent
//! reader never slows the camera. The `@spec` queryable answers what a receiver needs to
//! create a matching ring.

use crate::config::ExportRing;
use crate::error::BridgeError;
use crate::flow::{Acks, WINDOW};
use crate::header::{CopyChecksum, FrameHeader};
use crate::keys::RingKey;
use crate::spec::RemoteSpec;
use shmkit::rings::{FrameRing, ReadMode, RingError};
use shmkit::{Segment, SegmentObjects, Timeout, WaitStrategy};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

/// How often the exporter asks whether any subscriber matches.
const MATCH_CHECK: Duration = Duration::from_millis(50);

/// What an exporter has done (shared with its thread).
#[derive(Debug, Default)]
pub struct ExportCounters {
    /// Samples published.
    pub sent: AtomicU64,
    /// Frames the ring published that were not sent (overwritten before the export thread
    /// read them, passed over newest-only, refused by the limits).
    pub skipped: AtomicU64,
    /// Periods without any matching subscriber (nothing read).
    pub idle_checks: AtomicU64,
}

/// Decides which frames go out under a rate, a decimation and a byte budget.
#[derive(Debug)]
pub struct Limiter {
    min_interval: Option<Duration>,
    decimate: u32,
    bytes_per_s: Option<f64>,
    next_at: Option<Instant>,
    counter: u32,
    budget: f64,
    budget_at: Instant,
}

impl Limiter {
    /// A limiter for `e`'s limits.
    pub fn new(e: &ExportRing) -> Limiter {
        Limiter {
            min_interval: e.max_rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            decimate: e.decimate.max(1),
            bytes_per_s: e.max_bytes_per_s,
            next_at: None,
            counter: 0,
            budget: 0.0,
            budget_at: Instant::now(),
        }
    }

    /// Should a frame of `len` bytes arriving `now` be sent?
    pub fn admit(&mut self, now: Instant, len: usize) -> bool {
        self.counter = self.counter.wrapping_add(1);
        if (self.counter - 1) % self.decimate != 0 {
            return false;
        }
        if let (Some(_), Some(next)) = (self.min_interval, self.next_at) {
            if now < next {
                return false;
            }
        }
        if let Some(rate) = self.bytes_per_s {
            // A token bucket holding at most one second of budget.
            let dt = now.duration_since(self.budget_at).as_secs_f64();
            self.budget = (self.budget + dt * rate).min(rate.max(len as f64));
            self.budget_at = now;
            if self.budget < len as f64 {
                return false;
            }
            self.budget -= len as f64;
        }
        if let Some(interval) = self.min_interval {
            // Drift-free: the schedule advances by the interval unless we fell behind it.
            let base = match self.next_at {
                Some(next) if next + interval > now => next,
                _ => now,
            };
            self.next_at = Some(base + interval);
        }
        true
    }
}

/// A ring being exported; its thread stops when the bridge's stop flag is set.
pub struct FrameExport {
    /// The ring's key.
    pub key: RingKey,
    /// Its counters.
    pub counters: Arc<ExportCounters>,
    thread: Option<std::thread::JoinHandle<Result<(), BridgeError>>>,
    _spec: zenoh::query::Queryable<()>,
    _acks: zenoh::pubsub::Subscriber<()>,
}

impl FrameExport {
    /// Starts exporting `e` (a ring of a local segment) on `session` as host `host`.
    pub fn start(
        session: &zenoh::Session,
        host: &str,
        e: &ExportRing,
        stop: Arc<AtomicBool>,
    ) -> Result<FrameExport, BridgeError> {
        let key = RingKey::new(host, &e.segment, &e.ring)?;
        let segment = Segment::open(&e.segment)?;
        let ring: FrameRing = segment.open(&e.ring)?;
        let spec = serde_json::to_vec(&RemoteSpec::of(&ring.spec(), ring.max_bytes()))
            .map_err(|e| BridgeError::Config(e.to_string()))?;
        let spec_key = key.spec();
        let queryable = session
            .declare_queryable(&spec_key)
            .callback(move |query| {
                // A reply is queued, not awaited on the network: the callback does not block.
                let _ = query.reply(query.key_expr().clone(), spec.clone()).wait();
            })
            .wait()
            .map_err(BridgeError::zenoh)?;
        // Small frames are dropped under congestion: the export thread never waits on the
        // network. A large frame is many fragments, and Zenoh drops the rest of a message
        // whose fragments wait past its drop deadline (tens of ms: shorter than one 8 MiB
        // frame takes on a 1 Gbit/s link), so on a slow link every large frame would arrive
        // half-sent, that is never. Large frames therefore block the export thread — never
        // the camera, which writes its ring — for their own transfer: flow control already
        // keeps one on the wire at a time (`crate::flow`), so nothing queues behind it.
        let congestion = if crate::flow::paced(ring.max_bytes()) {
            CongestionControl::Block
        } else {
            CongestionControl::Drop
        };
        let publisher = session
            .declare_publisher(key.frames())
            .congestion_control(congestion)
            .wait()
            .map_err(BridgeError::zenoh)?;
        let acks = Arc::new(Acks::default());
        let ack_subscriber = session
            .declare_subscriber(key.acks())
            .callback({
                let acks = Arc::clone(&acks);
                move |sample| {
                    let who = sample.key_expr().as_str().rsplit('/').next().unwrap_or("");
                    let bytes = sample.payload().to_bytes();
                    if let Ok(seq) = <[u8; 8]>::try_from(&bytes[..]) {
                        acks.ack(who, u64::from_le_bytes(seq));
                    }
                }
            })
            .wait()
            .map_err(BridgeError::zenoh)?;
        let counters = Arc::new(ExportCounters::default());
        let mut limiter = Limiter::new(e);
        let strategy = if e.low_latency {
            WaitStrategy::SpinThenBlock
        } else {
            WaitStrategy::Block
        };
        let thread = std::thread::Builder::new()
            .name(format!("zenoh-out-{}", e.ring))
            .spawn({
                let counters = Arc::clone(&counters);
                move || {
                    // The segment stays mapped as long as the ring handle lives.
                    let _segment = segment;
                    export_loop(
                        &ring,
                        &publisher,
                        &mut limiter,
                        strategy,
                        &counters,
                        &acks,
                        &stop,
                    )
                }
            })
            .map_err(|e| BridgeError::Config(format!("spawning the export thread: {e}")))?;
        Ok(FrameExport {
            key,
            counters,
            thread: Some(thread),
            _spec: queryable,
            _acks: ack_subscriber,
        })
    }

    /// Waits for the thread (after the stop flag was set) and returns how it ended.
    pub fn join(mut self) -> Result<(), BridgeError> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(BridgeError::Config("the export thread panicked".into())),
            None => Ok(()),
        }
    }
}

fn export_loop(
    ring: &FrameRing,
    publisher: &zenoh::pubsub::Publisher<'_>,
    limiter: &mut Limiter,
    strategy: WaitStrategy,
    counters: &ExportCounters,
    acks: &Acks,
    stop: &AtomicBool,
) -> Result<(), BridgeError> {
    let paced = crate::flow::paced(ring.max_bytes());
    let interrupt = || stop.load(Ordering::Relaxed);
    let mut reader: Option<shmkit::rings::FrameReader> = None;
    let mut last_id = 0u64;
    let mut seq = 0u64;
    let mut total_skipped = 0u64;
    let mut next_match_check = Instant::now();
    let mut matching = false;
    while !interrupt() {
        if Instant::now() >= next_match_check {
            matching = publisher
                .matching_status()
                .wait()
                .map(|m| m.matching())
                .unwrap_or(false);
            next_match_check = Instant::now() + MATCH_CHECK;
        }
        if !matching {
            // Nobody listens: read nothing. A reader registered but unread pins no slot, so
            // it stays (an every-frame one resumes at the oldest frame the ring still holds),
            // and the frames published meanwhile count as skipped in the next sample.
            counters.idle_checks.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(MATCH_CHECK);
            continue;
        }
        if reader.is_none() {
            // Large frames newest-only, one on the wire at a time (`crate::flow`); small ones
            // every frame the ring still holds, so a burst the export thread wakes to late is
            // sent whole rather than collapsed to its newest frame. The first sample counts
            // nothing as skipped: frames from before the bridge's first subscriber were never
            // the bridge's to send.
            let mode = if paced {
                ReadMode::NewestOnly
            } else {
                ReadMode::OldestFirst
            };
            reader = Some(ring.reader(mode)?.with_strategy(strategy));
        }
        let Some(r) = reader.as_mut() else { continue };
        if paced && seq > 0 {
            // One large frame on the wire at a time: the next one, the newest, once the
            // importers have the last (see `crate::flow`).
            acks.wait_for(seq.saturating_sub(WINDOW - 1), &interrupt);
        }
        let frame = match r.next_interruptible(Timeout::After(MATCH_CHECK), &interrupt) {
            Ok(f) => f,
            // Frames overwritten before an every-frame reader got to them: the next frame's
            // id counts them as skipped.
            Err(RingError::Timeout { .. })
            | Err(RingError::Interrupted)
            | Err(RingError::Overrun { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let id = frame.id();
        let skipped_here = if last_id == 0 {
            0
        } else {
            id.saturating_sub(last_id + 1)
        };
        last_id = id;
        total_skipped += skipped_here;
        if !limiter.admit(Instant::now(), frame.len()) {
            total_skipped += 1;
            counters
                .skipped
                .fetch_add(skipped_here + 1, Ordering::Relaxed);
            continue;
        }
        counters.skipped.fetch_add(skipped_here, Ordering::Relaxed);
        let mut payload = Vec::new();
        let mut crc = CopyChecksum::new();
        crc.extend(&mut payload, frame.bytes());
        let mut user = [0u64; 5];
        for (i, u) in user.iter_mut().enumerate() {
            *u = frame.user(i);
        }
        let ts_ns = frame.ts_ns();
        drop(frame);
        seq += 1;
        let header = FrameHeader {
            elem: ring.elem(),
            shape: ring.shape().to_vec(),
            id,
            ts_ns,
            user,
            seq,
            skipped: total_skipped,
            checksum: crc.finish(),
            len: payload.len() as u64,
        };
        publisher
            .put(payload)
            .attachment(header.encode().to_vec())
            .wait()
            .map_err(BridgeError::zenoh)?;
        counters.sent.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(max_rate: Option<f64>, decimate: u32, bytes: Option<f64>) -> ExportRing {
        ExportRing {
            segment: "s".into(),
            ring: "r".into(),
            max_rate,
            decimate,
            max_bytes_per_s: bytes,
            low_latency: false,
            allow: Vec::new(),
        }
    }

    #[test]
    fn limits_admit_the_rate_the_decimation_and_the_byte_budget_they_name() {
        let t0 = Instant::now();
        let at = |i: u64| t0 + Duration::from_micros(500 * i); // a 2 kHz source
        let count = |mut l: Limiter, len: usize| (0..2000).filter(|&i| l.admit(at(i), len)).count();
        assert_eq!(count(Limiter::new(&ring(None, 1, None)), 10), 2000);
        assert_eq!(count(Limiter::new(&ring(None, 4, None)), 10), 500);
        let r = count(Limiter::new(&ring(Some(100.0), 1, None)), 10);
        assert!((95..=105).contains(&r), "100 Hz over 1 s: {r}");
        let b = count(Limiter::new(&ring(None, 1, Some(10_000.0))), 1000);
        assert!(
            (8..=12).contains(&b),
            "10 kB/s of 1 kB frames over 1 s: {b}"
        );
    }
}
