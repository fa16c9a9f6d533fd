//! `shmkit.Segment`: creating, opening and naming objects in a shared-memory segment.

use crate::barrier::PyBarrier;
use crate::errors::segment_error;
use crate::event::PyEvent;
use crate::mutex::PyMutex;
use crate::wait::{lock_timeout, DEFAULT_LOCK_TIMEOUT};
use crate::Origin;
use pyo3::prelude::*;
use shmkit::{CreateOptions, Segment};

/// A shared-memory segment: every process that opens it by name sees the same objects.
#[pyclass(module = "shmkit._shmkit", name = "Segment", frozen, weakref)]
pub struct PySegment {
    inner: Segment,
}

fn options(size: u64, table_capacity: Option<u32>, mode: Option<u32>) -> CreateOptions {
    let mut o = CreateOptions::new(size);
    if let Some(t) = table_capacity {
        o = o.table_capacity(t);
    }
    if let Some(m) = mode {
        o = o.mode(m);
    }
    o
}

/// Warns (`shmkit.errors.InsecureSegmentWarning`) when other users may write the segment:
/// they can then change any byte every process reads (see the trust model in the README).
fn warn_if_shared_write(py: Python<'_>, segment: &Segment) -> PyResult<()> {
    let mode = segment.mode();
    if mode & 0o022 == 0 {
        return Ok(());
    }
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and every other user",
        (true, false) => "its group",
        _ => "every other user",
    };
    let message = format!(
        "segment {:?} (mode {mode:o}) is writable by {who}: they can write any byte every \
         process using it reads",
        segment.name()
    );
    let category = py
        .import("shmkit.errors")?
        .getattr("InsecureSegmentWarning")?;
    let message = std::ffi::CString::new(message).unwrap_or_default();
    PyErr::warn(py, &category, &message, 2)
}

impl PySegment {
    /// Runs `make` (create or open-or-create) without the GIL, with the options asked for.
    fn made(
        py: Python<'_>,
        size: u64,
        table_capacity: Option<u32>,
        mode: Option<u32>,
        make: impl FnOnce(&CreateOptions) -> Result<Segment, shmkit::SegmentError> + Send,
    ) -> PyResult<PySegment> {
        let o = options(size, table_capacity, mode);
        let inner = py.detach(|| make(&o)).map_err(|e| segment_error(py, e))?;
        // A mode the caller asked for is their decision; otherwise say so.
        if mode.is_none() {
            warn_if_shared_write(py, &inner)?;
        }
        Ok(PySegment { inner })
    }

    /// The core segment.
    pub(crate) fn segment(&self) -> &Segment {
        &self.inner
    }

    fn origin(&self, name: &str) -> Origin {
        Origin::Named {
            segment: self.inner.name().to_owned(),
            name: name.to_owned(),
        }
    }
}

#[pymethods]
impl PySegment {
    /// Creates segment `name` of `size` bytes (fails if it exists). `mode` is the file mode
    /// (0o600, private to this user, unless given).
    #[staticmethod]
    #[pyo3(signature = (name, size = 1 << 24, *, table_capacity = None, mode = None))]
    fn create(
        py: Python<'_>,
        name: &str,
        size: u64,
        table_capacity: Option<u32>,
        mode: Option<u32>,
    ) -> PyResult<PySegment> {
        PySegment::made(py, size, table_capacity, mode, |o| Segment::create(name, o))
    }

    /// Opens existing segment `name`.
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<PySegment> {
        let inner = py
            .detach(|| Segment::open(name))
            .map_err(|e| segment_error(py, e))?;
        warn_if_shared_write(py, &inner)?;
        Ok(PySegment { inner })
    }

    /// Opens segment `name`, creating it (with `size` bytes) if it does not exist.
    #[staticmethod]
    #[pyo3(signature = (name, size = 1 << 24, *, table_capacity = None, mode = None))]
    fn open_or_create(
        py: Python<'_>,
        name: &str,
        size: u64,
        table_capacity: Option<u32>,
        mode: Option<u32>,
    ) -> PyResult<PySegment> {
        PySegment::made(py, size, table_capacity, mode, |o| {
            Segment::open_or_create(name, o)
        })
    }

    /// Removes segment `name` from the system (processes that have it open keep it).
    #[staticmethod]
    fn unlink(py: Python<'_>, name: &str) -> PyResult<()> {
        Segment::unlink(name).map_err(|e| segment_error(py, e))
    }

    /// The segment's name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// Its size in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.inner.info().total_size
    }

    /// The named objects: `(name, kind)` pairs.
    fn entries(&self, py: Python<'_>) -> PyResult<Vec<(String, String)>> {
        let entries = self.inner.entries().map_err(|e| segment_error(py, e))?;
        Ok(entries
            .into_iter()
            .map(|e| (e.name, format!("{:?}", e.entry.kind).to_lowercase()))
            .collect())
    }

    /// The mutex `name`, created if needed. `timeout`: its default acquire timeout in seconds
    /// (60 unless given; -1 waits forever).
    #[pyo3(signature = (name, timeout = None))]
    fn mutex(&self, py: Python<'_>, name: &str, timeout: Option<f64>) -> PyResult<PyMutex> {
        let inner = self.inner.mutex(name).map_err(|e| segment_error(py, e))?;
        Ok(PyMutex::wrap(
            inner,
            lock_timeout(timeout, DEFAULT_LOCK_TIMEOUT)?,
            self.origin(name),
        ))
    }

    /// The event `name`, created if needed. `wait` is how this handle waits:
    /// "spin_then_block" (the default: poll a bounded while first — 4000 polls — then sleep;
    /// a round trip between processes of a few hundred ns instead of a kernel wake-up's tens
    /// of µs), "block" (sleep in the kernel at once: no spinning, for a machine with no core
    /// to spare) or "spin" (never sleep).
    #[pyo3(signature = (name, wait = "spin_then_block"))]
    fn event(&self, py: Python<'_>, name: &str, wait: &str) -> PyResult<PyEvent> {
        let inner = self.inner.event(name).map_err(|e| segment_error(py, e))?;
        PyEvent::wrap(inner, self.origin(name), wait)
    }

    /// The histogram `name`, created if needed.
    fn histogram(&self, py: Python<'_>, name: &str) -> PyResult<crate::histogram::PyHistogram> {
        let inner = self
            .inner
            .histogram(name)
            .map_err(|e| segment_error(py, e))?;
        Ok(crate::histogram::PyHistogram::wrap(
            inner,
            self.origin(name),
        ))
    }

    /// Declares frame ring `ring`'s cadence — the `period` its writer keeps and the
    /// `deadline` (seconds) past which a frame is late; the ring need not exist yet — and
    /// returns its counters `(late, stalls)`, the histograms `RING/late` (each late frame's
    /// interval, as a writer told to `count_late` records it; device servers do by
    /// themselves) and `RING/stalls`. The same declaration again finds it; another one is a
    /// `ShmkitError` naming both.
    fn declare_cadence(
        &self,
        py: Python<'_>,
        ring: &str,
        period: f64,
        deadline: f64,
    ) -> PyResult<(crate::histogram::PyHistogram, crate::histogram::PyHistogram)> {
        use crate::testbed::seconds;
        let cadence = shmkit::rings::Cadence {
            period: seconds("period", period)?,
            deadline: seconds("deadline", deadline)?,
        };
        let c = cadence
            .declare(&self.inner, ring)
            .map_err(|e| segment_error(py, e))?;
        let [_, late, stalls] = shmkit::rings::Cadence::names(ring);
        Ok((
            crate::histogram::PyHistogram::wrap(c.late, self.origin(&late)),
            crate::histogram::PyHistogram::wrap(c.stalls, self.origin(&stalls)),
        ))
    }

    /// The trace buffer `name`, created if needed, keeping the newest `events` events (a
    /// power of two; 64 bytes each) and up to `names` distinct names; an existing one must
    /// have that size.
    #[pyo3(signature = (name, events = 65536, names = 512))]
    fn trace_buffer(
        &self,
        py: Python<'_>,
        name: &str,
        events: u32,
        names: u32,
    ) -> PyResult<crate::trace::PyTraceBuffer> {
        let spec = shmkit::shared::TraceSpec { events, names };
        let inner = self
            .inner
            .trace_buffer(name, &spec)
            .map_err(|e| segment_error(py, e))?;
        Ok(crate::trace::PyTraceBuffer::wrap(inner, self.origin(name)))
    }

    /// The barrier `name` for `parties`, created if needed (an existing one must have as many
    /// parties). `action` runs in the last party to arrive through this handle, before any
    /// party is released; `timeout` is the default wait timeout (None: forever).
    #[pyo3(signature = (name, parties, action = None, timeout = None))]
    fn barrier(
        &self,
        py: Python<'_>,
        name: &str,
        parties: u32,
        action: Option<Py<PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<PyBarrier> {
        let inner = self
            .inner
            .barrier(name, parties)
            .map_err(|e| segment_error(py, e))?;
        PyBarrier::wrap(inner, action, timeout, self.origin(name))
    }

    /// The frame ring `name`: opened as it is when `shape` and `dtype` are not given, else
    /// created if needed with `slots` slots of `shape` elements of `dtype` (an existing ring
    /// must match).
    #[pyo3(signature = (name, shape = None, dtype = None, slots = 4))]
    fn frame_ring(
        &self,
        py: Python<'_>,
        name: &str,
        shape: Option<Vec<u32>>,
        dtype: Option<&Bound<'_, PyAny>>,
        slots: u32,
    ) -> PyResult<crate::frames::PyFrameRing> {
        crate::frames::frame_ring(
            py,
            &self.inner,
            name,
            shape,
            dtype,
            slots,
            self.origin(name),
        )
    }

    /// The command ring `name`: opened as it is with no sizes given, else created if needed
    /// with `slots` request slots of `max_request` / `max_reply` bytes. `wait` is how this
    /// handle's calls and its server wait, as for `event`: "spin_then_block" (the default),
    /// "block" or "spin".
    #[pyo3(signature = (name, slots = None, max_request = 4096, max_reply = 4096, wait = "spin_then_block"))]
    fn command_ring(
        &self,
        py: Python<'_>,
        name: &str,
        slots: Option<u32>,
        max_request: u32,
        max_reply: u32,
        wait: &str,
    ) -> PyResult<crate::commands::PyCommandRing> {
        let spec = slots.map(|s| (s, max_request, max_reply));
        crate::commands::command_ring(py, &self.inner, name, spec, wait, self.origin(name))
    }

    /// The dictionary `name` as a `shmkit.SharedDict` (a `MutableMapping` of str keys):
    /// opened as it is without `max_entries`, else created if needed. Values use the safe
    /// codec unless `pickle` is true (full pickle: only for dictionaries whose every writer
    /// this process trusts).
    #[pyo3(signature = (name, max_entries = None, *, pickle = false))]
    fn dict(
        &self,
        py: Python<'_>,
        name: &str,
        max_entries: Option<u32>,
        pickle: bool,
    ) -> PyResult<Py<PyAny>> {
        let raw = crate::dict::raw_dict(py, &self.inner, name, max_entries, None)?;
        let class = py.import("shmkit._dict")?.getattr("SharedDict")?;
        Ok(class.call1((raw, pickle))?.unbind())
    }

    /// The byte-level dictionary `name` (`shmkit.SharedDict` wraps it): opened as it is
    /// without `max_entries`, else created if needed with `data_bytes` of record space
    /// (default 128 per key).
    #[pyo3(signature = (name, max_entries = None, data_bytes = None))]
    fn _raw_dict(
        &self,
        py: Python<'_>,
        name: &str,
        max_entries: Option<u32>,
        data_bytes: Option<u64>,
    ) -> PyResult<crate::dict::PyRawDict> {
        crate::dict::raw_dict(py, &self.inner, name, max_entries, data_bytes)
    }

    /// The shared numpy value `name` (`shmkit.SharedValue`): created with `init` if absent;
    /// an existing one must have the same dtype and shape. Without `dtype` the value is opened
    /// as its creator made it.
    #[pyo3(signature = (name, dtype = None, shape = None, init = None))]
    fn value(
        slf: &Bound<'_, Self>,
        name: &str,
        dtype: Option<Py<PyAny>>,
        shape: Option<Py<PyAny>>,
        init: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let open = slf.py().import("shmkit._value")?.getattr("_open_value")?;
        Ok(open.call1((slf, name, dtype, shape, init))?.unbind())
    }

    /// The byte-level value `name` (`shmkit.SharedValue` wraps it): opened as it is without
    /// `typed`, else created from `(type_name, align, initial bytes)` if needed.
    #[pyo3(signature = (name, typed = None))]
    fn _raw_value(
        &self,
        py: Python<'_>,
        name: &str,
        typed: Option<(String, u32, Vec<u8>)>,
    ) -> PyResult<crate::value::PyRawValue> {
        crate::value::raw_value(py, &self.inner, name, typed)
    }

    /// The segment file's permission bits when this handle opened it (0o600 unless its
    /// creator asked for more).
    #[getter]
    fn mode(&self) -> u32 {
        self.inner.mode()
    }

    /// The pid of the process that created the segment.
    #[getter]
    fn creator_pid(&self) -> u32 {
        self.inner.info().creator.pid
    }

    /// Is the segment's creator still alive (by pid and start time, so a recycled pid does
    /// not count)? A testbed replaces a segment whose creator died.
    #[getter]
    fn creator_alive(&self) -> bool {
        self.inner.info().creator.liveness() != shmkit::Liveness::Dead
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        false
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (String,))> {
        let open = py
            .import("shmkit._shmkit")?
            .getattr("Segment")?
            .getattr("open")?
            .unbind();
        Ok((open, (self.inner.name().to_owned(),)))
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmkit.Segment {:?} {} bytes>",
            self.inner.name(),
            self.inner.info().total_size
        )
    }
}
