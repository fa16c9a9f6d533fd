//! The `shmkit._shmkit` extension module: a thin layer over the `shmkit` crate.
//!
//! Each Python class wraps one Rust handle (`segment.rs`, `mutex.rs`, `event.rs`,
//! `barrier.rs`); blocking calls let go of the GIL and listen for Ctrl+C (`wait.rs`); errors
//! become the exceptions of `shmkit.errors` (`errors.rs`). The Python package
//! (`pysrc/shmkit/`) re-exports these classes with stubs.

mod barrier;
mod cause;
mod commands;
mod devices;
mod dict;
mod errors;
mod event;
mod frame_writer;
mod frames;
mod histogram;
mod mutex;
mod mutex_fast;
mod recorder;
mod segment;
mod testbed;
mod trace;
mod value;
mod wait;

use pyo3::prelude::*;

/// Where a Python handle's object lives: for pickling (by segment and name) and `repr`.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// Process-local (heap) object.
    Local,
    /// Object `name` in segment `segment`.
    Named {
        /// The segment's name.
        segment: String,
        /// The object's name.
        name: String,
    },
    /// Part of object `name` in segment `segment` (a shared value's mutex): pickle the object.
    Inside {
        /// The segment's name.
        segment: String,
        /// The owning object's name.
        name: String,
    },
}

impl Origin {
    /// `(segment, name)` of a named object; a `RuntimeError` for a local one.
    pub(crate) fn named(&self, kind: &str) -> PyResult<(String, String)> {
        match self {
            Origin::Named { segment, name } => Ok((segment.clone(), name.clone())),
            Origin::Local => Err(mutex::not_shareable(kind)),
            Origin::Inside { name, .. } => Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "this {kind} belongs to {name:?}: pickle {name:?} itself"
            ))),
        }
    }

    /// For `repr`.
    /// The ` name=… segment=…` part of a `threading`-shaped `repr` (empty for a local object).
    pub(crate) fn repr_fields(&self) -> String {
        match self {
            Origin::Local => String::new(),
            Origin::Named { segment, name } => format!(" name={name:?} segment={segment:?}"),
            Origin::Inside { segment, name } => format!(" part_of={name:?} segment={segment:?}"),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Origin::Local => "(local)".to_owned(),
            Origin::Named { segment, name } => format!("{name:?} in {segment:?}"),
            Origin::Inside { segment, name } => format!("of {name:?} in {segment:?}"),
        }
    }
}

#[pymodule]
fn _shmkit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<segment::PySegment>()?;
    m.add_class::<mutex::PyMutex>()?;
    mutex_fast::install(m.py())?;
    m.add_class::<event::PyEvent>()?;
    m.add_class::<histogram::PyHistogram>()?;
    m.add_class::<histogram::PyHistogramSnapshot>()?;
    m.add_class::<histogram::HistogramTimer>()?;
    m.add_class::<trace::PyTraceBuffer>()?;
    m.add_class::<trace::PySpan>()?;
    m.add_class::<barrier::PyBarrier>()?;
    m.add_class::<commands::PyCommandRing>()?;
    m.add_class::<dict::PyRawDict>()?;
    m.add_class::<value::PyRawValue>()?;
    m.add_class::<commands::PyCommandServer>()?;
    m.add_class::<frames::PyFrameRing>()?;
    m.add_class::<frames::PyFrameReader>()?;
    m.add_class::<frames::PyFrame>()?;
    m.add_class::<cause::PyCause>()?;
    m.add_class::<devices::PyDeviceCache>()?;
    m.add_class::<devices::PyDeviceClient>()?;
    m.add_class::<devices::PySimCamera>()?;
    m.add_class::<devices::PySimDm>()?;
    m.add_function(wrap_pyfunction!(devices::run_child, m)?)?;
    m.add_class::<testbed::PyTestbed>()?;
    m.add_class::<recorder::PyRecorder>()?;
    m.add_class::<frame_writer::PyFrameWriter>()?;
    m.add_class::<frame_writer::PyWriteSlot>()?;
    m.add(
        "DEFAULT_TIMEOUT",
        shmkit::DEFAULT_LOCK_TIMEOUT.as_secs_f64(),
    )?;
    Ok(())
}
