//! The device cache: starts each device's server once, hands out clients, closes devices.
//!
//! Exactly-once start: a starter holds the device's `dev/NAME/start` mutex from the status
//! check until the server is running (or has failed), so racing processes queue on it and find
//! the server running when they get in. A starter that dies holding it leaves an `OwnerDied`
//! the next one recovers from; a server it left behind is judged by its liveness.

use super::client::DeviceClient;
use super::server::{ServerArgs, HEARTBEAT};
use super::status::{info, message, server_alive, set_message, DeviceStatusInfo, Status};
use super::{check_name, object_name, Device, DeviceError};
use shm_layout::{
    DEVICE_CLOSED, DEVICE_CLOSING, DEVICE_CRASHED, DEVICE_FAIL_SAFE, DEVICE_OPENING, DEVICE_RUNNING,
};
use shmkit::os::clock::monotonic_ns;
use shmkit::os::identity::ProcessIdentity;
use shmkit::primitives::{Acquired, LockError};
use shmkit::process::{Child, ChildError, HostProgram, SpawnOptions};
use shmkit::segment::Segment;
use shmkit::shared::Shared;
use shmkit::{Interrupt, NoInterrupt, Timeout};
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

/// What to do when a device's server is found crashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Report [`DeviceError::Crashed`]; restarting is an explicit [`DeviceCache::restart`].
    #[default]
    Never,
    /// Start a new server on the next access.
    OnAccess,
}

/// Starts, reuses, and closes device servers in one segment.
///
/// Cheap to clone (clones share the handles of the servers this process started, which it
/// reaps when they exit).
#[derive(Clone)]
pub struct DeviceCache {
    segment: Segment,
    policy: RestartPolicy,
    start_timeout: Duration,
    program: Option<HostProgram>,
    children: Arc<StdMutex<HashMap<String, Child>>>,
}

impl std::fmt::Debug for DeviceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCache")
            .field("segment", &self.segment.name())
            .field("policy", &self.policy)
            .field("start_timeout", &self.start_timeout)
            .finish()
    }
}

const OWNER: &str = "dev/.owner";

impl DeviceCache {
    /// A cache over `segment` (restart policy `Never`, 10 s start timeout).
    pub fn new(segment: &Segment) -> DeviceCache {
        DeviceCache {
            segment: segment.clone(),
            policy: RestartPolicy::Never,
            start_timeout: Duration::from_secs(10),
            program: None,
            children: Arc::default(),
        }
    }

    /// Records this process as the owner of every device in the segment: servers close their
    /// device and exit when it dies (the testbed calls this). Without an owner, a server
    /// watches the process that started it.
    pub fn own(self) -> Result<DeviceCache, DeviceError> {
        let owner: Shared<u64> = self.segment.shared(OWNER, 0u64)?;
        owner.update(|o| *o = ProcessIdentity::current().record().raw())?;
        Ok(self)
    }

    /// This cache with another restart policy.
    pub fn with_restart_policy(mut self, policy: RestartPolicy) -> DeviceCache {
        self.policy = policy;
        self
    }

    /// This cache with another bound on waiting for a server to start.
    pub fn with_start_timeout(mut self, timeout: Duration) -> DeviceCache {
        self.start_timeout = timeout;
        self
    }

    /// This cache starting servers with `program` instead of the current executable (a
    /// Python interpreter that hands the child's start to [`shmkit::process::Entries::run`]).
    pub fn with_program(mut self, program: HostProgram) -> DeviceCache {
        self.program = Some(program);
        self
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// A client of device `name`, starting its server (with `config`) if none runs.
    pub fn get<D: Device>(
        &self,
        name: &str,
        config: &D::Config,
    ) -> Result<DeviceClient<D>, DeviceError> {
        self.get_interruptible(name, config, &NoInterrupt)
    }

    /// [`get`](Self::get), giving up with [`DeviceError::Interrupted`] within 100 ms of
    /// `interrupt` saying stop while it waits for a server to start (a server it started
    /// goes on starting, and this cache still closes it).
    pub fn get_interruptible<D: Device>(
        &self,
        name: &str,
        config: &D::Config,
        interrupt: &dyn Interrupt,
    ) -> Result<DeviceClient<D>, DeviceError> {
        check_name(name)?;
        let restart = self.policy == RestartPolicy::OnAccess;
        self.ensure_running::<D>(name, config, restart, interrupt)?;
        DeviceClient::attach(&self.segment, name)
    }

    /// Starts device `name` again after a crash or a close (a running one is reused).
    pub fn restart<D: Device>(
        &self,
        name: &str,
        config: &D::Config,
    ) -> Result<DeviceClient<D>, DeviceError> {
        check_name(name)?;
        self.ensure_running::<D>(name, config, true, &NoInterrupt)?;
        DeviceClient::attach(&self.segment, name)
    }

    /// The status of device `name`.
    pub fn status(&self, name: &str) -> Result<DeviceStatusInfo, DeviceError> {
        check_name(name)?;
        Ok(info(&Status::attach(&self.segment, name)?.read()?))
    }

    /// Closes device `name` safely: asks its server to close (status flag and SIGTERM) and
    /// waits up to `timeout`; a server still alive then is killed and the device recorded as
    /// crashed. Works whoever holds the device's mutex: the request goes through the status
    /// record, which has its own. Closing a closed device is a no-op.
    pub fn close(&self, name: &str, timeout: Duration) -> Result<DeviceStatusInfo, DeviceError> {
        self.close_interruptible(name, timeout, &NoInterrupt)
    }

    /// [`close`](Self::close), giving up with [`DeviceError::Interrupted`] within 100 ms of
    /// `interrupt` saying stop while it waits (the server has been asked to close and still
    /// does; it is not killed).
    pub fn close_interruptible(
        &self,
        name: &str,
        timeout: Duration,
        interrupt: &dyn Interrupt,
    ) -> Result<DeviceStatusInfo, DeviceError> {
        check_name(name)?;
        let status = Status::attach(&self.segment, name)?;
        let record = status.with(|s| {
            if server_alive(s) {
                s.close_requested = 1;
                s.server
            } else {
                0
            }
        })?;
        if record != 0 {
            signal(record, libc::SIGTERM);
            let deadline = monotonic_ns() + timeout.as_nanos() as u64;
            while monotonic_ns() < deadline && server_alive(&status.read()?) {
                if interrupt.should_stop() {
                    return Err(DeviceError::Interrupted {
                        device: name.into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            if server_alive(&status.read()?) {
                signal(record, libc::SIGKILL);
                let message = format!("killed: did not close within {timeout:?}");
                status.with(|s| {
                    if s.server == record {
                        s.state = DEVICE_CRASHED;
                        set_message(s, &message);
                    }
                })?;
            }
        }
        self.reap(name);
        Ok(info(&status.read()?))
    }

    /// Closes every device in `names` in reverse order (dependents before what they use).
    pub fn close_all(&self, names: &[&str], timeout: Duration) -> Vec<(String, DeviceError)> {
        let mut failures = Vec::new();
        for name in names.iter().rev() {
            if let Err(e) = self.close(name, timeout) {
                failures.push((name.to_string(), e));
            }
        }
        failures
    }

    /// Joins a server this process started once it has exited (no zombie left behind).
    fn reap(&self, name: &str) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(child) = children.get_mut(name) {
            // Any outcome but "still running" means it was reaped.
            if !matches!(
                child.join(Duration::from_millis(200)),
                Err(ChildError::StillRunning { .. })
            ) {
                children.remove(name);
            }
        }
    }

    fn ensure_running<D: Device>(
        &self,
        name: &str,
        config: &D::Config,
        restart_crashed: bool,
        interrupt: &dyn Interrupt,
    ) -> Result<(), DeviceError> {
        let status = Status::attach(&self.segment, name)?;
        // Fast path: running and alive.
        let s = status.read()?;
        if s.state == DEVICE_RUNNING && server_alive(&s) {
            return Ok(());
        }
        let start = self.segment.mutex(&object_name(name, "start"))?;
        let waited = self.start_timeout + HEARTBEAT * 4;
        let started = match start.lock_interruptible(Timeout::After(waited), interrupt) {
            Err(LockError::Interrupted { .. }) => {
                return Err(DeviceError::Interrupted {
                    device: name.into(),
                })
            }
            other => other?,
        };
        let _guard = match started {
            Acquired::Locked(g) => g,
            // A starter died mid-start; the status says what it left.
            Acquired::OwnerDied(g) => g.make_consistent(),
        };
        let s = status.read()?;
        let alive = server_alive(&s);
        match s.state {
            DEVICE_RUNNING if alive => return Ok(()),
            DEVICE_OPENING if alive => return self.await_running(name, &status, None, interrupt),
            DEVICE_CLOSING if alive => {
                return Err(DeviceError::Closed {
                    device: name.into(),
                    reason: String::new(),
                })
            }
            DEVICE_FAIL_SAFE if alive => {
                return Err(DeviceError::FailSafe {
                    device: name.into(),
                })
            }
            DEVICE_OPENING | DEVICE_RUNNING | DEVICE_CLOSING | DEVICE_CRASHED
                if !restart_crashed && s.server != 0 =>
            {
                // Died without closing (recorded now if nobody did).
                let msg = if s.state == DEVICE_CRASHED {
                    message(&s)
                } else {
                    String::new()
                };
                status.mark_crashed(s.server, "the server died without closing the device")?;
                return Err(DeviceError::Crashed {
                    device: name.into(),
                    pid: shmkit::os::identity::Record::from_raw(s.server).id(),
                    message: msg,
                });
            }
            _ => {}
        }
        // Closed, or crashed and restartable: start a server.
        let owner: u64 = match self.segment.lookup(OWNER)? {
            Some(_) => {
                let owner: Shared<u64> = self.segment.shared(OWNER, 0u64)?;
                let record = match owner.lock()? {
                    Acquired::Locked(g) => *g,
                    Acquired::OwnerDied(g) => *g.make_consistent(),
                };
                record
            }
            None => 0,
        };
        let args = ServerArgs {
            name: name.to_owned(),
            config: shmkit::codec::encode(config, "the device configuration").map_err(
                |source| DeviceError::Codec {
                    device: name.into(),
                    source,
                },
            )?,
            owner: if owner != 0 {
                owner
            } else {
                ProcessIdentity::current().record().raw()
            },
        };
        status.with(|s| {
            s.state = DEVICE_CLOSED;
            s.server = 0;
            s.starts = s.starts.wrapping_add(1);
            s.started_ns = monotonic_ns();
            s.close_requested = 0;
        })?;
        let child = shmkit::process::spawn_with(
            &self.segment,
            D::KIND,
            &args,
            &SpawnOptions {
                name: Some(format!("device {name}")),
                program: self.program.clone(),
                ..SpawnOptions::default()
            },
        )?;
        self.await_running(name, &status, Some(child), interrupt)
    }

    /// Waits until the server is running; with `child` (we started it), a child that exits
    /// first reports why (the device's open error), and one that never gets there is killed.
    fn await_running(
        &self,
        name: &str,
        status: &Status,
        mut child: Option<Child>,
        interrupt: &dyn Interrupt,
    ) -> Result<(), DeviceError> {
        let deadline = monotonic_ns() + self.start_timeout.as_nanos() as u64;
        loop {
            let s = status.read()?;
            if s.state == DEVICE_RUNNING && server_alive(&s) {
                if let Some(child) = child {
                    self.children
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.to_owned(), child);
                }
                return Ok(());
            }
            if let Some(c) = child.as_mut() {
                match c.join(Duration::ZERO) {
                    Err(ChildError::StillRunning { .. }) => {}
                    Err(ChildError::Failed { report, .. }) => {
                        return Err(DeviceError::OpenFailed {
                            device: name.into(),
                            message: report.message,
                        });
                    }
                    Ok(()) => {
                        return Err(DeviceError::Closed {
                            device: name.into(),
                            reason: "its server exited before the device was running".into(),
                        });
                    }
                    Err(other) => {
                        let message = other.to_string();
                        status.with(|s| set_message(s, &message))?;
                        return Err(DeviceError::OpenFailed {
                            device: name.into(),
                            message,
                        });
                    }
                }
            } else if s.server != 0 && !server_alive(&s) {
                return Err(DeviceError::Crashed {
                    device: name.into(),
                    pid: shmkit::os::identity::Record::from_raw(s.server).id(),
                    message: "the server died while opening the device".into(),
                });
            } else if s.state == DEVICE_CLOSED && s.server == 0 && s.error_len != 0 {
                return Err(DeviceError::OpenFailed {
                    device: name.into(),
                    message: message(&s),
                });
            }
            if monotonic_ns() >= deadline {
                if let Some(mut c) = child {
                    let _ = c.kill();
                    let _ = c.join(Duration::from_secs(1));
                }
                return Err(DeviceError::StartTimeout {
                    device: name.into(),
                    waited: self.start_timeout,
                });
            }
            if interrupt.should_stop() {
                if let Some(child) = child {
                    // Still starting: kept, so that closing the cache closes it too.
                    self.children
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.to_owned(), child);
                }
                return Err(DeviceError::Interrupted {
                    device: name.into(),
                });
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

/// Sends `sig` to the process of `record` if it is still that process (through a pidfd, so a
/// process that reused the pid is never signalled).
fn signal(record: u64, sig: libc::c_int) {
    shmkit::os::identity::Record::from_raw(record).signal_process(sig);
}
