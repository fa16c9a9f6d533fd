//! The bytes layer of `shmkit.SharedDict` (the `MutableMapping` itself, which pickles values,
//! is Python: `pysrc/shmkit/_dict.py`).

use crate::errors::{lock_error, raise, segment_error};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmkit::{DictError, SharedDict};

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
        let got = py.detach(|| self.inner.get_bytes(key));
        Ok(got
            .map_err(|e| dict_error(py, e))?
            .map(|b| PyBytes::new(py, &b)))
    }

    fn set(&self, py: Python<'_>, key: &str, value: &[u8]) -> PyResult<()> {
        py.detach(|| self.inner.insert_bytes(key, value))
            .map(|_| ())
            .map_err(|e| dict_error(py, e))
    }

    /// Removes `key`; False if it was absent.
    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        py.detach(|| self.inner.remove(key))
            .map(|old| old.is_some())
            .map_err(|e| dict_error(py, e))
    }

    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| self.inner.keys())
            .map_err(|e| dict_error(py, e))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| self.inner.len())
            .map_err(|e| dict_error(py, e))
    }

    /// Takes the dictionary's lock for a multi-operation section (repairing it first after a
    /// holder's death, which raises `DictRepairedError` once).
    fn acquire(&self, py: Python<'_>) -> PyResult<()> {
        let got = py.detach(|| self.inner.lock().map(std::mem::forget));
        got.map_err(|e| dict_error(py, e))
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

/// For `Segment._raw_dict`.
pub(crate) fn raw_dict(
    py: Python<'_>,
    seg: &shmkit::Segment,
    name: &str,
    max_entries: Option<u32>,
) -> PyResult<PyRawDict> {
    use shmkit::SegmentObjects;
    let inner = match max_entries {
        None => seg.open::<SharedDict>(name),
        Some(n) => seg.dict(name, n),
    }
    .map_err(|e| segment_error(py, e))?;
    Ok(PyRawDict {
        inner,
        segment: seg.name().to_owned(),
        name: name.to_owned(),
    })
}
