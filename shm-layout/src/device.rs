//! A device server's status record: a `Shared<DeviceStatus>` named `dev/NAME/status`.
//!
//! It is read and written under its own robust mutex (not the device's), so a client holding
//! the device's mutex, or stuck, never keeps the status from being read or a close from being
//! requested.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// No server (never started, or closed cleanly, or its open failed).
pub const DEVICE_CLOSED: u32 = 0;
/// A server was started and is opening the device.
pub const DEVICE_OPENING: u32 = 1;
/// The device is open and the server answers commands.
pub const DEVICE_RUNNING: u32 = 2;
/// The server is closing the device.
pub const DEVICE_CLOSING: u32 = 3;
/// The server died without closing the device.
pub const DEVICE_CRASHED: u32 = 4;
/// The device was put in its safe state after a failure and refuses commands.
pub const DEVICE_FAIL_SAFE: u32 = 5;

/// Bytes kept of an open failure's message.
pub const DEVICE_ERROR_MAX: usize = 200;

/// The status record.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct DeviceStatus {
    /// One of the `DEVICE_*` states.
    pub state: u32,
    /// Times a server was started for this device.
    pub starts: u32,
    /// The server's record `(pid << 42) | token` (see `SegmentHeader::creator_token`); 0 when none.
    pub server: u64,
    /// CLOCK_MONOTONIC ns of the server's last heartbeat.
    pub heartbeat_ns: u64,
    /// CLOCK_MONOTONIC ns when the current server was started.
    pub started_ns: u64,
    /// Non-zero: the server must close the device and exit.
    pub close_requested: u32,
    /// Bytes used in `error`.
    pub error_len: u32,
    /// The last open failure's (or crash's) message, UTF-8, cut to fit.
    pub error: [u8; DEVICE_ERROR_MAX],
}

const _: () = {
    assert!(size_of::<DeviceStatus>() == 240);
    assert!(offset_of!(DeviceStatus, server) == 8);
    assert!(offset_of!(DeviceStatus, heartbeat_ns) == 16);
    assert!(offset_of!(DeviceStatus, close_requested) == 32);
    assert!(offset_of!(DeviceStatus, error) == 40);
};
