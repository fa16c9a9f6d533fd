//! `shmkit.Barrier`: `threading.Barrier` across processes.
//!
//! The action is a Python callable run by the last party to arrive, before any party is
//! released; if it raises, the barrier breaks for everyone and the leader re-raises the
//! action's own exception (as `threading.Barrier` does).

use crate::errors::barrier_error;
use crate::wait::{detached, seconds, wait_timeout};
use crate::Origin;
use pyo3::prelude::*;
use shmkit::{Barrier, BarrierError, Timeout};
use std::sync::{Arc, Mutex as StdMutex};

/// What a barrier pickles to: segment, name, parties, action and default timeout.
type Pickled = (String, String, u32, Option<Py<PyAny>>, Option<f64>);

/// Where the leader finds the exception its action raised.
type Raised = Arc<StdMutex<Option<PyErr>>>;

/// A reusable barrier for a fixed number of parties (threads or processes).
#[pyclass(module = "shmkit._shmkit", name = "Barrier", frozen, weakref)]
pub struct PyBarrier {
    inner: Barrier,
    timeout: Timeout,
    raised: Raised,
    action: Option<Py<PyAny>>,
    origin: Origin,
}

impl PyBarrier {
    /// Wraps `inner` with `action` (a Python callable or None) and a default `timeout`.
    pub(crate) fn wrap(
        inner: Barrier,
        action: Option<Py<PyAny>>,
        timeout: Option<f64>,
        origin: Origin,
    ) -> PyResult<PyBarrier> {
        let raised: Raised = Arc::default();
        let inner = match &action {
            Some(callable) => {
                let (callable, slot) =
                    (Python::attach(|py| callable.clone_ref(py)), raised.clone());
                inner.with_action(move || {
                    Python::attach(|py| match callable.call0(py) {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            let text = e.to_string();
                            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            Err(text)
                        }
                    })
                })
            }
            None => inner,
        };
        Ok(PyBarrier {
            inner,
            timeout: wait_timeout(timeout)?,
            raised,
            action,
            origin,
        })
    }
}

#[pymethods]
impl PyBarrier {
    /// A barrier local to this process (for threads), as `threading.Barrier`.
    #[new]
    #[pyo3(signature = (parties, action = None, timeout = None))]
    fn new(parties: i64, action: Option<Py<PyAny>>, timeout: Option<f64>) -> PyResult<PyBarrier> {
        let parties = u32::try_from(parties)
            .ok()
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("parties must be 1..=65535"))?;
        PyBarrier::wrap(Barrier::new_local(parties), action, timeout, Origin::Local)
    }

    /// Waits for every party; returns this party's arrival index (0..parties). `timeout`
    /// (None: the barrier's default) breaks the barrier when it passes.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u32> {
        let t = match timeout {
            None => self.timeout,
            some => wait_timeout(some)?,
        };
        let inner = &self.inner;
        let (got, raised) = detached(py, |check| inner.wait_interruptible(t, check));
        if let Some(e) = raised {
            return Err(e);
        }
        match got {
            Ok(w) => Ok(w.index),
            Err(BarrierError::ActionFailed { message }) => {
                let own = self.raised.lock().unwrap_or_else(|p| p.into_inner()).take();
                Err(own
                    .unwrap_or_else(|| barrier_error(py, BarrierError::ActionFailed { message })))
            }
            Err(e) => Err(barrier_error(py, e)),
        }
    }

    /// Returns the barrier to its empty state; parties waiting now get `BrokenBarrierError`.
    fn reset(&self) {
        self.inner.reset();
    }

    /// Breaks the barrier: waiting and future parties get `BrokenBarrierError` until `reset`.
    fn abort(&self) {
        self.inner.abort();
    }

    /// The number of parties.
    #[getter]
    fn parties(&self) -> u32 {
        self.inner.parties()
    }

    /// Parties waiting now.
    #[getter]
    fn n_waiting(&self) -> u32 {
        self.inner.n_waiting()
    }

    /// Is the barrier broken?
    #[getter]
    fn broken(&self) -> bool {
        self.inner.is_broken()
    }

    /// The default wait timeout in seconds (None: forever).
    #[getter]
    fn timeout(&self) -> Option<f64> {
        seconds(self.timeout)
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Pickled)> {
        let (segment, name) = self.origin.named("Barrier")?;
        let rebuild = py.import("shmkit")?.getattr("_rebuild_barrier")?.unbind();
        let action = self.action.as_ref().map(|a| a.clone_ref(py));
        Ok((
            rebuild,
            (
                segment,
                name,
                self.inner.parties(),
                action,
                seconds(self.timeout),
            ),
        ))
    }

    /// `threading.Barrier`'s shape — `<shmkit.Barrier at 0x…: waiters=1/3>` or `: broken>`
    /// — plus the name and segment.
    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let this = slf.get();
        let state = if this.inner.is_broken() {
            "broken".to_owned()
        } else {
            format!(
                "waiters={}/{}",
                this.inner.n_waiting(),
                this.inner.parties()
            )
        };
        format!(
            "<shmkit.Barrier{} at {:#x}: {state}>",
            this.origin.repr_fields(),
            slf.as_ptr() as usize
        )
    }
}
