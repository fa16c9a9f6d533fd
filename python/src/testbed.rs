//! The testbed from Python, on the Rust testbed (`shmkit_testbed`), the way Python devices run
//! on the Rust device server.
//!
//! `_Testbed` is the Rust [`Testbed`]: its monitor thread runs the safety tests (Python
//! objects, called through [`PySafetyTest`]), trips, reaps and kills experiments, and closes
//! the devices; its experiments are [`PyExperiment`]s, each a Python interpreter started by
//! the testbed's spawn that runs the pickled experiment (`shmkit._testbed._hosted`). The
//! Pythonic surface (`shmkit.Testbed`, its report with the experiments' own exceptions) is
//! `_testbed.py`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use serde::{Deserialize, Serialize};
use shmkit::process::{ChildError, HostProgram};
use shmkit_testbed::{
    Experiment, ExperimentContext, ExperimentFailure, ExperimentOutcome, SafetyContext, SafetyTest,
    Testbed, TestbedBuilder, TestbedError,
};
use std::sync::Mutex;
use std::time::Duration;

/// An experiment written in Python: its pickled `(preparation, experiment, failure path)`,
/// run by `shmkit._testbed._hosted` in a Python interpreter the testbed started. The pickle
/// travels in the child's environment, a channel private to this user (as multiprocessing's
/// pipe is), never through segment bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct PyExperiment {
    payload: Vec<u8>,
    run_forever: bool,
}

impl Experiment for PyExperiment {
    const NAME: &'static str = "shmkit.python-experiment";

    fn run_forever(&self) -> bool {
        self.run_forever
    }

    fn experiment(&mut self, ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        let segment = ctx.segment().name().to_owned();
        Python::attach(|py| {
            py.import("shmkit._testbed")
                .and_then(|m| m.call_method1("_hosted", (PyBytes::new(py, &self.payload), segment)))
                .map(drop)
                .map_err(|e| {
                    // The exception itself went to the parent through the failure file; the
                    // report names it too, for a reader of the Rust report.
                    let text = e.to_string();
                    ExperimentFailure::from(text)
                })
        })
    }
}

/// A safety test written in Python: `shmkit._testbed._failure(test)` says what is wrong.
struct PySafetyTest {
    name: String,
    /// `None` only while being dropped.
    test: Option<Py<PyAny>>,
}

impl Drop for PySafetyTest {
    fn drop(&mut self) {
        // Released with the interpreter attached: the testbed drops its tests on its monitor
        // thread or inside a detached call, where there is no reference pool to defer to.
        if let Some(test) = self.test.take() {
            Python::attach(|_| drop(test));
        }
    }
}

impl SafetyTest for PySafetyTest {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&mut self, _ctx: &SafetyContext<'_>) -> Result<(), String> {
        let Some(test) = &self.test else {
            return Ok(());
        };
        Python::attach(|py| {
            let verdict = py
                .import("shmkit._testbed")
                .and_then(|m| m.call_method1("_failure", (test.bind(py),)))
                .and_then(|v| v.extract::<Option<String>>());
            match verdict {
                Ok(None) => Ok(()),
                Ok(Some(message)) => Err(message),
                Err(e) => Err(format!("the safety test could not be run: {e}")),
            }
        })
    }
}

/// The Rust testbed, for `shmkit.Testbed`.
#[pyclass(module = "shmkit._shmkit", name = "_Testbed", frozen)]
pub struct PyTestbed {
    /// `None` once closed.
    inner: Mutex<Option<Testbed>>,
}

/// `s` seconds as a duration; a negative or non-finite one is a `ValueError` naming `what`.
pub(crate) fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| PyValueError::new_err(format!("{what} must be finite and >= 0, not {s}")))
}

fn testbed_error(py: Python<'_>, e: TestbedError) -> PyErr {
    let message = shmkit::error_chain(&e);
    let class = match &e {
        TestbedError::InitialSafetyCheck { .. } => "InitialSafetyCheckFailed",
        TestbedError::Stopping => "TestbedStopping",
        TestbedError::AlreadyRunning { .. } | TestbedError::Segment(_) => "SegmentError",
        TestbedError::Device(_) => "DeviceError",
        _ => "ShmkitError",
    };
    crate::errors::raise(py, class, (message,))
}

/// An outcome as `(name, pid, failure, killed)`: `failure` is None, or `(kind, message,
/// signal number, signal name, exit code)` with kind "failed", "signaled", "exited" or "other".
type Outcome = (
    String,
    u32,
    Option<(&'static str, String, i32, String, i32)>,
    bool,
);

fn outcome(o: ExperimentOutcome) -> Outcome {
    let failure = o.result.err().map(|e| match &e {
        ChildError::Signaled {
            signal,
            signal_name,
            ..
        } => (
            "signaled",
            shmkit::error_chain(&e),
            *signal,
            signal_name.to_string(),
            0,
        ),
        ChildError::Exited { code, .. } => {
            ("exited", shmkit::error_chain(&e), 0, String::new(), *code)
        }
        ChildError::Failed { .. } => ("failed", shmkit::error_chain(&e), 0, String::new(), 0),
        _ => ("other", shmkit::error_chain(&e), 0, String::new(), 0),
    });
    (o.name, o.pid, failure, o.killed)
}

impl PyTestbed {
    fn with<T>(&self, py: Python<'_>, f: impl FnOnce(&Testbed) -> T) -> PyResult<T> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(tb) => Ok(f(tb)),
            None => Err(crate::errors::raise(
                py,
                "ShmkitError",
                ("the testbed is closed",),
            )),
        }
    }
}

#[pymethods]
impl PyTestbed {
    /// Starts the Rust testbed on segment `name`: `safety_tests` are `(name, test)` pairs,
    /// experiments run as `program args...` (this interpreter serving shmkit children).
    #[new]
    #[pyo3(signature = (name, size, devices, safety_tests, program, args, *, safety_check_interval, max_consecutive_failures, stop_all_on_exception, stop_timeout, device_close_timeout))]
    #[allow(clippy::too_many_arguments)] // keyword-only, as the Python constructor's
    fn new(
        py: Python<'_>,
        name: &str,
        size: u64,
        devices: Vec<String>,
        safety_tests: Vec<(String, Py<PyAny>)>,
        program: String,
        args: Vec<String>,
        safety_check_interval: f64,
        max_consecutive_failures: u32,
        stop_all_on_exception: bool,
        stop_timeout: f64,
        device_close_timeout: f64,
    ) -> PyResult<PyTestbed> {
        let names: Vec<&str> = devices.iter().map(String::as_str).collect();
        let mut builder = TestbedBuilder::new(name)
            .size(size)
            .devices(&names)
            .safety_check_interval(seconds("safety_check_interval", safety_check_interval)?)
            .max_consecutive_failures(max_consecutive_failures)
            .stop_all_on_exception(stop_all_on_exception)
            .stop_timeout(seconds("stop_timeout", stop_timeout)?)
            .device_close_timeout(seconds("device_close_timeout", device_close_timeout)?)
            .experiment_program(HostProgram::new(program, args))
            // The interpreter keeps its SIGINT handler: `shmkit.Testbed`'s calls request_stop.
            .catch_ctrl_c(false);
        for (name, test) in safety_tests {
            builder = builder.safety_test(PySafetyTest {
                name,
                test: Some(test),
            });
        }
        // Detached: the initial safety check and the monitor call back into Python.
        let started = py.detach(|| builder.start());
        let tb = started.map_err(|e| testbed_error(py, e))?;
        Ok(PyTestbed {
            inner: Mutex::new(Some(tb)),
        })
    }

    /// Starts a pickled Python experiment named `name`; returns its pid.
    fn start_experiment(
        &self,
        py: Python<'_>,
        name: &str,
        payload: Vec<u8>,
        run_forever: bool,
    ) -> PyResult<u32> {
        let experiment = PyExperiment {
            payload,
            run_forever,
        };
        self.with(py, |tb| tb.start_named_experiment(name, &experiment))?
            .map_err(|e| testbed_error(py, e))
    }

    /// Experiments still running.
    fn running_experiments(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, Testbed::running_experiments)
    }

    /// Sets FINISH.
    fn request_finish(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, Testbed::request_finish)
    }

    /// Sets FINISH and STOP (Ctrl+C).
    fn request_stop(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, Testbed::request_stop)
    }

    /// Is STOP set?
    fn stopping(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, Testbed::stopping)
    }

    /// The trip, as `(test, message, consecutive)`, if one happened.
    fn trip(&self, py: Python<'_>) -> PyResult<Option<(String, String, u32)>> {
        Ok(self
            .with(py, Testbed::trip)?
            .map(|t| (t.test, t.message, t.consecutive)))
    }

    /// The experiments that ended since the last call (see `Outcome`).
    fn take_ended<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let ended: Vec<Outcome> = self
            .with(py, Testbed::take_ended)?
            .into_iter()
            .map(outcome)
            .collect();
        PyList::new(py, ended)
    }

    /// Tears the testbed down (detached: the monitor may be calling a safety test); returns
    /// the experiments that ended since `take_ended` and the device close failures.
    #[allow(clippy::type_complexity)]
    fn close(&self, py: Python<'_>) -> PyResult<(Vec<Outcome>, Vec<(String, String)>)> {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(tb) = taken else {
            return Ok((Vec::new(), Vec::new()));
        };
        let report = py.detach(move || tb.close());
        let experiments = report.experiments.into_iter().map(outcome).collect();
        let devices = report
            .device_failures
            .into_iter()
            .map(|(name, e)| (name, shmkit::error_chain(&e)))
            .collect();
        Ok((experiments, devices))
    }
}
