//! `SimCameraClient`: the simulated camera's client, and its config read from a Python dict.

use super::{call, client_methods, config_from, device_error, status_dict};
use crate::frames::PyFrameReader;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmkit_devices::DeviceClient;
use shmkit_sim::{CameraCommand, CameraReply, SimCamera, SimCameraConfig};

/// The camera's config from `dict` (`SimCameraConfig`'s fields). Its `ao` is `None`/`False`
/// for the toy sensor, `True` for the physical bench's defaults, or a dict of `AoConfig`
/// fields (`layers`: a list of dicts of `fraction`, `speed`, `direction_deg`) over them.
pub(super) fn config(dict: &Bound<'_, PyDict>) -> PyResult<SimCameraConfig> {
    let dict = dict.copy()?;
    if let Some(ao) = dict.get_item("ao")? {
        if let Ok(on) = ao.extract::<bool>() {
            // The one spelling serde has no word for: `True` means the defaults.
            if on {
                dict.set_item("ao", PyDict::new(dict.py()))?;
            } else {
                dict.set_item("ao", dict.py().None())?;
            }
        }
    }
    config_from("SimCamera's config", dict.as_any())
}

/// A client of the simulated camera.
#[pyclass(module = "shmkit._shmkit", name = "SimCameraClient", frozen)]
pub struct PySimCamera {
    pub(super) inner: DeviceClient<SimCamera>,
    pub(super) cause: Option<shmkit_devices::Cause>,
}

impl PySimCamera {
    fn send(&self, py: Python<'_>, command: CameraCommand) -> PyResult<CameraReply> {
        call(py, &self.inner, &command, self.cause.as_ref())
    }
}

client_methods!(PySimCamera {
    /// Changes the frame rate (frames per second).
    fn set_rate(&self, py: Python<'_>, rate_hz: f64) -> PyResult<()> {
        self.send(py, CameraCommand::SetRate(rate_hz)).map(|_| ())
    }

    /// Starts acquiring.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        self.send(py, CameraCommand::Start).map(|_| ())
    }

    /// Stops acquiring.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.send(py, CameraCommand::Stop).map(|_| ())
    }

    /// Switches the simulated turbulence on or off (the physical bench, `ao`, only: a bench
    /// calibrates without it). Simulated time keeps running either way.
    fn turbulence(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        self.send(py, CameraCommand::Turbulence(on)).map(|_| ())
    }

    /// Sets the source's flux, photo-electrons per fully lit sub-aperture per frame (the
    /// physical bench only: a bench calibrates on a bright calibration source).
    fn photons(&self, py: Python<'_>, photons: f64) -> PyResult<()> {
        self.send(py, CameraCommand::Photons(photons)).map(|_| ())
    }

    /// `(frames published, frame rate)`.
    fn stats(&self, py: Python<'_>) -> PyResult<(u64, f64)> {
        match self.send(py, CameraCommand::Stats)? {
            CameraReply::Stats { frames, rate_hz } => Ok((frames, rate_hz)),
            other => Err(PyRuntimeError::new_err(format!(
                "unexpected reply {other:?}"
            ))),
        }
    }
});
