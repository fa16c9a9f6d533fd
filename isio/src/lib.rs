//! ImageStreamIO (milk / cacao) streams: the format the adaptive-optics community's real-time
//! pipelines share camera and mirror data through, read and written so a lab keeps its milk
//! tools running beside shmkit.
//!
//! A stream is a file, `$MILK_SHM_DIR/<name>.im.shm` (default `/milk/shm`, else `/tmp`),
//! holding a 384-byte header, one frame of data, keywords, process-shared semaphores (unnamed
//! `sem_t`s inside the file: format 2.00) that the writer posts after each frame, and a few
//! PID and status arrays. [`layout`] owns the bytes, [`dir`] the directory and names,
//! `stream` the mapping, `sem` the semaphores, [`time`] the clock crossing; [`writer`] writes
//! frames exactly as the reference writer does and [`reader`] copies them out tear-free; the
//! [`Exporter`] (a frame ring into a stream) and the [`Importer`] (a stream into a frame ring)
//! are those two driven by a ring.
//!
//! Everything read from a stream file is hostile input: sizes, counts and offsets are checked
//! before anything is attached, and a torn copy (the writer's counter or write flag changed
//! during it) is dropped and counted, never published.

pub mod dir;
pub mod export;
pub mod import;
pub mod layout;
pub mod reader;
pub mod sem;
pub use sem::SemError;
mod stream;
mod sys;
pub mod time;
pub mod writer;

pub use dir::{list, shm_dir, StreamInfo};
pub use export::{ExportOptions, ExportStats, Exporter};
pub use import::{ImportOptions, ImportStats, Importer};
pub use layout::DataType;
pub use reader::{Copied, FrameInfo, StreamReader};
pub use writer::{FrameMeta, StreamOptions, StreamWriter};

use std::path::PathBuf;

/// What can go wrong with a stream.
#[derive(Debug, thiserror::Error)]
pub enum IsioError {
    /// The caller's interrupt check said stop while waiting.
    #[error("interrupted while waiting for the stream's writer")]
    Interrupted,
    /// A stream name ImageStreamIO cannot hold or that would leave its directory.
    #[error("stream name {name:?}: {reason}")]
    Name {
        /// The name.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// The file is shorter than the 384-byte header.
    #[error("{len} bytes: shorter than the 384-byte stream header")]
    TooShort {
        /// Its length.
        len: u64,
    },
    /// Another format version.
    #[error("stream format version {found:?}; this reader speaks 2.00")]
    Version {
        /// The version string found.
        found: String,
    },
    /// Not 1 to 3 axes.
    #[error("{naxis} axes; a stream has 1 to 3")]
    Axes {
        /// Axes claimed.
        naxis: u8,
    },
    /// Sizes inconsistent with the element count.
    #[error(
        "sizes {size:?} do not make the {nelement} elements the header claims (or exceed 10^10)"
    )]
    Shape {
        /// Sizes.
        size: Vec<u32>,
        /// Elements claimed.
        nelement: u64,
    },
    /// An element type code ImageStreamIO does not define.
    #[error("element type code {code} is not an ImageStreamIO type")]
    UnknownType {
        /// The code.
        code: u8,
    },
    /// An ImageStreamIO element type no shmkit frame ring holds.
    #[error("element type {name} (code {code}) has no shmkit equivalent")]
    UnsupportedType {
        /// Its name.
        name: &'static str,
        /// Its code.
        code: u8,
    },
    /// A shape shmkit cannot export (more than 3 axes, or empty).
    #[error("shape {shape:?}: a stream has 1 to 3 non-empty axes")]
    Unexportable {
        /// The ring's shape.
        shape: Vec<u32>,
    },
    /// A GPU stream.
    #[error("the stream's data is on GPU {location}; only CPU streams are supported")]
    Gpu {
        /// GPU index.
        location: i8,
    },
    /// The regions the header describes do not end where the file does.
    #[error("the header describes a {expected}-byte file; it has {found}")]
    FileSize {
        /// Size the header implies.
        expected: u64,
        /// Actual size.
        found: u64,
    },
    /// Something else inconsistent.
    #[error("corrupt stream: {0}")]
    Corrupt(&'static str),
    /// Every semaphore is taken by a live reader.
    #[error("all {count} semaphores of the stream are taken by live readers")]
    NoSemaphore {
        /// Semaphores.
        count: u16,
    },
    /// The stream belongs to a live writer.
    #[error("{path} is written by process {pid}, which is alive")]
    InUse {
        /// The stream file.
        path: PathBuf,
        /// Its writer.
        pid: i32,
    },
    /// The stream file went away or was re-created with another shape or type.
    #[error("{path} changed: {reason}")]
    Changed {
        /// The stream file.
        path: PathBuf,
        /// What changed.
        reason: String,
    },
    /// A semaphore of the stream holds bytes glibc would never write (another process
    /// vandalised it): refused rather than handed to a call that could abort.
    #[error("semaphore {index} of {path}: {source}")]
    Semaphore {
        /// The stream file.
        path: PathBuf,
        /// The semaphore's index.
        index: u16,
        /// What is wrong with it.
        source: SemError,
    },
    /// What is at a stream's path is not a regular file (a FIFO, a symbolic link, a
    /// directory, …): refused without following or waiting on it.
    #[error("{path} is {found}, not a stream file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is there.
        found: &'static str,
    },
    /// The stream file belongs to another user who was not named as trusted: in a shared
    /// directory such as the `/tmp` fallback, anyone can plant a file under a stream's name.
    #[error(
        "{path} belongs to uid {owner}, not to this user; name that owner as trusted \
         (`--trust-owner {owner}`, `ImportOptions::trusted_owners`) to read it"
    )]
    Owner {
        /// The stream file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// An operating-system call failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A rate limit that is not a positive number of frames per second.
    #[error("rate limit {rate}: a rate is a finite number of frames per second > 0")]
    Rate {
        /// The rate given.
        rate: f64,
    },
    /// The frame ring refused.
    #[error(transparent)]
    Ring(#[from] shmkit::rings::RingError),
    /// The segment refused.
    #[error(transparent)]
    Segment(#[from] shmkit::segment::SegmentError),
}

impl IsioError {
    fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> IsioError {
        IsioError::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }
}
