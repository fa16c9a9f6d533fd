//! Why inspecting a segment failed.

use crate::segment::SegmentError;

/// Why a segment could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// No such shared memory object.
    #[error("no segment named {0:?}")]
    NotFound(String),
    /// It exists but may not be read.
    #[error("permission denied reading segment {0:?}")]
    PermissionDenied(String),
    /// The name is not a regular file (a FIFO, a symlink, a directory, …): not opened
    /// further.
    #[error("{name:?} is {kind}, not a segment file")]
    NotAFile {
        /// The segment name.
        name: String,
        /// What it is: `"a FIFO"`, `"a symbolic link"`, ….
        kind: &'static str,
    },
    /// It is not a shmkit segment (no magic).
    #[error("{0:?} is not a shmkit segment")]
    NotShmkit(String),
    /// Its bytes do not make sense.
    #[error("segment {name:?} is corrupt: {what}: {detail}")]
    Corrupt {
        /// The segment.
        name: String,
        /// Which field or structure.
        what: String,
        /// The offending value.
        detail: String,
    },
    /// Reading it failed otherwise.
    #[error("cannot read segment {name:?}")]
    Io {
        /// The segment.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
}

pub(crate) fn corrupt(name: &str, e: SegmentError) -> InspectError {
    match e {
        SegmentError::Corrupt { what, detail } => InspectError::Corrupt {
            name: name.to_owned(),
            what: what.to_owned(),
            detail: detail.replace("\"<image>\" ", ""),
        },
        other => InspectError::Corrupt {
            name: name.to_owned(),
            what: "header".into(),
            detail: other.to_string(),
        },
    }
}
