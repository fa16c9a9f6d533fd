//! Devices from Python, on the core's device servers and device cache.
//!
//! A Python device is hosted by the same server loop as a Rust one (`shmkit_devices`:
//! status record, heartbeat, close on request / SIGTERM / owner death, fail-safe, restart by
//! the cache's policy): [`PyDevice`] is a `Device` whose configuration is the pickled device
//! factory and whose commands and replies are pickled bytes, handled by calling into Python
//! (`shmkit._devices`). Its server is a Python interpreter started by the cache
//! (`DeviceCache::with_program`) that hands its start to [`run_child`], which also hosts the
//! built-in simulated camera and mirror — so every device a Python testbed names runs in a
//! server the Rust testbed would recognise.

use crate::errors::segment_error;
use crate::frame_writer::PyFrameWriter;
use crate::frames::{elem_of, PyFrameReader};
use crate::wait::detached;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde::{Deserialize, Serialize};
use shmkit::process::{ChildStart, Entries, HostProgram};
use shmkit::rings::FrameSpec;
use shmkit::{Timeout, WaitStrategy};
use shmkit_devices::DeviceEntries;
use shmkit_devices::{
    Device, DeviceCache, DeviceClient, DeviceContext, DeviceError, DeviceFailure, DeviceState,
    DeviceStatusInfo, RestartPolicy,
};
use shmkit_sim::ao::{AoConfig, WindLayer};
use shmkit_sim::{
    CameraCommand, CameraReply, DmCommand, DmReply, SimCamera, SimCameraConfig, SimDm, SimDmConfig,
};
use std::time::Duration;

/// What a Python device server is started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PyDeviceConfig {
    /// The pickled `(preparation data, class, kwargs)` that `shmkit._devices` builds the
    /// device from.
    factory: Vec<u8>,
    /// Frame rings the device writes: `(suffix, slots, numpy dtype name, shape)`.
    rings: Vec<(String, u32, String, Vec<u32>)>,
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

/// Runs this interpreter as the shmkit child its environment describes (a device server the
/// cache started) and returns its exit code.
#[pyfunction]
pub fn run_child(py: Python<'_>) -> PyResult<i32> {
    let Some(start) = ChildStart::from_env() else {
        return Err(PyRuntimeError::new_err(
            "this process was not started as a shmkit child",
        ));
    };
    Ok(py.detach(move || {
        Entries::new()
            .device::<PyDevice>()
            .device::<SimCamera>()
            .device::<SimDm>()
            .run(start)
    }))
}

/// Calls `client` detached from the interpreter, Ctrl+C ending the wait (the exception the
/// signal handler raised is what the caller gets), within the client's call timeout.
fn call<D: Device>(
    py: Python<'_>,
    client: &DeviceClient<D>,
    command: &D::Command,
) -> PyResult<D::Reply>
where
    D::Command: Sync,
    D::Reply: Send,
{
    let (got, raised) = detached(py, |check| {
        client.call_interruptible(command, Timeout::After(client.timeout()), check)
    });
    if let Some(e) = raised {
        return Err(e);
    }
    got.map_err(|e| device_error(py, e))
}

/// A device error as the Python exception `shmkit.errors` names for it.
pub(crate) fn device_error(py: Python<'_>, e: DeviceError) -> PyErr {
    let message = shmkit::error_chain(&e);
    let class = match &e {
        DeviceError::Crashed { .. } => "DeviceCrashed",
        DeviceError::Closed { .. } => "DeviceClosed",
        DeviceError::FailSafe { .. } => "DeviceFailSafe",
        DeviceError::OpenFailed { .. } => "DeviceOpenFailed",
        DeviceError::StartTimeout { .. } | DeviceError::Timeout { .. } => "DeviceTimeout",
        DeviceError::OwnerDied { .. } => "DeviceOwnerDied",
        DeviceError::Failed { .. } => "DeviceFailed",
        DeviceError::RequestTooLarge { .. } => "RequestTooLarge",
        DeviceError::ReplyTooLarge { .. } => "ReplyTooLarge",
        DeviceError::Segment(_) => {
            return segment_error(py, shmkit::SegmentError::InvalidOption(message))
        }
        _ => "DeviceError",
    };
    crate::errors::raise(py, class, (message,))
}

/// The camera's `ao` setting: `None`/`False` for the toy sensor, `True` for the physical
/// bench's defaults, or a dict of `AoConfig` fields (`layers`: a list of dicts of
/// `fraction`, `speed`, `direction_deg`) over those defaults.
fn ao_config(value: &Bound<'_, PyAny>) -> PyResult<Option<AoConfig>> {
    if value.is_none() {
        return Ok(None);
    }
    if let Ok(on) = value.extract::<bool>() {
        return Ok(on.then(AoConfig::default));
    }
    let fields = value.cast::<PyDict>().map_err(|_| {
        PyValueError::new_err("SimCamera's ao is None, True or a dict of AoConfig fields")
    })?;
    let mut ao = AoConfig::default();
    for (k, v) in fields.iter() {
        match k.extract::<String>()?.as_str() {
            "diameter" => ao.diameter = v.extract()?,
            "obstruction" => ao.obstruction = v.extract()?,
            "r0" => ao.r0 = v.extract()?,
            "r0_wavelength_nm" => ao.r0_wavelength_nm = v.extract()?,
            "outer_scale" => ao.outer_scale = v.extract()?,
            "seed" => ao.seed = v.extract()?,
            "wfs_wavelength_nm" => ao.wfs_wavelength_nm = v.extract()?,
            "photons" => ao.photons = v.extract()?,
            "read_noise" => ao.read_noise = v.extract()?,
            "background" => ao.background = v.extract()?,
            "spot_sigma" => ao.spot_sigma = v.extract()?,
            "coupling" => ao.coupling = v.extract()?,
            "samples" => ao.samples = v.extract()?,
            "layers" => {
                let mut layers = Vec::new();
                for layer in v.try_iter()? {
                    let layer = layer?;
                    let d = layer.cast::<PyDict>().map_err(|_| {
                        PyValueError::new_err(
                            "each ao layer is a dict: fraction, speed, direction_deg",
                        )
                    })?;
                    let get = |key: &str| -> PyResult<f64> {
                        d.get_item(key)?
                            .ok_or_else(|| {
                                PyValueError::new_err(format!("an ao layer needs {key:?}"))
                            })?
                            .extract()
                    };
                    layers.push(WindLayer {
                        fraction: get("fraction")?,
                        speed: get("speed")?,
                        direction_deg: get("direction_deg")?,
                    });
                }
                ao.layers = layers;
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "SimCamera's ao has no setting {other:?}"
                )))
            }
        }
    }
    Ok(Some(ao))
}

fn status_dict<'py>(py: Python<'py>, s: &DeviceStatusInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let state = match s.state {
        DeviceState::Closed => "closed",
        DeviceState::Opening => "opening",
        DeviceState::Running => "running",
        DeviceState::Closing => "closing",
        DeviceState::Crashed => "crashed",
        DeviceState::FailSafe => "fail_safe",
        DeviceState::Unresponsive => "unresponsive",
        _ => "unknown",
    };
    d.set_item("state", state)?;
    d.set_item("pid", s.pid)?;
    d.set_item("starts", s.starts)?;
    d.set_item("heartbeat_age", s.heartbeat_age.map(|a| a.as_secs_f64()))?;
    d.set_item("message", &s.message)?;
    Ok(d)
}

fn seconds(timeout: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(timeout).map_err(|_| {
        PyValueError::new_err(format!("timeout must be finite and >= 0, not {timeout}"))
    })
}

/// The core's device cache over one segment, its servers Python interpreters.
#[pyclass(module = "shmkit._shmkit", name = "_DeviceCache", frozen)]
pub struct PyDeviceCache {
    inner: DeviceCache,
    /// Each client's call timeout.
    call_timeout: Duration,
}

#[pymethods]
impl PyDeviceCache {
    /// A cache over `segment`: `restart` is "never" or "on_access"; servers are started as
    /// `program args...` (this interpreter running `shmkit._devices._serve`).
    #[new]
    #[pyo3(signature = (segment, program, args, restart = "never", start_timeout = 10.0, call_timeout = 60.0))]
    fn new(
        segment: &crate::segment::PySegment,
        program: String,
        args: Vec<String>,
        restart: &str,
        start_timeout: f64,
        call_timeout: f64,
    ) -> PyResult<PyDeviceCache> {
        let policy = match restart {
            "never" => RestartPolicy::Never,
            "on_access" => RestartPolicy::OnAccess,
            other => {
                return Err(PyValueError::new_err(format!(
                    "restart must be \"never\" or \"on_access\", not {other:?}"
                )))
            }
        };
        Ok(PyDeviceCache {
            inner: DeviceCache::new(segment.segment())
                .with_restart_policy(policy)
                .with_start_timeout(seconds(start_timeout)?)
                .with_program(HostProgram::new(program, args)),
            call_timeout: seconds(call_timeout)?,
        })
    }

    /// Records this process as every device's owner: servers close their device when it dies.
    fn own(&self, py: Python<'_>) -> PyResult<()> {
        self.inner
            .clone()
            .own()
            .map(|_| ())
            .map_err(|e| device_error(py, e))
    }

    /// A client of the Python device `name`, starting its server (from `factory`, the
    /// pickled device, with frame rings `rings`) if none runs; `restart` starts it again
    /// after a crash or a close.
    #[pyo3(signature = (name, factory, rings, restart = false))]
    fn python(
        &self,
        py: Python<'_>,
        name: &str,
        factory: Vec<u8>,
        rings: Vec<(String, u32, String, Vec<u32>)>,
        restart: bool,
    ) -> PyResult<PyDeviceClient> {
        for (_, _, dtype, _) in &rings {
            elem_of(dtype)?;
        }
        let config = PyDeviceConfig { factory, rings };
        let cache = &self.inner;
        let (got, raised) = detached(py, |check| {
            if restart {
                cache.restart::<PyDevice>(name, &config)
            } else {
                cache.get_interruptible::<PyDevice>(name, &config, check)
            }
        });
        if let Some(e) = raised {
            return Err(e);
        }
        got.map(|inner| PyDeviceClient {
            inner: inner.with_timeout(self.call_timeout),
        })
        .map_err(|e| device_error(py, e))
    }

    /// A client of the simulated camera `name` (`config`: `SimCameraConfig`'s fields).
    #[pyo3(signature = (name, config, restart = false))]
    fn sim_camera(
        &self,
        py: Python<'_>,
        name: &str,
        config: &Bound<'_, PyDict>,
        restart: bool,
    ) -> PyResult<PySimCamera> {
        let mut c = SimCameraConfig::default();
        for (k, v) in config.iter() {
            match k.extract::<String>()?.as_str() {
                "subapertures" => c.subapertures = v.extract()?,
                "pixels" => c.pixels = v.extract()?,
                "rate_hz" => c.rate_hz = v.extract()?,
                "slots" => c.slots = v.extract()?,
                "gain" => c.gain = v.extract()?,
                "dm" => c.dm = v.extract()?,
                "dm_actuators" => c.dm_actuators = v.extract()?,
                "ao" => c.ao = ao_config(&v)?,
                "realtime" => c.realtime = v.extract()?,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "SimCamera has no setting {other:?}"
                    )))
                }
            }
        }
        let cache = &self.inner;
        let (got, raised) = detached(py, |check| {
            if restart {
                cache.restart::<SimCamera>(name, &c)
            } else {
                cache.get_interruptible::<SimCamera>(name, &c, check)
            }
        });
        if let Some(e) = raised {
            return Err(e);
        }
        got.map(|inner| PySimCamera {
            inner: inner.with_timeout(self.call_timeout),
        })
        .map_err(|e| device_error(py, e))
    }

    /// A client of the simulated mirror `name` (`config`: `SimDmConfig`'s fields).
    #[pyo3(signature = (name, config, restart = false))]
    fn sim_dm(
        &self,
        py: Python<'_>,
        name: &str,
        config: &Bound<'_, PyDict>,
        restart: bool,
    ) -> PyResult<PySimDm> {
        let mut c = SimDmConfig::default();
        for (k, v) in config.iter() {
            match k.extract::<String>()?.as_str() {
                "actuators" => c.actuators = v.extract()?,
                "stroke" => c.stroke = v.extract()?,
                "fail_open" => c.fail_open = v.extract()?,
                "hard_limit" => c.hard_limit = v.extract()?,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "SimDm has no setting {other:?}"
                    )))
                }
            }
        }
        let cache = &self.inner;
        let (got, raised) = detached(py, |check| {
            if restart {
                cache.restart::<SimDm>(name, &c)
            } else {
                cache.get_interruptible::<SimDm>(name, &c, check)
            }
        });
        if let Some(e) = raised {
            return Err(e);
        }
        got.map(|inner| PySimDm {
            inner: inner.with_timeout(self.call_timeout),
        })
        .map_err(|e| device_error(py, e))
    }

    /// The status of device `name` as a dict (state, pid, starts, heartbeat_age, message).
    fn status<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.status(name).map_err(|e| device_error(py, e))?;
        status_dict(py, &s)
    }

    /// Closes device `name` safely (whoever holds its mutex), waiting up to `timeout` s.
    #[pyo3(signature = (name, timeout = 5.0))]
    fn close<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let t = seconds(timeout)?;
        let cache = &self.inner;
        let (got, raised) = detached(py, |check| cache.close_interruptible(name, t, check));
        if let Some(e) = raised {
            return Err(e);
        }
        let s = got.map_err(|e| device_error(py, e))?;
        status_dict(py, &s)
    }
}

/// The client side every device kind shares: status, frames.
macro_rules! client_methods {
    ($ty:ident { $($extra:tt)* }) => {
        #[pymethods]
        impl $ty {
            $($extra)*

            /// The device's name.
            #[getter]
            fn name(&self) -> String {
                self.inner.name().to_owned()
            }

            /// A reader of the device's frame ring `suffix` ("newest" or "oldest"; `wait` as
            /// for `FrameRing.reader`).
            #[pyo3(signature = (suffix, mode = "newest", wait = "spin_then_block"))]
            fn frames(
                &self,
                py: Python<'_>,
                suffix: &str,
                mode: &str,
                wait: &str,
            ) -> PyResult<PyFrameReader> {
                let mode = crate::frames::read_mode(mode)?;
                let (strategy, _) = crate::wait::strategy(wait)?;
                let reader = self
                    .inner
                    .frames(suffix, mode)
                    .map_err(|e| device_error(py, e))?;
                Ok(PyFrameReader::wrap(reader.into_owned().with_strategy(strategy)))
            }

            /// The device's status (as `_DeviceCache.status`).
            fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let s = self.inner.status().map_err(|e| device_error(py, e))?;
                status_dict(py, &s)
            }
        }
    };
}

/// A client of a Python device: pickled calls.
#[pyclass(module = "shmkit._shmkit", name = "_DeviceClient", frozen)]
pub struct PyDeviceClient {
    inner: DeviceClient<PyDevice>,
}

client_methods!(PyDeviceClient {
    /// Sends a pickled `(method, args, kwargs)` and returns the pickled outcome.
    fn call<'py>(&self, py: Python<'py>, request: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let reply = call(py, &self.inner, &request.to_vec())?;
        Ok(PyBytes::new(py, &reply))
    }
});

/// A client of the simulated camera.
#[pyclass(module = "shmkit._shmkit", name = "SimCameraClient", frozen)]
pub struct PySimCamera {
    inner: DeviceClient<SimCamera>,
}

impl PySimCamera {
    fn send(&self, py: Python<'_>, command: CameraCommand) -> PyResult<CameraReply> {
        call(py, &self.inner, &command)
    }
}

client_methods!(PySimCamera {
    /// Changes the frame rate (frames per second).
    fn set_rate(&self, py: Python<'_>, rate_hz: f64) -> PyResult<()> {
        self.send(py, CameraCommand::SetRate(rate_hz)).map(|_| ())
    }

    /// Starts acquiring.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        self.send(py, CameraCommand::Start).map(|_| ())
    }

    /// Stops acquiring.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.send(py, CameraCommand::Stop).map(|_| ())
    }

    /// Switches the simulated turbulence on or off (the physical bench, `ao`, only: a bench
    /// calibrates without it). Simulated time keeps running either way.
    fn turbulence(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        self.send(py, CameraCommand::Turbulence(on)).map(|_| ())
    }

    /// Sets the source's flux, photo-electrons per fully lit sub-aperture per frame (the
    /// physical bench only: a bench calibrates on a bright calibration source).
    fn photons(&self, py: Python<'_>, photons: f64) -> PyResult<()> {
        self.send(py, CameraCommand::Photons(photons)).map(|_| ())
    }

    /// `(frames published, frame rate)`.
    fn stats(&self, py: Python<'_>) -> PyResult<(u64, f64)> {
        match self.send(py, CameraCommand::Stats)? {
            CameraReply::Stats { frames, rate_hz } => Ok((frames, rate_hz)),
            other => Err(PyRuntimeError::new_err(format!(
                "unexpected reply {other:?}"
            ))),
        }
    }
});

/// A client of the simulated deformable mirror.
#[pyclass(module = "shmkit._shmkit", name = "SimDmClient", frozen)]
pub struct PySimDm {
    inner: DeviceClient<SimDm>,
}

impl PySimDm {
    fn send(&self, py: Python<'_>, command: DmCommand) -> PyResult<DmReply> {
        call(py, &self.inner, &command)
    }
}

client_methods!(PySimDm {
    /// Applies actuator values (row-major n × n, any float sequence or array); `tag` comes
    /// back in the shape frame's user word 0. Returns `(shape frame id, clipped, applied_ns)`.
    #[pyo3(signature = (values, tag = 0))]
    fn set(&self, py: Python<'_>, values: Vec<f32>, tag: u64) -> PyResult<(u64, u32, u64)> {
        match self.send(py, DmCommand::Set { values, tag })? {
            DmReply::Applied {
                frame,
                clipped,
                applied_ns,
            } => Ok((frame, clipped, applied_ns)),
            other => Err(PyRuntimeError::new_err(format!(
                "unexpected reply {other:?}"
            ))),
        }
    }

    /// The same `get()` call made `n` times from Rust, one every `period_us` microseconds
    /// (busy-waiting in between, as a controller commanding once per frame would be
    /// computing): mean ns per call, the calls alone timed. The Python benchmark's "from
    /// Rust" side, in the same process and run.
    fn _time_get_from_rust(&self, py: Python<'_>, n: u32, period_us: u64) -> PyResult<f64> {
        let inner = &self.inner;
        let period = Duration::from_micros(period_us);
        let took = py.detach(|| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let start = std::time::Instant::now();
                inner.call(&DmCommand::Get)?;
                total += start.elapsed();
                while start.elapsed() < period {
                    std::hint::spin_loop();
                }
            }
            Ok::<_, DeviceError>(total)
        });
        let took = took.map_err(|e| device_error(py, e))?;
        Ok(took.as_nanos() as f64 / f64::from(n.max(1)))
    }

    /// Flattens the mirror.
    fn zero(&self, py: Python<'_>) -> PyResult<()> {
        self.send(py, DmCommand::Zero).map(|_| ())
    }

    /// The applied shape.
    fn get(&self, py: Python<'_>) -> PyResult<Vec<f32>> {
        match self.send(py, DmCommand::Get)? {
            DmReply::Shape(v) => Ok(v),
            other => Err(PyRuntimeError::new_err(format!(
                "unexpected reply {other:?}"
            ))),
        }
    }
});
