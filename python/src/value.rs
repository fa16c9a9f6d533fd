//! The bytes layer of `shmkit.SharedValue` (the numpy side — dtype, shape, conversions — is
//! Python: `pysrc/shmkit/_value.py`).
//!
//! Reads and writes copy under the value's mutex; the uncontended case runs with the GIL held
//! (one compare-and-swap each way), a wait lets go of it and listens for Ctrl+C.

use crate::errors::{lock_error, raise, segment_error};
use crate::mutex::PyMutex;
use crate::wait::{detached, DEFAULT_LOCK_TIMEOUT};
use crate::Origin;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmkit::{BytesSpec, LockError, SegmentObjects, SharedBytes, SharedError, Timeout};

fn shared_error(py: Python<'_>, e: SharedError) -> PyErr {
    let message = e.to_string();
    match e {
        SharedError::OwnerDied { previous } => raise(
            py,
            "InconsistentValueError",
            (message, previous.map(|p| p.pid), previous.map(|p| p.tid)),
        ),
        SharedError::Lock(e) => lock_error(py, e),
        _ => PyValueError::new_err(message),
    }
}

/// A value of bytes in a segment under its own robust mutex; its creator's type name says
/// what the bytes are.
#[pyclass(module = "shmkit._shmkit", name = "RawValue", frozen)]
pub struct PyRawValue {
    inner: SharedBytes,
    segment: String,
    name: String,
}

impl PyRawValue {
    /// Runs `op` with the zero timeout first (GIL held: the common, uncontended case), then,
    /// if the mutex was busy, detached with the default timeout and a Ctrl+C check.
    fn locked<T, F>(&self, py: Python<'_>, op: F) -> PyResult<T>
    where
        T: Send,
        F: Fn(Timeout, &dyn shmkit::Interrupt) -> Result<T, SharedError> + Sync,
    {
        let first = op(Timeout::ZERO, &shmkit::NoInterrupt);
        let result = match first {
            Err(SharedError::Lock(LockError::WouldBlock { .. })) => {
                let (result, raised) = detached(py, |check| op(DEFAULT_LOCK_TIMEOUT, check));
                if let Some(e) = raised {
                    return Err(e);
                }
                result
            }
            other => other,
        };
        result.map_err(|e| shared_error(py, e))
    }
}

#[pymethods]
impl PyRawValue {
    /// A copy of the value's bytes.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let out = self.locked(py, |t, check| {
            let mut out = vec![0u8; self.inner.len()];
            self.inner.read(&mut out, t, check).map(|()| out)
        })?;
        Ok(PyBytes::new(py, &out))
    }

    /// Replaces the value's bytes (exactly `len(self)` of them).
    fn write(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        self.locked(py, |t, check| self.inner.write(data, t, check))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The type name the value was created with (at most 40 bytes are kept).
    #[getter]
    fn type_name(&self) -> &str {
        self.inner.type_name()
    }

    /// The value's alignment in bytes.
    #[getter]
    fn align(&self) -> u32 {
        self.inner.align()
    }

    /// The value's mutex, shared by every handle (hold it for a multi-step section or a repair).
    #[getter]
    fn mutex(&self) -> PyMutex {
        PyMutex::wrap(
            self.inner.mutex().clone(),
            DEFAULT_LOCK_TIMEOUT,
            Origin::Inside {
                segment: self.segment.clone(),
                name: self.name.clone(),
            },
        )
    }

    /// `(segment, name)`, for pickling.
    #[getter]
    fn origin(&self) -> (String, String) {
        (self.segment.clone(), self.name.clone())
    }
}

/// For `Segment._raw_value`: opened as it is without a type, else created if needed.
pub(crate) fn raw_value(
    py: Python<'_>,
    seg: &shmkit::Segment,
    name: &str,
    typed: Option<(String, u32, Vec<u8>)>,
) -> PyResult<PyRawValue> {
    let inner = match typed {
        None => seg.open::<SharedBytes>(name),
        Some((type_name, align, init)) => BytesSpec::new(type_name, align, init)
            .and_then(|spec| seg.open_or_create::<SharedBytes>(name, &spec)),
    }
    .map_err(|e| segment_error(py, e))?;
    Ok(PyRawValue {
        inner,
        segment: seg.name().to_owned(),
        name: name.to_owned(),
    })
}
