//! Flow control for large frames: a camera faster than the link gets its frames through at the
//! link's pace instead of collapsing.
//!
//! Zenoh drops a message under congestion (the exporter must never block on the network), and
//! a large frame is many fragments: published back to back, each new frame finds the queue
//! still full of the last one's fragments and is dropped, and a frame dropped half-sent wastes
//! what it already sent — almost nothing arrives whole. So every importing bridge acknowledges
//! each sample as it arrives (its bridge sequence, on `…/frames/<ring>/@ack/<zid>`), and
//! before taking its next frame of at least [`FLOW_MIN_BYTES`], an exporter waits until every
//! importer heard from within [`ACTIVE`] has acknowledged its previous sample, at most
//! [`MAX_WAIT`]: one large frame on the wire at a time ([`WINDOW`]), the newest one taken when
//! the link is free. Small frames, and subscribers that do not acknowledge (a plain Zenoh subscriber, a
//! bridge stopped or gone for [`ACTIVE`]), are never waited for.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Frames smaller than this are sent as they come (one ack round trip would cost more than
/// it saves).
pub const FLOW_MIN_BYTES: usize = 256 << 10;
/// Whether frames of `frame_bytes` (the ring's full frame, as its `@spec` says) are paced:
/// the exporter and every importer decide from the same number, so an importer acknowledges
/// exactly the samples its exporter waits for.
pub fn paced(frame_bytes: u64) -> bool {
    frame_bytes >= FLOW_MIN_BYTES as u64
}

/// Large frames unacknowledged at once. One: a second frame queued behind one still on a slow
/// link waits past Zenoh's fragment deadline and is dropped half-sent (measured on a link
/// shaped to 800 Mbit/s: 2 in flight delivered 8 MiB frames at 428 ms each, 1 at 163 ms).
pub const WINDOW: u64 = 1;
/// An importer silent this long no longer holds the exporter back.
pub const ACTIVE: Duration = Duration::from_secs(1);
/// The longest an exporter waits for acknowledgements before sending anyway.
pub const MAX_WAIT: Duration = Duration::from_millis(500);

/// The acknowledgements an exporter has received, by importer.
#[derive(Default)]
pub struct Acks {
    seen: Mutex<HashMap<String, (u64, Instant)>>,
    changed: Condvar,
}

impl Acks {
    /// Records that importer `who` took sample `seq` (a lower or garbled number from a peer
    /// never moves its count back).
    pub fn ack(&self, who: &str, seq: u64) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        let now = Instant::now();
        let entry = seen.entry(who.to_owned()).or_insert((seq, now));
        entry.0 = entry.0.max(seq);
        entry.1 = now;
        // A peer cannot grow this without bound: importers silent for long are forgotten.
        if seen.len() > 64 {
            seen.retain(|_, (_, at)| now.duration_since(*at) < ACTIVE);
        }
        self.changed.notify_all();
    }

    /// Waits until every active importer has acknowledged `seq`, at most `MAX_WAIT` or until
    /// `stop` says so; true if nobody was left behind.
    pub fn wait_for(&self, seq: u64, stop: &dyn Fn() -> bool) -> bool {
        let give_up = Instant::now() + MAX_WAIT;
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        loop {
            let now = Instant::now();
            let behind = seen
                .values()
                .any(|&(acked, at)| acked < seq && now.duration_since(at) < ACTIVE);
            if !behind {
                return true;
            }
            if now >= give_up || stop() {
                return false;
            }
            // Woken by each ack; the short slice re-checks `stop` and the activity clock.
            let slice = (give_up - now).min(Duration::from_millis(20));
            seen = match self.changed.wait_timeout(seen, slice) {
                Ok((guard, _)) => guard,
                Err(_) => return false,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exporter_waits_for_active_importers_only_and_never_past_its_cap() {
        let acks = Acks::default();
        let no = || false;
        assert!(acks.wait_for(5, &no), "no importer: no wait");
        acks.ack("a", 4);
        let t = Instant::now();
        assert!(!acks.wait_for(5, &no), "a is one behind");
        assert!(t.elapsed() >= MAX_WAIT && t.elapsed() < MAX_WAIT * 4);
        acks.ack("a", 5);
        acks.ack("a", 1);
        assert!(acks.wait_for(5, &no), "a lower number never moves it back");
        let t = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                acks.ack("a", 6);
            });
            assert!(acks.wait_for(6, &no), "woken by the ack");
        });
        assert!(t.elapsed() < MAX_WAIT);
        assert!(!acks.wait_for(7, &|| true), "stop ends the wait");
    }
}
