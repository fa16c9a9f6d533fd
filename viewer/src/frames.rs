//! The frame sampler and the frame messages browsers receive.
//!
//! One thread serves every ring some browser watches: at most `max_fps` times a second it asks
//! each such ring for its newest frame without waiting ([`FrameReader::latest`]), copies it
//! once into a message, releases the slot, and hands the message to every browser through a
//! `watch` channel (a shared, reference-counted buffer: no copy per browser). It never waits
//! on a ring, so a writer never waits on it, and it takes a reader role only while a browser
//! watches the ring.

use bytes::Bytes;
use shm_layout::ElemType;
use shmkit::rings::{FrameReader, FrameRing, ReadMode};
use shmkit::segment::{Segment, SegmentObjects};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The first four bytes of a frame message.
pub(crate) const FRAME_MAGIC: &[u8; 4] = b"SKF1";
/// Bytes before a frame message's name.
const HEADER: usize = 56;
/// Most dimensions a frame has.
const MAX_DIMS: usize = 4;

/// A frame as a browser receives it, in one binary WebSocket message (little-endian):
///
/// | offset | field |
/// |---|---|
/// | 0 | `SKF1` |
/// | 4 | u16 name length, u8 element type (`ElemType` number), u8 dimensions |
/// | 8 | u64 frame id |
/// | 16 | u64 publish time (CLOCK_MONOTONIC, ns) |
/// | 24 | f64 the ring's rate, Hz |
/// | 32 | u32 × 4 shape, outermost first (unused: 0) |
/// | 48 | u32 data length, u32 0 |
/// | 56 | the ring's name (UTF-8), zero-padded to a multiple of 8 |
/// | … | the frame's bytes, 8-aligned (typed arrays view them in place) |
#[derive(Debug, Clone)]
pub(crate) struct FrameMessage(pub(crate) Bytes);

/// What the sampler knows of one frame besides its bytes.
pub(crate) struct FrameInfo<'a> {
    pub(crate) ring: &'a str,
    pub(crate) elem: ElemType,
    pub(crate) shape: &'a [u32],
    pub(crate) id: u64,
    pub(crate) ts_ns: u64,
    pub(crate) rate_hz: f64,
}

impl FrameMessage {
    /// The message for `info` and its `data`.
    pub(crate) fn new(info: &FrameInfo<'_>, data: &[u8]) -> FrameMessage {
        let name = info.ring.as_bytes();
        let name_padded = name.len().div_ceil(8) * 8;
        let mut out = Vec::with_capacity(HEADER + name_padded + data.len());
        out.extend_from_slice(FRAME_MAGIC);
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.push(info.elem as u8);
        out.push(info.shape.len().min(MAX_DIMS) as u8);
        out.extend_from_slice(&info.id.to_le_bytes());
        out.extend_from_slice(&info.ts_ns.to_le_bytes());
        out.extend_from_slice(&info.rate_hz.to_le_bytes());
        for i in 0..MAX_DIMS {
            out.extend_from_slice(&info.shape.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(name);
        out.resize(HEADER + name_padded, 0);
        out.extend_from_slice(data);
        FrameMessage(Bytes::from(out))
    }

    fn u64_at(&self, at: usize) -> u64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[at..at + 8]);
        u64::from_le_bytes(word)
    }

    /// The frame's id.
    pub(crate) fn id(&self) -> u64 {
        self.u64_at(8)
    }

    /// The frame's publish time.
    pub(crate) fn ts_ns(&self) -> u64 {
        self.u64_at(16)
    }

    /// The frame's element type.
    pub(crate) fn elem(&self) -> Option<ElemType> {
        ElemType::from_raw(u32::from(self.0[6]))
    }

    /// The frame's shape.
    pub(crate) fn shape(&self) -> Vec<u32> {
        let dims = usize::from(self.0[7]).min(MAX_DIMS);
        (0..dims)
            .map(|i| {
                let at = 32 + 4 * i;
                u32::from_le_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
            })
            .collect()
    }

    /// The frame's bytes.
    pub(crate) fn data(&self) -> &[u8] {
        let name_len = usize::from(u16::from_le_bytes([self.0[4], self.0[5]]));
        &self.0[HEADER + name_len.div_ceil(8) * 8..]
    }
}

/// The newest message of each watched ring, and what went wrong reading a ring.
#[derive(Default)]
pub(crate) struct Feeds {
    feeds: Mutex<HashMap<String, watch::Sender<Option<FrameMessage>>>>,
    problems: Mutex<HashMap<String, String>>,
}

impl Feeds {
    /// Watches ring `ring`: its newest frame, as the sampler copies it.
    pub(crate) fn subscribe(&self, ring: &str) -> watch::Receiver<Option<FrameMessage>> {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        match feeds.get(ring) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(None);
                feeds.insert(ring.to_owned(), tx);
                rx
            }
        }
    }

    /// The rings some browser watches (forgetting those nobody does any more).
    fn watched(&self) -> Vec<(String, watch::Sender<Option<FrameMessage>>)> {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        feeds.retain(|_, tx| tx.receiver_count() > 0);
        feeds.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The names of the rings some browser watches.
    #[cfg(test)]
    pub(crate) fn watched_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.watched().into_iter().map(|(n, _)| n).collect();
        names.sort();
        names
    }

    /// Why rings could not be read, by ring (shown in the page).
    pub(crate) fn problems(&self) -> HashMap<String, String> {
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the problems of rings nobody watches any more.
    fn forget_problems_but(&self, watched: &dyn Fn(&String) -> bool) {
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, _| watched(name));
    }

    fn set_problem(&self, ring: &str, problem: Option<String>) {
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        match problem {
            Some(p) => problems.insert(ring.to_owned(), p),
            None => problems.remove(ring),
        };
    }
}

/// A ring being sampled.
struct Sampled {
    reader: FrameReader,
    last_id: u64,
}

/// The sampler's thread state.
pub(crate) struct Sampler {
    segment_name: String,
    /// The mapped segment and the inode of its file (a new file is a new segment).
    segment: Option<(Segment, u64)>,
    rings: HashMap<String, Sampled>,
    /// When a ring that could not be opened may be tried again.
    retry_at: HashMap<String, Instant>,
    feeds: Arc<Feeds>,
    /// Bumped after each pass that copied a frame (the browsers' sockets wait on it).
    sampled: watch::Sender<u64>,
    period: Duration,
}

impl Sampler {
    pub(crate) fn new(
        segment_name: &str,
        feeds: Arc<Feeds>,
        sampled: watch::Sender<u64>,
        max_fps: f64,
    ) -> Sampler {
        Sampler {
            segment_name: segment_name.to_owned(),
            segment: None,
            rings: HashMap::new(),
            retry_at: HashMap::new(),
            feeds,
            sampled,
            period: Duration::from_secs_f64(1.0 / max_fps),
        }
    }

    /// Samples until `stop`.
    pub(crate) fn run(mut self, stop: &AtomicBool) {
        let mut next_check = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if started >= next_check {
                self.check_segment();
                next_check = started + Duration::from_secs(1);
            }
            self.sample_once();
            std::thread::sleep(self.period.saturating_sub(started.elapsed()));
        }
    }

    /// The inode of the segment's file, if it exists.
    fn inode(&self) -> Option<u64> {
        std::fs::metadata(std::path::Path::new(shmkit::inspect::SHM_DIR).join(&self.segment_name))
            .ok()
            .map(|m| m.ino())
    }

    /// Forgets the segment (and every reader) when its file is gone or is another one.
    fn check_segment(&mut self) {
        if let Some((_, ino)) = &self.segment {
            if self.inode() != Some(*ino) {
                self.rings.clear();
                self.segment = None;
            }
        }
    }

    /// One pass over the watched rings.
    fn sample_once(&mut self) {
        let watched = self.feeds.watched();
        let is_watched = |name: &String| watched.iter().any(|(n, _)| n == name);
        self.rings.retain(|name, _| is_watched(name));
        self.retry_at.retain(|name, _| is_watched(name));
        self.feeds.forget_problems_but(&is_watched);
        let mut copied = false;
        for (name, tx) in watched {
            if !self.rings.contains_key(&name) && !self.open(&name) {
                continue;
            }
            let Some(sampled) = self.rings.get_mut(&name) else {
                continue;
            };
            match copy_newest(&name, sampled) {
                Ok(Some(message)) => {
                    tx.send_replace(Some(message));
                    copied = true;
                }
                Ok(None) => {}
                Err(e) => {
                    self.feeds.set_problem(&name, Some(e.to_string()));
                    self.rings.remove(&name);
                    self.retry_at
                        .insert(name, Instant::now() + Duration::from_secs(1));
                }
            }
        }
        if copied {
            self.sampled.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Takes a reader role in ring `name`; false (the problem noted, retried in a second)
    /// if it cannot.
    fn open(&mut self, name: &str) -> bool {
        if self.retry_at.get(name).is_some_and(|t| Instant::now() < *t) {
            return false;
        }
        let opened = self.segment().and_then(|seg| {
            seg.open::<FrameRing>(name)
                .map_err(|e| shmkit::error_chain(&e))?
                .reader(ReadMode::NewestOnly)
                .map_err(|e| format!("no reader role: {e}"))
        });
        match opened {
            Ok(reader) => {
                self.feeds.set_problem(name, None);
                self.retry_at.remove(name);
                self.rings
                    .insert(name.to_owned(), Sampled { reader, last_id: 0 });
                true
            }
            Err(problem) => {
                self.feeds.set_problem(name, Some(problem));
                self.retry_at
                    .insert(name.to_owned(), Instant::now() + Duration::from_secs(1));
                false
            }
        }
    }

    /// The segment, mapped on first use.
    fn segment(&mut self) -> Result<Segment, String> {
        if let Some((seg, _)) = &self.segment {
            return Ok(seg.clone());
        }
        let ino = self.inode();
        let seg = Segment::open(&self.segment_name).map_err(|e| shmkit::error_chain(&e))?;
        self.segment = Some((seg.clone(), ino.unwrap_or(0)));
        Ok(seg)
    }
}

/// The ring's newest frame as a message, if it is newer than the last one copied. The slot is
/// held only while its bytes are copied.
fn copy_newest(
    name: &str,
    sampled: &mut Sampled,
) -> Result<Option<FrameMessage>, shmkit::rings::RingError> {
    let ring = sampled.reader.ring().clone();
    let stats = ring.stats();
    if stats.last_id == sampled.last_id {
        return Ok(None);
    }
    let Some(frame) = sampled.reader.latest()? else {
        return Ok(None);
    };
    if frame.id() == sampled.last_id {
        return Ok(None);
    }
    let info = FrameInfo {
        ring: name,
        elem: ring.elem(),
        shape: ring.shape(),
        id: frame.id(),
        ts_ns: frame.ts_ns(),
        rate_hz: stats.rate_hz,
    };
    let message = FrameMessage::new(&info, frame.bytes());
    sampled.last_id = info.id;
    drop(frame);
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmkit::rings::FrameSpec;
    use shmkit::segment::CreateOptions;

    #[test]
    fn the_sampler_copies_the_newest_frame_reads_only_watched_rings_and_says_why_not() {
        let name = format!("shmkit-view-sampler-{}", std::process::id());
        let seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
        let ring = seg
            .frame_ring("cam", &FrameSpec::new(2, ElemType::U8, &[4, 4]))
            .unwrap();
        let mut w = ring.writer().unwrap();
        let feeds = Arc::new(Feeds::default());
        let (tx, sampled) = watch::channel(0);
        let mut sampler = Sampler::new(&name, Arc::clone(&feeds), tx, 30.0);
        sampler.sample_once();
        assert_eq!(ring.stats().total_written, 0);
        assert!(
            sampler.rings.is_empty(),
            "no reader role while nobody watches"
        );

        let mut cam = feeds.subscribe("cam");
        let missing = feeds.subscribe("nothing");
        for v in 1..=3u8 {
            let mut slot = w.try_claim().unwrap();
            slot.bytes_mut().fill(v);
            slot.publish();
        }
        sampler.sample_once();
        let m = cam.borrow_and_update().clone().expect("a frame");
        assert_eq!(
            (m.id(), m.data()),
            (3, &[3u8; 16][..]),
            "the newest, copied"
        );
        assert_eq!(*sampled.borrow(), 1);
        assert!(feeds.problems()["nothing"].contains("nothing"));
        // Its reader holds no slot between passes: the writer laps the 2-slot ring freely.
        for _ in 0..10 {
            w.try_claim()
                .expect("never blocked by the viewer")
                .publish();
        }
        sampler.sample_once();
        assert_eq!(
            cam.borrow_and_update().as_ref().map(FrameMessage::id),
            Some(13)
        );
        // Nothing new: nothing sent, nothing bumped.
        sampler.sample_once();
        assert!(!cam.has_changed().unwrap());
        assert_eq!(*sampled.borrow(), 2);

        drop((cam, missing));
        sampler.sample_once();
        assert!(sampler.rings.is_empty(), "the reader role is given back");
        assert!(feeds.problems().is_empty());
        let _ = Segment::unlink(&name);
    }

    #[test]
    fn a_segment_made_again_under_the_same_name_is_followed() {
        let name = format!("shmkit-view-again-{}", std::process::id());
        let spec = FrameSpec::new(2, ElemType::U8, &[8]);
        let publish = |seg: &Segment, v: u8| {
            let ring = seg.frame_ring("cam", &spec).unwrap();
            let mut w = ring.writer().unwrap();
            let mut slot = w.try_claim().unwrap();
            slot.bytes_mut().fill(v);
            slot.publish();
        };
        let first = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
        publish(&first, 1);
        let feeds = Arc::new(Feeds::default());
        let mut sampler = Sampler::new(&name, Arc::clone(&feeds), watch::channel(0).0, 30.0);
        let mut cam = feeds.subscribe("cam");
        sampler.sample_once();
        assert_eq!(cam.borrow_and_update().as_ref().unwrap().data(), &[1u8; 8]);
        // The bench restarts: a new segment file under the same name, the old one unlinked.
        Segment::unlink(&name).unwrap();
        drop(first);
        let second = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
        publish(&second, 2);
        sampler.check_segment();
        sampler.sample_once();
        let _ = Segment::unlink(&name);
        let m = cam
            .borrow_and_update()
            .clone()
            .expect("the new segment's frame");
        assert_eq!((m.id(), m.data()), (1, &[2u8; 8][..]));
    }

    #[test]
    fn a_message_reads_back_what_it_was_made_of_with_its_data_8_aligned() {
        let data: Vec<u8> = (0..24).collect();
        for name in ["a", "cam/frames", "dev/Camera/frames"] {
            let m = FrameMessage::new(
                &FrameInfo {
                    ring: name,
                    elem: ElemType::U16,
                    shape: &[3, 4],
                    id: 9,
                    ts_ns: 123,
                    rate_hz: 2000.0,
                },
                &data,
            );
            assert_eq!(&m.0[..4], FRAME_MAGIC);
            assert_eq!(m.id(), 9);
            assert_eq!(m.ts_ns(), 123);
            assert_eq!(m.elem(), Some(ElemType::U16));
            assert_eq!(m.shape(), vec![3, 4]);
            assert_eq!(m.data(), &data[..]);
            assert_eq!((m.0.len() - data.len()) % 8, 0);
        }
    }
}
