//! Why a viewer could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why [`Viewer::start`](crate::Viewer::start) failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The segment cannot be inspected (missing, not shmkit's, corrupt).
    #[error("segment {name}")]
    Segment {
        /// The segment's name.
        name: String,
        /// Why.
        #[source]
        source: shmkit::inspect::InspectError,
    },
    /// A listener beyond loopback without TLS, and `insecure` not given.
    #[error(
        "{addr} is reachable from other machines: serve it with TLS (a certificate and key), \
         or pass --insecure to send frames and the token in the clear"
    )]
    Exposed {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The certificate or key cannot be used.
    #[error("TLS: {path}: {detail}")]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// An option out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// Binding the listener, or starting a thread, failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
