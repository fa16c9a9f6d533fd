//! The child's side of a spawn: the table of entry points a program can be re-executed into, what a
//! started child finds in its environment, and the context its entry runs with.

use super::*;

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

    /// In a child started by [`spawn`](super::spawn): runs its entry and exits the process. In the
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

/// What a process started by [`spawn`](super::spawn) finds in its environment: its entry's name,
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

pub(super) fn encode_hex(bytes: &[u8]) -> String {
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
