//! [`PyDevice`]: a device written in Python, hosted by the core's server loop. Its
//! configuration is the pickled device factory; its commands and replies are pickled bytes,
//! handled by calling into `shmkit._devices`.

use crate::frame_writer::PyFrameWriter;
use crate::frames::elem_of;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde::{Deserialize, Serialize};
use shmkit::rings::FrameSpec;
use shmkit::WaitStrategy;
use shmkit_devices::{Device, DeviceContext, DeviceFailure};
use std::time::Duration;

/// What a Python device server is started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PyDeviceConfig {
    /// The pickled `(preparation data, class, kwargs)` that `shmkit._devices` builds the
    /// device from.
    pub(super) factory: Vec<u8>,
    /// Frame rings the device writes: `(suffix, slots, numpy dtype name, shape)`.
    pub(super) rings: Vec<(String, u32, String, Vec<u32>)>,
}

/// A device written in Python, hosted by the core's server loop.
pub struct PyDevice {
    /// The device object; `None` once closed.
    obj: Option<Py<PyAny>>,
    /// `shmkit._devices._handle`, looked up once.
    handler: Option<Py<PyAny>>,
}

impl Drop for PyDevice {
    fn drop(&mut self) {
        // The object is released with the interpreter attached (no reference pool).
        let (obj, handler) = (self.obj.take(), self.handler.take());
        if obj.is_some() || handler.is_some() {
            Python::attach(|_| drop((obj, handler)));
        }
    }
}

/// A Python exception as a device failure: its type, message and traceback.
fn failure(py: Python<'_>, e: PyErr) -> DeviceFailure {
    let text = py
        .import("traceback")
        .and_then(|tb| tb.call_method1("format_exception", (e.value(py),)))
        .and_then(|lines| {
            let joined: String = lines.extract::<Vec<String>>()?.concat();
            Ok(joined)
        })
        .unwrap_or_else(|_| e.to_string());
    text.trim_end().to_owned().into()
}

impl Device for PyDevice {
    type Config = PyDeviceConfig;
    type Command = Vec<u8>;
    type Reply = Vec<u8>;
    const KIND: &'static str = "shmkit.python";
    /// Pickled arguments and results; arrays that would not fit go through frame rings.
    const MAX_MESSAGE: u32 = 1 << 16;
    /// A Python call costs microseconds anyway; a bounded poll keeps the round trip short.
    const SERVER_STRATEGY: WaitStrategy = WaitStrategy::SpinThenBlock;

    fn frame_rings(config: &PyDeviceConfig) -> Vec<(String, FrameSpec)> {
        config
            .rings
            .iter()
            .filter_map(|(suffix, slots, dtype, shape)| {
                Some((
                    suffix.clone(),
                    FrameSpec {
                        slots: *slots,
                        elem: elem_of(dtype).ok()?,
                        shape: shape.clone(),
                    },
                ))
            })
            .collect()
    }

    fn open(config: &PyDeviceConfig, ctx: &mut DeviceContext) -> Result<PyDevice, DeviceFailure> {
        let writers: Vec<_> = config
            .rings
            .iter()
            .filter_map(|(suffix, ..)| Some((suffix.clone(), ctx.take_frame_writer(suffix)?)))
            .collect();
        let (name, segment) = (ctx.name().to_owned(), ctx.segment().name().to_owned());
        Python::attach(|py| {
            let made = (|| -> PyResult<(Py<PyAny>, Py<PyAny>)> {
                let frames = PyDict::new(py);
                for (suffix, writer) in writers {
                    frames.set_item(suffix, Py::new(py, PyFrameWriter::wrap(writer))?)?;
                }
                let module = py.import("shmkit._devices")?;
                let obj = module.call_method1(
                    "_open_device",
                    (PyBytes::new(py, &config.factory), name, segment, frames),
                )?;
                Ok((obj.unbind(), module.getattr("_handle")?.unbind()))
            })();
            made.map(|(obj, handler)| PyDevice {
                obj: Some(obj),
                handler: Some(handler),
            })
            .map_err(|e| failure(py, e))
        })
    }

    fn handle(
        &mut self,
        command: Vec<u8>,
        ctx: &mut DeviceContext,
    ) -> Result<Vec<u8>, DeviceFailure> {
        let obj = self.obj.as_ref().ok_or("the device is closed")?;
        let handler = self.handler.as_ref().ok_or("the device is closed")?;
        Python::attach(|py| {
            let out = handler
                .bind(py)
                .call1((obj.bind(py), PyBytes::new(py, &command)))
                .map_err(|e| failure(py, e))?;
            // `(reply, fail_safe_reason)`: a device may ask for its fail-safe state.
            // Bytes taken as a slice: extracting a `Vec<u8>` would walk them one by one.
            let (reply, fail_safe): (Bound<'_, PyBytes>, Option<String>) =
                out.extract().map_err(|e| failure(py, e))?;
            if let Some(reason) = fail_safe {
                ctx.enter_fail_safe(&reason);
            }
            Ok(reply.as_bytes().to_vec())
        })
    }

    fn poll(&mut self, _ctx: &mut DeviceContext) -> Option<Duration> {
        let obj = self.obj.as_ref()?;
        Python::attach(|py| {
            let module = py.import("shmkit._devices").ok()?;
            let next: Option<f64> = module
                .call_method1("_poll", (obj.bind(py),))
                .and_then(|v| v.extract())
                .unwrap_or_else(|e| {
                    e.print(py);
                    None
                });
            next.and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok())
        })
    }

    fn close(&mut self, _ctx: &mut DeviceContext) {
        if let Some(obj) = self.obj.take() {
            Python::attach(|py| {
                let closed = py
                    .import("shmkit._devices")
                    .and_then(|m| m.call_method1("_close", (obj.bind(py),)));
                if let Err(e) = closed {
                    // Nobody to tell but the server's stderr: the close itself must go on.
                    e.print(py);
                }
                drop(obj);
            });
        }
    }
}
