//! The exception slot protocol: reserve, tag, report, read, release, reclaim.
//!
//! State table and layout: `shm-layout/src/exception.rs`. A parent reserves a slot before it
//! spawns (so a full array is an error at spawn), the child tags it with its identity at
//! start, writes a report if it fails, and the parent reads and frees it at `join`. A slot
//! whose child is dead is reclaimed by the next reservation if nobody can still want it: the
//! child left no report, or its parent (the only joiner) is dead too.

use super::report::ChildReport;
use super::ProcessError;
use crate::segment::Segment;
use crate::sync::{shared_view, AtomicU32, AtomicU64, Ordering, SharedWord};
use crate::sys::identity::{Liveness, ProcessIdentity};
use shm_layout::{
    validate, ExceptionSlotHeader, EXCEPTION_PAYLOAD_MAX, REPORT_ERROR, REPORT_PANIC, SLOT_FREE,
    SLOT_REPORTED, SLOT_RESERVED, SLOT_RUNNING,
};
use std::mem::size_of;
use std::ptr::NonNull;
use zerocopy::FromBytes;

const PAYLOAD: usize = size_of::<ExceptionSlotHeader>();

shared_view! {
    /// A slot's header words (`shm-layout/src/exception.rs`); the payload follows.
    struct SlotView mirrors ExceptionSlotHeader, align(64) {
        state: AtomicU32,
        child_pid: AtomicU32,
        child_token: AtomicU64,
        parent_pid: AtomicU32,
        report_kind: AtomicU32,
        parent_token: AtomicU64,
        payload_len: AtomicU32,
        reserved0: AtomicU32,
        reserved: [AtomicU64; 3],
    }
}

/// One slot of a segment.
pub(crate) struct Slot<'a> {
    base: NonNull<u8>,
    view: &'a SlotView,
    pub(crate) index: u32,
}

/// What a report slot held when read.
#[derive(Debug)]
pub(crate) enum SlotReport {
    /// No report (the child exited or died without writing one).
    None,
    /// The entry returned an error.
    Error(ChildReport),
    /// The entry panicked.
    Panic(ChildReport),
}

impl<'a> Slot<'a> {
    pub(crate) fn get(segment: &'a Segment, index: u32) -> Option<Slot<'a>> {
        segment.exception_slot(index).map(|base| Slot {
            base,
            // SAFETY: `exception_slot` checked that the slot's 4 KiB lie in the mapping at a
            // 64-aligned offset; the view is atomics only; `segment` keeps the mapping alive
            // for `'a`.
            view: unsafe { base.cast::<SlotView>().as_ref() },
            index,
        })
    }

    fn state(&self) -> &AtomicU32 {
        &self.view.state
    }

    fn child(&self) -> ProcessIdentity {
        ProcessIdentity {
            pid: self.view.child_pid.load(Ordering::Relaxed),
            token: self.view.child_token.load(Ordering::Relaxed),
        }
    }

    fn parent(&self) -> ProcessIdentity {
        ProcessIdentity {
            pid: self.view.parent_pid.load(Ordering::Relaxed),
            token: self.view.parent_token.load(Ordering::Relaxed),
        }
    }

    /// Reserves a free (or reclaimable) slot for a child of `parent`.
    pub(crate) fn reserve(
        segment: &'a Segment,
        parent: ProcessIdentity,
    ) -> Result<Slot<'a>, ProcessError> {
        let count = segment.info().exception_slots;
        for pass in 0..2 {
            for index in 0..count {
                let slot = Slot::get(segment, index).expect("index below the slot count");
                let state = slot.state().load(Ordering::Acquire);
                let from = if state == SLOT_FREE {
                    SLOT_FREE
                } else if pass == 1 && slot.reclaimable(state) {
                    state
                } else {
                    continue;
                };
                // Acquire: we take over whatever the previous user wrote.
                if slot
                    .state()
                    .compare_exchange(from, SLOT_RESERVED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    slot.view.child_pid.store(0, Ordering::Relaxed);
                    slot.view.child_token.store(0, Ordering::Relaxed);
                    slot.view.parent_pid.store(parent.pid, Ordering::Relaxed);
                    slot.view
                        .parent_token
                        .store(parent.token, Ordering::Relaxed);
                    slot.view.payload_len.store(0, Ordering::Relaxed);
                    slot.view.report_kind.store(0, Ordering::Relaxed);
                    return Ok(slot);
                }
            }
        }
        Err(ProcessError::SlotsFull { slots: count })
    }

    /// Can nobody want this slot any more?
    fn reclaimable(&self, state: u32) -> bool {
        let parent_dead = self.parent().liveness() == Liveness::Dead;
        match state {
            // Reserved, child never tagged it: only its parent's death frees it (the parent
            // releases it itself when the spawn fails).
            SLOT_RESERVED => parent_dead,
            SLOT_RUNNING => self.child().liveness() == Liveness::Dead,
            SLOT_REPORTED => parent_dead && self.child().liveness() == Liveness::Dead,
            // Garbage: nobody writes it; take it.
            _ => true,
        }
    }

    /// In the child: tags the reserved slot with the child's identity.
    pub(crate) fn tag(
        &self,
        child: ProcessIdentity,
        parent: ProcessIdentity,
    ) -> Result<(), ProcessError> {
        if self.parent() != parent {
            return Err(ProcessError::SlotStolen { slot: self.index });
        }
        self.view.child_pid.store(child.pid, Ordering::Relaxed);
        self.view.child_token.store(child.token, Ordering::Relaxed);
        self.state()
            .compare_exchange(
                SLOT_RESERVED,
                SLOT_RUNNING,
                Ordering::Release,
                Ordering::Relaxed,
            )
            .map(drop)
            .map_err(|_| ProcessError::SlotStolen { slot: self.index })
    }

    /// In the child: writes a report (already cut to fit) and publishes it.
    pub(crate) fn report(&self, kind: u32, report: &ChildReport) {
        let bytes = report.encode_bounded(EXCEPTION_PAYLOAD_MAX);
        // SAFETY: `bytes.len() <= EXCEPTION_PAYLOAD_MAX`, so the copy stays inside the slot;
        // only this child writes its slot's payload while the slot is RUNNING.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.base.as_ptr().add(PAYLOAD),
                bytes.len(),
            );
        }
        self.view
            .payload_len
            .store(bytes.len() as u32, Ordering::Relaxed);
        self.view.report_kind.store(kind, Ordering::Relaxed);
        // Release: the parent reads the payload after an Acquire load of REPORTED.
        self.state().store(SLOT_REPORTED, Ordering::Release);
    }

    /// In the parent, after the child exited: its report, if this slot still belongs to it.
    pub(crate) fn read(&self, child_pid: u32) -> Result<SlotReport, ProcessError> {
        let state = self.state().load(Ordering::Acquire);
        if state != SLOT_REPORTED || self.child().pid != child_pid {
            return Ok(SlotReport::None);
        }
        let report = validate::exception_slot(&self.view.load_plain()).map_err(|e| {
            ProcessError::CorruptSlot {
                slot: self.index,
                detail: e.to_string(),
            }
        })?;
        let Some(validate::ExceptionReport {
            kind,
            payload_len: len,
        }) = report
        else {
            return Ok(SlotReport::None);
        };
        let mut bytes = vec![0u8; len];
        // SAFETY: `len` bytes of payload lie inside the slot (checked above); the child has
        // exited, so nothing writes them now (a hostile writer could, but these are plain
        // bytes copied out and then parsed as untrusted input).
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.as_ptr().add(PAYLOAD), bytes.as_mut_ptr(), len)
        };
        decode_payload(kind, &bytes).map_err(|detail| ProcessError::CorruptSlot {
            slot: self.index,
            detail,
        })
    }

    /// Frees the slot (after `join`, or when a spawn failed).
    pub(crate) fn release(&self) {
        self.state().store(SLOT_FREE, Ordering::Release);
    }
}

/// Decodes a payload of `kind` (untrusted bytes).
pub(crate) fn decode_payload(kind: u32, bytes: &[u8]) -> Result<SlotReport, String> {
    let report = || ChildReport::decode(bytes);
    match kind {
        REPORT_ERROR => report().map(SlotReport::Error),
        REPORT_PANIC => report().map(SlotReport::Panic),
        0 => Ok(SlotReport::None),
        other => Err(format!("report kind {other}")),
    }
}

/// Decodes a whole slot image (header and payload) as found in a segment: a typed error or a
/// report, never a panic. What the `exception_slot_decode` fuzz target exercises.
pub fn decode_slot_image(image: &[u8]) -> Result<Option<ChildReport>, String> {
    let (header, _) = ExceptionSlotHeader::read_from_prefix(image)
        .map_err(|_| format!("slot image of {} bytes is too short", image.len()))?;
    let Some(report) = validate::exception_slot(&header).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let payload = image
        .get(PAYLOAD..PAYLOAD + report.payload_len)
        .ok_or_else(|| {
            format!(
                "payload of {} bytes runs past the {}-byte image",
                report.payload_len,
                image.len()
            )
        })?;
    match decode_payload(report.kind, payload)? {
        SlotReport::None => Ok(None),
        SlotReport::Error(r) | SlotReport::Panic(r) => Ok(Some(r)),
    }
}

/// `REPORT_ERROR` / `REPORT_PANIC`, re-exported for the writer.
pub(crate) const KIND_ERROR: u32 = REPORT_ERROR;
/// See [`KIND_ERROR`].
pub(crate) const KIND_PANIC: u32 = REPORT_PANIC;

/// Frees every slot nobody can still want; returns how many.
pub(crate) fn reclaim_all(segment: &Segment) -> u32 {
    let mut freed = 0;
    for index in 0..segment.info().exception_slots {
        let Some(slot) = Slot::get(segment, index) else {
            continue;
        };
        let state = slot.state().load(Ordering::Acquire);
        if state != SLOT_FREE
            && slot.reclaimable(state)
            && slot
                .state()
                .compare_exchange(state, SLOT_FREE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            freed += 1;
        }
    }
    freed
}

/// Slots not free.
pub(crate) fn in_use(segment: &Segment) -> u32 {
    (0..segment.info().exception_slots)
        .filter_map(|i| Slot::get(segment, i))
        .filter(|s| s.state().load(Ordering::Relaxed) != SLOT_FREE)
        .count() as u32
}
