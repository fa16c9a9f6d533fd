//! The command ring's shared words, by name: typed views of `CommandRingHeader` and
//! `CommandSlotMeta` (`shm-layout/src/command.rs`), attached once at attach time.

use super::super::cmd_state::SlotWords;
use crate::sync::{shared_view, AtomicU32, AtomicU64, RecordWord};
use shm_layout::{CommandRingHeader, CommandSlotMeta, CMD_INLINE};
use std::sync::atomic::AtomicU8;

shared_view! {
    /// The ring's header: line 0 read-mostly (server record, geometry, the server's doorbell),
    /// line 1 only the clients' ticket counter.
    pub(crate) struct HeaderView mirrors CommandRingHeader, align(64) {
        pub server: RecordWord,
        pub slots: AtomicU32,
        pub max_request: AtomicU32,
        pub max_reply: AtomicU32,
        pub notify: AtomicU32,
        pub server_sleeping: AtomicU32,
        pub reserved0: AtomicU32,
        pub slot_stride: AtomicU64,
        pub reserved1: [AtomicU64; 3],
        pub next_ticket: AtomicU64,
        pub reserved2: [AtomicU64; 7],
    }
}

shared_view! {
    /// One slot's metadata line: the state machine's words (`super::super::cmd_state`), the
    /// ticket, lengths, and the inline payload for small requests and replies.
    pub(crate) struct SlotView mirrors CommandSlotMeta, align(64) {
        pub state: AtomicU32,
        pub waiting: AtomicU32,
        pub client: AtomicU64,
        pub ticket: AtomicU64,
        pub request_len: AtomicU32,
        pub reply_len: AtomicU32,
        pub deadline: AtomicU64,
        pub inline: [AtomicU8; CMD_INLINE as usize],
    }
}

impl SlotView {
    /// The words the slot state machine works on.
    pub(super) fn words(&self) -> SlotWords<'_> {
        SlotWords {
            state: &self.state,
            client: &self.client,
            reply_len: &self.reply_len,
        }
    }

    /// The inline payload's first byte; its `CMD_INLINE` bytes are written and read through this
    /// pointer by whichever side the slot state grants them to.
    pub(super) fn inline_ptr(&self) -> *mut u8 {
        std::ptr::from_ref(&self.inline).cast::<u8>().cast_mut()
    }
}
