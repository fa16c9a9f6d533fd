//! The command ring: many clients, one server, one reply per request.
//!
//! Block layout: [`CommandRingHeader`] (128 bytes), then `slots` slots of `slot_stride` bytes:
//! a [`CommandSlotMeta`] (64 bytes), the request buffer (`max_request` bytes), the reply
//! buffer (`max_reply` bytes).
//!
//! A slot's `state` word (also the client's futex word) is `(generation << 8) | state`:
//!
//! | state | meaning | who moves it on |
//! |---|---|---|
//! | 0 `FREE`, `client` 0 | unused | a client claims it: `client` 0 → its record (one CAS) |
//! | 0 `FREE`, `client` ≠ 0 | claimed: that client is writing its request | that client queues it (or, if it died, anyone undoes the claim) |
//! | 2 `QUEUED` | waiting for the server | the server takes it, or the client withdraws it |
//! | 3 `TAKEN` | the server is executing it; the request bytes are intact until the server sets [`CMD_ANSWERING_MARK`] in `reply_len`, after which it writes the answer (an inline reply overwrites the inline request) | the server publishes the answer, or the client abandons it |
//! | 4 `REPLIED` / 5 `FAILED` | the answer is in the reply buffer | the client reads it and frees the slot |
//! | 8 `LOST` | the server died holding it; `reply_len` is the outcome (0 unknown, 1 executed), `ticket` the dead server's pid | the client reads it and frees the slot |
//! | 6 `ABANDONED` | the client gave up while a server held it | that server (or, if it died, its successor) frees it |
//!
//! Freeing increments the generation, so an answer can only land in the call it belongs to,
//! then clears `client`, so a slot becomes claimable only once it is free.
//! Only a server writes into a slot it holds (`TAKEN`, `ABANDONED`), and only a
//! server frees an `ABANDONED` slot, so a client's stale view of a dead server can never hand
//! a slot another server is still writing to a new call.
//!
//! Delivery is at most once. A successor server taking over from a dead one settles every
//! slot the dead one held: `TAKEN` becomes `LOST` (outcome "ran" if marked answering, else
//! "unknown"), `ABANDONED` becomes `FREE`; a retry-safe `TAKEN` request (bit
//! [`CMD_RETRY_SAFE`] of `request_len`) not yet marked answering goes back to `QUEUED` and runs
//! again.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Slot states (low 8 bits of `state`).
pub const CMD_FREE: u32 = 0;
/// Unused since layout 2.0 (a claimed slot is `FREE` with a non-zero `client`); reserved.
pub const CMD_CLAIMED: u32 = 1;
/// Waiting for the server.
pub const CMD_QUEUED: u32 = 2;
/// The server is handling it.
pub const CMD_TAKEN: u32 = 3;
/// Answered.
pub const CMD_REPLIED: u32 = 4;
/// Answered with an error message.
pub const CMD_FAILED: u32 = 5;
/// The client gave up while the server held it.
pub const CMD_ABANDONED: u32 = 6;
/// Bit of `reply_len` of a `TAKEN` slot: the server ran the request and started writing the
/// answer (the client clears `reply_len` when it queues).
pub const CMD_ANSWERING_MARK: u32 = 1 << 31;
/// The server died holding the request; the outcome is in `reply_len`.
pub const CMD_LOST: u32 = 8;
/// `reply_len` of a `LOST` slot: the request may or may not have run.
pub const CMD_LOST_UNKNOWN: u32 = 0;
/// `reply_len` of a `LOST` slot: the request ran; its reply was lost.
pub const CMD_LOST_EXECUTED: u32 = 1;
/// Bit of `request_len`: the client allows a successor server to run the request again.
pub const CMD_RETRY_SAFE: u32 = 1 << 31;
/// `deadline` of a call that waits forever.
pub const CMD_NO_DEADLINE: u64 = u64::MAX;
/// Most slots in one command ring.
pub const CMD_MAX_SLOTS: u32 = 1024;

/// Request or reply bytes up to this length travel inside the slot's metadata line, so a
/// small call moves one cache line each way instead of three.
pub const CMD_INLINE: u32 = 24;

/// The ring's header. Line 0 is read-mostly (geometry, server record, sleep flag); line 1
/// holds the ticket counter only clients write, so a spinning server never pulls it away.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct CommandRingHeader {
    /// The server's record `(pid << 42) | token` (see `SegmentHeader::creator_token`); 0 when none.
    pub server: u64,
    /// Number of slots.
    pub slots: u32,
    /// Largest request in bytes.
    pub max_request: u32,
    /// Largest reply in bytes.
    pub max_reply: u32,
    /// Futex word the server sleeps on; clients increment it only while `server_sleeping`.
    pub notify: u32,
    /// 1 while the server may be asleep on `notify`.
    pub server_sleeping: u32,
    /// Reserved; zero.
    pub reserved0: u32,
    /// Bytes from one slot to the next.
    pub slot_stride: u64,
    /// Reserved; zero.
    pub reserved1: [u64; 3],
    /// Tickets handed to requests (FIFO order for the server).
    pub next_ticket: u64,
    /// Reserved; zero.
    pub reserved2: [u64; 7],
}

/// A slot's metadata; the request and reply buffers follow it.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct CommandSlotMeta {
    /// `(generation << 8) | state`; the client's futex word.
    pub state: u32,
    /// 1 while the client may be asleep on `state` (the server wakes it only then).
    pub waiting: u32,
    /// The claiming client's record `(pid << 42) | token` (see
    /// `SegmentHeader::creator_token`); the claim word: 0 while the slot is claimable, cleared
    /// last when a slot is freed.
    pub client: u64,
    /// The request's ticket; the dead server's pid when `LOST`.
    pub ticket: u64,
    /// Request length in bytes (inline when at most [`CMD_INLINE`]), plus
    /// [`CMD_RETRY_SAFE`].
    pub request_len: u32,
    /// Reply length in bytes (inline when at most [`CMD_INLINE`]), with
    /// [`CMD_ANSWERING_MARK`] set by the server before it writes the answer (readers mask it
    /// off); the outcome code when `LOST`.
    pub reply_len: u32,
    /// The calling client's deadline, `CLOCK_MONOTONIC` nanoseconds (a segment is one
    /// machine, so every process reads the same clock); [`CMD_NO_DEADLINE`] when it waits
    /// forever. Written with the request, so a server (a bridge forwarding the call over a
    /// network, or one that skips stale work) knows how long the caller still waits.
    pub deadline: u64,
    /// Inline request, then inline reply (the reply overwrites the consumed request).
    pub inline: [u8; CMD_INLINE as usize],
}

const _: () = {
    assert!(size_of::<CommandRingHeader>() == 128);
    assert!(offset_of!(CommandRingHeader, slots) == 8);
    assert!(offset_of!(CommandRingHeader, notify) == 20);
    assert!(offset_of!(CommandRingHeader, server_sleeping) == 24);
    assert!(offset_of!(CommandRingHeader, slot_stride) == 32);
    assert!(offset_of!(CommandRingHeader, next_ticket) == 64);
    assert!(size_of::<CommandSlotMeta>() == 64);
    assert!(offset_of!(CommandSlotMeta, waiting) == 4);
    assert!(offset_of!(CommandSlotMeta, client) == 8);
    assert!(offset_of!(CommandSlotMeta, ticket) == 16);
    assert!(offset_of!(CommandSlotMeta, request_len) == 24);
    assert!(offset_of!(CommandSlotMeta, reply_len) == 28);
    assert!(offset_of!(CommandSlotMeta, deadline) == 32);
    assert!(offset_of!(CommandSlotMeta, inline) == 40);
};
