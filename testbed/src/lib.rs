//! The testbed: one segment, its devices, safety tests and experiments, started and torn
//! down as a whole.
//!
//! [`TestbedBuilder::start`] replaces a stale segment of the same name (its creator is dead;
//! a live one is refused), creates the STOP / FINISH / SAFETY events, makes this process the
//! owner of every device server, runs the initial safety check and starts the monitor thread.
//! The monitor runs the safety tests every `safety_check_interval`, trips after more than
//! `max_consecutive_failures` consecutive failures of one test (SAFETY, then STOP,
//! experiments stopped within `stop_timeout` or killed, devices closed to their safe state),
//! reaps experiments (a failure sets STOP when `stop_all_on_exception`), and turns Ctrl+C into
//! a cooperative stop. Children ignore SIGINT: a terminal's Ctrl+C reaches the whole process
//! group, and the testbed, not the signal, decides how they stop.

// Under `--cfg loom` (the core's model checks, which build its dev-dependencies) this crate
// is empty: the core it builds on is reduced to its lock-free protocols there.
#![cfg(not(loom))]

mod events;
mod experiment;
mod health;
mod safety;

pub use experiment::{
    Experiment, ExperimentContext, ExperimentEntries, ExperimentError, ExperimentFailure,
};
pub use health::{alarm_event, latency_above, ring_cadence, ring_stalled, CadenceCheck};
pub use safety::{safety_fn, SafetyContext, SafetyFn, SafetyTest, SafetyTrip};

use events::Events;
use shmkit::os::identity::Liveness;
use shmkit::os::signals;
use shmkit::process::{Child, ChildError, HostProgram, ProcessError, SpawnOptions};
use shmkit::segment::{CreateOptions, Segment, SegmentError};
use shmkit::{Interrupt, NoInterrupt, Timeout};
use shmkit_devices::{DeviceCache, DeviceError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why the testbed could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// Another live testbed process owns a segment of that name.
    #[error("testbed {name:?} is running (pid {pid})")]
    AlreadyRunning {
        /// The segment name.
        name: String,
        /// The live creator.
        pid: u32,
    },
    /// The initial safety check failed; nothing was started.
    #[error("initial safety check {test:?} failed: {message}")]
    InitialSafetyCheck {
        /// The failing test.
        test: String,
        /// Its message.
        message: String,
    },
    /// The testbed is stopping (STOP is set): no experiment may start.
    #[error("the testbed is stopping; no experiment can start")]
    Stopping,
    /// The caller's interrupt check said stop while waiting.
    #[error("interrupted while waiting for the experiments")]
    Interrupted,
    /// The segment failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// Starting an experiment failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A device failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// How an experiment ended.
#[derive(Debug)]
pub struct ExperimentOutcome {
    /// The experiment's process name.
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// `Ok`, or how it failed (`ChildError::Failed` carries its stage, message and chain).
    pub result: Result<(), ChildError>,
    /// It ignored STOP for `stop_timeout` and was killed.
    pub killed: bool,
}

/// What teardown found.
#[derive(Debug, Default)]
pub struct TestbedReport {
    /// Every experiment's outcome, in the order they ended.
    pub experiments: Vec<ExperimentOutcome>,
    /// The safety trip, if one happened.
    pub trip: Option<SafetyTrip>,
    /// Devices that failed to close.
    pub device_failures: Vec<(String, DeviceError)>,
}

/// Configures and starts a [`Testbed`].
pub struct TestbedBuilder {
    name: String,
    size: u64,
    devices: Vec<String>,
    safety_tests: Vec<Box<dyn SafetyTest>>,
    interval: Duration,
    max_consecutive_failures: u32,
    stop_all_on_exception: bool,
    stop_timeout: Duration,
    device_close_timeout: Duration,
    experiment_program: Option<HostProgram>,
    catch_ctrl_c: bool,
}

impl std::fmt::Debug for TestbedBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestbedBuilder")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("devices", &self.devices)
            .field("safety_tests", &self.safety_tests.len())
            .finish()
    }
}

impl TestbedBuilder {
    /// A testbed on segment `name` (64 MiB, safety checks every 60 s, no tolerated failure,
    /// stop all on an experiment's failure, 1 s to stop).
    pub fn new(name: &str) -> TestbedBuilder {
        TestbedBuilder {
            name: name.to_owned(),
            size: 64 << 20,
            devices: Vec::new(),
            safety_tests: Vec::new(),
            interval: Duration::from_secs(60),
            max_consecutive_failures: 0,
            stop_all_on_exception: true,
            stop_timeout: Duration::from_secs(1),
            device_close_timeout: Duration::from_secs(2),
            experiment_program: None,
            catch_ctrl_c: true,
        }
    }

    /// Segment size in bytes.
    pub fn size(mut self, bytes: u64) -> Self {
        self.size = bytes;
        self
    }

    /// The devices, in dependency order (closed in reverse); e.g. `Bench::NAMES`.
    pub fn devices(mut self, names: &[&str]) -> Self {
        self.devices = names.iter().map(|n| n.to_string()).collect();
        self
    }

    /// Adds a safety test.
    pub fn safety_test(mut self, test: impl SafetyTest) -> Self {
        self.safety_tests.push(Box::new(test));
        self
    }

    /// How often the safety tests run (default 60 s).
    pub fn safety_check_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Consecutive failures of one test tolerated before tripping (default 0).
    pub fn max_consecutive_failures(mut self, n: u32) -> Self {
        self.max_consecutive_failures = n;
        self
    }

    /// Whether an experiment's failure stops the others (default true).
    pub fn stop_all_on_exception(mut self, yes: bool) -> Self {
        self.stop_all_on_exception = yes;
        self
    }

    /// How long experiments get to stop before they are killed (default 1 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// How long each device gets to close at a trip or teardown (default 2 s).
    pub fn device_close_timeout(mut self, timeout: Duration) -> Self {
        self.device_close_timeout = timeout;
        self
    }

    /// The program experiments are executed as (default: this program again) — a Python
    /// interpreter whose module calls [`Entries::run`](shmkit::process::Entries::run) with the
    /// experiment entries, for experiments that live in a library another language loaded.
    pub fn experiment_program(mut self, program: HostProgram) -> Self {
        self.experiment_program = Some(program);
        self
    }

    /// Whether the testbed turns Ctrl+C into a cooperative stop itself (default true). A host
    /// with its own SIGINT handling (a Python interpreter) says no and sets STOP and FINISH
    /// from its handler ([`Testbed::request_stop`]).
    pub fn catch_ctrl_c(mut self, yes: bool) -> Self {
        self.catch_ctrl_c = yes;
        self
    }

    /// Starts the testbed.
    pub fn start(mut self) -> Result<Testbed, TestbedError> {
        let segment = create_replacing_stale(&self.name, self.size)?;
        let events = Events::attach(&segment)?;
        let devices = DeviceCache::new(&segment).own()?;
        if self.catch_ctrl_c {
            signals::catch(libc::SIGINT);
        }
        let ctx = SafetyContext {
            segment: &segment,
            devices: &devices,
        };
        for test in &mut self.safety_tests {
            if let Err(message) = test.check(&ctx) {
                let test = test.name().to_owned();
                let name = segment.name().to_owned();
                drop(segment);
                let _ = Segment::unlink(&name);
                return Err(TestbedError::InitialSafetyCheck { test, message });
            }
        }
        let inner = Arc::new(Inner {
            segment: segment.clone(),
            devices: devices.clone(),
            events,
            device_names: self.devices.clone(),
            stop_all_on_exception: self.stop_all_on_exception,
            stop_timeout: self.stop_timeout,
            device_close_timeout: self.device_close_timeout,
            experiment_program: self.experiment_program.take(),
            running: StdMutex::new(Vec::new()),
            report: StdMutex::new(TestbedReport::default()),
            shutdown: AtomicBool::new(false),
        });
        let monitor = {
            let inner = inner.clone();
            let tests = std::mem::take(&mut self.safety_tests);
            let (interval, max) = (self.interval, self.max_consecutive_failures);
            std::thread::Builder::new()
                .name("shmkit-safety".into())
                .spawn(move || inner.monitor(tests, interval, max))
                .map_err(|e| {
                    TestbedError::Process(ProcessError::Io {
                        op: "start the safety monitor for",
                        name: "testbed".into(),
                        source: e,
                    })
                })?
        };
        Ok(Testbed {
            inner,
            monitor: Some(monitor),
            closed: false,
        })
    }
}

/// Opens `name`: a segment whose creator is dead is unlinked and created afresh; a live one
/// is refused.
fn create_replacing_stale(name: &str, size: u64) -> Result<Segment, TestbedError> {
    match Segment::open(name) {
        Ok(existing) => {
            let creator = existing.info().creator;
            if creator.liveness() != Liveness::Dead {
                return Err(TestbedError::AlreadyRunning {
                    name: name.to_owned(),
                    pid: creator.pid,
                });
            }
            drop(existing);
            Segment::unlink(name)?;
        }
        Err(SegmentError::NotFound { .. }) => {}
        // Half-created by a dead creator, or not a segment we can read: stale either way.
        Err(SegmentError::CreatorDied { .. } | SegmentError::Corrupt { .. }) => {
            Segment::unlink(name)?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Segment::create(name, &CreateOptions::new(size))?)
}

struct Running {
    child: Child,
    stopping_since: Option<Instant>,
}

struct Inner {
    segment: Segment,
    devices: DeviceCache,
    events: Events,
    device_names: Vec<String>,
    stop_all_on_exception: bool,
    stop_timeout: Duration,
    device_close_timeout: Duration,
    experiment_program: Option<HostProgram>,
    running: StdMutex<Vec<Running>>,
    report: StdMutex<TestbedReport>,
    shutdown: AtomicBool,
}

/// How often the monitor reaps experiments and looks for Ctrl+C.
const TICK: Duration = Duration::from_millis(20);

impl Inner {
    fn monitor(&self, mut tests: Vec<Box<dyn SafetyTest>>, interval: Duration, max: u32) {
        let mut failures = vec![0u32; tests.len()];
        let mut next_check = Instant::now() + interval;
        while !self.shutdown.load(Ordering::Acquire) {
            std::thread::sleep(TICK);
            if signals::take(libc::SIGINT) {
                self.events.finish.set();
                self.events.stop.set();
            }
            self.reap();
            if Instant::now() < next_check || self.events.safety.is_set() {
                continue;
            }
            next_check = Instant::now() + interval;
            let ctx = SafetyContext {
                segment: &self.segment,
                devices: &self.devices,
            };
            for (test, count) in tests.iter_mut().zip(failures.iter_mut()) {
                match test.check(&ctx) {
                    Ok(()) => *count = 0,
                    Err(message) => {
                        *count += 1;
                        if *count > max {
                            self.trip(SafetyTrip {
                                test: test.name().to_owned(),
                                message,
                                consecutive: *count,
                            });
                            break;
                        }
                    }
                }
            }
        }
    }

    /// SAFETY, then STOP; devices closed to their safe state (the hazard goes first, while
    /// experiments wind down on their own); then experiments reaped, killed past the timeout.
    fn trip(&self, trip: SafetyTrip) {
        self.events.safety.set();
        self.events.stop.set();
        self.lock_report().trip.get_or_insert(trip);
        let names: Vec<&str> = self.device_names.iter().map(String::as_str).collect();
        let failures = self.devices.close_all(&names, self.device_close_timeout);
        self.lock_report().device_failures.extend(failures);
        self.stop_experiments();
    }

    fn lock_report(&self) -> std::sync::MutexGuard<'_, TestbedReport> {
        self.report.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins experiments that ended; kills those that ignored STOP past `stop_timeout`.
    fn reap(&self) {
        let stop = self.events.stop.is_set();
        let mut ended = Vec::new();
        {
            let mut running = self.lock_running();
            let mut i = 0;
            while i < running.len() {
                let r = &mut running[i];
                if stop && r.stopping_since.is_none() {
                    r.stopping_since = Some(Instant::now());
                }
                let overdue = r
                    .stopping_since
                    .is_some_and(|t| t.elapsed() >= self.stop_timeout);
                let mut killed = false;
                if overdue {
                    let _ = r.child.kill();
                    killed = true;
                }
                match r.child.join(if killed {
                    Duration::from_secs(1)
                } else {
                    Duration::ZERO
                }) {
                    Err(ChildError::StillRunning { .. }) => i += 1,
                    result => {
                        let r = running.swap_remove(i);
                        ended.push(ExperimentOutcome {
                            name: r.child.name().to_owned(),
                            pid: r.child.pid(),
                            result,
                            killed,
                        });
                    }
                }
            }
        }
        if ended.is_empty() {
            return;
        }
        if self.stop_all_on_exception && ended.iter().any(|o| o.result.is_err()) {
            self.events.stop.set();
        }
        self.lock_report().experiments.extend(ended);
    }

    /// Sets STOP and reaps until every experiment ended (killing the ones past the timeout).
    fn stop_experiments(&self) {
        self.events.stop.set();
        let deadline = Instant::now() + self.stop_timeout + Duration::from_secs(2);
        loop {
            self.reap();
            if self.lock_running().is_empty() || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A running testbed. [`close`](Self::close) tears it down; dropping it does the same with
/// bounded waits (never hangs).
pub struct Testbed {
    inner: Arc<Inner>,
    monitor: Option<JoinHandle<()>>,
    closed: bool,
}

impl std::fmt::Debug for Testbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Testbed")
            .field("segment", &self.inner.segment.name())
            .finish()
    }
}

impl Testbed {
    /// The testbed's segment.
    pub fn segment(&self) -> &Segment {
        &self.inner.segment
    }

    /// Its devices.
    pub fn devices(&self) -> &DeviceCache {
        &self.inner.devices
    }

    /// Starts `experiment` in its own process (its type must be registered with
    /// [`Entries::experiment`](shmkit::process::Entries::experiment)).
    pub fn start_experiment<E: Experiment>(&self, experiment: &E) -> Result<u32, TestbedError> {
        self.start_named_experiment(E::NAME, experiment)
    }

    /// [`start_experiment`](Self::start_experiment) with the process named `name` in
    /// reports (for one experiment type hosting many, as a language binding's does).
    pub fn start_named_experiment<E: Experiment>(
        &self,
        name: &str,
        experiment: &E,
    ) -> Result<u32, TestbedError> {
        if self.inner.events.stop.is_set() {
            return Err(TestbedError::Stopping);
        }
        let child = shmkit::process::spawn_with(
            &self.inner.segment,
            E::NAME,
            experiment,
            &SpawnOptions {
                name: Some(name.to_owned()),
                program: self.inner.experiment_program.clone(),
                ..SpawnOptions::default()
            },
        )?;
        let pid = child.pid();
        self.inner.lock_running().push(Running {
            child,
            stopping_since: None,
        });
        Ok(pid)
    }

    /// Experiments still running.
    pub fn running_experiments(&self) -> usize {
        self.inner.lock_running().len()
    }

    /// Waits until every experiment ended or `timeout` passed; true if all ended.
    pub fn wait_experiments(&self, timeout: impl Into<Timeout>) -> bool {
        self.wait_experiments_interruptible(timeout.into(), &NoInterrupt)
            .unwrap_or(false)
    }

    /// [`wait_experiments`](Self::wait_experiments) within `timeout`, giving up with
    /// [`TestbedError::Interrupted`] within 100 ms of `interrupt` saying stop (the
    /// experiments keep running).
    pub fn wait_experiments_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<bool, TestbedError> {
        let deadline = match timeout {
            Timeout::After(d) => Some(Instant::now() + d),
            Timeout::Forever => None,
        };
        while self.running_experiments() > 0 {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            if interrupt.should_stop() {
                return Err(TestbedError::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(true)
    }

    /// Sets FINISH: experiments that do not run forever should wrap up.
    pub fn request_finish(&self) {
        self.inner.events.finish.set();
    }

    /// Sets FINISH and STOP: what Ctrl+C does (a host that handles SIGINT itself calls this
    /// from its handler). The monitor stops the experiments; [`close`](Self::close) tears
    /// down.
    pub fn request_stop(&self) {
        self.inner.events.finish.set();
        self.inner.events.stop.set();
    }

    /// The outcomes of the experiments that ended since the last call (they are no longer
    /// in the report [`close`](Self::close) returns): for a host that shows them live.
    pub fn take_ended(&self) -> Vec<ExperimentOutcome> {
        std::mem::take(&mut self.inner.lock_report().experiments)
    }

    /// Is STOP set (a safety trip, Ctrl+C, an experiment's failure with stop-all, teardown)?
    pub fn stopping(&self) -> bool {
        self.inner.events.stop.is_set()
    }

    /// The safety trip, if one happened.
    pub fn trip(&self) -> Option<SafetyTrip> {
        self.inner.lock_report().trip.clone()
    }

    /// Tears everything down: STOP and FINISH, experiments stopped (killed past the timeout),
    /// devices closed in reverse order, the monitor joined, the segment unlinked. Returns
    /// what happened to every experiment and device.
    pub fn close(mut self) -> TestbedReport {
        self.teardown()
    }

    fn teardown(&mut self) -> TestbedReport {
        if self.closed {
            return TestbedReport::default();
        }
        self.closed = true;
        let inner = &self.inner;
        inner.events.finish.set();
        inner.stop_experiments();
        inner.shutdown.store(true, Ordering::Release);
        if let Some(monitor) = self.monitor.take() {
            let _ = monitor.join();
        }
        let names: Vec<&str> = inner.device_names.iter().map(String::as_str).collect();
        let failures = inner.devices.close_all(&names, inner.device_close_timeout);
        let mut report = std::mem::take(&mut *inner.lock_report());
        report.device_failures.extend(failures);
        let _ = Segment::unlink(inner.segment.name());
        report
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
