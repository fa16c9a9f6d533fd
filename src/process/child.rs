//! A spawned child as its parent holds it: its pid, kill, and `join`, which names exactly how
//! the child ended.

use super::*;

/// A running (or finished, unjoined) child. Dropping it neither waits for nor kills the
/// process (`Drop` never blocks): join it, or its slot waits for the reclaim rules.
pub struct Child {
    pub(super) name: String,
    pub(super) segment: Segment,
    pub(super) slot: u32,
    pub(super) process: std::process::Child,
    pub(super) relays: Vec<std::thread::JoinHandle<()>>,
    pub(super) joined: bool,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("slot", &self.slot)
            .finish()
    }
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends SIGKILL (the child is still joined as usual to collect its end).
    pub fn kill(&mut self) -> Result<(), ProcessError> {
        self.process.kill().map_err(|source| ProcessError::Io {
            op: "kill",
            name: self.name.clone(),
            source,
        })
    }

    /// Waits at most `timeout` for the child to end and says how it ended. The exception slot
    /// is released once the child has ended; after `StillRunning` the child can be joined again.
    pub fn join(&mut self, timeout: impl Into<Timeout>) -> Result<(), ChildError> {
        self.join_interruptible(timeout.into(), &NoInterrupt)
    }

    /// [`join`](Self::join) within `timeout`, giving up with [`ChildError::Interrupted`]
    /// (the child still running, joinable again) within 100 ms of `interrupt` saying stop.
    pub fn join_interruptible(
        &mut self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<(), ChildError> {
        if self.joined {
            return Err(ProcessError::AlreadyJoined {
                name: self.name.clone(),
            }
            .into());
        }
        let pid = self.pid();
        let io = |op, source| ProcessError::Io {
            op,
            name: self.name.clone(),
            source,
        };
        let watch = ExitWatch::new(pid).map_err(|e| io("wait for", e))?;
        let mut waiting = Waiting::new(timeout.deadline(), interrupt);
        loop {
            match watch
                .wait(waiting.sleep_deadline())
                .map_err(|e| io("wait for", e))?
            {
                ExitWait::Exited => break,
                ExitWait::Signal => waiting.slept(FutexWait::Interrupted),
                ExitWait::TimedOut => {}
            }
            match waiting.check() {
                Ok(()) => {}
                Err(Stop::TimedOut) => {
                    return Err(ChildError::StillRunning {
                        name: self.name.clone(),
                        pid,
                        waited: timeout.as_duration(),
                    })
                }
                Err(Stop::Interrupted) => {
                    return Err(ChildError::Interrupted {
                        name: self.name.clone(),
                        pid,
                    })
                }
            }
        }
        let status = self.process.wait().map_err(|e| io("reap", e))?;
        for relay in self.relays.drain(..) {
            let _ = relay.join();
        }
        let slot = Slot::get(&self.segment, self.slot).ok_or(ProcessError::CorruptSlot {
            slot: self.slot,
            detail: "slot index out of range".into(),
        })?;
        let report = slot.read(pid);
        slot.release();
        self.joined = true;
        let name = self.name.clone();
        match report? {
            SlotReport::Error(report) => Err(ChildError::Failed {
                name,
                pid,
                report: Box::new(report),
            }),
            SlotReport::Panic(report) => Err(ChildError::Panicked {
                name,
                pid,
                report: Box::new(report),
            }),
            SlotReport::None => {
                if let Some(signal) = status.signal() {
                    Err(ChildError::Signaled {
                        name,
                        pid,
                        signal,
                        signal_name: signal_name(signal),
                        core_dumped: status.core_dumped(),
                    })
                } else {
                    match status.code() {
                        Some(0) => Ok(()),
                        Some(code) => Err(ChildError::Exited { name, pid, code }),
                        None => Err(ChildError::Exited {
                            name,
                            pid,
                            code: -1,
                        }),
                    }
                }
            }
        }
    }
}
