//! `shmkit.Histogram`: latencies from every process into one shared histogram; durations in
//! seconds (as `time.perf_counter` differences), or nanoseconds with the `_ns` methods.

use crate::Origin;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use shmkit::{Histogram, HistogramSnapshot};

/// Seconds as whole nanoseconds; a negative or non-finite duration is a `ValueError`.
fn to_ns(seconds: f64) -> PyResult<u64> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "a duration must be a finite number of seconds >= 0, not {seconds}"
        )));
    }
    // Saturates at u64::MAX ns (584 years).
    Ok((seconds * 1e9).round() as u64)
}

/// A shared histogram of durations (log-scaled buckets, 1/16 of an octave wide): any process
/// records, any process reads quantiles. Recording is one atomic add and never blocks.
#[pyclass(module = "shmkit._shmkit", name = "Histogram", frozen, weakref)]
pub struct PyHistogram {
    inner: Histogram,
    origin: Origin,
}

impl PyHistogram {
    pub(crate) fn wrap(inner: Histogram, origin: Origin) -> PyHistogram {
        PyHistogram { inner, origin }
    }

    /// The shared histogram.
    pub(crate) fn histogram(&self) -> &Histogram {
        &self.inner
    }
}

#[pymethods]
impl PyHistogram {
    /// Counts one sample of `seconds`.
    fn record(&self, seconds: f64) -> PyResult<()> {
        self.inner.record(to_ns(seconds)?);
        Ok(())
    }

    /// Counts one sample of `ns` nanoseconds.
    fn record_ns(&self, ns: u64) {
        self.inner.record(ns);
    }

    /// A context manager that records how long its block took: `with h.time(): ...`.
    fn time(slf: Py<Self>) -> HistogramTimer {
        HistogramTimer {
            histogram: slf,
            start: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A copy of the counts, for quantiles and windows.
    fn snapshot(&self) -> PyHistogramSnapshot {
        PyHistogramSnapshot {
            inner: self.inner.snapshot(),
        }
    }

    /// Forgets every sample, for every process.
    fn reset(&self) {
        self.inner.reset();
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (String, String))> {
        let (segment, name) = self.origin.named("Histogram")?;
        let rebuild = py.import("shmkit")?.getattr("_rebuild_histogram")?.unbind();
        Ok((rebuild, (segment, name)))
    }

    fn __repr__(&self) -> String {
        let s = self.inner.snapshot();
        format!(
            "<shmkit.Histogram{}: {} samples>",
            self.origin.repr_fields(),
            s.count()
        )
    }
}

/// `Histogram.time()`'s context manager.
#[pyclass(module = "shmkit._shmkit", name = "HistogramTimer", frozen)]
pub struct HistogramTimer {
    histogram: Py<PyHistogram>,
    start: std::sync::atomic::AtomicU64,
}

#[pymethods]
impl HistogramTimer {
    fn __enter__(slf: Py<Self>, py: Python<'_>) -> Py<Self> {
        slf.get().start.store(
            shmkit::clock::monotonic_ns(),
            std::sync::atomic::Ordering::Relaxed,
        );
        slf.clone_ref(py)
    }

    /// Records the block's duration, also when it raised (the exception propagates).
    fn __exit__(
        &self,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        let start = self.start.load(std::sync::atomic::Ordering::Relaxed);
        self.histogram
            .get()
            .inner
            .record(shmkit::clock::monotonic_ns().saturating_sub(start));
        false
    }
}

/// A histogram's counts at one instant. Quantiles are a bucket's upper bound (within 1/16 of
/// an octave above the true value), capped at the exact maximum.
#[pyclass(module = "shmkit._shmkit", name = "HistogramSnapshot", frozen)]
pub struct PyHistogramSnapshot {
    inner: HistogramSnapshot,
}

#[pymethods]
impl PyHistogramSnapshot {
    /// Samples counted.
    #[getter]
    fn count(&self) -> u64 {
        self.inner.count()
    }

    /// The largest sample, seconds (0.0 with none).
    #[getter]
    fn max(&self) -> f64 {
        self.inner.max() as f64 / 1e9
    }

    /// The largest sample, nanoseconds.
    #[getter]
    fn max_ns(&self) -> u64 {
        self.inner.max()
    }

    /// The mean, seconds (each sample at its bucket's midpoint); None with no samples.
    #[getter]
    fn mean(&self) -> Option<f64> {
        self.inner.mean().map(|ns| ns / 1e9)
    }

    /// No reset ran while this was copied.
    #[getter]
    fn stable(&self) -> bool {
        self.inner.is_stable()
    }

    /// Twice the resets before this copy (odd while one ran).
    #[getter]
    fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// Samples per bucket.
    #[getter]
    fn buckets(&self) -> Vec<u64> {
        self.inner.buckets().to_vec()
    }

    /// The value at quantile `q` (0..=1), seconds; None with no samples.
    fn quantile(&self, q: f64) -> PyResult<Option<f64>> {
        Ok(self.quantile_ns(q)?.map(|ns| ns as f64 / 1e9))
    }

    /// The value at quantile `q` (0..=1), nanoseconds; None with no samples.
    fn quantile_ns(&self, q: f64) -> PyResult<Option<u64>> {
        if !(0.0..=1.0).contains(&q) {
            return Err(PyValueError::new_err(format!(
                "a quantile is between 0 and 1, not {q}"
            )));
        }
        Ok(self.inner.quantile(q))
    }

    /// The samples recorded after `earlier` and up to this copy; None when a reset came
    /// between them.
    fn since(&self, earlier: &PyHistogramSnapshot) -> Option<PyHistogramSnapshot> {
        self.inner
            .since(&earlier.inner)
            .map(|inner| PyHistogramSnapshot { inner })
    }

    fn __repr__(&self) -> String {
        let q = |q: f64| {
            self.inner
                .quantile(q)
                .map_or("-".to_owned(), |ns| format!("{:.1} µs", ns as f64 / 1e3))
        };
        format!(
            "<shmkit.HistogramSnapshot: {} samples, p50 {}, p99 {}, p99.9 {}, max {:.1} µs>",
            self.inner.count(),
            q(0.5),
            q(0.99),
            q(0.999),
            self.inner.max() as f64 / 1e3
        )
    }
}
