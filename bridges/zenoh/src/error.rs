//! What can go wrong in a bridge, typed, so a caller (or the far side) can tell a bad name
//! from a dead link from a ring of another shape.

use shmkit::rings::RingError;
use shmkit::SegmentError;

/// A bridge error.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A name that cannot be a chunk of a key expression.
    #[error("{what} name {name:?}: {reason}")]
    Name {
        /// Host, segment, ring or bridge id.
        what: &'static str,
        /// The name.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// A received frame header that is not a version-1 header.
    #[error("bad frame header: {0}")]
    Header(&'static str),
    /// A frame header of another version.
    #[error("frame header version {found}; this bridge reads version 1")]
    HeaderVersion {
        /// The version found.
        found: u16,
    },
    /// The remote ring's spec was not available.
    #[error("no bridge answered for {key} within {waited_ms} ms")]
    NoSpec {
        /// The `@spec` key asked.
        key: String,
        /// How long we waited.
        waited_ms: u64,
    },
    /// The remote bridge runs another shmkit layout or header version.
    #[error("{key}: the remote bridge has layout {remote}, this one {local}")]
    VersionMismatch {
        /// The `@spec` key.
        key: String,
        /// The remote's version.
        remote: String,
        /// Ours.
        local: String,
    },
    /// The local ring exists with another spec than the remote one.
    #[error("the local ring {ring} is {local}; the remote one is {remote}")]
    SpecMismatch {
        /// The local ring.
        ring: String,
        /// Its spec.
        local: String,
        /// The remote spec.
        remote: String,
    },
    /// A malformed `@spec` reply.
    #[error("{key}: malformed spec reply: {detail}")]
    BadSpec {
        /// The key.
        key: String,
        /// What was wrong.
        detail: String,
    },
    /// The configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// A remote ring whose frames or messages would exceed this bridge's limits: refused
    /// before anything is allocated.
    #[error("{key}: {detail}")]
    TooLarge {
        /// The remote ring's `@spec` key.
        key: String,
        /// Its sizes and the limit.
        detail: String,
    },
    /// A listener any peer could use: refused unless peers must authenticate or `insecure`.
    #[error(
        "refusing to listen on {endpoint}: any peer that reaches it could read and call the \
         exported rings (every local account reaches loopback). Use a tls/ endpoint with mutual \
         TLS or a user/password dictionary (a Zenoh configuration file, --zenoh-config), a \
         Unix socket, or --insecure"
    )]
    Exposed {
        /// The endpoint.
        endpoint: String,
    },
    /// Another bridge already exports this command ring: a second exporter would let one
    /// call run twice.
    #[error("{key} is already exported by another bridge ({by}): a command ring has one exporter")]
    AlreadyExported {
        /// The command ring's key.
        key: String,
        /// The other exporter's token.
        by: String,
    },
    /// Zenoh refused.
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// The segment refused.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// The ring refused.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A command ring refused (another live server holds an imported ring, …).
    #[error(transparent)]
    Command(shmkit::rings::CommandError),
}

impl BridgeError {
    /// A Zenoh error (Zenoh's are boxed trait objects; the text is what the caller can use).
    pub fn zenoh(e: impl std::fmt::Display) -> BridgeError {
        BridgeError::Zenoh(e.to_string())
    }
}
