//! A bridged ring's link: a `Shared<LinkStatus>` named `link/<ring>` beside a ring that a
//! bridge process (`shmkit-zenoh`) imports from another machine, so local readers and
//! `shmkit inspect` see whether the far side is up and when it last answered. Written only
//! by the bridge; every counter counts since that bridge started.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `kind` of an imported frame ring's link.
pub const LINK_FRAMES_IN: u64 = 1;
/// `kind` of an imported command ring's link.
pub const LINK_COMMANDS_IN: u64 = 2;
/// The name prefix of link values (`link/<ring>`).
pub const LINK_PREFIX: &str = "link/";

/// The link of one imported ring.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct LinkStatus {
    /// [`LINK_FRAMES_IN`] or [`LINK_COMMANDS_IN`].
    pub kind: u64,
    /// 1 while the remote bridge's liveliness token is seen, else 0.
    pub up: u64,
    /// When the last frame or answer arrived (`CLOCK_MONOTONIC` ns; 0: never).
    pub last_rx_ns: u64,
    /// Frames received and published / calls answered by the remote server.
    pub received: u64,
    /// Frames the remote bridge sent that never arrived (sequence gaps); 0 for commands.
    pub gaps: u64,
    /// Frames the remote bridge did not send (newest-only reading, limits); 0 for commands.
    pub remote_skipped: u64,
    /// Samples refused (bad header, size, shape or checksum) / calls failed at once because
    /// the link was down.
    pub rejected: u64,
    /// Frames dropped because local readers held every slot; 0 for commands.
    pub ring_full: u64,
    /// The last frame sequence number received; 0 for commands.
    pub last_seq: u64,
    /// Times the link went down.
    pub downs: u64,
    /// Calls that ended in a remote error other than the server's own failure (timeout, no
    /// server, server died, bridge down, version); 0 for frames.
    pub remote_errors: u64,
}

const _: () = {
    assert!(size_of::<LinkStatus>() == 88);
    assert!(offset_of!(LinkStatus, up) == 8);
    assert!(offset_of!(LinkStatus, last_rx_ns) == 16);
    assert!(offset_of!(LinkStatus, downs) == 72);
    assert!(offset_of!(LinkStatus, remote_errors) == 80);
};
