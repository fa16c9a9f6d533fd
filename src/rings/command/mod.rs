//! The command ring: clients `call`, one server `recv`s and answers each request at most once.
//!
//! Layout and the slot state machine: `shm-layout/src/command.rs` and `super::cmd_state`.
//! A request whose server dies while holding it is not run again by a successor: its client
//! gets [`CommandError::ServerDied`] with the [`Outcome`] (did it run?), unless the client
//! marked it retry-safe ([`CommandRing::with_retry_safe`]), in which case a successor runs it
//! again and the client waits for that answer until its deadline.
//! Enqueueing is lock-free (claim a free slot with a compare-and-swap, take a ticket with a
//! fetch-add); the server serves the lowest ticket first. Clients sleep on their slot's state
//! word and check the server's liveness every 20 ms, so a dead server is noticed within
//! 100 ms; a dead client's slot is reclaimed by the next client that finds no free slot.
//!
//! Files: `spec.rs` (spec, errors, outcomes), `view.rs` (the shared words), this file (the
//! handle), `client.rs`, `server.rs`, `attach.rs` (creating and attaching).

mod attach;
mod client;
mod server;
mod spec;
mod view;

pub use server::{CommandServer, Request};
pub use spec::{CommandError, CommandSpec, Outcome};

use crate::segment::Segment;
use crate::sync::WaitStrategy;
use shm_layout::validate::CommandGeometry;
use shm_layout::CMD_INLINE;
use std::ptr::NonNull;
use std::time::Duration;
use view::{HeaderView, SlotView};

/// How often a call that found every slot in use looks again.
const SLOT_POLL: Duration = Duration::from_micros(50);
/// How often a waiting client checks that the server is alive.
const SERVER_CHECK: Duration = Duration::from_millis(20);

/// A command ring in a segment. Cheap to clone.
#[derive(Clone)]
pub struct CommandRing {
    _segment: Segment,
    offset: u64,
    /// The ring's block: header, then `slots` slots of `slot_stride` bytes.
    base: NonNull<u8>,
    geometry: CommandGeometry,
    strategy: WaitStrategy,
    retry_safe: bool,
}

// SAFETY: shared words are atomics; request and reply buffers are only touched by the side the
// slot state grants them to; the segment handle keeps the mapping alive.
unsafe impl Send for CommandRing {}
// SAFETY: as above.
unsafe impl Sync for CommandRing {}

impl std::fmt::Debug for CommandRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandRing")
            .field("slots", &self.geometry.slots)
            .field("max_request", &self.geometry.max_request)
            .field("max_reply", &self.geometry.max_reply)
            .finish()
    }
}

impl CommandRing {
    /// The header's shared words.
    #[inline]
    fn header(&self) -> &HeaderView {
        // SAFETY: attach checked that the block at `base` holds the whole ring (header and
        // `slots × slot_stride` bytes) at a 64-aligned offset; atomics only, valid for any
        // bytes; `_segment` keeps the mapping alive as long as `&self`.
        unsafe { self.base.cast::<HeaderView>().as_ref() }
    }

    /// Where slot `slot` starts. Panics (a bug, never UB) if it is not a slot of this ring.
    #[inline]
    fn slot_ptr(&self, slot: u32) -> *mut u8 {
        assert!(slot < self.geometry.slots, "slot {slot} out of range");
        // SAFETY: attach checked `header + slots × slot_stride <= block size`, and
        // `slot < slots`.
        unsafe {
            self.base
                .as_ptr()
                .add(self.geometry.slot_offset(slot) as usize)
        }
    }

    /// Slot `slot`'s metadata line.
    #[inline]
    fn slot(&self, slot: u32) -> &SlotView {
        // SAFETY: `slot_ptr` is in bounds and 64-aligned (the ring is 64-aligned and the
        // stride a multiple of 64, checked at attach), and the 64-byte metadata come first in
        // the slot; atomics only; kept alive by `_segment`.
        unsafe { &*self.slot_ptr(slot).cast::<SlotView>() }
    }

    /// The slot's request buffer (`max_request` bytes after the metadata).
    #[inline]
    fn request_buf(&self, slot: u32) -> *mut u8 {
        // SAFETY: the stride (checked at attach) holds the 64-byte metadata, then
        // `max_request`, then `max_reply` bytes.
        unsafe { self.slot_ptr(slot).add(size_of::<SlotView>()) }
    }

    /// The slot's reply buffer (`max_reply` bytes after the request buffer).
    #[inline]
    fn reply_buf(&self, slot: u32) -> *mut u8 {
        // SAFETY: as in `request_buf`.
        unsafe {
            self.request_buf(slot)
                .add(self.geometry.max_request as usize)
        }
    }

    /// Where a request of `len` bytes lives: inline in the metadata line when it fits, else in
    /// the slot's request buffer.
    #[inline]
    fn request_at(&self, slot: u32, len: u32) -> *mut u8 {
        if len <= CMD_INLINE {
            self.slot(slot).inline_ptr()
        } else {
            self.request_buf(slot)
        }
    }

    /// Where a reply of `len` bytes lives (as for requests).
    #[inline]
    fn reply_at(&self, slot: u32, len: u32) -> *mut u8 {
        if len <= CMD_INLINE {
            self.slot(slot).inline_ptr()
        } else {
            self.reply_buf(slot)
        }
    }

    /// Offset of the ring in its segment: another process attaches with
    /// `Segment::attach::<CommandRing>(offset)`.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The ring's spec, as read from the segment.
    pub fn spec(&self) -> CommandSpec {
        CommandSpec {
            slots: self.geometry.slots,
            max_request: self.geometry.max_request,
            max_reply: self.geometry.max_reply,
        }
    }

    /// This handle, waiting for replies (client) or requests (server) with `strategy`.
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> CommandRing {
        self.strategy = strategy;
        self
    }

    /// This handle, marking its calls retry-safe (or not, the default): if the server dies
    /// while holding one, a successor server runs it again (so it may run twice) and the call
    /// waits for that answer until its deadline. For idempotent requests (set a value, read a
    /// status); never for "move by" commands.
    pub fn with_retry_safe(mut self, retry_safe: bool) -> CommandRing {
        self.retry_safe = retry_safe;
        self
    }
}

use std::mem::size_of;
