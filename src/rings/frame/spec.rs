//! What a frame ring is made of, as its users name it: the [`FrameSpec`], the pixel types a
//! frame can be viewed as, read modes, and the ring's errors.

use shm_layout::validate::{FrameGeometry, Invalid};
use shm_layout::{fnv1a_bytes, ElemType, FRAME_MAX_READERS};
use std::time::Duration;

/// Pixel types a frame can be viewed as.
pub trait Pixel: Copy + 'static {
    /// The element type this Rust type reads.
    const ELEM: ElemType;
}

macro_rules! pixel {
    ($($t:ty => $e:ident),*) => { $(impl Pixel for $t { const ELEM: ElemType = ElemType::$e; })* };
}
pixel!(u8 => U8, u16 => U16, u32 => U32, i16 => I16, i32 => I32, f32 => F32, f64 => F64);

/// The shape of a ring's frames: what a creator passes, and what an opener reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    /// Slots in the ring (2..=1024).
    pub slots: u32,
    /// Element type.
    pub elem: ElemType,
    /// Shape, outermost first (1 to 4 dimensions); the frame is `product × elem size` bytes.
    pub shape: Vec<u32>,
}

impl FrameSpec {
    /// `slots` frames of `shape` elements of `elem`.
    pub fn new(slots: u32, elem: ElemType, shape: &[u32]) -> FrameSpec {
        FrameSpec {
            slots,
            elem,
            shape: shape.to_vec(),
        }
    }

    /// The ring's layout for this spec, or why the spec is not a valid ring.
    pub(super) fn geometry(&self) -> Result<FrameGeometry, Invalid> {
        FrameGeometry::new(self.slots, self.elem, &self.shape)
    }

    /// The spec of a ring with this (validated) geometry.
    pub(super) fn of(g: &FrameGeometry) -> FrameSpec {
        FrameSpec::new(g.slots, g.elem, g.dims())
    }

    pub(super) fn fingerprint(&self) -> u64 {
        let mut words = vec![u64::from(self.slots), self.elem as u64];
        words.extend(self.shape.iter().map(|&d| u64::from(d)));
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        fnv1a_bytes(&bytes)
    }
}

impl std::fmt::Display for FrameSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let elem = format!("{:?}", self.elem).to_lowercase();
        write!(f, "{} slots of {elem} {:?}", self.slots, self.shape)
    }
}

/// Which frames `next` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Only the newest frame; frames published in between are skipped.
    NewestOnly,
    /// Every frame in order; falling more than the ring behind is an `Overrun`.
    OldestFirst,
}

/// Why a ring operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Another live process is the ring's writer.
    #[error("the ring already has a live writer (pid {pid})")]
    WriterBusy {
        /// Its pid.
        pid: u32,
    },
    /// Every slot is held by readers (or is the newest frame); the writer cannot proceed.
    #[error("all {slots} slots are held by readers")]
    AllSlotsHeld {
        /// Slots in the ring.
        slots: u32,
    },
    /// The ring already has its maximum number of readers.
    #[error("the ring already has {FRAME_MAX_READERS} readers")]
    TooManyReaders,
    /// No new frame before the deadline.
    #[error("no new frame within {waited:?}")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
    },
    /// The caller's interrupt check said stop before a new frame came.
    #[error("interrupted while waiting for a frame")]
    Interrupted,
    /// An oldest-first reader fell behind by more than the ring holds; it resumes at the
    /// oldest frame still held.
    #[error("reader fell behind: {missed} frames were overwritten before it read them")]
    Overrun {
        /// Frames lost.
        missed: u64,
    },
    /// A frame view asked for a type other than the ring's element type.
    #[error("the ring holds {ring:?} elements, not {asked:?}")]
    WrongElemType {
        /// The ring's element type.
        ring: ElemType,
        /// The type asked for.
        asked: ElemType,
    },
    /// The ring's bytes hold values no shmkit process writes.
    #[error("corrupt frame ring: {0}")]
    Corrupt(String),
}
