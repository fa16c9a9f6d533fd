//! What a C call returns: the status codes, every core error mapped onto one of them with its
//! message kept for `shmkit_last_error`, and the guard every entry point runs its body in (no
//! Rust panic ever unwinds into C).

use shmkit::rings::{CommandError, Outcome, RingError};
use shmkit::{BarrierError, LockError, SegmentError, UnlockError};
use shmkit_devices::DeviceError;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a call did. `SHMKIT_OK` and `SHMKIT_OWNER_DIED` are successes (the second only from a
/// lock: the caller holds the mutex, whose previous holder died inside its critical section);
/// every negative value is a failure whose message `shmkit_last_error()` returns.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmkit_status {
    /// Done.
    SHMKIT_OK = 0,
    /// The mutex is held by the caller; its previous holder died holding it. Repair the
    /// data it protects, then `shmkit_mutex_make_consistent` (as `EOWNERDEAD` from a robust
    /// pthread mutex). Unlocking without that makes the mutex not recoverable.
    SHMKIT_OWNER_DIED = 1,
    /// A pointer argument was NULL.
    SHMKIT_E_NULL = -1,
    /// An argument is out of range, or a name is not valid UTF-8 or not a valid name.
    SHMKIT_E_INVALID = -2,
    /// The call does not fit the handle's state (publish without a claim, a frame or request
    /// still held, a second claim).
    SHMKIT_E_STATE = -3,
    /// No such segment or object.
    SHMKIT_E_NOT_FOUND = -4,
    /// The segment or object already exists.
    SHMKIT_E_EXISTS = -5,
    /// The operating system refused access, or the segment belongs to another user.
    SHMKIT_E_PERMISSION = -6,
    /// The object exists as another kind or with other parameters, or the segment has
    /// another layout version.
    SHMKIT_E_MISMATCH = -7,
    /// Shared bytes hold values no shmkit process writes.
    SHMKIT_E_CORRUPT = -8,
    /// The segment, its object table, or a ring's reader table is full.
    SHMKIT_E_NO_SPACE = -9,
    /// The deadline passed.
    SHMKIT_E_TIMEOUT = -10,
    /// A zero-timeout call found the mutex held by another thread.
    SHMKIT_E_WOULD_BLOCK = -11,
    /// `shmkit_interrupt()` ended the wait.
    SHMKIT_E_INTERRUPTED = -12,
    /// A role is taken by another live process (a ring's writer, a command ring's server), or
    /// an object is still being created.
    SHMKIT_E_BUSY = -13,
    /// The calling thread does not hold the mutex.
    SHMKIT_E_NOT_OWNER = -14,
    /// The mutex is not recoverable (a holder died and the next one never made it
    /// consistent): recreate it.
    SHMKIT_E_NOT_RECOVERABLE = -15,
    /// The barrier is broken (a party timed out, was interrupted or died, or it was aborted).
    SHMKIT_E_BROKEN = -16,
    /// No server is attached to the command ring (or the device is closed).
    SHMKIT_E_NO_SERVER = -17,
    /// The server died before answering; the call's outcome says whether the request ran.
    SHMKIT_E_SERVER_DIED = -18,
    /// The server (or the device) answered with a failure; its message is the last error.
    SHMKIT_E_FAILED = -19,
    /// A request, reply or frame length exceeds the ring's maximum.
    SHMKIT_E_TOO_LARGE = -20,
    /// The caller's reply buffer is smaller than the reply (whose length is returned).
    SHMKIT_E_BUFFER_TOO_SMALL = -21,
    /// An oldest-first reader fell more than the ring behind; it resumes at the oldest frame
    /// still held.
    SHMKIT_E_OVERRUN = -22,
    /// Every slot stayed in use until the deadline (a frame ring's slots held by readers, a
    /// command ring's slots by calls).
    SHMKIT_E_FULL = -23,
    /// An operating-system call failed.
    SHMKIT_E_IO = -24,
    /// A bug in shmkit: a panic was caught at the boundary. The handle may be unusable.
    SHMKIT_E_PANIC = -25,
    /// A device call found that another client died holding the device's mutex: the
    /// command did not run (the mutex is consistent again); retry it, knowing the device may
    /// be mid-sequence.
    SHMKIT_E_OWNER_DIED = -26,
}

use shmkit_status::*;

/// A failed call: its status and the message `shmkit_last_error` returns. Boxed, so that a
/// body's `CResult` is two words, returned in registers on every call's success path.
#[derive(Debug)]
pub(crate) struct Failure(Box<FailureText>);

#[derive(Debug)]
struct FailureText {
    status: shmkit_status,
    message: String,
}

impl Failure {
    #[cold]
    pub(crate) fn new(status: shmkit_status, message: impl Into<String>) -> Failure {
        Failure(Box::new(FailureText {
            status,
            message: message.into(),
        }))
    }
}

/// What an entry point's body returns.
pub(crate) type CResult<T = shmkit_status> = Result<T, Failure>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message never holds a NUL from shmkit itself; one from a peer's bytes is cut there.
    let text = message.split('\0').next().unwrap_or_default();
    let text = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
}

/// Runs an entry point's body: its status, or its failure's (message kept for this thread),
/// or `SHMKIT_E_PANIC` if it panicked — never an unwind into C.
#[inline(always)] // one frame per entry point, not two: the guard itself costs nothing
pub(crate) fn run(body: impl FnOnce() -> CResult) -> shmkit_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => failed(failure),
        Err(panic) => panicked(panic),
    }
}

#[cold]
fn failed(failure: Failure) -> shmkit_status {
    set_last_error(&failure.0.message);
    failure.0.status
}

#[cold]
fn panicked(panic: Box<dyn std::any::Any + Send>) -> shmkit_status {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    set_last_error(&format!(
        "internal error (a bug in shmkit, please report): {what}"
    ));
    SHMKIT_E_PANIC
}

/// The message of the calling thread's last failed call (`""` if none failed yet). Valid
/// until the next call on this thread.
///
/// Thread-safety: per thread (each thread has its own last error).
#[no_mangle]
pub extern "C" fn shmkit_last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// The name of a status (`"SHMKIT_E_TIMEOUT"`), or `"SHMKIT_UNKNOWN"`. A static string.
///
/// Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn shmkit_status_name(status: c_int) -> *const c_char {
    let name: &'static [u8] = match status {
        0 => b"SHMKIT_OK\0",
        1 => b"SHMKIT_OWNER_DIED\0",
        -1 => b"SHMKIT_E_NULL\0",
        -2 => b"SHMKIT_E_INVALID\0",
        -3 => b"SHMKIT_E_STATE\0",
        -4 => b"SHMKIT_E_NOT_FOUND\0",
        -5 => b"SHMKIT_E_EXISTS\0",
        -6 => b"SHMKIT_E_PERMISSION\0",
        -7 => b"SHMKIT_E_MISMATCH\0",
        -8 => b"SHMKIT_E_CORRUPT\0",
        -9 => b"SHMKIT_E_NO_SPACE\0",
        -10 => b"SHMKIT_E_TIMEOUT\0",
        -11 => b"SHMKIT_E_WOULD_BLOCK\0",
        -12 => b"SHMKIT_E_INTERRUPTED\0",
        -13 => b"SHMKIT_E_BUSY\0",
        -14 => b"SHMKIT_E_NOT_OWNER\0",
        -15 => b"SHMKIT_E_NOT_RECOVERABLE\0",
        -16 => b"SHMKIT_E_BROKEN\0",
        -17 => b"SHMKIT_E_NO_SERVER\0",
        -18 => b"SHMKIT_E_SERVER_DIED\0",
        -19 => b"SHMKIT_E_FAILED\0",
        -20 => b"SHMKIT_E_TOO_LARGE\0",
        -21 => b"SHMKIT_E_BUFFER_TOO_SMALL\0",
        -22 => b"SHMKIT_E_OVERRUN\0",
        -23 => b"SHMKIT_E_FULL\0",
        -24 => b"SHMKIT_E_IO\0",
        -25 => b"SHMKIT_E_PANIC\0",
        -26 => b"SHMKIT_E_OWNER_DIED\0",
        _ => b"SHMKIT_UNKNOWN\0",
    };
    name.as_ptr().cast()
}

/// Whether a request whose server died (or whose call timed out or was interrupted) ran.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmkit_outcome {
    /// It never reached the server and never will.
    SHMKIT_NOT_EXECUTED = 0,
    /// The server had taken it: it may or may not have run.
    SHMKIT_UNKNOWN = 1,
    /// It ran (on success, or when the server answered with a failure, or died writing its
    /// reply).
    SHMKIT_EXECUTED = 2,
}

impl From<Outcome> for shmkit_outcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::NotExecuted => shmkit_outcome::SHMKIT_NOT_EXECUTED,
            Outcome::Unknown => shmkit_outcome::SHMKIT_UNKNOWN,
            Outcome::Executed => shmkit_outcome::SHMKIT_EXECUTED,
        }
    }
}

impl From<SegmentError> for Failure {
    fn from(e: SegmentError) -> Failure {
        let status = match &e {
            SegmentError::InvalidName { .. }
            | SegmentError::InvalidObjectName { .. }
            | SegmentError::InvalidOption(_)
            | SegmentError::TooSmall { .. } => SHMKIT_E_INVALID,
            SegmentError::NotFound { .. } | SegmentError::ObjectNotFound { .. } => {
                SHMKIT_E_NOT_FOUND
            }
            SegmentError::AlreadyExists { .. } | SegmentError::ObjectExists { .. } => {
                SHMKIT_E_EXISTS
            }
            SegmentError::PermissionDenied { .. } | SegmentError::WrongOwner { .. } => {
                SHMKIT_E_PERMISSION
            }
            SegmentError::VersionMismatch { .. }
            | SegmentError::LayoutMismatch { .. }
            | SegmentError::WrongKind { .. }
            | SegmentError::KindMismatch { .. }
            | SegmentError::ParamMismatch { .. } => SHMKIT_E_MISMATCH,
            SegmentError::Corrupt { .. }
            | SegmentError::BadOffset { .. }
            | SegmentError::CreatorDied { .. } => SHMKIT_E_CORRUPT,
            SegmentError::OutOfSpace { .. } | SegmentError::TableFull { .. } => SHMKIT_E_NO_SPACE,
            SegmentError::StillInitialising { .. }
            | SegmentError::StillInUse { .. }
            | SegmentError::EntryBusy { .. } => SHMKIT_E_BUSY,
            SegmentError::AllocatorLock(lock) => return Failure::from(lock.clone()),
            SegmentError::Io { .. } => SHMKIT_E_IO,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<LockError> for Failure {
    fn from(e: LockError) -> Failure {
        let status = match &e {
            LockError::Timeout { .. } => SHMKIT_E_TIMEOUT,
            LockError::WouldBlock { .. } => SHMKIT_E_WOULD_BLOCK,
            LockError::Interrupted { .. } => SHMKIT_E_INTERRUPTED,
            LockError::NotRecoverable => SHMKIT_E_NOT_RECOVERABLE,
            LockError::TooDeep => SHMKIT_E_INVALID,
            LockError::Corrupt { .. } => SHMKIT_E_CORRUPT,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<UnlockError> for Failure {
    fn from(e: UnlockError) -> Failure {
        Failure::new(SHMKIT_E_NOT_OWNER, e.to_string())
    }
}

impl From<BarrierError> for Failure {
    fn from(e: BarrierError) -> Failure {
        let status = match &e {
            BarrierError::Broken
            | BarrierError::PartyDied { .. }
            | BarrierError::ActionFailed { .. } => SHMKIT_E_BROKEN,
            BarrierError::Timeout { .. } => SHMKIT_E_TIMEOUT,
            BarrierError::Interrupted => SHMKIT_E_INTERRUPTED,
            BarrierError::Corrupt { .. } => SHMKIT_E_CORRUPT,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<RingError> for Failure {
    fn from(e: RingError) -> Failure {
        let status = match &e {
            RingError::WriterBusy { .. } => SHMKIT_E_BUSY,
            RingError::AllSlotsHeld { .. } => SHMKIT_E_FULL,
            RingError::TooManyReaders => SHMKIT_E_NO_SPACE,
            RingError::Timeout { .. } => SHMKIT_E_TIMEOUT,
            RingError::Interrupted => SHMKIT_E_INTERRUPTED,
            RingError::Overrun { .. } => SHMKIT_E_OVERRUN,
            RingError::WrongElemType { .. } => SHMKIT_E_MISMATCH,
            RingError::Corrupt(_) => SHMKIT_E_CORRUPT,
        };
        Failure::new(status, e.to_string())
    }
}

/// A failed call and whether its request ran.
pub(crate) fn command_failure(e: CommandError) -> (Failure, shmkit_outcome) {
    use shmkit_outcome::*;
    let (status, outcome) = match &e {
        CommandError::Timeout { .. } => (SHMKIT_E_TIMEOUT, SHMKIT_UNKNOWN),
        CommandError::Interrupted { outcome } => (SHMKIT_E_INTERRUPTED, (*outcome).into()),
        CommandError::ServerDied { outcome, .. } => (SHMKIT_E_SERVER_DIED, (*outcome).into()),
        CommandError::NoServer => (SHMKIT_E_NO_SERVER, SHMKIT_NOT_EXECUTED),
        CommandError::ServerBusy { .. } => (SHMKIT_E_BUSY, SHMKIT_NOT_EXECUTED),
        CommandError::RingFull { .. } => (SHMKIT_E_FULL, SHMKIT_NOT_EXECUTED),
        CommandError::TooLarge { .. } => (SHMKIT_E_TOO_LARGE, SHMKIT_NOT_EXECUTED),
        CommandError::Failed(_) => (SHMKIT_E_FAILED, SHMKIT_EXECUTED),
        CommandError::Codec(_) => (SHMKIT_E_INVALID, SHMKIT_UNKNOWN),
        CommandError::Corrupt(_) => (SHMKIT_E_CORRUPT, SHMKIT_UNKNOWN),
    };
    let message = match &e {
        // The server's own words, as they came.
        CommandError::Failed(message) => message.clone(),
        other => other.to_string(),
    };
    (Failure::new(status, message), outcome)
}

impl From<CommandError> for Failure {
    fn from(e: CommandError) -> Failure {
        command_failure(e).0
    }
}

/// A failed device call and whether the command ran.
pub(crate) fn device_failure(e: DeviceError) -> (Failure, shmkit_outcome) {
    use shmkit_outcome::*;
    let message = e.to_string();
    let (status, outcome) = match e {
        DeviceError::Segment(e) => return (e.into(), SHMKIT_NOT_EXECUTED),
        DeviceError::Lock(e) => return (e.into(), SHMKIT_NOT_EXECUTED),
        DeviceError::Command(e) => return command_failure(e),
        DeviceError::Ring(e) => return (e.into(), SHMKIT_NOT_EXECUTED),
        DeviceError::InvalidName(_) => (SHMKIT_E_INVALID, SHMKIT_NOT_EXECUTED),
        DeviceError::Closed { .. } => (SHMKIT_E_NO_SERVER, SHMKIT_NOT_EXECUTED),
        DeviceError::Crashed { .. } => (SHMKIT_E_SERVER_DIED, SHMKIT_UNKNOWN),
        DeviceError::FailSafe { .. } | DeviceError::Failed { .. } => {
            (SHMKIT_E_FAILED, SHMKIT_EXECUTED)
        }
        DeviceError::RequestTooLarge { .. } => (SHMKIT_E_TOO_LARGE, SHMKIT_NOT_EXECUTED),
        DeviceError::ReplyTooLarge { .. } => (SHMKIT_E_TOO_LARGE, SHMKIT_EXECUTED),
        DeviceError::OwnerDied { .. } => (SHMKIT_E_OWNER_DIED, SHMKIT_NOT_EXECUTED),
        DeviceError::Timeout { .. } => (SHMKIT_E_TIMEOUT, SHMKIT_UNKNOWN),
        DeviceError::Interrupted { .. } => (SHMKIT_E_INTERRUPTED, SHMKIT_NOT_EXECUTED),
        DeviceError::WrongKind { .. } => (SHMKIT_E_MISMATCH, SHMKIT_NOT_EXECUTED),
        DeviceError::Codec { .. } => (SHMKIT_E_INVALID, SHMKIT_UNKNOWN),
        DeviceError::StartTimeout { .. }
        | DeviceError::OpenFailed { .. }
        | DeviceError::Process(_)
        | DeviceError::Status(_) => (SHMKIT_E_IO, SHMKIT_NOT_EXECUTED),
    };
    (Failure::new(status, message), outcome)
}
