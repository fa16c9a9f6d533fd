//! Child processes that report how they ended through the segment.
//!
//! Children are never forked from a (possibly threaded) parent: [`Segment::spawn`] re-executes
//! the current program with an entry marker in its environment, and the one-line
//! [`Entries::dispatch`] at the top of `main` runs the named entry in the child (and returns at
//! once in the parent). The child receives the segment and its serde arguments through that
//! environment, tags an exception slot with its identity, and on an error or a panic writes a
//! [`ChildReport`] there. [`Child::join`] then names exactly what happened.
//!
//! ```no_run
//! use shmkit::process::{ChildContext, Entries};
//! use shmkit::{CreateOptions, Segment};
//! use std::time::Duration;
//!
//! fn worker(ctx: &ChildContext, n: u32) -> Result<(), std::io::Error> {
//!     ctx.segment().shared("total", 0u32).unwrap().update(|t| *t += n).unwrap();
//!     Ok(())
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     Entries::new().entry("worker", worker).dispatch();
//!     let seg = Segment::create("lab", &CreateOptions::new(1 << 20))?;
//!     seg.spawn("worker", &5u32)?.join(Duration::from_secs(10))?;
//!     Ok(())
//! }
//! ```

mod report;
mod slots;

pub use report::{ChildReport, TRUNCATION_MARKER};
pub use slots::decode_slot_image;

use crate::segment::{Segment, SegmentError};
use crate::sync::{Interrupt, NoInterrupt, Stop, Timeout, Waiting};
use crate::sys::futex_types::FutexWait;
use crate::sys::identity::{Liveness, ProcessIdentity};
use crate::sys::process::{signal_name, ExitWait, ExitWatch};
use serde::de::DeserializeOwned;
use serde::Serialize;
use slots::{Slot, SlotReport, KIND_ERROR, KIND_PANIC};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const ENV_ENTRY: &str = "SHMKIT_ENTRY";
const ENV_SEGMENT: &str = "SHMKIT_SEGMENT";
const ENV_SLOT: &str = "SHMKIT_SLOT";
const ENV_ARGS: &str = "SHMKIT_ARGS";
const ENV_PARENT: &str = "SHMKIT_PARENT";
const ENV_NAME: &str = "SHMKIT_CHILD_NAME";

/// Exit code of a child whose entry returned an error.
pub const EXIT_FAILED: i32 = 3;
/// Exit code of a child that could not start its entry (bad environment, unknown entry).
pub const EXIT_SETUP: i32 = 4;
/// Longest a child's [`ChildContext::parent_alive`] answers from its cache.
pub const PARENT_CHECK: Duration = Duration::from_millis(200);

/// Why spawning or joining failed (a child's own failure is a [`ChildError`]).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Every exception slot is in use by a running or unjoined child.
    #[error("all {slots} exception slots are in use; join children, or create the segment with more exception_slots")]
    SlotsFull {
        /// Slots in the segment.
        slots: u32,
    },
    /// The child's slot was taken by someone else before the child started.
    #[error("exception slot {slot} no longer belongs to this child")]
    SlotStolen {
        /// The slot.
        slot: u32,
    },
    /// A slot holds bytes no shmkit process writes.
    #[error("corrupt exception slot {slot}: {detail}")]
    CorruptSlot {
        /// The slot.
        slot: u32,
        /// What is wrong.
        detail: String,
    },
    /// `join` already collected this child's end.
    #[error("child {name:?} was already joined")]
    AlreadyJoined {
        /// The child's name.
        name: String,
    },
    /// The arguments could not be serialised.
    #[error(transparent)]
    Encode(crate::codec::CodecError),
    /// The OS refused to start or wait for the child.
    #[error("cannot {op} child {name:?}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The child's name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The segment failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
}

/// How a child ended, when it did not simply succeed.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The entry returned an error.
    #[error("child {name:?} (pid {pid}) failed: {report}")]
    Failed {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// Type, message, cause chain, backtrace.
        report: Box<ChildReport>,
    },
    /// The entry panicked.
    #[error("child {name:?} (pid {pid}) panicked: {report}")]
    Panicked {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// Message, location, backtrace.
        report: Box<ChildReport>,
    },
    /// A signal ended it.
    #[error("child {name:?} (pid {pid}) was killed by signal {signal} ({signal_name}){}", if *core_dumped { ", core dumped" } else { "" })]
    Signaled {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The signal number.
        signal: i32,
        /// Its name (`SIGKILL`, ...).
        signal_name: &'static str,
        /// Whether it dumped core.
        core_dumped: bool,
    },
    /// It exited with a non-zero code without writing a report.
    #[error("child {name:?} (pid {pid}) exited with code {code} without a report")]
    Exited {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The exit code.
        code: i32,
    },
    /// The caller's interrupt check said stop while the child ran (it keeps running; join
    /// again or kill it).
    #[error("interrupted while joining child {name:?} (pid {pid}), which is still running")]
    Interrupted {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
    },
    /// It was still running at the deadline (it keeps running; join again or kill it).
    #[error("child {name:?} (pid {pid}) is still running after {waited:?}")]
    StillRunning {
        /// The child's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// How long `join` waited.
        waited: Duration,
    },
    /// Waiting for it or reading its slot failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
}

type EntryFn = Box<dyn Fn(&ChildContext, &[u8]) -> Result<(), Box<ChildReport>>>;

/// The table of entry points a program can be re-executed into.
#[derive(Default)]
pub struct Entries {
    entries: HashMap<&'static str, EntryFn>,
}

impl Entries {
    /// An empty table.
    pub fn new() -> Entries {
        Entries::default()
    }

    /// Registers `f` under `name`. `A` is the arguments' type (serde); `E` the error type,
    /// whose type name, message and `source()` chain reach the parent on failure.
    pub fn entry<A, E, F>(mut self, name: &'static str, f: F) -> Entries
    where
        A: DeserializeOwned,
        E: std::error::Error + 'static,
        F: Fn(&ChildContext, A) -> Result<(), E> + 'static,
    {
        self.entries.insert(
            name,
            Box::new(move |ctx, bytes| {
                let args: A = postcard::from_bytes(bytes).map_err(|e| {
                    Box::new(ChildReport::from_error(
                        "postcard::Error (decoding the arguments)",
                        &e,
                    ))
                })?;
                f(ctx, args)
                    .map_err(|e| Box::new(ChildReport::from_error(std::any::type_name::<E>(), &e)))
            }),
        );
        self
    }

    /// In a child started by [`Segment::spawn`]: runs its entry and exits the process. In the
    /// parent (no entry marker in the environment): returns at once.
    pub fn dispatch(self) {
        let Some(start) = ChildStart::from_env() else {
            return;
        };
        let code = self.run(start);
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }

    /// Runs the entry `start` names (a child's environment, as [`ChildStart::from_env`] read
    /// it) and returns the exit code the child should exit with, its outcome recorded for the
    /// parent's `join`. What a host that is not a Rust `main` (a Python interpreter started as
    /// a [`HostProgram`]) calls instead of [`dispatch`](Self::dispatch).
    pub fn run(&self, start: Result<ChildStart, String>) -> i32 {
        match start {
            Ok(start) => match self.entries.get(start.entry()) {
                Some(f) => {
                    let result = f(start.context(), start.args());
                    start.finish(result.map_err(|report| *report))
                }
                None => {
                    eprintln!(
                        "shmkit child {:?}: no entry named {:?} is registered",
                        start.context().name(),
                        start.entry()
                    );
                    EXIT_SETUP
                }
            },
            Err(message) => {
                eprintln!("shmkit child: {message}");
                EXIT_SETUP
            }
        }
    }
}

/// What a process started by [`Segment::spawn`] finds in its environment: its entry's name,
/// its arguments, its segment and exception slot. [`Entries::dispatch`] is built on it; a
/// host that runs entries its own way (a language binding whose entries are functions of
/// that language) uses it directly: read the start, run the entry, [`finish`](Self::finish).
pub struct ChildStart {
    entry: String,
    args: Vec<u8>,
    slot: u32,
    context: ChildContext,
}

impl std::fmt::Debug for ChildStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildStart")
            .field("entry", &self.entry)
            .field("name", &self.context.name)
            .field("slot", &self.slot)
            .finish()
    }
}

impl ChildStart {
    /// `None` in a process that was not spawned as a child. Otherwise the start (or why the
    /// environment is unusable), with the child's slot tagged with its identity and a panic
    /// hook installed that reports a panic into it. Removes the entry marker from the
    /// environment, so the child's own children do not inherit it.
    pub fn from_env() -> Option<Result<ChildStart, String>> {
        let entry = std::env::var(ENV_ENTRY).ok()?;
        std::env::remove_var(ENV_ENTRY);
        Some(ChildStart::read(entry))
    }

    fn read(entry: String) -> Result<ChildStart, String> {
        let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
        let segment = Segment::open(&var(ENV_SEGMENT)?).map_err(|e| e.to_string())?;
        let slot_index: u32 = var(ENV_SLOT)?
            .parse()
            .map_err(|_| "bad slot index".to_owned())?;
        let parent = parse_identity(&var(ENV_PARENT)?).ok_or("bad parent identity")?;
        let args = decode_hex(&var(ENV_ARGS)?).ok_or("bad argument encoding")?;
        let name = std::env::var(ENV_NAME).unwrap_or_else(|_| entry.clone());
        let me = ProcessIdentity::current();
        let slot = Slot::get(&segment, slot_index).ok_or("slot index out of range")?;
        slot.tag(me, parent).map_err(|e| e.to_string())?;
        install_panic_hook(segment.clone(), slot_index);
        Ok(ChildStart {
            entry,
            args,
            slot: slot_index,
            context: ChildContext {
                segment,
                name,
                parent,
                parent_dead: AtomicBool::new(false),
                last_check: AtomicU64::new(0),
            },
        })
    }

    /// The entry to run.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The arguments, as the parent's `spawn` encoded them (postcard).
    pub fn args(&self) -> &[u8] {
        &self.args
    }

    /// The child's context (segment, name, parent).
    pub fn context(&self) -> &ChildContext {
        &self.context
    }

    /// Records how the entry ended and returns the exit code the child should exit with
    /// (0, or [`EXIT_FAILED`] after writing the report the parent's `join` returns).
    pub fn finish(self, result: Result<(), ChildReport>) -> i32 {
        match result {
            Ok(()) => 0,
            Err(report) => {
                if let Some(slot) = Slot::get(&self.context.segment, self.slot) {
                    slot.report(KIND_ERROR, &report);
                }
                EXIT_FAILED
            }
        }
    }
}

/// What a running child knows: its segment, its name, and whether its parent lives.
pub struct ChildContext {
    segment: Segment,
    name: String,
    parent: ProcessIdentity,
    parent_dead: AtomicBool,
    last_check: AtomicU64,
}

impl ChildContext {
    /// The segment the parent spawned this child from.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// This child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parent process.
    pub fn parent(&self) -> ProcessIdentity {
        self.parent
    }

    /// False once the parent has died, judged by pid and start time so that a recycled pid
    /// does not pass for the parent. A child polling this in its loop learns of the death
    /// within [`PARENT_CHECK`] plus one loop iteration; it should then stop safely. The
    /// check (one `/proc` read) runs at most once per `PARENT_CHECK`; in between the answer
    /// is cached, so polling it in a tight loop is cheap.
    pub fn parent_alive(&self) -> bool {
        if self.parent_dead.load(Ordering::Relaxed) {
            return false;
        }
        let now = crate::sys::clock::monotonic_ns();
        let last = self.last_check.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < PARENT_CHECK.as_nanos() as u64 {
            return true;
        }
        self.last_check.store(now, Ordering::Relaxed);
        let dead = self.parent.liveness() == Liveness::Dead;
        if dead {
            self.parent_dead.store(true, Ordering::Relaxed);
        }
        !dead
    }
}

fn install_panic_hook(segment: Segment, slot_index: u32) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let (type_name, message) = if let Some(s) = payload.downcast_ref::<&str>() {
            ("&str", (*s).to_owned())
        } else if let Some(s) = payload.downcast_ref::<String>() {
            ("String", s.clone())
        } else {
            ("Box<dyn Any>", "non-string panic payload".to_owned())
        };
        let report = ChildReport {
            type_name: type_name.to_owned(),
            message,
            chain: Vec::new(),
            location: info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())),
            backtrace: std::backtrace::Backtrace::force_capture().to_string(),
            truncated: false,
        };
        if let Some(slot) = Slot::get(&segment, slot_index) {
            slot.report(KIND_PANIC, &report);
        }
        previous(info);
    }));
}

fn parse_identity(s: &str) -> Option<ProcessIdentity> {
    let (pid, start) = s.split_once(':')?;
    Some(ProcessIdentity {
        pid: pid.parse().ok()?,
        token: start.parse().ok()?,
    })
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// How to spawn a child.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    /// The child's name in reports and prefixes (default: the entry's name).
    pub name: Option<String>,
    /// Prefix every line the child prints with `[name] ` (default: output inherited as is).
    pub prefix_output: bool,
    /// The program to execute for the child (default: this program again). For entries that
    /// live in a library loaded by another language — a Python interpreter running a module
    /// that calls [`ChildStart::from_env`] or [`Entries::dispatch`]. The child finds its
    /// entry, segment and arguments in its environment either way.
    pub program: Option<HostProgram>,
}

/// A program and its arguments, executed for a child instead of the current executable.
#[derive(Debug, Clone)]
pub struct HostProgram {
    /// Path (or name looked up in `PATH`) of the program.
    pub program: std::path::PathBuf,
    /// Its arguments (not including the program itself).
    pub args: Vec<std::ffi::OsString>,
}

impl HostProgram {
    /// `program` with `args`.
    pub fn new<I, A>(program: impl Into<std::path::PathBuf>, args: I) -> HostProgram
    where
        I: IntoIterator<Item = A>,
        A: Into<std::ffi::OsString>,
    {
        HostProgram {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }
}

/// A running (or finished, unjoined) child. Dropping it neither waits for nor kills the
/// process (`Drop` never blocks): join it, or its slot waits for the reclaim rules.
pub struct Child {
    name: String,
    segment: Segment,
    slot: u32,
    process: std::process::Child,
    relays: Vec<std::thread::JoinHandle<()>>,
    joined: bool,
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

impl Segment {
    /// Starts a child running entry `entry` with `args` (see [`Entries`]).
    pub fn spawn<A: Serialize>(&self, entry: &str, args: &A) -> Result<Child, ProcessError> {
        self.spawn_with(entry, args, &SpawnOptions::default())
    }

    /// Starts a child with options.
    pub fn spawn_with<A: Serialize>(
        &self,
        entry: &str,
        args: &A,
        options: &SpawnOptions,
    ) -> Result<Child, ProcessError> {
        let name = options.name.clone().unwrap_or_else(|| entry.to_owned());
        let args =
            crate::codec::encode(args, "the child's arguments").map_err(ProcessError::Encode)?;
        let me = ProcessIdentity::current();
        let slot = Slot::reserve(self, me)?;
        let io_error = |op, source| ProcessError::Io {
            op,
            name: name.clone(),
            source,
        };
        let mut command = match &options.program {
            Some(host) => {
                let mut c = Command::new(&host.program);
                c.args(&host.args);
                c
            }
            None => match std::env::current_exe() {
                Ok(exe) => Command::new(exe),
                Err(e) => {
                    slot.release();
                    return Err(io_error("find the executable of", e));
                }
            },
        };
        command
            .env(ENV_ENTRY, entry)
            .env(ENV_SEGMENT, self.name())
            .env(ENV_SLOT, slot.index.to_string())
            .env(ENV_ARGS, encode_hex(&args))
            .env(ENV_PARENT, format!("{}:{}", me.pid, me.token))
            .env(ENV_NAME, &name)
            .stdin(Stdio::null());
        if options.prefix_output {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut process = match command.spawn() {
            Ok(p) => p,
            Err(e) => {
                slot.release();
                return Err(io_error("spawn", e));
            }
        };
        let mut relays = Vec::new();
        if options.prefix_output {
            if let Some(out) = process.stdout.take() {
                relays.push(relay(out, format!("[{name}] "), false));
            }
            if let Some(err) = process.stderr.take() {
                relays.push(relay(err, format!("[{name}] "), true));
            }
        }
        Ok(Child {
            name,
            segment: self.clone(),
            slot: slot.index,
            process,
            relays,
            joined: false,
        })
    }
}

/// Copies lines from a child's pipe to our stdout or stderr with a prefix.
fn relay(
    pipe: impl std::io::Read + Send + 'static,
    prefix: String,
    to_stderr: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if to_stderr {
                eprintln!("{prefix}{line}");
            } else {
                println!("{prefix}{line}");
            }
        }
    })
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
    pub fn join(&mut self, timeout: Duration) -> Result<(), ChildError> {
        self.join_interruptible(Timeout::After(timeout), &NoInterrupt)
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

impl Segment {
    /// Frees every exception slot nobody can still want (its child is dead and left no
    /// report, or its parent is dead too). Returns how many were freed. Reservations do this
    /// themselves when the array is full; inspectors may call it.
    pub fn reclaim_exception_slots(&self) -> u32 {
        slots::reclaim_all(self)
    }

    /// Exception slots currently in use.
    pub fn exception_slots_in_use(&self) -> u32 {
        slots::in_use(self)
    }
}
