//! `shmkit.Event`: `threading.Event` across processes.

use crate::wait::{detached, wait_timeout};
use crate::Origin;
use pyo3::prelude::*;
use shmkit::{Event, EventError};

/// A flag any process can set and wait for, as `threading.Event`: `set` wakes every waiter,
/// even one that finds the flag cleared again by the time it runs.
#[pyclass(module = "shmkit._shmkit", name = "Event", frozen)]
pub struct PyEvent {
    inner: Event,
    origin: Origin,
}

impl PyEvent {
    pub(crate) fn wrap(inner: Event, origin: Origin) -> PyEvent {
        PyEvent { inner, origin }
    }
}

#[pymethods]
impl PyEvent {
    /// An event local to this process (for threads).
    #[new]
    fn new() -> PyEvent {
        PyEvent::wrap(Event::new_local(), Origin::Local)
    }

    /// Sets the flag and wakes every waiter.
    fn set(&self) {
        self.inner.set();
    }

    /// Clears the flag.
    fn clear(&self) {
        self.inner.clear();
    }

    /// Is the flag set?
    fn is_set(&self) -> bool {
        self.inner.is_set()
    }

    /// Waits until the flag is set or `timeout` seconds pass (None: forever; not positive:
    /// poll). Returns the flag, as `threading.Event.wait`.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.inner.is_set() {
            return Ok(true);
        }
        let t = wait_timeout(timeout)?;
        if t.is_zero() {
            return Ok(self.inner.is_set());
        }
        let inner = &self.inner;
        let (got, raised) = detached(py, |check| inner.wait_interruptible(t, check));
        match (got, raised) {
            (_, Some(e)) => Err(e),
            (Ok(set), None) => Ok(set),
            (Err(EventError::Interrupted), None) => Ok(self.inner.is_set()),
        }
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (String, String))> {
        let (segment, name) = self.origin.named("Event")?;
        let rebuild = py.import("shmkit")?.getattr("_rebuild_event")?.unbind();
        Ok((rebuild, (segment, name)))
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmkit.Event {} {}>",
            self.origin.describe(),
            if self.inner.is_set() { "set" } else { "unset" }
        )
    }
}
