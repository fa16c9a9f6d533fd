//! `SimDmClient`: the simulated deformable mirror's client.

use super::{call, client_methods, device_error, status_dict};
use crate::frames::PyFrameReader;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmkit_devices::{DeviceClient, DeviceError};
use shmkit_sim::{DmCommand, DmReply, SimDm};
use std::time::Duration;

/// A client of the simulated deformable mirror.
#[pyclass(module = "shmkit._shmkit", name = "SimDmClient", frozen)]
pub struct PySimDm {
    pub(super) inner: DeviceClient<SimDm>,
    pub(super) cause: Option<shmkit_devices::Cause>,
}

impl PySimDm {
    fn send(&self, py: Python<'_>, command: DmCommand) -> PyResult<DmReply> {
        call(py, &self.inner, &command, self.cause.as_ref())
    }
}

client_methods!(PySimDm {
    /// Applies actuator values (row-major n × n, any float sequence or array); `tag` comes
    /// back in the shape frame's user word 0. Returns `(shape frame id, clipped, applied_ns)`.
    #[pyo3(signature = (values, tag = 0))]
    fn set(&self, py: Python<'_>, values: Vec<f32>, tag: u64) -> PyResult<(u64, u32, u64)> {
        match self.send(py, DmCommand::Set { values, tag })? {
            DmReply::Applied {
                frame,
                clipped,
                applied_ns,
            } => Ok((frame, clipped, applied_ns)),
            other => Err(PyRuntimeError::new_err(format!(
                "unexpected reply {other:?}"
            ))),
        }
    }

    /// The same `get()` call made `n` times from Rust, one every `period_us` microseconds
    /// (busy-waiting in between, as a controller commanding once per frame would be
    /// computing): mean ns per call, the calls alone timed. The Python benchmark's "from
    /// Rust" side, in the same process and run.
    fn _time_get_from_rust(&self, py: Python<'_>, n: u32, period_us: u64) -> PyResult<f64> {
        let inner = &self.inner;
        let period = Duration::from_micros(period_us);
        let took = py.detach(|| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let start = std::time::Instant::now();
                inner.call(&DmCommand::Get)?;
                total += start.elapsed();
                while start.elapsed() < period {
                    std::hint::spin_loop();
                }
            }
            Ok::<_, DeviceError>(total)
        });
        let took = took.map_err(|e| device_error(py, e))?;
        Ok(took.as_nanos() as f64 / f64::from(n.max(1)))
    }

    /// Flattens the mirror.
    fn zero(&self, py: Python<'_>) -> PyResult<()> {
        self.send(py, DmCommand::Zero).map(|_| ())
    }

    /// The applied shape.
    fn get(&self, py: Python<'_>) -> PyResult<Vec<f32>> {
        match self.send(py, DmCommand::Get)? {
            DmReply::Shape(v) => Ok(v),
            other => Err(PyRuntimeError::new_err(format!(
                "unexpected reply {other:?}"
            ))),
        }
    }
});
