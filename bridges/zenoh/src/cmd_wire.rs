//! What a remote command call carries over Zenoh, and the typed errors it can end with.
//!
//! A call is one Zenoh query on `shmkit/<host>/<segment>/cmd/<ring>`: the payload is the
//! request's bytes, the attachment a [`CallHeader`] (32 bytes, little-endian: magic `SHKC`,
//! version, flags, the caller's remaining budget in nanoseconds, a call id). An answer is one
//! reply: the reply's bytes (a plain Zenoh `get` reads them as they are), or an error reply
//! whose payload is a [`RemoteError`] as JSON (`{"kind": "server_died", "host": …}`).
//!
//! Through an imported command ring, local clients see these errors as
//! [`CommandError::Failed`] whose message starts with `[zenoh {json}]` and goes on in words;
//! [`RemoteError::of`] reads the typed error back. A server's own failure
//! ([`RemoteError::Failed`]) reaches them untouched, as it would locally.
//!
//! **Delivery is at most once.** A call is sent as one query and never re-sent; the exporting
//! bridge runs each query it receives at most once (through the local ring, itself at most
//! once) and not at all when its budget has run out on arrival. A call whose answer does not
//! come back (the link cut, a bridge killed) ends in [`RemoteError::BridgeDown`] or
//! [`RemoteError::Timeout`] with [`Outcome::Unknown`]: it may have run, once.

use serde::{Deserialize, Serialize};
use shmkit::rings::{CommandError, Outcome};

/// The call header's magic, `b"SHKC"` as a little-endian `u32`.
pub const CALL_MAGIC: u32 = u32::from_le_bytes(*b"SHKC");
/// The call header version this bridge writes and reads.
pub const CALL_VERSION: u16 = 1;
/// Bytes of an encoded [`CallHeader`].
pub const CALL_HEADER_LEN: usize = 32;
/// `budget_ns` of a call that waits forever.
pub const NO_BUDGET: u64 = u64::MAX;

/// The attachment of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallHeader {
    /// How long the caller still waits, in nanoseconds, when the call leaves
    /// ([`NO_BUDGET`]: forever). Relative, so the two hosts' clocks need not agree.
    pub budget_ns: u64,
    /// The calling bridge's number for the call (for logs; calls are never re-sent).
    pub call_id: u64,
}

/// Why a call header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Not a call header at all.
    Malformed(&'static str),
    /// A call header of another version.
    Version(u16),
}

impl CallHeader {
    /// The 32 bytes on the wire.
    pub fn encode(&self) -> [u8; CALL_HEADER_LEN] {
        let mut b = [0u8; CALL_HEADER_LEN];
        b[0..4].copy_from_slice(&CALL_MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&CALL_VERSION.to_le_bytes());
        // 6..8 flags, 24..32 reserved: zero.
        b[8..16].copy_from_slice(&self.budget_ns.to_le_bytes());
        b[16..24].copy_from_slice(&self.call_id.to_le_bytes());
        b
    }

    /// Reads a header from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<CallHeader, HeaderProblem> {
        let word = |at: usize| -> u64 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(w)
        };
        if bytes.len() < 6 || bytes[0..4] != CALL_MAGIC.to_le_bytes() {
            return Err(HeaderProblem::Malformed("no SHKC magic"));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != CALL_VERSION {
            return Err(HeaderProblem::Version(version));
        }
        if bytes.len() != CALL_HEADER_LEN {
            return Err(HeaderProblem::Malformed("not 32 bytes"));
        }
        Ok(CallHeader {
            budget_ns: word(8),
            call_id: word(16),
        })
    }
}

/// [`Outcome`] as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireOutcome {
    /// The request did not run.
    NotExecuted,
    /// It may or may not have run.
    Unknown,
    /// It ran; its reply was lost.
    Executed,
}

impl From<Outcome> for WireOutcome {
    fn from(o: Outcome) -> WireOutcome {
        match o {
            Outcome::NotExecuted => WireOutcome::NotExecuted,
            Outcome::Unknown => WireOutcome::Unknown,
            Outcome::Executed => WireOutcome::Executed,
        }
    }
}

impl From<WireOutcome> for Outcome {
    fn from(o: WireOutcome) -> Outcome {
        match o {
            WireOutcome::NotExecuted => Outcome::NotExecuted,
            WireOutcome::Unknown => Outcome::Unknown,
            WireOutcome::Executed => Outcome::Executed,
        }
    }
}

impl std::fmt::Display for WireOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Outcome::from(*self).fmt(f)
    }
}

/// How a remote call failed, as the caller learns it. `host` is always the host the command
/// ring lives on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemoteError {
    /// No server is attached to the ring on `host`.
    #[error("no server is attached to the command ring on host {host}")]
    NoServer {
        /// The ring's host.
        host: String,
    },
    /// The call's deadline passed before an answer came.
    #[error("no answer from host {host} before the deadline: {outcome}")]
    Timeout {
        /// The ring's host.
        host: String,
        /// Whether it ran.
        outcome: WireOutcome,
    },
    /// The server on `host` died before answering.
    #[error("the server (pid {pid}) on host {host} died before answering: {outcome}")]
    ServerDied {
        /// The ring's host.
        host: String,
        /// The server's pid there.
        pid: u32,
        /// Whether it ran.
        outcome: WireOutcome,
    },
    /// No bridge for `host` is reachable (down, cut off, or not exporting the ring).
    #[error("the bridge of host {host} is down or does not export the ring: {outcome}")]
    BridgeDown {
        /// The ring's host.
        host: String,
        /// Whether it ran.
        outcome: WireOutcome,
    },
    /// The two bridges speak different versions.
    #[error("host {host}'s bridge speaks another version: {detail}")]
    VersionMismatch {
        /// The ring's host.
        host: String,
        /// Which versions.
        detail: String,
    },
    /// Every slot of the ring on `host` stayed in use until the deadline.
    #[error("the command ring on host {host} stayed full until the deadline")]
    RingFull {
        /// The ring's host.
        host: String,
    },
    /// The request does not fit the remote ring.
    #[error("a request of {len} bytes exceeds the ring on host {host} ({max} bytes)")]
    TooLarge {
        /// The ring's host.
        host: String,
        /// The request's length.
        len: u64,
        /// The ring's maximum.
        max: u32,
    },
    /// The exporting bridge's queue was full (more calls in flight than it has room for).
    #[error("host {host}'s bridge has too many calls in flight")]
    Busy {
        /// The ring's host.
        host: String,
    },
    /// The exporting bridge could not read the call.
    #[error("host {host}'s bridge refused the call: {detail}")]
    BadRequest {
        /// The ring's host.
        host: String,
        /// Why.
        detail: String,
    },
    /// The server failed the request with this message.
    #[error("{message}")]
    Failed {
        /// The server's message.
        message: String,
    },
}

/// The prefix of a failure message carrying a [`RemoteError`] through a local ring.
const TAG: &str = "[zenoh ";

impl RemoteError {
    /// The error an exporting bridge sends for a local call that failed with `e`.
    pub fn from_local(e: CommandError, host: &str) -> RemoteError {
        let host = host.to_owned();
        match e {
            CommandError::Failed(message) => RemoteError::Failed { message },
            CommandError::Timeout { .. } => RemoteError::Timeout {
                host,
                // Withdrawn (never ran) or abandoned (may have run): the call does not say.
                outcome: WireOutcome::Unknown,
            },
            CommandError::Interrupted { outcome } => RemoteError::BridgeDown {
                host,
                outcome: outcome.into(),
            },
            CommandError::ServerDied { pid, outcome } => RemoteError::ServerDied {
                host,
                pid,
                outcome: outcome.into(),
            },
            CommandError::NoServer => RemoteError::NoServer { host },
            CommandError::RingFull { .. } => RemoteError::RingFull { host },
            CommandError::TooLarge { len, max, .. } => RemoteError::TooLarge {
                host,
                len: len as u64,
                max,
            },
            other => RemoteError::BadRequest {
                host,
                detail: other.to_string(),
            },
        }
    }

    /// The JSON of an error reply.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{\"kind\":\"bad_request\"}".to_vec())
    }

    /// Reads an error reply's payload; one that is not ours is `BadRequest` with its text.
    pub fn from_json(host: &str, bytes: &[u8]) -> RemoteError {
        serde_json::from_slice(bytes).unwrap_or_else(|_| RemoteError::BadRequest {
            host: host.to_owned(),
            detail: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        })
    }

    /// The failure message a forwarding bridge answers a local client with: a server's own
    /// failure as it was, anything else `[zenoh {json}] words`.
    pub fn to_failure(&self) -> String {
        match self {
            RemoteError::Failed { message } => message.clone(),
            other => format!(
                "{TAG}{}] {other}",
                String::from_utf8_lossy(&other.to_json())
            ),
        }
    }

    /// The remote error a local call's failure carries, if it came through a bridge (a
    /// server's own failure is `None`: it is the [`CommandError::Failed`] it always was).
    pub fn of(e: &CommandError) -> Option<RemoteError> {
        let CommandError::Failed(message) = e else {
            return None;
        };
        let rest = message.strip_prefix(TAG)?;
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<RemoteError>();
        values.next()?.ok()
    }

    /// Whether the request may have run.
    pub fn outcome(&self) -> Outcome {
        match self {
            RemoteError::Timeout { outcome, .. }
            | RemoteError::ServerDied { outcome, .. }
            | RemoteError::BridgeDown { outcome, .. } => (*outcome).into(),
            RemoteError::Failed { .. } => Outcome::Executed,
            _ => Outcome::NotExecuted,
        }
    }
}

/// What a command-exporting bridge's `…/cmd/<ring>/@spec` answers, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpecReply {
    /// shmkit's segment layout major version at the source.
    pub layout_major: u32,
    /// The call header version.
    pub call_version: u16,
    /// Slots of the source ring.
    pub slots: u32,
    /// Its largest request.
    pub max_request: u32,
    /// Its largest reply.
    pub max_reply: u32,
}

impl CommandSpecReply {
    /// The reply for a ring of `spec`, at this build's versions.
    pub fn of(spec: &shmkit::rings::CommandSpec) -> CommandSpecReply {
        CommandSpecReply {
            layout_major: u32::from(shm_layout::VERSION_MAJOR),
            call_version: CALL_VERSION,
            slots: spec.slots,
            max_request: spec.max_request,
            max_reply: spec.max_reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_headers_round_trip_and_hostile_bytes_are_refused() {
        let h = CallHeader {
            budget_ns: 123_456_789,
            call_id: 42,
        };
        assert_eq!(CallHeader::decode(&h.encode()), Ok(h));
        let mut other = h.encode();
        other[4] = 2;
        assert_eq!(CallHeader::decode(&other), Err(HeaderProblem::Version(2)));
        assert!(matches!(
            CallHeader::decode(b"SHK"),
            Err(HeaderProblem::Malformed(_))
        ));
        assert!(matches!(
            CallHeader::decode(&h.encode()[..20]),
            Err(HeaderProblem::Malformed(_))
        ));
        assert!(matches!(
            CallHeader::decode(&[0u8; 32]),
            Err(HeaderProblem::Malformed(_))
        ));
    }

    #[test]
    fn remote_errors_survive_a_local_rings_failure_message_and_plain_failures_stay_plain() {
        let died = RemoteError::ServerDied {
            host: "lab2".into(),
            pid: 77,
            outcome: WireOutcome::Unknown,
        };
        let message = died.to_failure();
        assert!(message.starts_with("[zenoh {"), "{message}");
        assert!(message.contains("(pid 77) on host lab2 died"), "{message}");
        assert_eq!(
            RemoteError::of(&CommandError::Failed(message)),
            Some(died.clone())
        );
        assert_eq!(died.outcome(), Outcome::Unknown);
        let own = RemoteError::Failed {
            message: "no such actuator".into(),
        };
        assert_eq!(own.to_failure(), "no such actuator");
        assert_eq!(
            RemoteError::of(&CommandError::Failed("no such actuator".into())),
            None
        );
        assert_eq!(RemoteError::from_json("h", &died.to_json()), died);
        assert!(matches!(
            RemoteError::from_json("h", b"garbage"),
            RemoteError::BadRequest { .. }
        ));
    }
}
