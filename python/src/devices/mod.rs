//! Devices from Python, on the core's device servers and device cache: one file per class.
//!
//! A Python device is hosted by the same server loop as a Rust one (`shmkit_devices`:
//! status record, heartbeat, close on request / SIGTERM / owner death, fail-safe, restart by
//! the cache's policy): [`PyDevice`] is a `Device` whose configuration is the pickled device
//! factory and whose commands and replies are pickled bytes, handled by calling into Python
//! (`shmkit._devices`). Its server is a Python interpreter started by the cache
//! (`DeviceCache::with_program`) that hands its start to [`run_child`], which also hosts the
//! built-in simulated camera and mirror — so every device a Python testbed names runs in a
//! server the Rust testbed would recognise.

//!
//! - `py_device.rs`: [`PyDevice`], the core `Device` whose commands are Python calls;
//! - `cache.rs`: `_DeviceCache`, the core's device cache;
//! - `client.rs`: `_DeviceClient`, a Python device's client;
//! - `sim_camera.rs`, `sim_dm.rs`: the simulated camera's and mirror's clients, their configs
//!   read from a Python dict through the config types' own serde definitions.
//!
//! This file holds what they share: the child entry, the call that releases the interpreter,
//! the error mapping and the client methods every kind has.

mod cache;
mod client;
mod py_device;
mod sim_camera;
mod sim_dm;

pub use cache::PyDeviceCache;
pub use client::PyDeviceClient;
pub use py_device::{PyDevice, PyDeviceConfig};
pub use sim_camera::PySimCamera;
pub use sim_dm::PySimDm;

use crate::errors::segment_error;
use crate::wait::detached;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmkit::process::{ChildStart, Entries};
use shmkit::Timeout;
use shmkit_devices::DeviceEntries;
use shmkit_devices::{Cause, Device, DeviceClient, DeviceError, DeviceState, DeviceStatusInfo};
use shmkit_sim::{SimCamera, SimDm};
use shmkit_testbed::ExperimentEntries;
use std::time::Duration;

/// Runs this interpreter as the shmkit child its environment describes (a device server the
/// cache started) and returns its exit code.
#[pyfunction]
pub fn run_child(py: Python<'_>) -> PyResult<i32> {
    let Some(start) = ChildStart::from_env() else {
        return Err(PyRuntimeError::new_err(
            "this process was not started as a shmkit child",
        ));
    };
    Ok(py.detach(move || {
        Entries::new()
            .device::<PyDevice>()
            .device::<SimCamera>()
            .device::<SimDm>()
            .experiment::<crate::testbed::PyExperiment>()
            .run(start)
    }))
}

/// Calls `client` detached from the interpreter, Ctrl+C ending the wait (the exception the
/// signal handler raised is what the caller gets), within the client's call timeout; with
/// `cause`, the call carries it (the server records its stages).
pub(crate) fn call<D: Device>(
    py: Python<'_>,
    client: &DeviceClient<D>,
    command: &D::Command,
    cause: Option<&Cause>,
) -> PyResult<D::Reply>
where
    D::Command: Sync,
    D::Reply: Send,
{
    let timeout = Timeout::After(client.timeout());
    let (got, raised) = detached(py, |check| match cause {
        Some(cause) => client.call_caused_interruptible(command, cause, timeout, check),
        None => client.call_interruptible(command, timeout, check),
    });
    if let Some(e) = raised {
        return Err(e);
    }
    got.map_err(|e| device_error(py, e))
}

/// A device error as the Python exception `shmkit.errors` names for it.
pub(crate) fn device_error(py: Python<'_>, e: DeviceError) -> PyErr {
    let message = shmkit::error_chain(&e);
    let class = match &e {
        DeviceError::Crashed { .. } => "DeviceCrashed",
        DeviceError::Closed { .. } => "DeviceClosed",
        DeviceError::FailSafe { .. } => "DeviceFailSafe",
        DeviceError::OpenFailed { .. } => "DeviceOpenFailed",
        DeviceError::StartTimeout { .. } | DeviceError::Timeout { .. } => "DeviceTimeout",
        DeviceError::OwnerDied { .. } => "DeviceOwnerDied",
        DeviceError::Failed { .. } => "DeviceFailed",
        DeviceError::RequestTooLarge { .. } => "RequestTooLarge",
        DeviceError::ReplyTooLarge { .. } => "ReplyTooLarge",
        DeviceError::Segment(_) => {
            return segment_error(py, shmkit::SegmentError::InvalidOption(message))
        }
        _ => "DeviceError",
    };
    crate::errors::raise(py, class, (message,))
}

/// A device's status as the dict `_DeviceCache.status` returns.
pub(crate) fn status_dict<'py>(
    py: Python<'py>,
    s: &DeviceStatusInfo,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let state = match s.state {
        DeviceState::Closed => "closed",
        DeviceState::Opening => "opening",
        DeviceState::Running => "running",
        DeviceState::Closing => "closing",
        DeviceState::Crashed => "crashed",
        DeviceState::FailSafe => "fail_safe",
        DeviceState::Unresponsive => "unresponsive",
        _ => "unknown",
    };
    d.set_item("state", state)?;
    d.set_item("pid", s.pid)?;
    d.set_item("starts", s.starts)?;
    d.set_item("heartbeat_age", s.heartbeat_age.map(|a| a.as_secs_f64()))?;
    d.set_item("message", &s.message)?;
    Ok(d)
}

/// A timeout in seconds from Python, refused when negative or not finite.
pub(crate) fn seconds(timeout: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(timeout).map_err(|_| {
        PyValueError::new_err(format!("timeout must be finite and >= 0, not {timeout}"))
    })
}

/// A device config read from a Python dict through its serde definition: missing fields take
/// their defaults, an unknown one is a `ValueError` naming it (`what` says whose config).
pub(crate) fn config_from<T: serde::de::DeserializeOwned>(
    what: &str,
    dict: &Bound<'_, PyAny>,
) -> PyResult<T> {
    pythonize::depythonize(dict).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// The client side every device kind shares: status, frames, causes. Each client class has
/// the fields `inner` (its `DeviceClient`) and `cause` (what its calls carry).
macro_rules! client_methods {
    ($ty:ident { $($extra:tt)* }) => {
        #[pymethods]
        impl $ty {
            $($extra)*

            /// This client with every call carrying `cause` (a `Cause`, or the `Frame` the
            /// commands are computed from): the device's server records the stages frame
            /// publish → held → sent → applied in `dev/NAME/latency/...`.
            fn caused(&self, cause: &Bound<'_, PyAny>) -> PyResult<Self> {
                Ok($ty {
                    inner: self.inner.clone(),
                    cause: Some(crate::cause::cause_of(cause)?),
                })
            }

            /// What this client's calls carry (None: no cause).
            #[getter]
            fn cause(&self) -> Option<crate::cause::PyCause> {
                self.cause.map(|inner| crate::cause::PyCause { inner })
            }

            /// The device's name.
            #[getter]
            fn name(&self) -> String {
                self.inner.name().to_owned()
            }

            /// A reader of the device's frame ring `suffix` ("newest" or "oldest"; `wait` as
            /// for `FrameRing.reader`).
            #[pyo3(signature = (suffix, mode = "newest", wait = "spin_then_block"))]
            fn frames(
                &self,
                py: Python<'_>,
                suffix: &str,
                mode: &str,
                wait: &str,
            ) -> PyResult<PyFrameReader> {
                let mode = crate::frames::read_mode(mode)?;
                let (strategy, _) = crate::wait::strategy(wait)?;
                let reader = self
                    .inner
                    .frames(suffix, mode)
                    .map_err(|e| device_error(py, e))?;
                Ok(PyFrameReader::wrap(reader.into_owned().with_strategy(strategy)))
            }

            /// The device's status (as `_DeviceCache.status`).
            fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let s = self.inner.status().map_err(|e| device_error(py, e))?;
                status_dict(py, &s)
            }
        }
    };
}

pub(crate) use client_methods;
