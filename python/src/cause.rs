//! `shmkit.Cause`: the frame a device command was computed from, carried with the call so the
//! device's server records the loop's per-stage latencies (`dev/NAME/latency/...`, see
//! `shmkit_devices::Cause`).

use crate::frames::PyFrame;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use shmkit::os::clock::monotonic_ns;
use shmkit_devices::Cause;

/// The frame a command was computed from: its id, when its writer published it and when the
/// caller held it (`CLOCK_MONOTONIC` nanoseconds, as `time.monotonic_ns()` gives them). A
/// `Frame`'s `cause` is one; a device call made through `proxy.caused(cause)` carries it.
#[pyclass(
    module = "shmkit._shmkit",
    name = "Cause",
    frozen,
    eq,
    skip_from_py_object
)]
#[derive(Clone, PartialEq, Eq)]
pub struct PyCause {
    pub(crate) inner: Cause,
}

#[pymethods]
impl PyCause {
    /// A cause from its instants; `held_ns` defaults to now.
    #[new]
    #[pyo3(signature = (frame_id, published_ns, held_ns = None))]
    fn new(frame_id: u64, published_ns: u64, held_ns: Option<u64>) -> PyResult<Self> {
        let held_ns = held_ns.unwrap_or_else(monotonic_ns);
        if held_ns < published_ns {
            return Err(PyValueError::new_err(format!(
                "a frame is held after it is published: held_ns {held_ns} < published_ns \
                 {published_ns}"
            )));
        }
        Ok(PyCause {
            inner: Cause {
                frame_id,
                published_ns,
                held_ns,
            },
        })
    }

    /// The frame's id.
    #[getter]
    fn frame_id(&self) -> u64 {
        self.inner.frame_id
    }

    /// When the frame was published.
    #[getter]
    fn published_ns(&self) -> u64 {
        self.inner.published_ns
    }

    /// When the caller held the frame.
    #[getter]
    fn held_ns(&self) -> u64 {
        self.inner.held_ns
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (u64, u64, u64))> {
        let class = py.get_type::<PyCause>().into_any().unbind();
        let c = self.inner;
        Ok((class, (c.frame_id, c.published_ns, c.held_ns)))
    }

    fn __repr__(&self) -> String {
        let c = self.inner;
        format!(
            "shmkit.Cause(frame_id={}, published_ns={}, held_ns={})",
            c.frame_id, c.published_ns, c.held_ns
        )
    }
}

/// The cause `obj` names: a `Cause`, or a `Frame` (its `cause`; the frame is not kept).
pub(crate) fn cause_of(obj: &Bound<'_, PyAny>) -> PyResult<Cause> {
    if let Ok(c) = obj.cast::<PyCause>() {
        return Ok(c.get().inner);
    }
    if let Ok(f) = obj.cast::<PyFrame>() {
        return Ok(f.get().cause());
    }
    Err(PyTypeError::new_err(format!(
        "a cause is a shmkit.Cause or a shmkit.Frame, not {}",
        obj.get_type().name()?
    )))
}
