//! Frame rings from Python: frames as read-only numpy arrays without a copy.
//!
//! A reader hands out `Frame`s backed by an owned frame hold (`shmkit::rings::OwnedFrame`):
//! `frame.array` is an `ndarray` view of the slot itself whose base object is the `Frame`, so
//! the slot stays pinned — the writer can never change memory a Python array still shows —
//! until the last view and the frame are garbage collected. The views are read-only, and
//! numpy refuses to make them writable (their base exports no writable buffer).

use crate::cause::PyCause;
use crate::errors::{raise, segment_error};
use crate::frame_writer::PyFrameWriter;
use crate::wait::{detached, wait_timeout};
use crate::Origin;
use numpy::ndarray::{ArrayView, IxDyn};
use numpy::{
    npyffi, Element, PyArray, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use shmkit::os::clock::monotonic_ns;
use shmkit::rings::{ElemType, FrameRing, OwnedFrame, OwnedFrameReader, ReadMode, RingError};
use shmkit_devices::Cause;
use std::sync::Mutex as StdMutex;

/// The element type of a numpy dtype name (as `numpy.dtype(x).name` spells it).
pub(crate) fn elem_of(dtype: &str) -> PyResult<ElemType> {
    ElemType::from_name(dtype).ok_or_else(|| {
        PyValueError::new_err(format!(
            "dtype {dtype} has no frame element type (use uint8, uint16, uint32, int16, \
             int32, float32 or float64)"
        ))
    })
}

/// A read mode by name: "newest" or "oldest".
pub(crate) fn read_mode(mode: &str) -> PyResult<ReadMode> {
    match mode {
        "newest" => Ok(ReadMode::NewestOnly),
        "oldest" => Ok(ReadMode::OldestFirst),
        other => Err(PyValueError::new_err(format!(
            "mode must be \"newest\" or \"oldest\", not {other:?}"
        ))),
    }
}

/// A ring error as a Python exception.
pub(crate) fn ring_error(py: Python<'_>, e: RingError) -> PyErr {
    let message = e.to_string();
    match e {
        RingError::Timeout { .. } => raise(py, "FrameTimeout", (message,)),
        RingError::Overrun { missed } => raise(py, "FrameOverrun", (message, missed)),
        RingError::Corrupt(_) => raise(py, "CorruptError", (message,)),
        _ => PyRuntimeError::new_err(message),
    }
}

/// A frame ring in a segment.
#[pyclass(module = "shmkit._shmkit", name = "FrameRing", frozen)]
pub struct PyFrameRing {
    inner: FrameRing,
    origin: Origin,
}

impl PyFrameRing {
    pub(crate) fn wrap(inner: FrameRing, origin: Origin) -> PyFrameRing {
        PyFrameRing { inner, origin }
    }
}

#[pymethods]
impl PyFrameRing {
    /// A reader: `mode` is "newest" (skip to the newest frame) or "oldest" (every frame, in
    /// order, `FrameOverrun` when it fell behind); `wait` as for `Segment.event`
    /// ("spin_then_block" by default, "block" or "spin").
    #[pyo3(signature = (mode = "newest", wait = "spin_then_block"))]
    fn reader(&self, py: Python<'_>, mode: &str, wait: &str) -> PyResult<PyFrameReader> {
        let mode = read_mode(mode)?;
        let (strategy, _) = crate::wait::strategy(wait)?;
        let reader = self.inner.reader(mode).map_err(|e| ring_error(py, e))?;
        Ok(PyFrameReader::wrap(
            reader.into_owned().with_strategy(strategy),
        ))
    }

    /// Becomes the ring's writer (a dead writer's role is taken over).
    fn writer(&self, py: Python<'_>) -> PyResult<PyFrameWriter> {
        let writer = self.inner.writer().map_err(|e| ring_error(py, e))?;
        Ok(PyFrameWriter::wrap(writer))
    }

    /// The frames' shape.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.inner.shape().iter().map(|&d| d as usize).collect()
    }

    /// The frames' numpy dtype name.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.elem().name()
    }

    /// Slots in the ring.
    #[getter]
    fn slots(&self) -> u32 {
        self.inner.slots()
    }

    /// Id of the newest frame (0: none yet).
    #[getter]
    fn last_id(&self) -> u64 {
        self.inner.stats().last_id
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (String, String))> {
        let (segment, name) = self.origin.named("FrameRing")?;
        let rebuild = py
            .import("shmkit")?
            .getattr("_rebuild_frame_ring")?
            .unbind();
        Ok((rebuild, (segment, name)))
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmkit.FrameRing {} {} {:?} x {} slots>",
            self.origin.describe(),
            self.dtype(),
            self.shape(),
            self.slots()
        )
    }
}

/// Reads frames; iterating waits for each next frame.
#[pyclass(module = "shmkit._shmkit", name = "FrameReader")]
pub struct PyFrameReader {
    inner: StdMutex<OwnedFrameReader>,
}

impl PyFrameReader {
    /// A Python reader over `inner`.
    pub(crate) fn wrap(inner: OwnedFrameReader) -> PyFrameReader {
        PyFrameReader {
            inner: StdMutex::new(inner),
        }
    }

    /// A Python frame over `inner`, handed over at `held_ns`.
    fn frame(&self, (inner, held_ns): (OwnedFrame, u64)) -> PyFrame {
        PyFrame { inner, held_ns }
    }
}

#[pymethods]
impl PyFrameReader {
    /// The next frame, waiting at most `timeout` seconds (None: forever); `FrameTimeout`
    /// when none came.
    #[pyo3(signature = (timeout = None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyFrame> {
        let t = wait_timeout(timeout)?;
        let reader = &self.inner;
        let (got, raised) = detached(py, |check| {
            let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
            // Timed here, not once the interpreter is back: the wait for the GIL is Python's.
            r.next_interruptible(t, check).map(|f| (f, monotonic_ns()))
        });
        if let Some(e) = raised {
            return Err(e);
        }
        got.map(|f| self.frame(f)).map_err(|e| ring_error(py, e))
    }

    /// The newest frame, without waiting (None before the first).
    fn latest(&self, py: Python<'_>) -> PyResult<Option<PyFrame>> {
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let got = r
            .latest()
            .map_err(|e| ring_error(py, e))?
            .map(|f| (f, monotonic_ns()));
        drop(r);
        Ok(got.map(|f| self.frame(f)))
    }

    /// Id of the newest frame the ring holds (a controller that finds it ahead of the frame
    /// it just read knows a newer one is waiting).
    #[getter]
    fn last_id(&self) -> u64 {
        let r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        r.ring().stats().last_id
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<PyFrame> {
        self.next(py, None)
    }
}

/// One frame, held in place until it and every array viewing it are gone.
#[pyclass(module = "shmkit._shmkit", name = "Frame", frozen)]
pub struct PyFrame {
    inner: OwnedFrame,
    /// When the reader handed the frame over (the `held` instant of its cause).
    held_ns: u64,
}

impl PyFrame {
    /// The frame as the cause of a command computed from it.
    pub(crate) fn cause(&self) -> Cause {
        Cause {
            frame_id: self.inner.id(),
            published_ns: self.inner.ts_ns(),
            held_ns: self.held_ns,
        }
    }

    /// The ring's frame shape (each frame's array has it unless the frame is shorter).
    fn shape(&self) -> Vec<usize> {
        self.inner
            .ring()
            .shape()
            .iter()
            .map(|&d| d as usize)
            .collect()
    }
}

/// A read-only array of `T` over the frame's bytes, with `container` as its base.
fn view_of<'py, T: Element>(
    frame: &PyFrame,
    container: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let bytes = frame.inner.bytes();
    let full = frame.shape();
    let count: usize = full.iter().product();
    let shape = if count * std::mem::size_of::<T>() == bytes.len() {
        full
    } else {
        // A shorter frame than the ring's shape (a `set_len`): flat.
        vec![bytes.len() / std::mem::size_of::<T>()]
    };
    // SAFETY: frames start 64-aligned in the segment (`FrameGeometry`), so the pointer is
    // aligned for every element type; `shape` covers at most `bytes.len()` bytes; any bytes
    // are a valid `T` (integers and floats).
    let view = unsafe { ArrayView::from_shape_ptr(IxDyn(&shape), bytes.as_ptr().cast::<T>()) };
    // SAFETY: `container` is the `Frame` whose owned hold pins these bytes; numpy keeps it
    // as the array's base, so the bytes stay pinned and mapped while the array lives.
    let array: Bound<'py, PyArrayDyn<T>> = unsafe { PyArray::borrow_from_array(&view, container) };
    // SAFETY: a valid array object we just made; clearing WRITEABLE only restricts it.
    unsafe { (*array.as_array_ptr()).flags &= !npyffi::NPY_ARRAY_WRITEABLE };
    Ok(array.as_untyped().clone())
}

#[pymethods]
impl PyFrame {
    /// The frame's id (1, 2, 3, ... in publish order).
    #[getter]
    fn id(&self) -> u64 {
        self.inner.id()
    }

    /// Publish time (CLOCK_MONOTONIC, ns).
    #[getter]
    fn ts_ns(&self) -> u64 {
        self.inner.ts_ns()
    }

    /// When this process's reader handed the frame over (CLOCK_MONOTONIC, ns).
    #[getter]
    fn held_ns(&self) -> u64 {
        self.held_ns
    }

    /// The frame as the cause of a command computed from it (`proxy.caused(frame)` takes the
    /// frame itself too).
    #[getter(cause)]
    fn py_cause(&self) -> PyCause {
        PyCause {
            inner: self.cause(),
        }
    }

    /// Caller metadata word `i` (0..5).
    fn user(&self, i: usize) -> u64 {
        self.inner.user(i)
    }

    /// The frame as a read-only numpy array over the slot itself (no copy).
    #[getter]
    fn array<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyUntypedArray>> {
        let frame = slf.get();
        let container = slf.clone().into_any();
        match frame.inner.ring().elem() {
            ElemType::U8 => view_of::<u8>(frame, container),
            ElemType::U16 => view_of::<u16>(frame, container),
            ElemType::U32 => view_of::<u32>(frame, container),
            ElemType::I16 => view_of::<i16>(frame, container),
            ElemType::I32 => view_of::<i32>(frame, container),
            ElemType::F32 => view_of::<f32>(frame, container),
            ElemType::F64 => view_of::<f64>(frame, container),
        }
    }

    /// A private copy of the frame's array.
    fn copy<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let view = PyFrame::array(slf)?;
        view.call_method0("copy")
    }

    /// The frame's checksum as the simulated camera computes it (it stores it in user word 1):
    /// a torn frame would not match. Computed over the slot in place.
    fn checksum(&self) -> u64 {
        shmkit_sim::checksum(self.inner.bytes())
    }

    /// Bytes in the frame.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmkit.Frame id={} {} {:?}>",
            self.inner.id(),
            self.inner.ring().elem().name(),
            self.shape()
        )
    }
}

/// For `Segment.frame_ring`: the ring `name`, opened (no shape) or created if needed.
pub(crate) fn frame_ring(
    py: Python<'_>,
    seg: &shmkit::Segment,
    name: &str,
    shape: Option<Vec<u32>>,
    dtype: Option<&Bound<'_, PyAny>>,
    slots: u32,
    origin: Origin,
) -> PyResult<PyFrameRing> {
    use shmkit::SegmentObjects;
    let dtype = match dtype {
        Some(d) => Some(
            py.import("numpy")?
                .call_method1("dtype", (d,))?
                .getattr("name")?
                .extract::<String>()?,
        ),
        None => None,
    };
    let ring = match (shape, dtype.as_deref()) {
        (None, None) => seg.open::<FrameRing>(name),
        (Some(shape), Some(dtype)) => seg.frame_ring(
            name,
            &shmkit::rings::FrameSpec {
                slots,
                elem: elem_of(dtype)?,
                shape,
            },
        ),
        _ => {
            return Err(PyValueError::new_err(
                "give both shape and dtype to create a frame ring, or neither to open one",
            ))
        }
    }
    .map_err(|e| segment_error(py, e))?;
    Ok(PyFrameRing::wrap(ring, origin))
}
