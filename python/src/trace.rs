//! `shmkit.TraceBuffer`: spans, instants and counters from Python into a segment's trace
//! buffer, beside the Rust processes' (the module-level `shmkit.trace` functions use one).
//! Names are filed once per handle and cached here, so a span costs one dictionary lookup.

use crate::Origin;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmkit::shared::{TraceBuffer, TraceName, TraceRecordKind};
use std::collections::HashMap;
use std::sync::Mutex;

/// What unpickling a buffer calls `shmkit._rebuild_trace_buffer` with: segment, name, events,
/// names.
type Rebuild = (String, String, u32, u32);

/// A segment's trace buffer: what any process records into it, `shmkit trace` turns into a
/// timeline. Recording never blocks.
#[pyclass(module = "shmkit._shmkit", name = "TraceBuffer", frozen, weakref)]
pub struct PyTraceBuffer {
    inner: TraceBuffer,
    origin: Origin,
    names: Mutex<HashMap<String, TraceName>>,
}

impl PyTraceBuffer {
    pub(crate) fn wrap(inner: TraceBuffer, origin: Origin) -> PyTraceBuffer {
        PyTraceBuffer {
            inner,
            origin,
            names: Mutex::new(HashMap::new()),
        }
    }

    fn filed(&self, name: &str) -> PyResult<TraceName> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = names.get(name) {
            return Ok(*n);
        }
        let n = self
            .inner
            .name(name)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        names.insert(name.to_owned(), n);
        Ok(n)
    }
}

#[pymethods]
impl PyTraceBuffer {
    /// A context manager timing its block as the span `name` (`arg`: an integer to attach,
    /// a frame id say); recorded also when the block raises.
    #[pyo3(signature = (name, arg = None))]
    fn span(slf: Py<Self>, name: &str, arg: Option<u64>) -> PyResult<PySpan> {
        let filed = slf.get().filed(name)?;
        Ok(PySpan {
            buffer: slf,
            name: filed,
            arg,
            start: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Records the instant `name`, now. False if the buffer dropped it.
    #[pyo3(signature = (name, arg = None))]
    fn instant(&self, name: &str, arg: Option<u64>) -> PyResult<bool> {
        Ok(self.inner.instant(self.filed(name)?, arg))
    }

    /// Records the counter `name`'s value, now. False if the buffer dropped it.
    fn counter(&self, name: &str, value: f64) -> PyResult<bool> {
        Ok(self.inner.counter(self.filed(name)?, value))
    }

    /// Names the calling thread in traces.
    fn name_thread(&self, name: &str) -> PyResult<()> {
        self.inner
            .name_thread(name)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Names this process in traces.
    fn name_process(&self, name: &str) -> PyResult<()> {
        self.inner
            .name_process(name)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Every event the buffer holds now (the newest `events`), oldest first, each a dict:
    /// `kind` ("span", "instant", "counter", "thread_name", "process_name"), `name`,
    /// `ts_ns` (`CLOCK_MONOTONIC`), `pid`, `tid`, `arg` (or None), and `duration_ns` for a
    /// span, `value` for a counter.
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let mut cursor = self.inner.cursor_from_oldest();
        let mut out = Vec::new();
        py.detach(|| self.inner.read_rest(&mut cursor, &mut out));
        let mut names: HashMap<u16, Option<String>> = HashMap::new();
        out.iter()
            .map(|r| {
                let d = PyDict::new(py);
                let name = names
                    .entry(r.name)
                    .or_insert_with(|| self.inner.name_at(r.name))
                    .clone();
                let kind = match r.kind {
                    TraceRecordKind::Span { duration_ns } => {
                        d.set_item("duration_ns", duration_ns)?;
                        "span"
                    }
                    TraceRecordKind::Instant => "instant",
                    TraceRecordKind::Counter { value } => {
                        d.set_item("value", value)?;
                        "counter"
                    }
                    TraceRecordKind::ThreadName => "thread_name",
                    TraceRecordKind::ProcessName => "process_name",
                };
                d.set_item("kind", kind)?;
                d.set_item("name", name)?;
                d.set_item("ts_ns", r.ts_ns)?;
                d.set_item("pid", r.pid)?;
                d.set_item("tid", r.tid)?;
                d.set_item("arg", r.arg)?;
                Ok(d)
            })
            .collect()
    }

    /// Events recorded into the buffer so far, by every process.
    #[getter]
    fn recorded(&self) -> u64 {
        self.inner.head()
    }

    /// Events writers gave up (their slot was still being written a lap earlier).
    #[getter]
    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }

    /// How many events the buffer keeps (the newest).
    #[getter]
    fn events(&self) -> u32 {
        self.inner.spec().events
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Rebuild)> {
        let (segment, name) = self.origin.named("TraceBuffer")?;
        let rebuild = py
            .import("shmkit")?
            .getattr("_rebuild_trace_buffer")?
            .unbind();
        let spec = self.inner.spec();
        Ok((rebuild, (segment, name, spec.events, spec.names)))
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmkit.TraceBuffer{}: {} events recorded, keeps {}>",
            self.origin.repr_fields(),
            self.inner.head(),
            self.inner.spec().events
        )
    }
}

/// `TraceBuffer.span()`'s context manager.
#[pyclass(module = "shmkit._shmkit", name = "Span", frozen)]
pub struct PySpan {
    buffer: Py<PyTraceBuffer>,
    name: TraceName,
    arg: Option<u64>,
    start: std::sync::atomic::AtomicU64,
}

#[pymethods]
impl PySpan {
    fn __enter__(slf: Py<Self>, py: Python<'_>) -> Py<Self> {
        slf.get().start.store(
            shmkit::clock::monotonic_ns(),
            std::sync::atomic::Ordering::Relaxed,
        );
        slf.clone_ref(py)
    }

    /// Records the span, also when the block raised (the exception propagates).
    fn __exit__(
        &self,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        let start = self.start.load(std::sync::atomic::Ordering::Relaxed);
        let end = shmkit::clock::monotonic_ns();
        self.buffer.get().inner.record_span(
            self.name,
            start,
            std::time::Duration::from_nanos(end.saturating_sub(start)),
            self.arg,
        );
        false
    }
}
