//! `_Recorder`: a recording started from Python (`shmkit.record`), the Rust recorder of
//! `shmkit_record` — its threads never touch the interpreter.

use crate::segment::PySegment;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use shmkit_record::{RecordOptions, Recorder, Roll};
use std::sync::Mutex;

/// A running recording.
#[pyclass(module = "shmkit._shmkit", name = "_Recorder", frozen)]
pub struct PyRecorder {
    /// `None` once stopped.
    inner: Mutex<Option<Recorder>>,
}

fn record_error(e: shmkit_record::RecordError) -> PyErr {
    let message = shmkit::error_chain(&e);
    match e {
        shmkit_record::RecordError::Io { .. } | shmkit_record::RecordError::NotEmpty(_) => {
            pyo3::exceptions::PyOSError::new_err(message)
        }
        _ => PyRuntimeError::new_err(message),
    }
}

#[pymethods]
impl PyRecorder {
    /// Starts recording `rings` of `segment` into the directory `out`.
    #[new]
    #[pyo3(signature = (segment, rings, out, *, frames_per_file=None, bytes_per_file=None, seconds_per_file=None, idle=false, cpu=None, buffer_mib=256))]
    #[allow(clippy::too_many_arguments)] // keyword-only, as `shmkit.record`'s
    fn new(
        py: Python<'_>,
        segment: &PySegment,
        rings: Vec<String>,
        out: std::path::PathBuf,
        frames_per_file: Option<u64>,
        bytes_per_file: Option<u64>,
        seconds_per_file: Option<f64>,
        idle: bool,
        cpu: Option<usize>,
        buffer_mib: usize,
    ) -> PyResult<PyRecorder> {
        if seconds_per_file.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
            return Err(PyValueError::new_err(
                "seconds_per_file must be a positive number",
            ));
        }
        let options = RecordOptions {
            roll: Roll {
                frames: frames_per_file,
                bytes: bytes_per_file,
                seconds: seconds_per_file,
            },
            idle,
            cpu,
            buffer_bytes: buffer_mib.max(1) << 20,
            ..RecordOptions::new(out)
        };
        let seg = segment.segment().clone();
        let names: Vec<&str> = rings.iter().map(String::as_str).collect();
        let started = py.detach(|| Recorder::start(&seg, &names, &options));
        Ok(PyRecorder {
            inner: Mutex::new(Some(started.map_err(record_error)?)),
        })
    }

    /// Each ring's `(name, recorded, dropped)` so far.
    fn progress(&self) -> Vec<(String, u64, u64)> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .map(|r| {
                r.progress()
                    .into_iter()
                    .map(|p| (p.ring, p.recorded, p.dropped))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops (every file closed valid) and returns the manifest as JSON text; `None` if it
    /// was already stopped.
    fn stop(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(recorder) = taken else {
            return Ok(None);
        };
        let manifest = py.detach(move || recorder.stop()).map_err(record_error)?;
        serde_json::to_string(&manifest)
            .map(Some)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }
}
