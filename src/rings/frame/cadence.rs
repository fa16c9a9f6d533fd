//! A frame ring's declared cadence: the period its writer means to keep and the deadline past
//! which the next frame is late. The declaration is a shared record `RING/cadence` beside the
//! ring (it may come before the ring does, from whoever runs the loop), with two shared
//! histograms: `RING/late`, the interval before every late frame (its writer records it, see
//! [`FrameWriter::count_late`](super::FrameWriter::count_late)), and `RING/stalls`, each stall
//! a checker saw (how long the ring had been silent when it saw it; the testbed's
//! `ring_cadence` safety test records them). `shmkit watch` shows both as it shows every
//! histogram; the counts are exact, the durations within a bucket (1/16 octave).

use crate::segment::{Segment, SegmentError, SegmentObjects};
use crate::shared::{Histogram, Shared};
use std::time::Duration;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The period a frame ring's writer keeps and the deadline past which a frame is late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// The interval the writer means to publish at.
    pub period: Duration,
    /// The longest interval between two frames that is not late (at least the period).
    pub deadline: Duration,
}

/// The record `RING/cadence`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
struct CadenceRecord {
    period_ns: u64,
    deadline_ns: u64,
}

/// A ring's declared cadence and its counters.
#[derive(Debug, Clone)]
pub struct RingCadence {
    /// What was declared.
    pub cadence: Cadence,
    /// `RING/late`: the interval before each late frame, ns.
    pub late: Histogram,
    /// `RING/stalls`: each stall seen, how long the ring had been silent, ns.
    pub stalls: Histogram,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Cadence {
    /// The names of ring `ring`'s declaration and its two histograms.
    pub fn names(ring: &str) -> [String; 3] {
        [
            format!("{ring}/cadence"),
            format!("{ring}/late"),
            format!("{ring}/stalls"),
        ]
    }

    /// Declares this cadence for the frame ring named `ring` in `segment` (the ring need not
    /// exist yet). Declaring the same cadence again finds it; another one is
    /// [`SegmentError::ParamMismatch`] naming both. A zero period, or a deadline shorter than
    /// the period, is [`SegmentError::InvalidOption`].
    pub fn declare(self, segment: &Segment, ring: &str) -> Result<RingCadence, SegmentError> {
        if self.period.is_zero() || self.deadline < self.period {
            return Err(SegmentError::InvalidOption(format!(
                "a ring's cadence needs a period > 0 and a deadline >= the period, not {self:?}"
            )));
        }
        let [record, late, stalls] = Self::names(ring);
        let wanted = CadenceRecord {
            period_ns: ns(self.period),
            deadline_ns: ns(self.deadline),
        };
        let shared: Shared<CadenceRecord> = segment.shared(&record, wanted)?;
        let found = shared
            .read()
            .map_err(|e| SegmentError::InvalidOption(format!("{record:?}: {e}")))?;
        if found != wanted {
            return Err(SegmentError::ParamMismatch {
                name: record,
                detail: format!(
                    "it declares period {:?} and deadline {:?}; {:?} and {:?} were asked for",
                    Duration::from_nanos(found.period_ns),
                    Duration::from_nanos(found.deadline_ns),
                    self.period,
                    self.deadline
                ),
            });
        }
        Ok(RingCadence {
            cadence: self,
            late: segment.histogram(&late)?,
            stalls: segment.histogram(&stalls)?,
        })
    }

    /// The cadence declared for ring `ring`, with its counters (`None` when none was).
    pub fn declared(segment: &Segment, ring: &str) -> Result<Option<RingCadence>, SegmentError> {
        let [record, late, stalls] = Self::names(ring);
        let shared = match segment.open::<Shared<CadenceRecord>>(&record) {
            Ok(s) => s,
            Err(SegmentError::ObjectNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let r = shared
            .read()
            .map_err(|e| SegmentError::InvalidOption(format!("{record:?}: {e}")))?;
        // A record written by hand (or corrupt) that no declaration could have made.
        if r.period_ns == 0 || r.deadline_ns < r.period_ns {
            return Err(SegmentError::InvalidOption(format!(
                "{record:?} holds period {} ns and deadline {} ns",
                r.period_ns, r.deadline_ns
            )));
        }
        Ok(Some(RingCadence {
            cadence: Cadence {
                period: Duration::from_nanos(r.period_ns),
                deadline: Duration::from_nanos(r.deadline_ns),
            },
            late: segment.histogram(&late)?,
            stalls: segment.histogram(&stalls)?,
        }))
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::rings::{ElemType, FrameSpec};
    use crate::segment::CreateOptions;

    fn segment(tag: &str) -> Segment {
        let name = format!("shmkit-unit-cadence-{tag}-{}", std::process::id());
        let _ = Segment::unlink(&name);
        let seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
        let _ = Segment::unlink(&name);
        seg
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_declared_cadence_is_found_again_and_a_different_one_refused() {
        let seg = segment("declare");
        assert!(Cadence::declared(&seg, "cam").unwrap().is_none());
        let c = Cadence {
            period: ms(1),
            deadline: ms(3),
        };
        c.declare(&seg, "cam").unwrap();
        assert_eq!(Cadence::declared(&seg, "cam").unwrap().unwrap().cadence, c);
        c.declare(&seg, "cam").unwrap();
        let other = Cadence {
            deadline: ms(4),
            ..c
        };
        let err = other.declare(&seg, "cam").unwrap_err();
        assert!(
            matches!(&err, SegmentError::ParamMismatch { detail, .. }
                if detail.contains("3ms") && detail.contains("4ms")),
            "{err}"
        );
        for bad in [
            Cadence {
                period: Duration::ZERO,
                deadline: ms(1),
            },
            Cadence {
                period: ms(2),
                deadline: ms(1),
            },
        ] {
            assert!(matches!(
                bad.declare(&seg, "cam2"),
                Err(SegmentError::InvalidOption(_))
            ));
        }
    }

    #[test]
    fn a_writer_counts_exactly_the_frames_published_past_the_deadline() {
        let seg = segment("late");
        let ring = seg
            .frame_ring("cam", &FrameSpec::new(4, ElemType::U8, &[8]))
            .unwrap();
        let declared = Cadence {
            period: ms(5),
            deadline: ms(40),
        }
        .declare(&seg, "cam")
        .unwrap();
        let mut writer = ring.writer().unwrap();
        assert!(!writer.counts_late());
        writer.count_late(declared.cadence.deadline, declared.late.clone());
        for _ in 0..3 {
            writer.try_claim().unwrap().publish();
        }
        // The input of the test: one interval well past the deadline.
        std::thread::sleep(ms(120));
        writer.try_claim().unwrap().publish();
        writer.try_claim().unwrap().publish();
        let late = declared.late.snapshot();
        assert_eq!(late.count(), 1);
        assert!(late.max() >= 120_000_000, "{}", late.max());
        assert_eq!(declared.stalls.snapshot().count(), 0);
    }
}
