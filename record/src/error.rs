//! What can go wrong while recording or repairing.

use std::path::PathBuf;

/// A recording's failure, naming what and where.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A file could not be created, written, synced or renamed.
    #[error("could not {what} {}", path.display())]
    Io {
        /// The operation.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file of the session is not what this crate writes.
    #[error("{} is not a recording file shmkit can complete: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The session directory already holds a recording.
    #[error("{} already holds a recording (manifest.json); choose another directory", .0.display())]
    NotEmpty(PathBuf),
    /// The segment or a ring could not be opened.
    #[error(transparent)]
    Segment(#[from] shmkit::SegmentError),
    /// Reading a ring failed.
    #[error("reading ring {ring:?}: {source}")]
    Ring {
        /// The ring.
        ring: String,
        /// Why.
        #[source]
        source: shmkit::rings::RingError,
    },
    /// A recorder thread could not start or panicked.
    #[error("the recorder thread for ring {0:?} failed")]
    Thread(String),
    /// The manifest could not be read or written.
    #[error("manifest {}: {detail}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}
