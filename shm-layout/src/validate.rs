//! The one validator per object kind: pure functions over a header's bytes (already copied
//! out of the segment) and the size of the block that holds it.
//!
//! Every reader of a segment calls these — the live attach in `shmkit`, the inspector, the
//! fuzz targets — so they cannot disagree about which images are valid. Each returns the
//! object's geometry (what a handle needs to reach every slot, checked to fit the block) or an
//! [`Invalid`] naming the field and the value that broke the rule. The geometry constructors
//! (`FrameGeometry::new`, ...) are the same rules run forwards, for a creator.

use crate::{
    BarrierLayout, CommandRingHeader, CommandSlotMeta, DictHeader, ElemType, FrameRingHeader,
    FrameSlotMeta, SharedHeader, BARRIER_MAX_PARTIES, CMD_ANSWERING_MARK, CMD_MAX_SLOTS,
    CMD_RETRY_SAFE, FRAME_MAX_SLOTS, SHARED_TYPE_NAME_MAX,
};
use crate::{
    ExceptionSlotHeader, EXCEPTION_PAYLOAD_MAX, REPORT_ERROR, REPORT_PANIC, SLOT_FREE,
    SLOT_REPORTED, SLOT_RESERVED, SLOT_RUNNING,
};
use crate::{TraceHeader, TRACE_MAX_EVENTS, TRACE_MAX_NAMES, TRACE_MIN_EVENTS};
use core::fmt;
use core::mem::size_of;

const FRAME_HEADER: u64 = size_of::<FrameRingHeader>() as u64;
const FRAME_META: u64 = size_of::<FrameSlotMeta>() as u64;
const CMD_HEADER: u64 = size_of::<CommandRingHeader>() as u64;
const CMD_META: u64 = size_of::<CommandSlotMeta>() as u64;
const DICT_HEADER: u64 = size_of::<DictHeader>() as u64;

/// Why an object's bytes (or a creator's parameters) are not a valid object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// Which structure: "frame ring header", "command ring header", ...
    pub object: &'static str,
    /// The field (or derived quantity) that broke a rule.
    pub field: &'static str,
    /// Its value.
    pub value: u64,
    /// The rule it broke, in words.
    pub expected: &'static str,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} = {}, expected {}",
            self.object, self.field, self.value, self.expected
        )
    }
}

fn check(
    ok: bool,
    object: &'static str,
    field: &'static str,
    value: u64,
    expected: &'static str,
) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid {
            object,
            field,
            value,
            expected,
        })
    }
}

// ---------------------------------------------------------------- frame ring

/// Where everything of a frame ring is, relative to the ring's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameGeometry {
    /// Slots (2..=[`FRAME_MAX_SLOTS`]).
    pub slots: u32,
    /// Element type.
    pub elem: ElemType,
    /// Dimensions in use (1..=4).
    pub ndims: u32,
    /// Shape, outermost first; unused dimensions are 1.
    pub shape: [u32; 4],
    /// Bytes of one frame: the product of the shape times the element size.
    pub max_bytes: u64,
    /// Offset of frame 0 (64-aligned, after the slot metadata).
    pub frame_offset: u64,
    /// Bytes between frames (64-aligned, at least `max_bytes`).
    pub frame_stride: u64,
    /// Bytes the ring occupies: `frame_offset + slots × frame_stride`.
    pub size: u64,
}

impl FrameGeometry {
    /// The canonical geometry a creator writes for `slots` frames of `shape` × `elem`.
    pub fn new(slots: u32, elem: ElemType, shape: &[u32]) -> Result<FrameGeometry, Invalid> {
        const O: &str = "frame ring spec";
        check(
            (2..=FRAME_MAX_SLOTS).contains(&slots),
            O,
            "slots",
            slots.into(),
            "2..=1024",
        )?;
        check(
            (1..=4).contains(&shape.len()),
            O,
            "dimensions",
            shape.len() as u64,
            "1..=4",
        )?;
        let mut dims = [1u32; 4];
        dims[..shape.len()].copy_from_slice(shape);
        let max_bytes = frame_bytes(elem, &dims, O)?;
        let frame_stride = if max_bytes >= 4096 {
            max_bytes.checked_next_multiple_of(4096)
        } else {
            max_bytes.checked_next_multiple_of(64)
        };
        let frame_offset = (FRAME_HEADER + u64::from(slots) * FRAME_META).next_multiple_of(4096);
        let frame_stride = frame_stride.unwrap_or(u64::MAX);
        let size = frame_layout_end(frame_offset, frame_stride, slots, O)?;
        Ok(FrameGeometry {
            slots,
            elem,
            ndims: shape.len() as u32,
            shape: dims,
            max_bytes,
            frame_offset,
            frame_stride,
            size,
        })
    }

    /// The dimensions in use.
    #[inline]
    pub fn dims(&self) -> &[u32] {
        &self.shape[..self.ndims as usize]
    }
}

fn frame_bytes(elem: ElemType, dims: &[u32; 4], object: &'static str) -> Result<u64, Invalid> {
    let mut bytes = elem.size() as u64;
    for &d in dims {
        check(d != 0, object, "shape dimension", 0, "non-zero")?;
        bytes = bytes.checked_mul(u64::from(d)).ok_or(Invalid {
            object,
            field: "frame size",
            value: u64::MAX,
            expected: "a product of the shape that fits 64 bits",
        })?;
    }
    Ok(bytes)
}

fn frame_layout_end(
    frame_offset: u64,
    frame_stride: u64,
    slots: u32,
    object: &'static str,
) -> Result<u64, Invalid> {
    frame_stride
        .checked_mul(u64::from(slots))
        .and_then(|f| f.checked_add(frame_offset))
        .ok_or(Invalid {
            object,
            field: "frame_stride",
            value: frame_stride,
            expected: "a ring size that fits 64 bits",
        })
}

/// Validates a frame ring header found in a block of `block_size` bytes.
pub fn frame_ring(h: &FrameRingHeader, block_size: u64) -> Result<FrameGeometry, Invalid> {
    const O: &str = "frame ring header";
    check(
        (2..=FRAME_MAX_SLOTS).contains(&h.slots),
        O,
        "slots",
        h.slots.into(),
        "2..=1024",
    )?;
    let elem = ElemType::from_raw(h.elem).ok_or(Invalid {
        object: O,
        field: "elem",
        value: h.elem.into(),
        expected: "an element type 1..=7",
    })?;
    check(
        (1..=4).contains(&h.ndims),
        O,
        "ndims",
        h.ndims.into(),
        "1..=4",
    )?;
    for (i, &d) in h.shape.iter().enumerate() {
        let unused_is_one = i < h.ndims as usize || d == 1;
        check(unused_is_one, O, "unused shape dimension", d.into(), "1")?;
    }
    let max_bytes = frame_bytes(elem, &h.shape, O)?;
    check(
        h.max_bytes == max_bytes,
        O,
        "max_bytes",
        h.max_bytes,
        "the shape's product times the element size",
    )?;
    check(
        h.frame_stride >= max_bytes && h.frame_stride % 64 == 0,
        O,
        "frame_stride",
        h.frame_stride,
        "a multiple of 64 no smaller than max_bytes",
    )?;
    check(
        h.frame_offset % 64 == 0
            && h.frame_offset >= FRAME_HEADER + u64::from(h.slots) * FRAME_META,
        O,
        "frame_offset",
        h.frame_offset,
        "a multiple of 64 after the slot metadata",
    )?;
    let size = frame_layout_end(h.frame_offset, h.frame_stride, h.slots, O)?;
    check(
        size <= block_size,
        O,
        "ring size",
        size,
        "no more than the block holds",
    )?;
    Ok(FrameGeometry {
        slots: h.slots,
        elem,
        ndims: h.ndims,
        shape: h.shape,
        max_bytes,
        frame_offset: h.frame_offset,
        frame_stride: h.frame_stride,
        size,
    })
}

// ---------------------------------------------------------------- command ring

/// Where everything of a command ring is, relative to the ring's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandGeometry {
    /// Slots (1..=[`CMD_MAX_SLOTS`]).
    pub slots: u32,
    /// Largest request in bytes.
    pub max_request: u32,
    /// Largest reply in bytes.
    pub max_reply: u32,
    /// Bytes between slots (64-aligned, metadata + request + reply).
    pub slot_stride: u64,
    /// Bytes the ring occupies.
    pub size: u64,
}

impl CommandGeometry {
    /// The canonical geometry for `slots` slots of the given buffer sizes.
    pub fn new(slots: u32, max_request: u32, max_reply: u32) -> Result<CommandGeometry, Invalid> {
        let slot_stride =
            (CMD_META + u64::from(max_request) + u64::from(max_reply)).next_multiple_of(64);
        command_geometry(
            slots,
            max_request,
            max_reply,
            slot_stride,
            "command ring spec",
        )
    }

    /// Offset of slot `slot`'s metadata from the ring's start (`slot < slots`).
    #[inline]
    pub fn slot_offset(&self, slot: u32) -> u64 {
        CMD_HEADER + u64::from(slot) * self.slot_stride
    }
}

fn command_geometry(
    slots: u32,
    max_request: u32,
    max_reply: u32,
    slot_stride: u64,
    object: &'static str,
) -> Result<CommandGeometry, Invalid> {
    check(
        (1..=CMD_MAX_SLOTS).contains(&slots),
        object,
        "slots",
        slots.into(),
        "1..=1024",
    )?;
    check(
        (1..CMD_RETRY_SAFE).contains(&max_request),
        object,
        "max_request",
        max_request.into(),
        "1..2^31",
    )?;
    check(
        max_reply < CMD_ANSWERING_MARK,
        object,
        "max_reply",
        max_reply.into(),
        "below 2^31",
    )?;
    let need = CMD_META + u64::from(max_request) + u64::from(max_reply);
    check(
        slot_stride >= need && slot_stride % 64 == 0,
        object,
        "slot_stride",
        slot_stride,
        "a multiple of 64 holding the metadata, request and reply",
    )?;
    let size = slot_stride
        .checked_mul(u64::from(slots))
        .and_then(|s| s.checked_add(CMD_HEADER))
        .ok_or(Invalid {
            object,
            field: "slot_stride",
            value: slot_stride,
            expected: "a ring size that fits 64 bits",
        })?;
    Ok(CommandGeometry {
        slots,
        max_request,
        max_reply,
        slot_stride,
        size,
    })
}

/// Validates a command ring header found in a block of `block_size` bytes.
pub fn command_ring(h: &CommandRingHeader, block_size: u64) -> Result<CommandGeometry, Invalid> {
    const O: &str = "command ring header";
    let g = command_geometry(h.slots, h.max_request, h.max_reply, h.slot_stride, O)?;
    check(
        g.size <= block_size,
        O,
        "ring size",
        g.size,
        "no more than the block holds",
    )?;
    Ok(g)
}

// ---------------------------------------------------------------- dictionary

/// Where everything of a dictionary is, relative to its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictGeometry {
    /// Index words per half (a power of two, at least twice `max_entries`).
    pub slots: u32,
    /// Most keys.
    pub max_entries: u32,
    /// Bytes of each data half (a multiple of 8, below 4 GiB).
    pub data_capacity: u64,
    /// Bytes the dictionary occupies.
    pub size: u64,
}

impl DictGeometry {
    /// The canonical geometry for `max_entries` keys and `data_bytes` of records.
    pub fn new(max_entries: u32, data_bytes: u64) -> Result<DictGeometry, Invalid> {
        const O: &str = "dictionary spec";
        let too_large = Invalid {
            object: O,
            field: "max_entries",
            value: max_entries.into(),
            expected: "an index that fits 32 bits",
        };
        let slots = max_entries
            .checked_mul(2)
            .ok_or(too_large)?
            .max(2)
            .checked_next_power_of_two()
            .ok_or(too_large)?;
        let data_capacity = data_bytes.checked_next_multiple_of(8).unwrap_or(u64::MAX);
        dict_geometry(slots, max_entries, data_capacity, O)
    }

    /// Offset of index half `half` from the dictionary's start.
    #[inline]
    pub fn index_base(&self, half: u32) -> u64 {
        DICT_HEADER + u64::from(half) * u64::from(self.slots) * 8
    }

    /// Offset of data half `half` from the dictionary's start.
    #[inline]
    pub fn data_base(&self, half: u32) -> u64 {
        DICT_HEADER + u64::from(self.slots) * 16 + u64::from(half) * self.data_capacity
    }
}

fn dict_geometry(
    slots: u32,
    max_entries: u32,
    data_capacity: u64,
    object: &'static str,
) -> Result<DictGeometry, Invalid> {
    check(
        max_entries >= 1,
        object,
        "max_entries",
        max_entries.into(),
        "at least 1",
    )?;
    check(
        slots.is_power_of_two() && slots >= 2 && u64::from(max_entries) * 2 <= u64::from(slots),
        object,
        "slots",
        slots.into(),
        "a power of two, at least twice max_entries",
    )?;
    check(
        data_capacity % 8 == 0 && data_capacity <= u64::from(u32::MAX),
        object,
        "data_capacity",
        data_capacity,
        "a multiple of 8 below 4 GiB",
    )?;
    // Cannot overflow: slots < 2^32 and data_capacity < 2^32.
    let size = DICT_HEADER + u64::from(slots) * 16 + data_capacity * 2;
    Ok(DictGeometry {
        slots,
        max_entries,
        data_capacity,
        size,
    })
}

/// Validates a dictionary header found in a block of `block_size` bytes. Only the geometry
/// is checked here; `used`, `active` and the records are checked by every operation.
pub fn dict(h: &DictHeader, block_size: u64) -> Result<DictGeometry, Invalid> {
    const O: &str = "dictionary header";
    let g = dict_geometry(h.slots, h.max_entries, h.data_capacity, O)?;
    check(
        g.size <= block_size,
        O,
        "dictionary size",
        g.size,
        "no more than the block holds",
    )?;
    Ok(g)
}

// ---------------------------------------------------------------- barrier, shared value

/// Validates a barrier in a block of `block_size` bytes; returns its number of parties.
pub fn barrier(b: &BarrierLayout, block_size: u64) -> Result<u32, Invalid> {
    check(
        (1..=BARRIER_MAX_PARTIES).contains(&b.parties),
        "barrier",
        "parties",
        b.parties.into(),
        "1..=65535",
    )?;
    check(
        block_size >= crate::barrier_size(b.parties),
        "barrier",
        "block size",
        block_size,
        "room for the header and two slots per party",
    )?;
    Ok(b.parties)
}

/// What a shared value's header says about the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedGeometry {
    /// Offset of the value from the block's start.
    pub value_offset: u64,
    /// The value's size.
    pub size: u64,
    /// The value's alignment.
    pub align: u32,
    /// Bytes of `type_name` in use.
    pub type_name_len: usize,
}

/// Validates a shared value's header found in a block of `block_size` bytes.
pub fn shared(h: &SharedHeader, block_size: u64) -> Result<SharedGeometry, Invalid> {
    const O: &str = "shared value header";
    check(
        h.align.is_power_of_two() && h.align <= 4096,
        O,
        "align",
        h.align.into(),
        "a power of two up to 4096",
    )?;
    check(
        h.type_name_len as usize <= SHARED_TYPE_NAME_MAX,
        O,
        "type_name_len",
        h.type_name_len.into(),
        "at most 40",
    )?;
    let value_offset = SharedHeader::value_offset(h.align as usize) as u64;
    let end = value_offset.checked_add(h.size);
    check(
        end.is_some_and(|e| e <= block_size),
        O,
        "size",
        h.size,
        "a value that fits its block",
    )?;
    Ok(SharedGeometry {
        value_offset,
        size: h.size,
        align: h.align,
        type_name_len: h.type_name_len as usize,
    })
}

// ---------------------------------------------------------------- trace buffer

const TRACE_HEADER: u64 = size_of::<TraceHeader>() as u64;
const TRACE_ENTRY: u64 = 64;

/// Where a trace buffer's names and events are, relative to its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceGeometry {
    /// Event slots (a power of two).
    pub events: u32,
    /// Name entries.
    pub names: u32,
    /// Offset of the first name entry.
    pub names_offset: u64,
    /// Offset of the first event slot.
    pub events_offset: u64,
    /// Bytes the buffer needs.
    pub size: u64,
}

impl TraceGeometry {
    /// The geometry of a buffer of `events` event slots and `names` name entries.
    pub fn new(events: u32, names: u32) -> Result<TraceGeometry, Invalid> {
        const O: &str = "trace buffer spec";
        check(
            events.is_power_of_two() && (TRACE_MIN_EVENTS..=TRACE_MAX_EVENTS).contains(&events),
            O,
            "events",
            events.into(),
            "a power of two, 64..=16777216",
        )?;
        check(
            (1..=TRACE_MAX_NAMES).contains(&names),
            O,
            "names",
            names.into(),
            "1..=4096",
        )?;
        let names_offset = TRACE_HEADER;
        let events_offset = names_offset + u64::from(names) * TRACE_ENTRY;
        Ok(TraceGeometry {
            events,
            names,
            names_offset,
            events_offset,
            size: events_offset + u64::from(events) * TRACE_ENTRY,
        })
    }
}

/// Validates a trace buffer's header found in a block of `block_size` bytes.
pub fn trace(h: &TraceHeader, block_size: u64) -> Result<TraceGeometry, Invalid> {
    const O: &str = "trace buffer header";
    let g = TraceGeometry::new(h.events, h.names).map_err(|e| Invalid { object: O, ..e })?;
    check(
        h.names_offset == g.names_offset,
        O,
        "names_offset",
        h.names_offset,
        "128, right after the header",
    )?;
    check(
        h.events_offset == g.events_offset,
        O,
        "events_offset",
        h.events_offset,
        "right after the name entries",
    )?;
    check(
        g.size <= block_size,
        O,
        "buffer size",
        g.size,
        "no more than the block holds",
    )?;
    Ok(g)
}

// ---------------------------------------------------------------- exception slot

/// A published report's kind and payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionReport {
    /// [`REPORT_ERROR`] or [`REPORT_PANIC`] (0: a report slot with nothing in it).
    pub kind: u32,
    /// Payload bytes after the header (at most [`EXCEPTION_PAYLOAD_MAX`]).
    pub payload_len: usize,
}

/// Validates an exception slot's header: `None` unless it holds a published report.
pub fn exception_slot(h: &ExceptionSlotHeader) -> Result<Option<ExceptionReport>, Invalid> {
    const O: &str = "exception slot";
    check(
        matches!(
            h.state,
            SLOT_FREE | SLOT_RESERVED | SLOT_RUNNING | SLOT_REPORTED
        ),
        O,
        "state",
        h.state.into(),
        "free, reserved, running or reported (0..=3)",
    )?;
    if h.state != SLOT_REPORTED {
        return Ok(None);
    }
    check(
        h.payload_len as usize <= EXCEPTION_PAYLOAD_MAX,
        O,
        "payload_len",
        h.payload_len.into(),
        "at most 4032",
    )?;
    check(
        matches!(h.report_kind, 0 | REPORT_ERROR | REPORT_PANIC),
        O,
        "report_kind",
        h.report_kind.into(),
        "0, error (1) or panic (2)",
    )?;
    Ok(Some(ExceptionReport {
        kind: h.report_kind,
        payload_len: h.payload_len as usize,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    fn frame_header(g: &FrameGeometry) -> FrameRingHeader {
        let mut h = FrameRingHeader::new_zeroed();
        h.slots = g.slots;
        h.elem = g.elem as u32;
        h.ndims = g.ndims;
        h.shape = g.shape;
        h.max_bytes = g.max_bytes;
        h.frame_offset = g.frame_offset;
        h.frame_stride = g.frame_stride;
        h
    }

    #[test]
    fn a_created_frame_ring_validates_to_its_own_geometry() {
        let g = FrameGeometry::new(4, ElemType::U16, &[480, 640]).unwrap();
        assert_eq!(frame_ring(&frame_header(&g), g.size), Ok(g));
        assert_eq!(g.dims(), &[480, 640]);
    }

    #[test]
    fn a_frame_ring_larger_than_its_block_is_invalid() {
        let g = FrameGeometry::new(4, ElemType::U8, &[64]).unwrap();
        let e = frame_ring(&frame_header(&g), g.size - 1).unwrap_err();
        assert_eq!(e.field, "ring size");
    }

    #[test]
    fn a_frame_ring_whose_size_disagrees_with_its_shape_is_invalid() {
        let g = FrameGeometry::new(4, ElemType::U8, &[64]).unwrap();
        let mut h = frame_header(&g);
        h.max_bytes += 1;
        assert_eq!(frame_ring(&h, g.size).unwrap_err().field, "max_bytes");
        let mut h = frame_header(&g);
        h.shape[3] = 7;
        assert_eq!(
            frame_ring(&h, g.size).unwrap_err().field,
            "unused shape dimension"
        );
    }

    #[test]
    fn frame_spec_limits() {
        assert!(FrameGeometry::new(1, ElemType::U8, &[1]).is_err());
        assert!(FrameGeometry::new(2, ElemType::U8, &[]).is_err());
        assert!(FrameGeometry::new(2, ElemType::U8, &[1, 0]).is_err());
        assert!(FrameGeometry::new(2, ElemType::F64, &[u32::MAX, u32::MAX, u32::MAX]).is_err());
    }

    #[test]
    fn command_geometry_round_trips_and_rejects_a_short_stride() {
        let g = CommandGeometry::new(8, 100, 200).unwrap();
        let mut h = CommandRingHeader::new_zeroed();
        h.slots = g.slots;
        h.max_request = g.max_request;
        h.max_reply = g.max_reply;
        h.slot_stride = g.slot_stride;
        assert_eq!(command_ring(&h, g.size), Ok(g));
        h.slot_stride = 64;
        assert_eq!(command_ring(&h, g.size).unwrap_err().field, "slot_stride");
        assert!(CommandGeometry::new(0, 1, 1).is_err());
        assert!(CommandGeometry::new(1, 0, 1).is_err());
        assert!(CommandGeometry::new(1, 1, CMD_ANSWERING_MARK).is_err());
    }

    #[test]
    fn dict_geometry_round_trips() {
        let g = DictGeometry::new(10, 1000).unwrap();
        assert_eq!((g.slots, g.data_capacity), (32, 1000));
        let mut h = DictHeader::new_zeroed();
        h.slots = g.slots;
        h.max_entries = g.max_entries;
        h.data_capacity = g.data_capacity;
        assert_eq!(dict(&h, g.size), Ok(g));
        h.slots = 16;
        assert_eq!(dict(&h, g.size).unwrap_err().field, "slots");
        assert!(DictGeometry::new(u32::MAX, 8).is_err());
        assert!(DictGeometry::new(1, u64::from(u32::MAX) + 1).is_err());
    }

    #[test]
    fn trace_geometry_round_trips_and_rejects_what_does_not_fit() {
        let g = TraceGeometry::new(1024, 64).unwrap();
        assert_eq!(g.events_offset, 128 + 64 * 64);
        assert_eq!(g.size, g.events_offset + 1024 * 64);
        let mut h = TraceHeader::new_zeroed();
        h.events = g.events;
        h.names = g.names;
        h.names_offset = g.names_offset;
        h.events_offset = g.events_offset;
        assert_eq!(trace(&h, g.size), Ok(g));
        assert_eq!(trace(&h, g.size - 1).unwrap_err().field, "buffer size");
        h.events_offset += 64;
        assert_eq!(trace(&h, g.size + 64).unwrap_err().field, "events_offset");
        h.events = 1000;
        let e = trace(&h, u64::MAX).unwrap_err();
        assert_eq!((e.object, e.field), ("trace buffer header", "events"));
        assert!(TraceGeometry::new(32, 1).is_err());
        assert!(TraceGeometry::new(64, 0).is_err());
        assert!(TraceGeometry::new(1 << 25, 1).is_err());
    }

    #[test]
    fn invalid_names_its_field_and_value() {
        let e = FrameGeometry::new(5000, ElemType::U8, &[1]).unwrap_err();
        extern crate std;
        use std::string::ToString;
        assert_eq!(
            e.to_string(),
            "frame ring spec: slots = 5000, expected 2..=1024"
        );
    }
}
