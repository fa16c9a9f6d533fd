//! Decoding a segment image: the header, every named object's state, exception slots and
//! device servers. Pure over the bytes (plus `/proc` for liveness); every offset and length
//! is checked, and a nonsensical object is reported as corrupt without stopping the rest.

use super::error::{corrupt, InspectError};
use crate::segment::{object_block, validate_bytes, HeaderInfo, ImageBytes, SegmentError};
use crate::sys::identity::{tid_liveness, Liveness, Record};
use serde::Serialize;
use shm_layout::{
    validate, BarrierLayout, CommandRingHeader, CommandSlotMeta, DeviceStatus, DictHeader,
    EventLayout, ExceptionSlotHeader, FrameRingHeader, FrameSlotMeta, HistogramLayout, LinkStatus,
    MutexConsistency, MutexLayout, ObjectKind, SharedHeader, TableEntry, TraceHeader,
    BARRIER_ARRIVED_MASK, BARRIER_BROKEN, BARRIER_GENERATION_SHIFT, CMD_FREE, CMD_QUEUED,
    EVENT_SET, EVENT_WAITERS, EXCEPTION_SLOT_SIZE, FRAME_ID_MASK, FRAME_MAX_READERS,
    FRAME_READERS_SHIFT, FRAME_WRITING, MUTEX_CONSISTENCY_SHIFT, MUTEX_DEPTH_MASK, MUTEX_TID_MASK,
    SLOT_FREE, SLOT_REPORTED, TABLE_READY,
};
use std::mem::size_of;
use zerocopy::{FromBytes, IntoBytes};

/// A whole segment, decoded.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Schema version of this structure's JSON form.
    pub schema: u32,
    /// The segment's name.
    pub name: String,
    /// Layout version `major.minor`.
    pub version: String,
    /// The creator build's layout hash (hex).
    pub layout_hash: String,
    /// Size in bytes.
    pub size: u64,
    /// The creator's pid.
    pub creator_pid: u32,
    /// Whether it is alive.
    pub creator_alive: bool,
    /// Creation time, ns since the Unix epoch.
    pub created_unix_ns: u64,
    /// Bytes allocated so far.
    pub allocated: u64,
    /// Blocks allocated.
    pub blocks: u64,
    /// Named-object table capacity.
    pub table_capacity: u32,
    /// Every named object, in table order.
    pub objects: Vec<ObjectInfo>,
    /// The exception slot array.
    pub exception_slots: SlotSummary,
    /// Device servers (from their `dev/NAME/status` records).
    pub devices: Vec<DeviceInfo>,
    /// Rings a bridge imports from another machine (from their `link/RING` values).
    pub links: Vec<LinkInfo>,
}

/// One named object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectInfo {
    /// Its name.
    pub name: String,
    /// Its offset in the segment.
    pub offset: u64,
    /// Its state (the `kind` field of the JSON object says which).
    #[serde(flatten)]
    pub state: ObjectState,
}

/// A named object's state.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectState {
    /// A robust mutex.
    Mutex {
        /// Holder's pid (`None`: free).
        owner_pid: Option<u32>,
        /// Holder's tid.
        owner_tid: Option<u32>,
        /// Whether the holder is alive.
        owner_alive: Option<bool>,
        /// Re-entrant holds beyond the first.
        depth: u32,
        /// A holder died and the new one has not made it consistent yet.
        owner_died_pending: bool,
        /// Unusable: a holder's death was never repaired.
        not_recoverable: bool,
        /// Threads may be sleeping on it.
        waiters: bool,
        /// The last holder found dead, `pid/tid`.
        last_dead_owner: Option<String>,
    },
    /// An event.
    Event {
        /// Set or clear.
        set: bool,
        /// Threads may be sleeping on it.
        waiters: bool,
    },
    /// A histogram (values in its users' unit; shmkit's own are nanoseconds).
    Histogram {
        /// Samples since the last reset.
        count: u64,
        /// Median (a bucket's upper bound: within 1/16 of an octave); null with no samples.
        p50: Option<u64>,
        /// 99th percentile.
        p99: Option<u64>,
        /// 99.9th percentile.
        p999: Option<u64>,
        /// Largest sample since the last reset.
        max: u64,
        /// Twice the resets so far (odd while one runs).
        generation: u64,
        /// The counts themselves, for a window between two inspections (not in the JSON).
        #[serde(skip)]
        snapshot: crate::shared::HistogramSnapshot,
    },
    /// A trace buffer.
    TraceBuffer {
        /// Events it keeps (the newest).
        events: u32,
        /// Distinct names it can file.
        names: u32,
        /// Events recorded into it so far (its head).
        recorded: u64,
        /// Events writers gave up.
        dropped: u64,
    },
    /// A barrier.
    Barrier {
        /// Parties per generation.
        parties: u32,
        /// Arrived in the current generation.
        arrived: u32,
        /// Generation number.
        generation: u32,
        /// Broken (timeout or abort) until reset.
        broken: bool,
    },
    /// A `Shared<T>` value.
    Shared {
        /// The Rust type name recorded at creation.
        type_name: String,
        /// Its size in bytes.
        size: u64,
        /// Holder of its mutex (pid), if held.
        locked_by: Option<u32>,
        /// The value, when it is of a primitive number type, read from the copy
        /// without taking its lock: a display value, which a writer may have been changing.
        /// Integers beyond 2^53 lose their last digits. `None` for any other type.
        value: Option<f64>,
    },
    /// A `SharedDict`.
    Dict {
        /// Live keys.
        entries: u32,
        /// Most keys.
        max_entries: u32,
        /// Data bytes in use.
        bytes_used: u64,
        /// Data bytes available.
        bytes_capacity: u64,
        /// Holder of its mutex (pid), if held.
        locked_by: Option<u32>,
    },
    /// A frame ring.
    FrameRing {
        /// Writer's pid (`None`: no writer).
        writer_pid: Option<u32>,
        /// Whether the writer is alive.
        writer_alive: Option<bool>,
        /// Frames published.
        frames_written: u64,
        /// Newest frame id.
        last_id: u64,
        /// Estimated frame rate.
        rate_hz: f64,
        /// Period jitter, µs (a moving average of each period's distance from the mean).
        jitter_us: f64,
        /// Time since the newest frame was published, ms (null before the first).
        age_ms: Option<f64>,
        /// Frames oldest-first readers missed (lapped by the writer), all readers.
        overruns: u64,
        /// How many frames behind the newest the oldest frame a reader holds is (null when
        /// no reader holds one).
        reader_lag: Option<u64>,
        /// Slots.
        slots: u32,
        /// Element type and shape, e.g. `u16 [128, 128]`.
        format: String,
        /// Registered readers' pids.
        readers: Vec<u32>,
        /// Slots a reader holds right now.
        held_slots: u32,
        /// A slot being written.
        writing: bool,
    },
    /// A command ring.
    CommandRing {
        /// Server's pid (`None`: no server).
        server_pid: Option<u32>,
        /// Whether the server is alive.
        server_alive: Option<bool>,
        /// Slots.
        slots: u32,
        /// Requests waiting for the server.
        queued: u32,
        /// Slots in use (queued, being handled, or answered and not yet collected).
        in_use: u32,
        /// Calls made so far.
        calls: u64,
    },
    /// An object whose bytes do not make sense.
    Corrupt {
        /// The object's kind as recorded (may be nonsense itself).
        recorded_kind: u32,
        /// What is wrong, naming the field.
        detail: String,
    },
}

/// The exception slot array.
#[derive(Debug, Clone, Serialize)]
pub struct SlotSummary {
    /// Slots in all.
    pub total: u32,
    /// Slots reserved or tagged by a child.
    pub in_use: u32,
    /// Slots holding a report not yet joined.
    pub reported: u32,
}

/// A device server's status.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// The device's name.
    pub name: String,
    /// `closed`, `opening`, `running`, `closing`, `crashed`, `unresponsive`, `fail_safe`,
    /// or `unknown(N)`.
    pub state: String,
    /// Server pid (`None`: none).
    pub pid: Option<u32>,
    /// Servers started so far.
    pub starts: u32,
    /// Seconds since the last heartbeat.
    pub heartbeat_age_s: Option<f64>,
    /// The last error message.
    pub message: String,
}

/// An imported ring's link to the machine it comes from, as its bridge publishes it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkInfo {
    /// The local ring.
    pub ring: String,
    /// `frames in`, `commands in`, or `unknown(N)`.
    pub kind: String,
    /// Whether the remote bridge is seen.
    pub up: bool,
    /// Seconds since the last frame or answer arrived (`None`: never).
    pub last_rx_age_s: Option<f64>,
    /// Frames published / calls answered.
    pub received: u64,
    /// Frames lost on the way.
    pub gaps: u64,
    /// Frames the remote bridge did not send (newest-only, limits).
    pub remote_skipped: u64,
    /// Samples refused / calls failed at once while the link was down.
    pub rejected: u64,
    /// Times the link went down.
    pub downs: u64,
    /// Calls that ended in a remote error.
    pub remote_errors: u64,
}

/// The bytes a decoder reads: a copied image (`[u8]`) or a file read page by page.
type Image<'a> = dyn ImageBytes + 'a;

fn read<T: FromBytes + IntoBytes>(image: &Image, offset: u64) -> Result<T, String> {
    let mut value = T::new_zeroed();
    image
        .copy_at(offset, value.as_mut_bytes())
        .then_some(value)
        .ok_or_else(|| {
            format!(
                "{} bytes at offset {offset} run past the segment's {} bytes",
                size_of::<T>(),
                image.len()
            )
        })
}

fn mutex_state(m: &MutexLayout) -> ObjectState {
    let tid = m.word & MUTEX_TID_MASK;
    let held = tid != 0;
    let consistency = MutexConsistency::from_raw(m.meta >> MUTEX_CONSISTENCY_SHIFT);
    ObjectState::Mutex {
        owner_pid: held.then_some(m.owner_pid),
        owner_tid: held.then_some(tid),
        owner_alive: held.then(|| {
            let record = Record::from_raw(m.owner);
            let liveness = if !record.is_none() && record.id() == tid {
                record.thread_liveness()
            } else {
                tid_liveness(tid)
            };
            liveness != Liveness::Dead
        }),
        depth: if held { m.meta & MUTEX_DEPTH_MASK } else { 0 },
        owner_died_pending: consistency == Some(MutexConsistency::Inconsistent),
        not_recoverable: consistency == Some(MutexConsistency::NotRecoverable),
        waiters: m.word & shm_layout::MUTEX_WAITERS != 0,
        last_dead_owner: (m.died != 0).then(|| format!("{}/{}", m.died >> 32, m.died as u32)),
    }
}

fn holder(m: &MutexLayout) -> Option<u32> {
    (m.word & MUTEX_TID_MASK != 0).then_some(m.owner_pid)
}

fn record_pid(record: u64) -> Option<u32> {
    (record != 0).then_some(crate::sys::identity::Record::from_raw(record).id())
}

fn record_alive(record: u64) -> Option<bool> {
    (record != 0).then(|| !Record::from_raw(record).process_dead())
}

/// The object's block, checked as a live attach checks it (`object_block`), and its header
/// validated with the kind's validator: the live handles and the inspector share both steps,
/// and report a failure with the same words.
fn checked<H: FromBytes + IntoBytes>(
    image: &Image,
    info: &HeaderInfo,
    offset: u64,
    kind: ObjectKind,
) -> Result<(H, u64), String> {
    let block = object_block(
        image,
        offset,
        info.data_start,
        info.alloc_next,
        Some(kind.block_kind()),
        size_of::<H>() as u64,
    )
    .map_err(|e| e.to_string())?;
    Ok((read(image, offset)?, block.size))
}

/// A validator's verdict in the words of the live attach's error.
fn invalid(e: shm_layout::validate::Invalid) -> String {
    SegmentError::invalid_object(e).to_string()
}

fn frame_ring(image: &Image, info: &HeaderInfo, offset: u64) -> Result<ObjectState, String> {
    let (h, block_size): (FrameRingHeader, u64) =
        checked(image, info, offset, ObjectKind::FrameRing)?;
    let g = validate::frame_ring(&h, block_size).map_err(invalid)?;
    let elem = format!("{:?}", g.elem).to_lowercase();
    let (mut held, mut writing) = (0, false);
    let mut oldest_held: Option<u64> = None;
    for s in 0..u64::from(g.slots) {
        let meta: FrameSlotMeta = read(
            image,
            offset + size_of::<FrameRingHeader>() as u64 + s * size_of::<FrameSlotMeta>() as u64,
        )?;
        if meta.word >> FRAME_READERS_SHIFT != 0 {
            held += 1;
            let id = meta.word & FRAME_ID_MASK;
            oldest_held = Some(oldest_held.map_or(id, |o: u64| o.min(id)));
        }
        writing |= meta.word & FRAME_WRITING != 0;
    }
    Ok(ObjectState::FrameRing {
        writer_pid: record_pid(h.writer),
        writer_alive: record_alive(h.writer),
        frames_written: h.total_written,
        last_id: h.last_id,
        rate_hz: h.rate_mhz as f64 / 1000.0,
        jitter_us: h.jitter_ns as f64 / 1000.0,
        age_ms: (h.last_ts_ns != 0)
            .then(|| crate::sys::clock::monotonic_ns().saturating_sub(h.last_ts_ns) as f64 / 1e6),
        overruns: h.overruns,
        reader_lag: oldest_held.map(|o| h.last_id.saturating_sub(o)),
        slots: g.slots,
        format: format!("{elem} {:?}", g.dims()),
        readers: h.readers[..FRAME_MAX_READERS]
            .iter()
            .filter_map(|&r| record_pid(r))
            .collect(),
        held_slots: held,
        writing,
    })
}

fn command_ring(image: &Image, info: &HeaderInfo, offset: u64) -> Result<ObjectState, String> {
    let (h, block_size): (CommandRingHeader, u64) =
        checked(image, info, offset, ObjectKind::CommandRing)?;
    let g = validate::command_ring(&h, block_size).map_err(invalid)?;
    let (mut queued, mut in_use) = (0, 0);
    for s in 0..g.slots {
        // In bounds: the validator checked that every slot lies in the block.
        let meta: CommandSlotMeta = read(image, offset + g.slot_offset(s))?;
        match meta.state & 0xFF {
            CMD_FREE if meta.client == 0 => {}
            CMD_QUEUED => {
                queued += 1;
                in_use += 1;
            }
            _ => in_use += 1,
        }
    }
    Ok(ObjectState::CommandRing {
        server_pid: record_pid(h.server),
        server_alive: record_alive(h.server),
        slots: g.slots,
        queued,
        in_use,
        calls: h.next_ticket,
    })
}

fn dict(image: &Image, info: &HeaderInfo, offset: u64) -> Result<ObjectState, String> {
    let (d, block_size): (DictHeader, u64) = checked(image, info, offset, ObjectKind::Dict)?;
    let g = validate::dict(&d, block_size).map_err(invalid)?;
    Ok(ObjectState::Dict {
        entries: d.count,
        max_entries: g.max_entries,
        bytes_used: d.used,
        bytes_capacity: g.data_capacity,
        locked_by: holder(&d.mutex),
    })
}

fn shared_value(
    image: &Image,
    info: &HeaderInfo,
    offset: u64,
) -> Result<(ObjectState, SharedHeader), String> {
    let (h, block_size): (SharedHeader, u64) = checked(image, info, offset, ObjectKind::Shared)?;
    let g = validate::shared(&h, block_size).map_err(invalid)?;
    let type_name = String::from_utf8_lossy(&h.type_name[..g.type_name_len]).into_owned();
    let value_at = offset + SharedHeader::value_offset(h.align as usize) as u64;
    let value = number(image, value_at, &type_name, g.size);
    Ok((
        ObjectState::Shared {
            type_name,
            size: g.size,
            locked_by: holder(&h.mutex),
            value,
        },
        h,
    ))
}

/// A shared value of a primitive number type as an `f64`, from its bytes at
/// `at`; `None` for any other type, or a size that does not match the type's.
fn number(image: &Image, at: u64, type_name: &str, size: u64) -> Option<f64> {
    let width = match type_name {
        "u8" | "i8" => 1,
        "u16" | "i16" => 2,
        "u32" | "i32" | "f32" => 4,
        "u64" | "i64" | "f64" | "usize" | "isize" => 8,
        _ => return None,
    };
    if size != width {
        return None;
    }
    // The value lies inside one aligned word (its offset is aligned to its type's
    // alignment); the segment's words are little-endian, as everywhere in the layout.
    let word = image.load_u64(at & !7)?;
    let shift = (at & 7) * 8;
    let bits = word >> shift;
    Some(match type_name {
        "u8" => f64::from(bits as u8),
        "i8" => f64::from(bits as u8 as i8),
        "u16" => f64::from(bits as u16),
        "i16" => f64::from(bits as u16 as i16),
        "u32" => f64::from(bits as u32),
        "i32" => f64::from(bits as u32 as i32),
        "f32" => f64::from(f32::from_bits(bits as u32)),
        "f64" => f64::from_bits(bits),
        "i64" | "isize" => bits as i64 as f64,
        _ => bits as f64,
    })
}

fn device(image: &Image, name: &str, offset: u64, h: &SharedHeader) -> Option<DeviceInfo> {
    let device = name.strip_prefix("dev/")?.strip_suffix("/status")?;
    if h.size != size_of::<DeviceStatus>() as u64 {
        return None;
    }
    let value_at = offset + SharedHeader::value_offset(h.align as usize) as u64;
    let s: DeviceStatus = read(image, value_at).ok()?;
    // The same reading clients get from `DeviceCache::status`.
    let info = super::device::info(&s);
    Some(DeviceInfo {
        name: device.to_owned(),
        state: info.state.name(),
        pid: (info.pid != 0).then_some(info.pid),
        starts: info.starts,
        heartbeat_age_s: info.heartbeat_age.map(|a| a.as_secs_f64()),
        message: info.message,
    })
}

fn link(image: &Image, name: &str, offset: u64, h: &SharedHeader) -> Option<LinkInfo> {
    let ring = name.strip_prefix(shm_layout::LINK_PREFIX)?;
    if h.size != size_of::<LinkStatus>() as u64 {
        return None;
    }
    let value_at = offset + SharedHeader::value_offset(h.align as usize) as u64;
    let s: LinkStatus = read(image, value_at).ok()?;
    let now = crate::sys::clock::monotonic_ns();
    Some(LinkInfo {
        ring: ring.to_owned(),
        kind: match s.kind {
            shm_layout::LINK_FRAMES_IN => "frames in".into(),
            shm_layout::LINK_COMMANDS_IN => "commands in".into(),
            other => format!("unknown({other})"),
        },
        up: s.up == 1,
        last_rx_age_s: (s.last_rx_ns != 0).then(|| now.saturating_sub(s.last_rx_ns) as f64 / 1e9),
        received: s.received,
        gaps: s.gaps,
        remote_skipped: s.remote_skipped,
        rejected: s.rejected,
        downs: s.downs,
        remote_errors: s.remote_errors,
    })
}

/// What the table's shared values say beyond themselves: device servers and bridged links.
#[derive(Default)]
struct Records {
    devices: Vec<DeviceInfo>,
    links: Vec<LinkInfo>,
}

fn object_state(
    image: &Image,
    info: &HeaderInfo,
    entry: &TableEntry,
    name: &str,
    records: &mut Records,
) -> Result<ObjectState, String> {
    let kind = ObjectKind::from_raw(entry.kind)
        .ok_or_else(|| format!("table entry kind {}", entry.kind))?;
    let offset = entry.offset;
    Ok(match kind {
        ObjectKind::Mutex => mutex_state(&checked(image, info, offset, kind)?.0),
        ObjectKind::Event => {
            let (e, _): (EventLayout, u64) = checked(image, info, offset, kind)?;
            ObjectState::Event {
                set: e.word & EVENT_SET != 0,
                waiters: e.word & EVENT_WAITERS != 0,
            }
        }
        ObjectKind::Histogram => {
            let (h, _): (HistogramLayout, u64) = checked(image, info, offset, kind)?;
            let s = crate::shared::HistogramSnapshot::from_layout(&h);
            ObjectState::Histogram {
                count: s.count(),
                p50: s.quantile(0.5),
                p99: s.quantile(0.99),
                p999: s.quantile(0.999),
                max: s.max(),
                generation: s.generation(),
                snapshot: s,
            }
        }
        ObjectKind::Barrier => {
            let (b, block_size): (BarrierLayout, u64) = checked(image, info, offset, kind)?;
            let parties = validate::barrier(&b, block_size).map_err(invalid)?;
            ObjectState::Barrier {
                parties,
                arrived: (b.state & BARRIER_ARRIVED_MASK) as u32,
                generation: (b.state >> BARRIER_GENERATION_SHIFT) as u32,
                broken: b.state & BARRIER_BROKEN != 0,
            }
        }
        ObjectKind::Shared => {
            let (state, header) = shared_value(image, info, offset)?;
            if let Some(d) = device(image, name, offset, &header) {
                records.devices.push(d);
            }
            if let Some(l) = link(image, name, offset, &header) {
                records.links.push(l);
            }
            state
        }
        ObjectKind::Dict => dict(image, info, offset)?,
        ObjectKind::FrameRing => frame_ring(image, info, offset)?,
        ObjectKind::CommandRing => command_ring(image, info, offset)?,
        ObjectKind::TraceBuffer => {
            let (h, block_size): (TraceHeader, u64) = checked(image, info, offset, kind)?;
            let g = validate::trace(&h, block_size).map_err(invalid)?;
            ObjectState::TraceBuffer {
                events: g.events,
                names: g.names,
                recorded: h.head,
                dropped: h.dropped,
            }
        }
    })
}

/// Decodes a segment image (a copy of its bytes). Header or block-chain corruption is an
/// error; a corrupt object is an [`ObjectState::Corrupt`] entry among the others.
pub fn inspect_image(name: &str, image: &[u8]) -> Result<Inspection, InspectError> {
    inspect_bytes(name, &image)
}

/// [`inspect_image`] over any image bytes (a copy, or a file read page by page).
pub(crate) fn inspect_bytes(name: &str, image: &Image) -> Result<Inspection, InspectError> {
    let (info, blocks) = match validate_bytes(image).map_err(|e| corrupt(name, e))? {
        Some(v) => v,
        None => {
            return Err(InspectError::Corrupt {
                name: name.to_owned(),
                what: "header".into(),
                detail: "the segment is still being initialised".into(),
            })
        }
    };
    let mut objects = Vec::new();
    let mut records = Records::default();
    for i in 0..u64::from(info.table_capacity) {
        let at = info.table_offset + i * size_of::<TableEntry>() as u64;
        let Ok(entry) = read::<TableEntry>(image, at) else {
            break;
        };
        if entry.state != TABLE_READY {
            continue;
        }
        let len = (entry.name_len as usize).min(entry.name.len());
        let object_name = String::from_utf8_lossy(&entry.name[..len]).into_owned();
        let state = object_state(image, &info, &entry, &object_name, &mut records).unwrap_or_else(
            |detail| ObjectState::Corrupt {
                recorded_kind: entry.kind,
                detail,
            },
        );
        objects.push(ObjectInfo {
            name: object_name,
            offset: entry.offset,
            state,
        });
    }
    let (mut in_use, mut reported) = (0, 0);
    for i in 0..u64::from(info.exception_slots) {
        let at = info.exception_offset + i * EXCEPTION_SLOT_SIZE as u64;
        if let Ok(slot) = read::<ExceptionSlotHeader>(image, at) {
            if slot.state != SLOT_FREE {
                in_use += 1;
            }
            if slot.state == SLOT_REPORTED {
                reported += 1;
            }
        }
    }
    let Records {
        mut devices,
        mut links,
    } = records;
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    links.sort_by(|a, b| a.ring.cmp(&b.ring));
    Ok(Inspection {
        schema: 1,
        name: name.to_owned(),
        version: format!("{}.{}", info.version.0, info.version.1),
        layout_hash: format!("{:016x}", info.layout_hash),
        size: info.total_size,
        creator_pid: info.creator.pid,
        creator_alive: info.creator.liveness() != Liveness::Dead,
        created_unix_ns: info.created_unix_ns,
        allocated: info.alloc_next.saturating_sub(info.data_start),
        blocks: blocks.len() as u64,
        table_capacity: info.table_capacity,
        objects,
        exception_slots: SlotSummary {
            total: info.exception_slots,
            in_use,
            reported,
        },
        devices,
        links,
    })
}
