//! What a command ring is made of, as its users name it: the [`CommandSpec`], the errors of a
//! call or a receive, and the [`Outcome`] of a request whose server died.

use std::time::Duration;

/// The shape of a command ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// Request slots (calls in flight at once), 1..=1024.
    pub slots: u32,
    /// Largest request in bytes.
    pub max_request: u32,
    /// Largest reply in bytes.
    pub max_reply: u32,
}

impl std::fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} slots, requests up to {} bytes, replies up to {} bytes",
            self.slots, self.max_request, self.max_reply
        )
    }
}

/// Why a call or a receive failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No answer before the deadline; the request was withdrawn or abandoned (no stale reply
    /// will ever reach a later call).
    #[error("no reply within {waited:?}")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
    },
    /// The caller's interrupt check said stop. A call's request was withdrawn or abandoned
    /// as on a timeout (no stale reply reaches a later call); `outcome` says whether it ran
    /// (always `NotExecuted` for a `recv`, which took nothing).
    #[error("interrupted while waiting: {outcome}")]
    Interrupted {
        /// Whether the request ran.
        outcome: Outcome,
    },
    /// The server died before answering; `outcome` says whether the request ran.
    #[error("the server (pid {pid}) died before answering: {outcome}")]
    ServerDied {
        /// Its pid.
        pid: u32,
        /// Whether the request ran.
        outcome: Outcome,
    },
    /// No server is attached to the ring.
    #[error("no server is attached to the command ring")]
    NoServer,
    /// Another live process is the server.
    #[error("the command ring already has a live server (pid {pid})")]
    ServerBusy {
        /// Its pid.
        pid: u32,
    },
    /// Every slot held a call in progress for the whole timeout.
    #[error("all {slots} request slots stayed in use until the deadline")]
    RingFull {
        /// Slots in the ring.
        slots: u32,
    },
    /// The request or reply does not fit its buffer.
    #[error("{what} of {len} bytes exceeds the ring's maximum of {max}")]
    TooLarge {
        /// "request" or "reply".
        what: &'static str,
        /// Its length.
        len: usize,
        /// The maximum.
        max: u32,
    },
    /// The server answered with an error.
    #[error("the server failed the request: {0}")]
    Failed(String),
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    /// The ring's bytes hold values no shmkit process writes.
    #[error("corrupt command ring: {0}")]
    Corrupt(String),
}

/// Whether a request whose server died ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It never reached the server and never will (it was withdrawn).
    NotExecuted,
    /// The server had taken it: it may or may not have run, partly or wholly.
    Unknown,
    /// It ran; the server died while writing its reply.
    Executed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::NotExecuted => "the request did not run",
            Outcome::Unknown => "the request may or may not have run",
            Outcome::Executed => "the request ran, its reply was lost",
        })
    }
}
