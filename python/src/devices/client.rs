//! `_DeviceClient`: the client of a Python device, whose calls are pickled.

use super::{call, client_methods, device_error, status_dict, PyDevice};
use crate::frames::PyFrameReader;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use shmkit_devices::DeviceClient;

/// A client of a Python device: pickled calls.
#[pyclass(module = "shmkit._shmkit", name = "_DeviceClient", frozen)]
pub struct PyDeviceClient {
    pub(super) inner: DeviceClient<PyDevice>,
    pub(super) cause: Option<shmkit_devices::Cause>,
}

client_methods!(PyDeviceClient {
    /// Sends a pickled `(method, args, kwargs)` and returns the pickled outcome.
    fn call<'py>(&self, py: Python<'py>, request: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let reply = call(py, &self.inner, &request.to_vec(), self.cause.as_ref())?;
        Ok(PyBytes::new(py, &reply))
    }
});
