//! An imported ring's link, published in its local segment beside the ring (a shared value
//! named `zenoh.<ring>`), so local readers and `shmkit inspect` see whether the far side is
//! up and when it last sent.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The link of one imported ring. All counters since the bridge started.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct LinkStatus {
    /// 1 while the remote bridge's liveliness token is seen, else 0.
    pub up: u64,
    /// When the last frame arrived (`CLOCK_MONOTONIC` ns; 0: never).
    pub last_rx_ns: u64,
    /// Frames received and published.
    pub received: u64,
    /// Frames the remote bridge sent that never arrived (sequence gaps).
    pub gaps: u64,
    /// Frames the remote bridge did not send (its newest-only reading and limits).
    pub remote_skipped: u64,
    /// Samples refused: bad header, wrong size or shape, checksum mismatch.
    pub rejected: u64,
    /// Frames dropped because local readers held every slot.
    pub ring_full: u64,
    /// The last sequence number received.
    pub last_seq: u64,
    /// Times the link went down.
    pub downs: u64,
}

/// The name of ring `ring`'s status value.
pub fn status_name(ring: &str) -> String {
    format!("zenoh.{ring}")
}
