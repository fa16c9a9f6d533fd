//! The parent's side of a spawn: options, the program to execute, starting a child with its
//! exception slot and environment, and the segment's slot bookkeeping.

use super::entry::encode_hex;
use super::*;

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

/// Starts a child of `segment` running entry `entry` with `args` (see [`Entries`]); the child
/// reports how it ended through one of the segment's exception slots.
pub fn spawn<A: Serialize>(
    segment: &Segment,
    entry: &str,
    args: &A,
) -> Result<Child, ProcessError> {
    spawn_with(segment, entry, args, &SpawnOptions::default())
}

/// Starts a child of `segment` with options.
pub fn spawn_with<A: Serialize>(
    segment: &Segment,
    entry: &str,
    args: &A,
    options: &SpawnOptions,
) -> Result<Child, ProcessError> {
    let name = options.name.clone().unwrap_or_else(|| entry.to_owned());
    let args = crate::codec::encode(args, "the child's arguments").map_err(ProcessError::Encode)?;
    let me = ProcessIdentity::current();
    let slot = Slot::reserve(segment, me)?;
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
        .env(ENV_SEGMENT, segment.name())
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
        segment: segment.clone(),
        slot: slot.index,
        process,
        relays,
        joined: false,
    })
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

/// Frees every exception slot of `segment` nobody can still want (its child is dead and left
/// no report, or its parent is dead too). Returns how many were freed. Reservations do this
/// themselves when the array is full; inspectors may call it.
pub fn reclaim_exception_slots(segment: &Segment) -> u32 {
    slots::reclaim_all(segment)
}

/// Exception slots of `segment` currently in use.
pub fn exception_slots_in_use(segment: &Segment) -> u32 {
    slots::in_use(segment)
}
