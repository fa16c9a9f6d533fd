//! Frames in: a remote ring's samples copied into a local ring created from the remote
//! `@spec`, so local readers stay zero-copy. Every sample is checked (header, size, shape,
//! checksum) before it is published; sequence gaps are counted; the remote bridge's
//! liveliness token drives the link's `up` word in the local segment ([`LinkStatus`]).

use crate::config::ImportRing;
use crate::error::BridgeError;
use crate::header::{CopyChecksum, FrameHeader};
use crate::keys::RingKey;
use crate::spec::RemoteSpec;
use crate::status::{status_name, LinkStatus};
use shmkit::rings::{FrameRing, FrameSpec, FrameWriter};
use shmkit::{Segment, Shared};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zenoh::Wait;

/// How long to wait for the remote `@spec`.
pub const SPEC_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the remote bridge for `key`'s spec.
pub fn remote_spec(session: &zenoh::Session, key: &RingKey) -> Result<RemoteSpec, BridgeError> {
    let spec_key = key.spec();
    let replies = session
        .get(&spec_key)
        .timeout(SPEC_TIMEOUT)
        .wait()
        .map_err(BridgeError::zenoh)?;
    // The first reply decides (one bridge exports a key).
    if let Ok(reply) = replies.recv() {
        match reply.result() {
            Ok(sample) => return RemoteSpec::parse(&spec_key, &sample.payload().to_bytes()),
            Err(e) => {
                return Err(BridgeError::BadSpec {
                    key: spec_key,
                    detail: format!(
                        "error reply: {}",
                        String::from_utf8_lossy(&e.payload().to_bytes())
                    ),
                })
            }
        }
    }
    Err(BridgeError::NoSpec {
        key: spec_key,
        waited_ms: SPEC_TIMEOUT.as_millis() as u64,
    })
}

struct Receiver {
    writer: FrameWriter,
    spec: FrameSpec,
    status: Shared<LinkStatus>,
    /// Frames the remote bridge skipped in the exports before its current one (a restarted
    /// bridge starts its sequence and its running count again).
    skipped_before: u64,
    /// The running skipped count of the current export's latest sample, less its value at
    /// the first sample received from that export (frames before that one are not ours to
    /// account for).
    skipped_now: u64,
    /// The running count at the first sample received from the current export.
    export_base: Option<u64>,
}

impl Receiver {
    fn last_seq(&self) -> u64 {
        self.status.read().map(|s| s.last_seq).unwrap_or(0)
    }

    /// Takes one sample: `payload` (its pieces as Zenoh holds them, `len` bytes in all) is
    /// copied straight into a claimed slot and checksummed on the way; the slot is published
    /// only if the header fits the ring and the checksum matches, else given back unpublished.
    fn take<'p>(
        &mut self,
        payload: impl Iterator<Item = &'p [u8]>,
        len: usize,
        header: Option<Result<FrameHeader, BridgeError>>,
    ) {
        let fits = match &header {
            Some(Ok(h)) => {
                h.len == len as u64
                    && h.elem == self.spec.elem
                    && h.shape == self.spec.shape
                    && len as u64 <= self.writer.ring().max_bytes()
            }
            _ => false,
        };
        let now = shmkit::clock::monotonic_ns();
        let reject = |status: &Shared<LinkStatus>| {
            let _ = status.update(|s| s.rejected = s.rejected.saturating_add(1));
        };
        let Some(Ok(h)) = header.filter(|_| fits) else {
            reject(&self.status);
            return;
        };
        let published = match self.writer.try_claim() {
            Ok(mut slot) => {
                if copy_pieces(slot.bytes_mut(), payload, len) != Some(h.checksum) {
                    // Dropped unpublished: the slot goes back empty, readers never see it.
                    drop(slot);
                    reject(&self.status);
                    return;
                }
                slot.set_len(len as u64);
                for (i, &u) in h.user.iter().enumerate() {
                    slot.set_user(i, u);
                }
                slot.publish();
                true
            }
            // Every slot held by readers (or the ring gone): counted as ring full.
            Err(_) => false,
        };
        // Every count below saturates: the numbers come from the peer, and an overflow here
        // would panic inside Zenoh's callback (or wrap) and lose every later frame.
        if h.seq <= self.last_seq() {
            // A sequence that starts again is a new export (the remote bridge restarted).
            self.skipped_before = self.skipped_before.saturating_add(self.skipped_now);
            self.skipped_now = 0;
            self.export_base = None;
            let _ = self.status.update(|s| s.last_seq = 0);
        }
        let base = *self.export_base.get_or_insert(h.skipped);
        self.skipped_now = self.skipped_now.max(h.skipped.saturating_sub(base));
        let skipped = self.skipped_before.saturating_add(self.skipped_now);
        let _ = self.status.update(|s| {
            if s.last_seq != 0 && h.seq > s.last_seq.saturating_add(1) {
                // Samples lost on the way (the publisher drops rather than blocks).
                s.gaps = s.gaps.saturating_add(h.seq - s.last_seq - 1);
            }
            s.last_seq = h.seq;
            s.remote_skipped = skipped;
            s.last_rx_ns = now;
            if published {
                s.received = s.received.saturating_add(1);
            } else {
                s.ring_full = s.ring_full.saturating_add(1);
            }
        });
    }
}

/// Copies `pieces` into the start of `dst`, checksumming on the way: their checksum if they
/// add up to exactly `len` bytes, else `None`. Nothing is written past `len`.
fn copy_pieces<'p>(
    dst: &mut [u8],
    pieces: impl Iterator<Item = &'p [u8]>,
    len: usize,
) -> Option<u64> {
    let dst = dst.get_mut(..len)?;
    let mut crc = CopyChecksum::new();
    let mut at = 0usize;
    for piece in pieces {
        let end = at.checked_add(piece.len()).filter(|&end| end <= len)?;
        crc.copy(&mut dst[at..end], piece);
        at = end;
    }
    (at == len).then(|| crc.finish())
}

/// A remote ring being imported. Dropping it undeclares the subscriptions.
pub struct FrameImport {
    /// The remote ring's key.
    pub key: RingKey,
    /// The local ring.
    pub ring: FrameRing,
    /// The link's status value in the local segment.
    pub status: Shared<LinkStatus>,
    _frames: zenoh::pubsub::Subscriber<()>,
    _liveliness: zenoh::pubsub::Subscriber<()>,
    _segment: Segment,
}

impl FrameImport {
    /// Starts importing `i`: asks the remote spec, finds or creates the local segment and
    /// ring (an existing ring of another spec is [`BridgeError::SpecMismatch`]), subscribes.
    /// Frames larger than `max_frame_bytes` (the bridge's message limit) are refused
    /// ([`BridgeError::TooLarge`]) before the local ring is sized.
    pub fn start(
        session: &zenoh::Session,
        i: &ImportRing,
        max_frame_bytes: u64,
    ) -> Result<FrameImport, BridgeError> {
        let key = RingKey::new(&i.host, &i.segment, &i.ring)?;
        let remote = remote_spec(session, &key)?;
        let frame_bytes = remote.checked_frame_bytes(&key.spec(), max_frame_bytes)?;
        let spec = remote.frame_spec(i.slots);
        let (segment, ring) = crate::local::open_ring::<FrameRing>(
            &i.local_segment,
            frame_bytes.checked_mul(u64::from(i.slots) + 1),
            &i.local_ring,
            &spec,
            spec.to_string(),
        )?;
        let status = segment.shared(&status_name(&i.local_ring), LinkStatus::default())?;
        let _ = status.update(|s| {
            *s = LinkStatus {
                kind: crate::status::LINK_FRAMES_IN,
                ..LinkStatus::default()
            }
        });
        let receiver = Arc::new(Mutex::new(Receiver {
            writer: ring.writer()?,
            spec,
            status: status.clone(),
            skipped_before: 0,
            skipped_now: 0,
            export_base: None,
        }));
        // Only an exporter of large frames waits for acknowledgements (it decides from the
        // same spec): for small ones an ack would be one more message per frame for nothing.
        let acks = if crate::flow::paced(frame_bytes) {
            Some(
                session
                    .declare_publisher(key.ack(&session.zid().to_string())?)
                    .congestion_control(zenoh::qos::CongestionControl::Drop)
                    .wait()
                    .map_err(BridgeError::zenoh)?,
            )
        } else {
            None
        };
        let frames = session
            .declare_subscriber(key.frames())
            .callback({
                let receiver = Arc::clone(&receiver);
                move |sample| {
                    let payload = sample.payload();
                    let attachment = sample.attachment().map(|a| a.to_bytes());
                    // Acknowledged on arrival, before the copy: the exporter paces on what
                    // the link delivered, and its next frame travels while this one is copied.
                    // Dropped rather than queued under congestion: the next ack says more.
                    let header = attachment.as_deref().map(FrameHeader::decode);
                    if let (Some(acks), Some(Ok(h))) = (&acks, &header) {
                        let _ = acks.put(h.seq.to_le_bytes().to_vec()).wait();
                    }
                    // Only this callback takes the lock, and nothing in it waits.
                    if let Ok(mut r) = receiver.lock() {
                        r.take(payload.slices(), payload.len(), header);
                    }
                }
            })
            .wait()
            .map_err(BridgeError::zenoh)?;
        let liveliness = crate::liveness::watch_host(
            session,
            &i.host,
            Arc::new(std::sync::atomic::AtomicBool::new(false)),
            status.clone(),
        )?;
        Ok(FrameImport {
            key,
            ring,
            status,
            _frames: frames,
            _liveliness: liveliness,
            _segment: segment,
        })
    }

    /// The link's status now.
    pub fn link(&self) -> LinkStatus {
        self.status.read().unwrap_or_default()
    }
}
