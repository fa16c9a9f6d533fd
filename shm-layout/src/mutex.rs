//! The robust reentrant mutex: one cache line.
//!
//! State table of `word` (the futex word):
//!
//! | `word`                         | meaning                                                  |
//! |--------------------------------|----------------------------------------------------------|
//! | `0`                            | unlocked                                                 |
//! | `tid`                          | locked by thread `tid`, nobody blocked                   |
//! | `tid \| MUTEX_WAITERS`         | locked by `tid`, some thread may be blocked in the futex |
//!
//! `owner` is the holder's record `(tid << 42) | token` (the thread's exact identity token: its
//! pidfs inode, or its start time in clock ticks with bit 41 set), written by the holder right
//! after it wins `word` and cleared (to 0) right before it releases `word`. A record whose tid
//! matches `word` but whose token does not match the live thread with that tid was written by
//! a dead thread: that is how a recycled tid is told from its owner.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bit of `word` set while a thread may be sleeping on it (the kernel's `FUTEX_WAITERS`).
pub const MUTEX_WAITERS: u32 = 0x8000_0000;
/// Bits of `word` holding the owner's thread id (Linux tids are below `2^30`).
pub const MUTEX_TID_MASK: u32 = 0x3FFF_FFFF;
/// Bits of `owner` (and of every other role record) holding the identity token; the id
/// (tid or pid) is above them.
pub const OWNER_RECORD_START_MASK: u64 = (1 << 42) - 1;
/// Bits of `meta` holding the reentrant depth beyond the first acquisition.
pub const MUTEX_DEPTH_MASK: u32 = 0x3FFF_FFFF;
/// Shift of the [`MutexConsistency`] field in `meta`.
pub const MUTEX_CONSISTENCY_SHIFT: u32 = 30;

/// Values of the consistency field (the top two bits of [`MutexLayout::meta`]).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutexConsistency {
    /// Normal state.
    Consistent = 0,
    /// A holder died; the current holder got "owner died" and has not yet made it consistent.
    Inconsistent = 1,
    /// A holder got "owner died" and released without making it consistent: the mutex is
    /// permanently unusable (`ENOTRECOVERABLE`).
    NotRecoverable = 2,
}

impl MutexConsistency {
    /// Decodes a raw word; `None` for a value no writer produces.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Consistent),
            1 => Some(Self::Inconsistent),
            2 => Some(Self::NotRecoverable),
            _ => None,
        }
    }
}

/// A process-shared robust reentrant mutex.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct MutexLayout {
    /// The futex word (see the module's state table).
    pub word: u32,
    /// Written only by the holder: reentrant depth beyond the first acquisition (bits 0..30)
    /// and [`MutexConsistency`] (bits 30..32). Zero means "held once, consistent", the one
    /// value the lock and unlock fast paths test for.
    pub meta: u32,
    /// Holder record: `(tid << 42) | token`, or 0.
    pub owner: u64,
    /// Process id of the holder (informational: for error messages and inspection).
    pub owner_pid: u32,
    /// Reserved; zero.
    pub reserved0: u32,
    /// The holder found dead by the most recent recovery, `(pid << 32) | tid`; 0 if none.
    /// Written by the recovering thread while it holds the mutex.
    pub died: u64,
    /// Reserved; zero.
    pub reserved: [u64; 4],
}

const _: () = {
    assert!(size_of::<MutexLayout>() == 64);
    assert!(offset_of!(MutexLayout, word) == 0);
    assert!(offset_of!(MutexLayout, meta) == 4);
    assert!(offset_of!(MutexLayout, owner) == 8);
    assert!(offset_of!(MutexLayout, owner_pid) == 16);
    assert!(offset_of!(MutexLayout, died) == 24);
    assert!(MUTEX_WAITERS & MUTEX_TID_MASK == 0);
};
