//! Everything that can go wrong creating, opening, allocating in or attaching to a segment.

use shm_layout::BlockKind;
use std::time::Duration;

/// A segment operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The name is not a valid segment name.
    #[error("invalid segment name {name:?}: it {reason}")]
    InvalidName {
        /// The rejected name (escaped).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No segment has this name.
    #[error("segment {name:?} does not exist; create it first")]
    NotFound {
        /// The segment name.
        name: String,
    },
    /// `create` found a segment of this name already.
    #[error("segment {name:?} already exists; open it, or unlink it if it is stale")]
    AlreadyExists {
        /// The segment name.
        name: String,
    },
    /// The OS refused access (mode bits).
    #[error("permission denied on segment {name:?}")]
    PermissionDenied {
        /// The segment name.
        name: String,
    },
    /// The segment belongs to another user; shmkit does not open it by default.
    #[error("segment {name:?} is owned by uid {owner}, not by this process's uid {ours}")]
    WrongOwner {
        /// The segment name.
        name: String,
        /// Its owner.
        owner: u32,
        /// Our effective uid.
        ours: u32,
    },
    /// The segment is smaller than its header, or than the size its header claims.
    #[error("segment {name:?} is {size} bytes, but at least {needed} are needed")]
    TooSmall {
        /// The segment name.
        name: String,
        /// Its actual size.
        size: u64,
        /// The size needed.
        needed: u64,
    },
    /// The creator has not finished initialising the segment within the open timeout.
    #[error("segment {name:?} is still being initialised by pid {creator_pid} after {waited:?}")]
    StillInitialising {
        /// The segment name.
        name: String,
        /// The creator's pid (0 if it has not written it yet).
        creator_pid: u32,
        /// How long `open` waited.
        waited: Duration,
    },
    /// The creator died before finishing the segment: it is garbage; unlink it.
    #[error(
        "segment {name:?} was left half-initialised by pid {creator_pid}, which is dead; unlink it"
    )]
    CreatorDied {
        /// The segment name.
        name: String,
        /// The dead creator's pid.
        creator_pid: u32,
    },
    /// The segment was made by an incompatible version of shmkit.
    #[error("segment {name:?} has layout version {found_major}.{found_minor}; this build reads {expected_major}.x")]
    VersionMismatch {
        /// The segment name.
        name: String,
        /// Major version found.
        found_major: u16,
        /// Minor version found.
        found_minor: u16,
        /// Major version this build understands.
        expected_major: u16,
    },
    /// Same version, different layout hash: two builds disagree on the bytes.
    #[error("segment {name:?} has layout hash {found:#018x}, this build has {expected:#018x}; rebuild both sides from the same shmkit")]
    LayoutMismatch {
        /// The segment name.
        name: String,
        /// Hash found.
        found: u64,
        /// Hash of this build.
        expected: u64,
    },
    /// A field holds a value no shmkit process writes.
    #[error("corrupt segment: {what} ({detail})")]
    Corrupt {
        /// Which field or structure.
        what: &'static str,
        /// The offending value and what was expected.
        detail: String,
    },
    /// Creation options are invalid.
    #[error("invalid segment option: {0}")]
    InvalidOption(String),
    /// The segment has no room for an allocation.
    #[error("segment full: {requested} bytes requested, {available} available")]
    OutOfSpace {
        /// Bytes the allocation needs (with header and alignment).
        requested: u64,
        /// Bytes left.
        available: u64,
    },
    /// An offset does not point at an allocated object.
    #[error("offset {offset} does not hold an object: {reason}")]
    BadOffset {
        /// The offset.
        offset: u64,
        /// Why.
        reason: &'static str,
    },
    /// An offset holds another kind of object.
    #[error("offset {offset} holds a {found}, not a {expected}")]
    WrongKind {
        /// The offset.
        offset: u64,
        /// The kind asked for.
        expected: &'static str,
        /// The kind found.
        found: &'static str,
    },
    /// `close` found other handles (segment clones or object handles) still mapping it; the
    /// mapping is released when the last of them is dropped.
    #[error("segment closed, but {handles} other handle(s) still keep it mapped")]
    StillInUse {
        /// Handles still alive.
        handles: usize,
    },
    /// An object name is not valid.
    #[error("invalid object name {name:?}: it {reason}")]
    InvalidObjectName {
        /// The rejected name (escaped).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The name exists with another kind of object.
    #[error("{name:?} is a {existing}, not a {requested}")]
    KindMismatch {
        /// The name.
        name: String,
        /// What it is.
        existing: &'static str,
        /// What was asked for.
        requested: &'static str,
    },
    /// `open` found no object of that name.
    #[error("no {kind} named {name:?} exists; create it first")]
    ObjectNotFound {
        /// The name asked for.
        name: String,
        /// The kind asked for.
        kind: &'static str,
    },
    /// `create` found the name taken.
    #[error("{name:?} already exists (asked to create a {kind}); open it instead")]
    ObjectExists {
        /// The name.
        name: String,
        /// The kind asked for.
        kind: &'static str,
    },
    /// An existing object has other parameters than the opener asked for.
    #[error("{name:?} does not match: {detail}")]
    ParamMismatch {
        /// The name.
        name: String,
        /// Both sides.
        detail: String,
    },
    /// Every entry of the named-object table is used.
    #[error("the named-object table is full ({capacity} entries); create the segment with a larger table_capacity")]
    TableFull {
        /// Entries in the table.
        capacity: usize,
    },
    /// Another live process is creating this name and did not finish in time.
    #[error("{name:?} is being created by pid {creator_pid} (tid {tid}), which did not finish within {waited:?}")]
    EntryBusy {
        /// The name.
        name: String,
        /// The creator's pid.
        creator_pid: u32,
        /// The creator's tid.
        tid: u32,
        /// How long this call waited.
        waited: Duration,
    },
    /// The allocator's lock failed (its holder hung, or the lock is corrupt).
    #[error("the segment allocator lock failed")]
    AllocatorLock(#[from] crate::primitives::LockError),
    /// Another system call failed.
    #[error("{op} on segment {name:?} failed")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The segment name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl SegmentError {
    pub(crate) fn wrong_kind(offset: u64, expected: BlockKind, found: BlockKind) -> Self {
        SegmentError::WrongKind {
            offset,
            expected: expected.name(),
            found: found.name(),
        }
    }
}

impl SegmentError {
    /// An object's bytes failed its kind's validator.
    pub(crate) fn invalid_object(invalid: shm_layout::validate::Invalid) -> SegmentError {
        SegmentError::Corrupt {
            what: invalid.object,
            detail: format!(
                "{} = {}, expected {}",
                invalid.field, invalid.value, invalid.expected
            ),
        }
    }

    /// This error, with a parameter mismatch found at attach renamed to the object's name.
    pub(crate) fn for_name(self, name: &str) -> SegmentError {
        match self {
            SegmentError::ParamMismatch { detail, .. } => SegmentError::ParamMismatch {
                name: name.to_owned(),
                detail,
            },
            other => other,
        }
    }

    /// A creator's parameters are not a valid object.
    pub(crate) fn invalid_params(invalid: shm_layout::validate::Invalid) -> SegmentError {
        SegmentError::InvalidOption(invalid.to_string())
    }
}
