//! The exception slot array: one slot per running child, where it reports how it failed.
//!
//! `state` of a slot:
//!
//! | value | meaning |
//! |---|---|
//! | 0 `FREE` | unused |
//! | 1 `RESERVED` | a parent reserved it for a child it is spawning (`parent_*` set) |
//! | 2 `RUNNING` | the child started and tagged it with its identity (`child_*` set) |
//! | 3 `REPORTED` | the child wrote a report: `report_kind`, `payload_len` bytes of payload |
//!
//! The payload is a postcard-encoded report (type name, message, cause chain, location,
//! backtrace), at most [`EXCEPTION_PAYLOAD_MAX`] bytes; longer reports are cut down by the
//! writer with an explicit truncation marker. `state` moves to `REPORTED` last, with Release.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes per slot (header and payload).
pub const EXCEPTION_SLOT_SIZE: usize = 4096;
/// Bytes of payload per slot.
pub const EXCEPTION_PAYLOAD_MAX: usize = EXCEPTION_SLOT_SIZE - size_of::<ExceptionSlotHeader>();
/// Default number of slots.
pub const EXCEPTION_DEFAULT_SLOTS: u32 = 32;
/// Slot states.
pub const SLOT_FREE: u32 = 0;
/// Reserved by a parent.
pub const SLOT_RESERVED: u32 = 1;
/// Tagged by the running child.
pub const SLOT_RUNNING: u32 = 2;
/// Holds a report.
pub const SLOT_REPORTED: u32 = 3;
/// `report_kind`: the entry returned an error.
pub const REPORT_ERROR: u32 = 1;
/// `report_kind`: the entry panicked.
pub const REPORT_PANIC: u32 = 2;

/// The header of one slot; the payload follows it.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ExceptionSlotHeader {
    /// See the module's state table.
    pub state: u32,
    /// Child pid (0 until the child tags the slot).
    pub child_pid: u32,
    /// Child identity token (as `SegmentHeader::creator_token`).
    pub child_token: u64,
    /// Parent pid.
    pub parent_pid: u32,
    /// [`REPORT_ERROR`] or [`REPORT_PANIC`] once reported.
    pub report_kind: u32,
    /// Parent identity token.
    pub parent_token: u64,
    /// Bytes of payload.
    pub payload_len: u32,
    /// Reserved; zero.
    pub reserved0: u32,
    /// Reserved; zero.
    pub reserved: [u64; 3],
}

const _: () = {
    assert!(size_of::<ExceptionSlotHeader>() == 64);
    assert!(offset_of!(ExceptionSlotHeader, state) == 0);
    assert!(offset_of!(ExceptionSlotHeader, child_pid) == 4);
    assert!(offset_of!(ExceptionSlotHeader, child_token) == 8);
    assert!(offset_of!(ExceptionSlotHeader, parent_pid) == 16);
    assert!(offset_of!(ExceptionSlotHeader, report_kind) == 20);
    assert!(offset_of!(ExceptionSlotHeader, parent_token) == 24);
    assert!(offset_of!(ExceptionSlotHeader, payload_len) == 32);
};
