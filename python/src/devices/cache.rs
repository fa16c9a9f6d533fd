//! `_DeviceCache`: the core's device cache over one segment, its servers Python interpreters
//! (or the built-in simulated camera and mirror).

use super::{
    config_from, device_error, seconds, status_dict, PyDevice, PyDeviceClient, PyDeviceConfig,
    PySimCamera, PySimDm,
};
use crate::frames::elem_of;
use crate::wait::detached;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmkit::process::HostProgram;
use shmkit_devices::{Device, DeviceCache, DeviceClient, RestartPolicy};
use shmkit_sim::{SimCamera, SimDm, SimDmConfig};
use std::time::Duration;

/// The core's device cache over one segment, its servers Python interpreters.
#[pyclass(module = "shmkit._shmkit", name = "_DeviceCache", frozen)]
pub struct PyDeviceCache {
    inner: DeviceCache,
    /// Each client's call timeout.
    call_timeout: Duration,
}

impl PyDeviceCache {
    /// A client of device `name` of kind `D`, starting its server if none runs (`restart`:
    /// start it again after a crash or a close), detached from the interpreter with Ctrl+C
    /// ending the wait; the client uses this cache's call timeout.
    fn client<D: Device>(
        &self,
        py: Python<'_>,
        name: &str,
        config: &D::Config,
        restart: bool,
    ) -> PyResult<DeviceClient<D>>
    where
        D::Config: Sync,
    {
        let cache = &self.inner;
        let (got, raised) = detached(py, |check| {
            if restart {
                cache.restart::<D>(name, config)
            } else {
                cache.get_interruptible::<D>(name, config, check)
            }
        });
        if let Some(e) = raised {
            return Err(e);
        }
        got.map(|inner| inner.with_timeout(self.call_timeout))
            .map_err(|e| device_error(py, e))
    }
}

#[pymethods]
impl PyDeviceCache {
    /// A cache over `segment`: `restart` is "never" or "on_access"; servers are started as
    /// `program args...` (this interpreter running `shmkit._devices._serve`).
    #[new]
    #[pyo3(signature = (segment, program, args, restart = "never", start_timeout = 10.0, call_timeout = 60.0))]
    fn new(
        segment: &crate::segment::PySegment,
        program: String,
        args: Vec<String>,
        restart: &str,
        start_timeout: f64,
        call_timeout: f64,
    ) -> PyResult<PyDeviceCache> {
        let policy = match restart {
            "never" => RestartPolicy::Never,
            "on_access" => RestartPolicy::OnAccess,
            other => {
                return Err(PyValueError::new_err(format!(
                    "restart must be \"never\" or \"on_access\", not {other:?}"
                )))
            }
        };
        Ok(PyDeviceCache {
            inner: DeviceCache::new(segment.segment())
                .with_restart_policy(policy)
                .with_start_timeout(seconds(start_timeout)?)
                .with_program(HostProgram::new(program, args)),
            call_timeout: seconds(call_timeout)?,
        })
    }

    /// Records this process as every device's owner: servers close their device when it dies.
    fn own(&self, py: Python<'_>) -> PyResult<()> {
        self.inner
            .clone()
            .own()
            .map(|_| ())
            .map_err(|e| device_error(py, e))
    }

    /// A client of the Python device `name`, starting its server (from `factory`, the
    /// pickled device, with frame rings `rings`) if none runs; `restart` starts it again
    /// after a crash or a close.
    #[pyo3(signature = (name, factory, rings, restart = false))]
    fn python(
        &self,
        py: Python<'_>,
        name: &str,
        factory: Vec<u8>,
        rings: Vec<(String, u32, String, Vec<u32>)>,
        restart: bool,
    ) -> PyResult<PyDeviceClient> {
        for (_, _, dtype, _) in &rings {
            elem_of(dtype)?;
        }
        let config = PyDeviceConfig { factory, rings };
        let inner = self.client::<PyDevice>(py, name, &config, restart)?;
        Ok(PyDeviceClient { inner, cause: None })
    }

    /// A client of the simulated camera `name` (`config`: `SimCameraConfig`'s fields).
    #[pyo3(signature = (name, config, restart = false))]
    fn sim_camera(
        &self,
        py: Python<'_>,
        name: &str,
        config: &Bound<'_, PyDict>,
        restart: bool,
    ) -> PyResult<PySimCamera> {
        let c = super::sim_camera::config(config)?;
        let inner = self.client::<SimCamera>(py, name, &c, restart)?;
        Ok(PySimCamera { inner, cause: None })
    }

    /// A client of the simulated mirror `name` (`config`: `SimDmConfig`'s fields).
    #[pyo3(signature = (name, config, restart = false))]
    fn sim_dm(
        &self,
        py: Python<'_>,
        name: &str,
        config: &Bound<'_, PyDict>,
        restart: bool,
    ) -> PyResult<PySimDm> {
        let c: SimDmConfig = config_from("SimDm's config", config.as_any())?;
        let inner = self.client::<SimDm>(py, name, &c, restart)?;
        Ok(PySimDm { inner, cause: None })
    }

    /// The status of device `name` as a dict (state, pid, starts, heartbeat_age, message).
    fn status<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.status(name).map_err(|e| device_error(py, e))?;
        status_dict(py, &s)
    }

    /// Closes device `name` safely (whoever holds its mutex), waiting up to `timeout` s.
    #[pyo3(signature = (name, timeout = 5.0))]
    fn close<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let t = seconds(timeout)?;
        let cache = &self.inner;
        let (got, raised) = detached(py, |check| cache.close_interruptible(name, t, check));
        if let Some(e) = raised {
            return Err(e);
        }
        let s = got.map_err(|e| device_error(py, e))?;
        status_dict(py, &s)
    }
}
