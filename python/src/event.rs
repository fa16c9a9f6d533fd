//! `shmkit.Event`: `threading.Event` across processes.

use crate::wait::{detached, wait_timeout};
use crate::Origin;
use pyo3::prelude::*;
use shmkit::{Event, EventError};

/// What an event pickles to: segment, name and wait strategy.
type Pickled = (String, String, &'static str);

/// A flag any process can set and wait for, as `threading.Event`: `set` wakes every waiter,
/// even one that finds the flag cleared again by the time it runs.
#[pyclass(module = "shmkit._shmkit", name = "Event", frozen, weakref)]
pub struct PyEvent {
    inner: Event,
    origin: Origin,
    /// The wait strategy's name, for pickling.
    wait: &'static str,
}

impl PyEvent {
    /// `inner` waited on with the strategy named `wait` ("block", "spin_then_block", "spin").
    pub(crate) fn wrap(inner: Event, origin: Origin, wait: &str) -> PyResult<PyEvent> {
        let (strategy, wait) = crate::wait::strategy(wait)?;
        Ok(PyEvent {
            inner: inner.with_strategy(strategy),
            origin,
            wait,
        })
    }
}

#[pymethods]
impl PyEvent {
    /// An event local to this process (for threads). `wait` as for `Segment.event`.
    #[new]
    #[pyo3(signature = (wait = "spin_then_block"))]
    fn new(wait: &str) -> PyResult<PyEvent> {
        PyEvent::wrap(Event::new_local(), Origin::Local, wait)
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

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Pickled)> {
        let (segment, name) = self.origin.named("Event")?;
        let rebuild = py.import("shmkit")?.getattr("_rebuild_event")?.unbind();
        Ok((rebuild, (segment, name, self.wait)))
    }

    /// `threading.Event`'s shape — `<shmkit.Event at 0x…: set>` — plus the name and segment.
    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let this = slf.get();
        format!(
            "<shmkit.Event{} at {:#x}: {}>",
            this.origin.repr_fields(),
            slf.as_ptr() as usize,
            if this.inner.is_set() { "set" } else { "unset" }
        )
    }
}
