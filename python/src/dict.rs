//! The bytes layer of `shmkit.SharedDict` (the `MutableMapping` itself, which encodes values,
//! is Python: `pysrc/shmkit/_dict.py`). Every operation waits for the dictionary's mutex
//! without the GIL and ends on Ctrl+C, like every other wait.

use crate::errors::{lock_error, raise, segment_error};
use crate::wait::detached;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmkit::{DictError, SharedDict, Timeout};

fn dict_error(py: Python<'_>, e: DictError) -> PyErr {
    let message = e.to_string();
    match e {
        DictError::OwnerDied { previous, lost } => raise(
            py,
            "DictRepairedError",
            (message, previous.map(|p| p.pid), lost),
        ),
        DictError::Lock(e) => lock_error(py, e),
        DictError::BadKey { .. } => PyKeyError::new_err(message),
        DictError::TooManyKeys { .. } | DictError::OutOfSpace { .. } => {
            raise(py, "DictFullError", (message,))
        }
        DictError::Corrupt { .. } => raise(py, "CorruptError", (message,)),
        _ => PyValueError::new_err(message),
    }
}

/// A dictionary of byte strings in a segment, under its own robust mutex.
#[pyclass(module = "shmkit._shmkit", name = "RawDict", frozen)]
pub struct PyRawDict {
    inner: SharedDict,
    segment: String,
    name: String,
}

#[pymethods]
impl PyRawDict {
    fn get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let inner = &self.inner;
        let got = interruptibly(py, |t, check| inner.get_bytes_interruptible(key, t, check))?;
        Ok(got.map(|b| PyBytes::new(py, &b)))
    }

    fn set(&self, py: Python<'_>, key: &str, value: &[u8]) -> PyResult<()> {
        let inner = &self.inner;
        interruptibly(py, |t, check| {
            inner.insert_bytes_interruptible(key, value, t, check)
        })
        .map(|_| ())
    }

    /// Removes `key`; False if it was absent.
    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        let inner = &self.inner;
        interruptibly(py, |t, check| inner.remove_interruptible(key, t, check))
            .map(|old| old.is_some())
    }

    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let inner = &self.inner;
        interruptibly(py, |t, check| inner.keys_interruptible(t, check))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let inner = &self.inner;
        interruptibly(py, |t, check| inner.len_interruptible(t, check))
    }

    /// Takes the dictionary's lock for a multi-operation section (repairing it first after a
    /// holder's death, which raises `DictRepairedError` once).
    fn acquire(&self, py: Python<'_>) -> PyResult<()> {
        let inner = &self.inner;
        interruptibly(py, |t, check| {
            inner.lock_interruptible(t, check).map(std::mem::forget)
        })
    }

    /// Releases the section's lock.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.inner
            .mutex()
            .release()
            .map_err(|e| crate::errors::unlock_error(py, e))
    }

    /// The maximum number of keys.
    #[getter]
    fn max_entries(&self) -> u32 {
        self.inner.max_entries()
    }

    /// `(segment, name)`, for pickling.
    #[getter]
    fn origin(&self) -> (String, String) {
        (self.segment.clone(), self.name.clone())
    }
}

/// Runs a dictionary operation without the GIL, its wait for the dictionary's mutex bounded
/// by the dictionary's timeout and ended by Ctrl+C (the `KeyboardInterrupt` is re-raised).
fn interruptibly<T: Send>(
    py: Python<'_>,
    op: impl for<'a> FnOnce(Timeout, &'a dyn shmkit::Interrupt) -> Result<T, DictError> + Send,
) -> PyResult<T> {
    let (out, raised) = detached(py, |check| op(Timeout::After(DICT_TIMEOUT), check));
    if let Some(e) = raised {
        return Err(e);
    }
    out.map_err(|e| dict_error(py, e))
}

/// How long an operation waits for the dictionary's mutex: the core's default lock timeout.
const DICT_TIMEOUT: std::time::Duration = shmkit::DEFAULT_LOCK_TIMEOUT;

/// For `Segment._raw_dict`.
pub(crate) fn raw_dict(
    py: Python<'_>,
    seg: &shmkit::Segment,
    name: &str,
    max_entries: Option<u32>,
    data_bytes: Option<u64>,
) -> PyResult<PyRawDict> {
    use shmkit::SegmentObjects;
    let inner = match (max_entries, data_bytes) {
        (None, _) => seg.open::<SharedDict>(name),
        (Some(n), None) => seg.dict(name, n),
        (Some(n), Some(bytes)) => seg.open_or_create::<shmkit::SharedDict>(
            name,
            &shmkit::shared::DictSpec {
                max_entries: n,
                data_bytes: bytes,
            },
        ),
    }
    .map_err(|e| segment_error(py, e))?;
    Ok(PyRawDict {
        inner,
        segment: seg.name().to_owned(),
        name: name.to_owned(),
    })
}
