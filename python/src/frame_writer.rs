//! Writing frames from Python: a claimed slot as a writable numpy array, or one copy of an
//! existing array.
//!
//! `writer.claim()` lends the ring's writer to a `WriteSlot` that exports the slot through
//! the buffer protocol (`slot.array` is `numpy.asarray(slot)`: a writable view of the slot
//! itself). `publish()` refuses while any export is alive — a Python array still able to write
//! into a frame readers can see would be a torn frame — exactly as `bytearray` refuses to
//! resize and `mmap` to close with exports alive. Once published or abandoned, the slot
//! exports nothing and the writer is back for the next claim.

use crate::frames::ring_error;
use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use shmkit::rings::{ElemType, FrameWriter, OwnedWriteSlot, RingError};
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::Duration;

/// The writer, or `None` while a `WriteSlot` has it.
type Home = Arc<StdMutex<Option<FrameWriter>>>;

fn lock<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The buffer-protocol format of an element type (native byte order).
fn format_of(elem: ElemType) -> &'static CStr {
    match elem {
        ElemType::U8 => c"B",
        ElemType::U16 => c"H",
        ElemType::U32 => c"I",
        ElemType::I16 => c"h",
        ElemType::I32 => c"i",
        ElemType::F32 => c"f",
        ElemType::F64 => c"d",
    }
}

fn slot_in_use() -> PyErr {
    PyRuntimeError::new_err(
        "a claimed slot is not published or abandoned yet: one frame at a time per writer",
    )
}

/// Claims a slot, first without waiting (GIL held), then detached for up to `timeout`.
#[allow(clippy::result_large_err)] // the writer handed back on failure: moved, not allocated
fn claim(py: Python<'_>, home: &Home, timeout: Duration) -> PyResult<OwnedWriteSlot> {
    let writer = lock(home).take().ok_or_else(slot_in_use)?;
    let first = writer.claim_owned(Duration::ZERO);
    let got = match first {
        Err((writer, RingError::AllSlotsHeld { .. })) if !timeout.is_zero() => {
            py.detach(|| writer.claim_owned(timeout))
        }
        other => other,
    };
    match got {
        Ok(slot) => Ok(slot),
        Err((writer, e)) => {
            *lock(home) = Some(writer);
            Err(ring_error(py, e))
        }
    }
}

/// Writes frames: `write(array)` copies an array into the next slot and publishes it;
/// `claim()` lends a slot to fill in place.
#[pyclass(module = "shmkit._shmkit", name = "FrameWriter", frozen)]
pub struct PyFrameWriter {
    home: Home,
}

impl PyFrameWriter {
    pub(crate) fn wrap(writer: FrameWriter) -> PyFrameWriter {
        PyFrameWriter {
            home: Arc::new(StdMutex::new(Some(writer))),
        }
    }
}

#[pymethods]
impl PyFrameWriter {
    /// Counts every frame this writer publishes more than `deadline` seconds after the one
    /// before into `late` (the interval, ns): the ring's `RING/late` histogram, as
    /// `Segment.declare_cadence` returns it.
    fn count_late(
        &self,
        deadline: f64,
        late: &Bound<'_, crate::histogram::PyHistogram>,
    ) -> PyResult<()> {
        let deadline = crate::testbed::seconds("deadline", deadline)?;
        let mut home = lock(&self.home);
        let writer = home.as_mut().ok_or_else(slot_in_use)?;
        writer.count_late(deadline, late.get().histogram().clone());
        Ok(())
    }

    /// Copies `array` (the ring's dtype, at most a frame's size) into a free slot — one copy —
    /// sets the user words given, publishes it and returns the frame id. Waits up to
    /// `timeout` seconds for readers to let a slot go.
    /// The array's shape must be the ring's (a `ValueError` names both); a shorter frame is
    /// written only on purpose, with `write_partial`.
    #[pyo3(signature = (array, user = None, timeout = 1.0))]
    fn write(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyUntypedArray>,
        user: Option<Vec<u64>>,
        timeout: f64,
    ) -> PyResult<u64> {
        self.write_frame(py, array, user, timeout, false)
    }

    /// Writes a frame shorter than the ring's: `array`'s elements (any shape, the ring's
    /// dtype, at most a frame's size) as the first elements of the frame; readers see a frame
    /// of that many elements. For frames of varying length (a spectrum, a packet), not for
    /// arrays of the wrong shape.
    #[pyo3(signature = (array, user = None, timeout = 1.0))]
    fn write_partial(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyUntypedArray>,
        user: Option<Vec<u64>>,
        timeout: f64,
    ) -> PyResult<u64> {
        self.write_frame(py, array, user, timeout, true)
    }

    /// Claims a free slot (waiting up to `timeout` seconds for readers to let one go) and
    /// returns it as a `WriteSlot`: fill `slot.array` in place, then `publish()` — or use it
    /// as a context manager, which publishes when the block ends normally and abandons the
    /// slot if it raises.
    #[pyo3(signature = (timeout = 1.0))]
    fn claim(&self, py: Python<'_>, timeout: f64) -> PyResult<PyWriteSlot> {
        let slot = claim(py, &self.home, claim_timeout(timeout)?)?;
        Ok(PyWriteSlot::new(slot, self.home.clone()))
    }
}

impl PyFrameWriter {
    fn write_frame(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyUntypedArray>,
        user: Option<Vec<u64>>,
        timeout: f64,
        partial: bool,
    ) -> PyResult<u64> {
        let mut slot = claim(py, &self.home, claim_timeout(timeout)?)?;
        let done = fill_from(&mut slot, array, partial).map(|len| {
            slot.set_len(len as u64);
            for (i, v) in user.unwrap_or_default().into_iter().enumerate().take(6) {
                slot.set_user(i, v);
            }
        });
        let writer = match done {
            Ok(()) => {
                let (id, writer) = slot.publish();
                *lock(&self.home) = Some(writer);
                return Ok(id);
            }
            Err(e) => (slot.abandon(), e),
        };
        *lock(&self.home) = Some(writer.0);
        Err(writer.1)
    }
}

fn claim_timeout(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "timeout must be a finite number of seconds >= 0, not {seconds}"
        ))
    })
}

/// Copies `array` into the slot's buffer: straight from its memory when C-contiguous, else
/// through numpy's own contiguous copy. Returns the bytes written.
fn fill_from(
    slot: &mut OwnedWriteSlot,
    array: &Bound<'_, PyUntypedArray>,
    partial: bool,
) -> PyResult<usize> {
    let want = slot.ring().elem().name();
    let got = array.dtype().to_string();
    if got != want {
        return Err(PyValueError::new_err(format!(
            "the ring holds {want} frames; the array is {got}"
        )));
    }
    let ring_shape: Vec<usize> = slot.ring().shape().iter().map(|&d| d as usize).collect();
    if !partial && array.shape() != ring_shape.as_slice() {
        let tuple = |dims: &[usize]| match dims {
            [one] => format!("({one},)"),
            _ => format!(
                "({})",
                dims.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(PyValueError::new_err(format!(
            "the ring's frames have shape {}; the array's shape is {} (write_partial writes \
             fewer elements on purpose)",
            tuple(&ring_shape),
            tuple(array.shape())
        )));
    }
    let nbytes = array.len() * array.dtype().itemsize();
    let (dst, max) = slot.buffer();
    if nbytes > max {
        return Err(PyValueError::new_err(format!(
            "the array has {nbytes} bytes; the ring's frames hold {max}"
        )));
    }
    if array.is_c_contiguous() {
        // SAFETY: a C-contiguous array's data is `nbytes` readable bytes from its data
        // pointer; the GIL is held and no Python code runs during the copy, so nothing
        // resizes or frees it; `dst` is the claimed slot's buffer (`max >= nbytes` bytes),
        // which no reader sees before the publish.
        unsafe {
            let src = (*array.as_array_ptr()).data.cast::<u8>();
            std::ptr::copy_nonoverlapping(src, dst, nbytes);
        }
    } else {
        let contiguous = array.call_method0("tobytes")?;
        let bytes: &[u8] = contiguous.extract()?;
        // SAFETY: as above, from a bytes object of `nbytes` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    }
    Ok(nbytes)
}

/// A claimed frame slot, writable in place through the buffer protocol.
#[pyclass(module = "shmkit._shmkit", name = "WriteSlot", frozen)]
pub struct PyWriteSlot {
    /// `Some` until published or abandoned.
    slot: StdMutex<Option<OwnedWriteSlot>>,
    home: Home,
    /// Buffers exported and not yet released.
    exports: AtomicUsize,
    buf: usize,
    len: usize,
    itemsize: usize,
    format: &'static CStr,
    /// The frame's shape and C strides, in bytes (kept here: exported buffers point at them).
    shape: Box<[ffi::Py_ssize_t]>,
    strides: Box<[ffi::Py_ssize_t]>,
}

impl PyWriteSlot {
    fn new(mut slot: OwnedWriteSlot, home: Home) -> PyWriteSlot {
        let elem = slot.ring().elem();
        let itemsize = elem.size();
        let shape: Box<[ffi::Py_ssize_t]> = slot
            .ring()
            .shape()
            .iter()
            .map(|&d| d as ffi::Py_ssize_t)
            .collect();
        let mut strides = vec![itemsize as ffi::Py_ssize_t; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        let count: usize = shape.iter().map(|&d| d as usize).product();
        let (buf, _) = slot.buffer();
        PyWriteSlot {
            slot: StdMutex::new(Some(slot)),
            home,
            exports: AtomicUsize::new(0),
            buf: buf as usize,
            len: count * itemsize,
            itemsize,
            format: format_of(elem),
            shape,
            strides: strides.into_boxed_slice(),
        }
    }

    /// Hands the writer back after a publish or an abandon.
    fn give_back(&self, writer: FrameWriter) {
        *lock(&self.home) = Some(writer);
    }

    /// Abandons the slot unless an export is alive (an array that could still write into a
    /// slot the writer will reuse): `Err(alive)` then, and the slot stays claimed.
    fn abandon_inner(&self) -> Result<(), usize> {
        let mut guard = lock(&self.slot);
        let alive = self.exports.load(Ordering::Acquire);
        if alive != 0 {
            return Err(alive);
        }
        if let Some(slot) = guard.take() {
            drop(guard);
            self.give_back(slot.abandon());
        }
        Ok(())
    }
}

impl Drop for PyWriteSlot {
    fn drop(&mut self) {
        // Garbage collected unpublished: the frame is dropped, the writer comes home. (Every
        // export holds a reference to this object, so none is alive here.)
        let _ = self.abandon_inner();
    }
}

#[pymethods]
impl PyWriteSlot {
    /// A writable numpy array over the slot itself (the ring's dtype and shape). Every array
    /// and view made from it must be gone before `publish`.
    #[getter]
    fn array<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        // Through a memoryview, so a spent slot raises instead of numpy falling back to a
        // 0-d object array; the memoryview (the array's base) holds the export.
        let view = pyo3::types::PyMemoryView::from(slf.as_any())?;
        slf.py().import("numpy")?.call_method1("asarray", (view,))
    }

    /// Sets caller metadata word `i` (0..5) of the frame.
    fn set_user(&self, i: usize, value: u64) -> PyResult<()> {
        let mut slot = lock(&self.slot);
        let slot = slot.as_mut().ok_or_else(spent)?;
        if i >= 6 {
            return Err(PyValueError::new_err(format!(
                "user word {i} out of range 0..5"
            )));
        }
        slot.set_user(i, value);
        Ok(())
    }

    /// Publishes the frame and returns its id (`user` sets metadata words first).
    /// `BufferError` while an array or memoryview of the slot is still alive (the slot stays
    /// claimed: delete them and publish again, or `abandon()`).
    #[pyo3(signature = (user = None))]
    fn publish(&self, user: Option<Vec<u64>>) -> PyResult<u64> {
        let mut guard = lock(&self.slot);
        let Some(slot) = guard.as_mut() else {
            return Err(spent());
        };
        // Exports are only taken with this lock held (`__getbuffer__`), so none can appear
        // between this check and the publish.
        let alive = self.exports.load(Ordering::Acquire);
        if alive != 0 {
            return Err(alive_error("publish")(alive));
        }
        for (i, v) in user.unwrap_or_default().into_iter().enumerate().take(6) {
            slot.set_user(i, v);
        }
        let (id, writer) = guard.take().expect("checked above").publish();
        drop(guard);
        self.give_back(writer);
        Ok(id)
    }

    /// Gives the slot back unpublished (readers never see it); `BufferError` while an array
    /// of the slot is alive, as for `publish`.
    fn abandon(&self) -> PyResult<()> {
        self.abandon_inner().map_err(alive_error("abandon"))
    }

    /// Whether the slot is still claimed (neither published nor abandoned).
    #[getter]
    fn claimed(&self) -> bool {
        lock(&self.slot).is_some()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Publishes if the block ended normally, abandons if it raised. With an array of the slot
    /// still alive neither can happen: a normal end raises `BufferError`, and the slot stays
    /// claimed until those arrays and the slot object are gone (then it is abandoned).
    fn __exit__(
        &self,
        exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        if !exc_type.is_none() {
            let _ = self.abandon_inner();
            return Ok(false);
        }
        if !self.claimed() {
            return Ok(false); // published or abandoned inside the block
        }
        self.publish(None).map(|_| false)
    }

    /// Exports the slot's bytes, writable, with the frame's shape and format.
    ///
    /// # Safety
    /// Called by CPython's buffer protocol only: `view` points to a `Py_buffer` the caller
    /// owns and that this call fills; it is released through `__releasebuffer__` exactly once.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("no Py_buffer to fill"));
        }
        let me = slf.get();
        let guard = lock(&me.slot);
        if guard.is_none() {
            return Err(spent());
        }
        let nd = flags & ffi::PyBUF_ND == ffi::PyBUF_ND;
        let strided = flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES;
        // SAFETY: `view` is the caller's non-null Py_buffer to fill (buffer protocol); the
        // shape, strides and format point into this object, which the view's `obj` reference
        // keeps alive until `__releasebuffer__`; `buf` is the claimed slot's buffer, which
        // stays claimed — and so mapped and ours — while an export is alive (publish and
        // abandon refuse, and drop cannot happen: the export holds a reference).
        unsafe {
            (*view).buf = me.buf as *mut c_void;
            (*view).len = me.len as ffi::Py_ssize_t;
            (*view).readonly = 0;
            (*view).itemsize = me.itemsize as ffi::Py_ssize_t;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                me.format.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = if nd { me.shape.len() as c_int } else { 1 };
            (*view).shape = if nd {
                me.shape.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if strided {
                me.strides.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
            me.exports.fetch_add(1, Ordering::AcqRel);
            drop(guard);
            (*view).obj = slf.into_any().into_ptr();
        }
        Ok(())
    }

    /// Counts one export of the slot's bytes released.
    ///
    /// # Safety
    /// Called by CPython's buffer protocol only, once for each successful `__getbuffer__`;
    /// `_view` is not read.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::AcqRel);
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmkit.WriteSlot {:?} {}>",
            self.shape,
            if self.claimed() { "claimed" } else { "done" }
        )
    }
}

/// The `BufferError` for `op` refused while `alive` exports exist.
fn alive_error(op: &'static str) -> impl Fn(usize) -> PyErr {
    move |alive| {
        PyBufferError::new_err(format!(
            "cannot {op}: {alive} array(s) or memoryview(s) of the slot are still alive and \
             could write into a frame readers see; delete them first (or copy)"
        ))
    }
}

fn spent() -> PyErr {
    PyRuntimeError::new_err("the slot was already published or abandoned")
}
