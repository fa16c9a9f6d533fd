//! The frame ring: one writer, many readers, frames read in place.
//!
//! Block layout: [`FrameRingHeader`] (256 bytes), then `slots` × [`FrameSlotMeta`] (64 bytes
//! each), then `slots` frames of `frame_stride` bytes each, starting at `frame_offset`.
//!
//! Each slot's `word` packs who may touch the frame:
//!
//! | bits   | field   | meaning                                                     |
//! |--------|---------|-------------------------------------------------------------|
//! | 0..47  | id      | frame id held by the slot (0: none)                         |
//! | 47     | writing | the writer is filling the slot; readers keep out            |
//! | 48..64 | readers | bit *r* set while reader *r* holds the frame; writer keeps out |
//!
//! The writer claims a slot with a CAS that requires `readers == 0`, and publishes with one
//! Release store of `(new id, writing = 0, readers = 0)`. A reader pins with a CAS that requires
//! `writing == 0` and the id it wants, so the bytes it reads cannot change under it. A reader's
//! bits are per reader, so a dead reader's holds are cleared exactly.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Most readers registered on one ring at once.
pub const FRAME_MAX_READERS: usize = 16;
/// Most slots in one ring.
pub const FRAME_MAX_SLOTS: u32 = 1024;
/// Bits of a slot word holding the frame id.
pub const FRAME_ID_MASK: u64 = (1 << 47) - 1;
/// Bit of a slot word: being written.
pub const FRAME_WRITING: u64 = 1 << 47;
/// Shift of the reader bits of a slot word.
pub const FRAME_READERS_SHIFT: u32 = 48;

/// Element type of a frame's pixels.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// Unsigned 8-bit.
    U8 = 1,
    /// Unsigned 16-bit.
    U16 = 2,
    /// Unsigned 32-bit.
    U32 = 3,
    /// Signed 16-bit.
    I16 = 4,
    /// Signed 32-bit.
    I32 = 5,
    /// 32-bit float.
    F32 = 6,
    /// 64-bit float.
    F64 = 7,
}

impl ElemType {
    /// Decodes a raw value.
    pub const fn from_raw(raw: u32) -> Option<ElemType> {
        match raw {
            1 => Some(Self::U8),
            2 => Some(Self::U16),
            3 => Some(Self::U32),
            4 => Some(Self::I16),
            5 => Some(Self::I32),
            6 => Some(Self::F32),
            7 => Some(Self::F64),
            _ => None,
        }
    }

    /// Every element type.
    pub const ALL: [ElemType; 7] = [
        Self::U8,
        Self::U16,
        Self::U32,
        Self::I16,
        Self::I32,
        Self::F32,
        Self::F64,
    ];

    /// The type's name as numpy spells it (`"uint16"`): the one name recordings, bindings
    /// and tools use for it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::U8 => "uint8",
            Self::U16 => "uint16",
            Self::U32 => "uint32",
            Self::I16 => "int16",
            Self::I32 => "int32",
            Self::F32 => "float32",
            Self::F64 => "float64",
        }
    }

    /// The type [`name`](Self::name) calls `name`.
    pub fn from_name(name: &str) -> Option<ElemType> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

/// The ring's header. Line 0 holds everything a publish writes and a reader polls, so a
/// frame hop moves that one line; line 1 is geometry, written once; then reader records.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct FrameRingHeader {
    /// The writer's record `(pid << 42) | token` (see `SegmentHeader::creator_token`); 0 when no writer.
    pub writer: u64,
    /// Id of the newest published frame (0: none yet). Release-stored after the slot.
    pub last_id: u64,
    /// Slot of the newest frame: a hint readers try first (always re-checked by the pin).
    pub last_slot: u64,
    /// Futex word: the low 32 bits of `last_id`, for readers that sleep.
    pub notify: u32,
    /// Readers asleep on `notify` (publish wakes only when non-zero).
    pub sleepers: u32,
    /// Frames published so far.
    pub total_written: u64,
    /// CLOCK_MONOTONIC timestamp of the newest frame, ns.
    pub last_ts_ns: u64,
    /// Estimated frame rate in millihertz (exponential moving average).
    pub rate_mhz: u64,
    /// Period jitter in ns: an exponential moving average (1/16) of each frame's
    /// `|period - mean period|`, the mean period being `1e12 / rate_mhz` (layout 4.2; zero
    /// before).
    pub jitter_ns: u64,
    /// Number of slots.
    pub slots: u32,
    /// [`ElemType`] as a raw word.
    pub elem: u32,
    /// Largest frame in bytes.
    pub max_bytes: u64,
    /// Dimensions used in `shape` (1..=4).
    pub ndims: u32,
    /// Reserved; zero.
    pub reserved1: u32,
    /// Shape, outermost first; unused dimensions are 1.
    pub shape: [u32; 4],
    /// Offset of the first frame from the ring's start.
    pub frame_offset: u64,
    /// Bytes between consecutive frames.
    pub frame_stride: u64,
    /// Frames readers missed: every time an oldest-first reader finds itself lapped, it
    /// adds the frames it lost (layout 4.2; zero before).
    pub overruns: u64,
    /// Registered readers' records (same format as `writer`); 0 = free.
    pub readers: [u64; FRAME_MAX_READERS],
}

/// Per-slot metadata.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct FrameSlotMeta {
    /// See the module's table.
    pub word: u64,
    /// CLOCK_MONOTONIC timestamp at publish, ns.
    pub ts_ns: u64,
    /// Bytes of the frame in use.
    pub len: u64,
    /// Caller metadata (exposure, gain, ...).
    pub user: [u64; 5],
}

const _: () = {
    assert!(size_of::<FrameRingHeader>() == 256);
    assert!(offset_of!(FrameRingHeader, last_id) == 8);
    assert!(offset_of!(FrameRingHeader, last_slot) == 16);
    assert!(offset_of!(FrameRingHeader, notify) == 24);
    assert!(offset_of!(FrameRingHeader, sleepers) == 28);
    assert!(offset_of!(FrameRingHeader, total_written) == 32);
    assert!(offset_of!(FrameRingHeader, rate_mhz) == 48);
    assert!(offset_of!(FrameRingHeader, jitter_ns) == 56);
    assert!(offset_of!(FrameRingHeader, overruns) == 120);
    assert!(offset_of!(FrameRingHeader, slots) == 64);
    assert!(offset_of!(FrameRingHeader, max_bytes) == 72);
    assert!(offset_of!(FrameRingHeader, shape) == 88);
    assert!(offset_of!(FrameRingHeader, frame_offset) == 104);
    assert!(offset_of!(FrameRingHeader, frame_stride) == 112);
    assert!(offset_of!(FrameRingHeader, readers) == 128);
    assert!(size_of::<FrameSlotMeta>() == 64);
    assert!(offset_of!(FrameSlotMeta, ts_ns) == 8);
    assert!(offset_of!(FrameSlotMeta, len) == 16);
    assert!(offset_of!(FrameSlotMeta, user) == 24);
};

#[cfg(test)]
mod tests {
    use super::ElemType;

    #[test]
    fn every_element_type_is_found_by_its_numpy_name_and_no_other() {
        for e in ElemType::ALL {
            assert_eq!(ElemType::from_name(e.name()), Some(e));
            assert_eq!(ElemType::from_raw(e as u32), Some(e));
        }
        assert_eq!(ElemType::from_name("u16"), None);
        assert_eq!(ElemType::from_name("float16"), None);
    }
}
