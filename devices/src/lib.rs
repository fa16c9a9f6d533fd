//! Device servers, the device cache and the enum-style device API.
//!
//! Each device (a camera, a deformable mirror, a motor) lives in its own server process, a
//! child started through [`shmkit::process::Entries`]. The server creates the device's command ring and
//! frame rings in the segment under `dev/NAME/…`, publishes its state and a heartbeat in a
//! status record (`dev/NAME/status`, see `shm-layout/src/device.rs`), and closes the device
//! safely when asked to, when its owner dies, or on SIGTERM. The [`DeviceCache`] starts a
//! server on first access — exactly once, however many processes race — and hands out typed
//! [`DeviceClient`]s; [`devices!`](crate::devices!) lists a testbed's devices once so that
//! using one is a single line. A server traces its commands and polls into the segment's
//! trace buffer [`TRACE_BUFFER`] when there is one (`trace.rs`).

// Under `--cfg loom` (the core's model checks, which build its dev-dependencies) this crate
// is empty: the core it builds on is reduced to its lock-free protocols there.
#![cfg(not(loom))]

mod cache;
mod cause;
mod client;
mod error;
mod raw_client;
mod server;
pub(crate) mod status;
mod trace;

pub use cache::{DeviceCache, RestartPolicy};
pub use cause::{stage_histogram, Cause, CAUSE_STAGES};
pub use client::DeviceClient;
pub use error::DeviceError;
pub use raw_client::RawDeviceClient;
pub use server::{DeviceContext, DeviceEntries};
pub use trace::TRACE_BUFFER;

/// What `devices!` expands to names; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use shmkit::process::Entries;
}
pub use status::{DeviceState, DeviceStatusInfo};

use serde::de::DeserializeOwned;
use serde::Serialize;
use shmkit::rings::FrameSpec;
use shmkit::WaitStrategy;
use std::marker::PhantomData;
use std::time::Duration;

/// A device's own failure (opening it, or handling a command): its message reaches the
/// caller as it is.
pub type DeviceFailure = Box<dyn std::error::Error + Send + Sync>;

/// A piece of hardware, or a simulation of one, hosted by its own server process.
pub trait Device: Sized + 'static {
    /// Configuration, sent to the server when it starts.
    type Config: Serialize + DeserializeOwned + Clone + 'static;
    /// What clients send.
    type Command: Serialize + DeserializeOwned;
    /// What the device answers.
    type Reply: Serialize + DeserializeOwned;
    /// A name unique among device types: the server's entry point is registered under it.
    const KIND: &'static str;
    /// Largest encoded command or reply in bytes.
    const MAX_MESSAGE: u32 = 4096;
    /// How the server waits for commands: `Block` costs no CPU between commands; a device
    /// commanded at kHz rates may prefer `SpinThenBlock` (a few µs of polling after each).
    const SERVER_STRATEGY: WaitStrategy = WaitStrategy::Block;

    /// The frame rings this device writes, as `(suffix, spec)`: the server creates each as
    /// `dev/NAME/SUFFIX` and owns its writer (see [`DeviceContext::frame_writer`]).
    fn frame_rings(_config: &Self::Config) -> Vec<(String, FrameSpec)> {
        Vec::new()
    }

    /// Opens the device. An error's message reaches the caller that started the server.
    fn open(config: &Self::Config, ctx: &mut DeviceContext) -> Result<Self, DeviceFailure>;

    /// Handles one command.
    fn handle(
        &mut self,
        command: Self::Command,
        ctx: &mut DeviceContext,
    ) -> Result<Self::Reply, DeviceFailure>;

    /// Background work (a camera's acquisition): called after every command and whenever the
    /// delay it last returned has passed. `None`: only after the next command.
    fn poll(&mut self, _ctx: &mut DeviceContext) -> Option<Duration> {
        None
    }

    /// Puts the device in its safe state and releases it. Runs on every way out of the
    /// server except `SIGKILL`.
    fn close(&mut self, ctx: &mut DeviceContext);
}

/// One device of a testbed: its name and its default configuration. Made by
/// [`devices!`](crate::devices!); `Bench::Camera.client(&segment)?` is all a user writes.
pub struct DeviceRef<D: Device> {
    name: &'static str,
    config: fn() -> D::Config,
    _device: PhantomData<fn() -> D>,
}

impl<D: Device> Clone for DeviceRef<D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<D: Device> Copy for DeviceRef<D> {}

impl<D: Device> std::fmt::Debug for DeviceRef<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRef")
            .field("name", &self.name)
            .field("kind", &D::KIND)
            .finish()
    }
}

impl<D: Device> DeviceRef<D> {
    /// A device named `name` whose configuration, unless given otherwise, is `config()`.
    pub const fn new(name: &'static str, config: fn() -> D::Config) -> DeviceRef<D> {
        DeviceRef {
            name,
            config,
            _device: PhantomData,
        }
    }

    /// The device's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its default configuration.
    pub fn config(&self) -> D::Config {
        (self.config)()
    }

    /// A client, starting the device's server if none runs (bounded wait).
    pub fn client(
        &self,
        segment: &shmkit::segment::Segment,
    ) -> Result<DeviceClient<D>, DeviceError> {
        DeviceCache::new(segment).get::<D>(self.name, &self.config())
    }

    /// A reader of the device's frame ring `suffix` (starting the server if needed).
    pub fn frames(
        &self,
        segment: &shmkit::segment::Segment,
        suffix: &str,
        mode: shmkit::rings::ReadMode,
    ) -> Result<shmkit::rings::FrameReader, DeviceError> {
        self.client(segment)?.frames(suffix, mode)
    }

    /// The device's mutex, for a multi-command critical section: `let m =
    /// Bench::Dm.mutex(&seg)?; let _g = m.lock()?;` (a client's `call` honours it).
    pub fn mutex(
        &self,
        segment: &shmkit::segment::Segment,
    ) -> Result<shmkit::primitives::Mutex, DeviceError> {
        check_name(self.name)?;
        Ok(segment.mutex(&object_name(self.name, "lock"))?)
    }

    /// A client through `cache` (its restart policy and start timeout apply).
    pub fn client_in(&self, cache: &DeviceCache) -> Result<DeviceClient<D>, DeviceError> {
        cache.get::<D>(self.name, &self.config())
    }
}

/// Lists a testbed's devices once and gives each a typed handle.
///
/// ```no_run
/// use shmkit_sim::{DmCommand, SimCamera, SimCameraConfig, SimDm, SimDmConfig};
/// use shmkit::process::Entries;
///
/// shmkit_devices::devices! {
///     /// The bench.
///     pub struct Bench {
///         Camera: SimCamera = SimCameraConfig::default(),
///         Dm: SimDm = SimDmConfig::default(),
///     }
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     Bench::entries(Entries::new()).dispatch(); // at the top of main
///     let segment = shmkit::Segment::open("lab")?;
///     let _reply = Bench::Dm.client(&segment)?.call(&DmCommand::Zero)?;
///     Ok(())
/// }
/// ```
///
/// Each member is an associated constant of type [`DeviceRef`], used like an enum variant
/// (`Bench::Camera`); constants rather than variants because each member has its own client
/// type. `Bench::entries` registers every device type's server entry; `Bench::NAMES` lists
/// the names in declaration order (close them in reverse).
#[macro_export]
macro_rules! devices {
    ($(#[$meta:meta])* $vis:vis struct $bench:ident {
        $($(#[$dmeta:meta])* $dev:ident : $ty:ty = $config:expr),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $bench;

        #[allow(non_upper_case_globals)]
        impl $bench {
            $(
                $(#[$dmeta])*
                pub const $dev: $crate::DeviceRef<$ty> =
                    $crate::DeviceRef::new(stringify!($dev), || $config);
            )+

            /// Every device's name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($dev)),+];

            /// Registers the server entry of every device type listed.
            pub fn entries(entries: $crate::__private::Entries) -> $crate::__private::Entries {
                $(let entries = <$crate::__private::Entries as $crate::DeviceEntries>::device::<$ty>(entries);)+
                entries
            }
        }
    };
}

/// Checks a device name: 1 to 32 characters of ASCII letters, digits, `_` and `-`.
pub(crate) fn check_name(name: &str) -> Result<(), DeviceError> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DeviceError::InvalidName(name.to_owned()))
    }
}

/// The segment name of a device's object `what` (`dev/NAME/status`, `dev/NAME/shape`, …): where
/// a device server keeps what other processes read of it.
pub fn object_name(device: &str, what: &str) -> String {
    format!("dev/{device}/{what}")
}
