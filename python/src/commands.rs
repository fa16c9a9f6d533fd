//! Command rings from Python: calls with bytes in and bytes out, and a server loop that runs
//! a Python handler per request.
//!
//! A request borrows its server in Rust, so Python never holds one: `serve(handler)` takes
//! the next request, calls `handler(request_bytes)` with the GIL and answers with what it
//! returns — or fails the call with the exception's text if it raises.

use crate::errors::{raise, segment_error};
use crate::wait::{detached, wait_timeout};
use crate::Origin;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmkit::rings::{CommandError, CommandRing, CommandServer, CommandSpec, Outcome};

/// A command error as a Python exception.
fn command_error(py: Python<'_>, e: CommandError) -> PyErr {
    let message = e.to_string();
    let ran = |o: Outcome| match o {
        Outcome::NotExecuted => "no",
        Outcome::Unknown => "unknown",
        Outcome::Executed => "yes",
    };
    match e {
        CommandError::Timeout { .. } => raise(py, "CallTimeout", (message, "unknown")),
        CommandError::ServerDied { outcome, .. } => {
            raise(py, "ServerDiedError", (message, ran(outcome)))
        }
        CommandError::NoServer => raise(py, "NoServerError", (message,)),
        CommandError::Failed(text) => raise(py, "CommandFailed", (text,)),
        CommandError::TooLarge { .. } => PyValueError::new_err(message),
        CommandError::Corrupt(_) => raise(py, "CorruptError", (message,)),
        _ => PyRuntimeError::new_err(message),
    }
}

/// What a command ring pickles to: segment, name and wait strategy.
type Pickled = (String, String, &'static str);

/// A command ring in a segment.
#[pyclass(module = "shmkit._shmkit", name = "CommandRing", frozen)]
pub struct PyCommandRing {
    inner: CommandRing,
    origin: Origin,
    /// The wait strategy's name, for pickling.
    wait: &'static str,
}

#[pymethods]
impl PyCommandRing {
    /// Sends `request` and returns the server's reply, waiting at most `timeout` seconds
    /// (None: forever). `CallTimeout`, `ServerDiedError` (with `ran`: "no", "unknown" or
    /// "yes"), `NoServerError`, or `CommandFailed` with the server's message.
    #[pyo3(signature = (request, timeout = None))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        request: &[u8],
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let t = wait_timeout(timeout)?;
        let ring = &self.inner;
        let (got, raised) = detached(py, |check| ring.call_interruptible(request, t, check));
        if let Some(e) = raised {
            return Err(e);
        }
        got.map(|reply| PyBytes::new(py, &reply))
            .map_err(|e| command_error(py, e))
    }

    /// Becomes the ring's server (a dead server's role is taken over).
    fn server(&self, py: Python<'_>) -> PyResult<PyCommandServer> {
        let inner = self.inner.server().map_err(|e| command_error(py, e))?;
        Ok(PyCommandServer { inner })
    }

    /// `(slots, max_request, max_reply)`.
    #[getter]
    fn spec(&self) -> (u32, u32, u32) {
        let s = self.inner.spec();
        (s.slots, s.max_request, s.max_reply)
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Pickled)> {
        let (segment, name) = self.origin.named("CommandRing")?;
        let rebuild = py
            .import("shmkit")?
            .getattr("_rebuild_command_ring")?
            .unbind();
        Ok((rebuild, (segment, name, self.wait)))
    }

    fn __repr__(&self) -> String {
        let (slots, q, r) = self.spec();
        format!(
            "<shmkit.CommandRing {} {slots} slots, requests <= {q} B, replies <= {r} B>",
            self.origin.describe()
        )
    }
}

/// The server side of a command ring.
#[pyclass(module = "shmkit._shmkit", name = "CommandServer", frozen)]
pub struct PyCommandServer {
    inner: CommandServer,
}

#[pymethods]
impl PyCommandServer {
    /// Waits at most `timeout` seconds (None: forever) for a request and answers it with
    /// `handler(request) -> bytes`; a handler that raises fails the call with its message.
    /// Returns False if no request came in time.
    #[pyo3(signature = (handler, timeout = None))]
    fn serve(
        &self,
        py: Python<'_>,
        handler: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        self.serve_many(py, handler, 1, timeout).map(|n| n == 1)
    }

    /// Serves up to `count` requests as `serve` does, staying detached from the interpreter
    /// between them (the GIL is taken only to run `handler`); each waits at most `timeout`.
    /// Returns how many were served (fewer when a wait timed out).
    #[pyo3(signature = (handler, count, timeout = None))]
    fn serve_many(
        &self,
        py: Python<'_>,
        handler: &Bound<'_, PyAny>,
        count: u64,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let t = wait_timeout(timeout)?;
        let server = &self.inner;
        // Each request is taken and answered inside the detached section, re-attaching only
        // to run the handler: a `Request` borrows the server and never reaches Python.
        let handler = handler.clone().unbind();
        let (outcome, raised) = detached(py, |check| {
            let mut served = 0u64;
            while served < count {
                let req = match server.recv_interruptible(t, check) {
                    Ok(req) => req,
                    Err(CommandError::Timeout { .. }) => return Ok(served),
                    Err(e) => return Err(e),
                };
                let answer = Python::attach(|py| {
                    let bytes = PyBytes::new(py, req.bytes());
                    match handler.call1(py, (bytes,)) {
                        Ok(reply) => reply.extract::<Vec<u8>>(py).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                });
                match answer {
                    Ok(reply) => req.reply(&reply)?,
                    Err(message) => req.fail(&message)?,
                };
                served += 1;
            }
            Ok(served)
        });
        if let Some(e) = raised {
            return Err(e);
        }
        outcome.map_err(|e| command_error(py, e))
    }
}

/// For `Segment.command_ring`.
pub(crate) fn command_ring(
    py: Python<'_>,
    seg: &shmkit::Segment,
    name: &str,
    spec: Option<(u32, u32, u32)>,
    wait: &str,
    origin: Origin,
) -> PyResult<PyCommandRing> {
    let (strategy, wait) = crate::wait::strategy(wait)?;
    use shmkit::SegmentObjects;
    let ring = match spec {
        None => seg.open::<CommandRing>(name),
        Some((slots, max_request, max_reply)) => seg.command_ring(
            name,
            &CommandSpec {
                slots,
                max_request,
                max_reply,
            },
        ),
    }
    .map_err(|e| segment_error(py, e))?;
    Ok(PyCommandRing {
        inner: ring.with_strategy(strategy),
        origin,
        wait,
    })
}
