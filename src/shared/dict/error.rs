//! Why a dictionary operation failed.

use crate::primitives::{LockError, OwnerInfo};

/// Longest key in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Why a dictionary operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DictError {
    /// The mutex could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A holder died mid-operation. The dictionary has been repaired (every key whose record
    /// was intact kept its last committed value) and is consistent again; retry the operation.
    #[error("a holder ({previous:?}) died inside the dictionary; it was repaired ({lost} damaged records dropped); retry")]
    OwnerDied {
        /// The dead holder.
        previous: Option<OwnerInfo>,
        /// Records that could not be recovered (0 unless the region was also corrupted).
        lost: usize,
    },
    /// The key is empty or longer than [`MAX_KEY_LEN`].
    #[error("key of {len} bytes: keys must be 1..={MAX_KEY_LEN} bytes")]
    BadKey {
        /// Its length.
        len: usize,
    },
    /// The dictionary already holds its maximum number of keys.
    #[error("dictionary full: it holds its maximum of {max} keys")]
    TooManyKeys {
        /// The maximum.
        max: u32,
    },
    /// The record does not fit even after compaction.
    #[error("dictionary out of space: a {needed}-byte record does not fit in the {available} bytes left")]
    OutOfSpace {
        /// Bytes the record needs.
        needed: u64,
        /// Bytes free after compaction.
        available: u64,
    },
    /// The region holds values no shmkit process writes.
    #[error("corrupt dictionary: {what} ({detail})")]
    Corrupt {
        /// Which structure.
        what: &'static str,
        /// Details.
        detail: String,
    },
    /// A value could not be serialised.
    #[error(transparent)]
    Encode(crate::codec::CodecError),
    /// A stored value does not decode as the requested type.
    #[error("value of {key:?} does not decode as the requested type")]
    Decode {
        /// The key.
        key: String,
        /// The decoder's error.
        #[source]
        source: crate::codec::CodecError,
    },
}

pub(super) fn corrupt(what: &'static str, detail: String) -> DictError {
    DictError::Corrupt { what, detail }
}
