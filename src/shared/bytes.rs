//! [`SharedBytes`]: a shared value whose type is described at run time — a name, a size and an
//! alignment — instead of by a Rust type. It is what a binding shares a numpy dtype through.
//!
//! The block is the one [`Shared<T>`](super::Shared) uses (same header, same fingerprint check
//! at attach), so `Shared<T>` and `SharedBytes` handles of one value refuse each other unless
//! the run-time name matches `T`'s. Access copies in or out under the value's mutex; no
//! reference into the segment is ever handed out, so holding the mutex reentrantly (a Python
//! `with value.mutex:` around several reads and writes) cannot alias anything.

use super::value::{attach_block, place_block, Fingerprint, StoredType};
use super::SharedError;
use crate::primitives::{Held, Mutex};
use crate::segment::{sealed, Placed, Segment, SegmentError, SegmentObject};
use crate::sync::{Interrupt, Timeout};
use shm_layout::ObjectKind;
use std::borrow::Cow;
use std::ptr::NonNull;

/// What a [`SharedBytes`] holds: the name its fingerprint hashes, its alignment and its
/// initial bytes (their length is the value's size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BytesSpec {
    type_name: String,
    align: u32,
    init: Vec<u8>,
}

impl BytesSpec {
    /// A value of type `type_name` (any text naming the layout, e.g. a numpy dtype and shape),
    /// aligned to `align` (a power of two up to 4096), starting as `init`.
    pub fn new(
        type_name: impl Into<String>,
        align: u32,
        init: Vec<u8>,
    ) -> Result<BytesSpec, SegmentError> {
        if !align.is_power_of_two() || align > 4096 {
            return Err(SegmentError::InvalidOption(format!(
                "a shared value's alignment must be a power of two up to 4096, not {align}"
            )));
        }
        Ok(BytesSpec {
            type_name: type_name.into(),
            align,
            init,
        })
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::new(
            Cow::Owned(self.type_name.clone()),
            self.init.len() as u64,
            self.align,
        )
    }
}

/// A value of run-time type in a segment, with its robust mutex. Cheap to clone.
#[derive(Clone)]
pub struct SharedBytes {
    mutex: Mutex,
    value: NonNull<u8>,
    len: usize,
    offset: u64,
    stored: StoredType,
}

// SAFETY: the bytes are only read or written under the process-shared mutex, which serialises
// threads as it does processes, and never through a reference that outlives the copy; the
// mapping is kept alive by `mutex`'s handle.
unsafe impl Send for SharedBytes {}
// SAFETY: as above.
unsafe impl Sync for SharedBytes {}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBytes")
            .field("len", &self.len)
            .field("mutex", &self.mutex)
            .finish()
    }
}

impl SharedBytes {
    /// The value's mutex: hold it to make several reads and writes one critical section
    /// (reads and writes by its holder do not lock again), or to repair the value after a
    /// holder died.
    pub fn mutex(&self) -> &Mutex {
        &self.mutex
    }

    /// Offset of the value's block in its segment.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The value's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The type name the value was created with (truncated to 40 bytes; the fingerprint
    /// compared on open covers all of it).
    pub fn type_name(&self) -> &str {
        &self.stored.name
    }

    /// The value's alignment.
    pub fn align(&self) -> u32 {
        self.stored.align
    }

    /// Whether the value has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the value into `out` (exactly [`len`](Self::len) bytes).
    pub fn read(
        &self,
        out: &mut [u8],
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<(), SharedError> {
        self.check_len(out.len())?;
        self.under_lock(timeout, interrupt, || {
            // SAFETY: `value` holds `len` bytes (checked at attach) and the mutex is held, so
            // no other process or thread writes them meanwhile; `out` is a separate buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(self.value.as_ptr(), out.as_mut_ptr(), self.len)
            }
        })
    }

    /// Replaces the value with `bytes` (exactly [`len`](Self::len) of them).
    pub fn write(
        &self,
        bytes: &[u8],
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<(), SharedError> {
        self.check_len(bytes.len())?;
        self.under_lock(timeout, interrupt, || {
            // SAFETY: as in `read`, with the copy going the other way.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.value.as_ptr(), self.len) }
        })
    }

    fn check_len(&self, got: usize) -> Result<(), SharedError> {
        if got == self.len {
            Ok(())
        } else {
            Err(SharedError::WrongLength {
                expected: self.len,
                got,
            })
        }
    }

    /// Runs `copy` holding the mutex: in the caller's own hold if it has one (its critical
    /// section, possibly a repair), else in a hold taken and released here. A previous
    /// holder's death is reported, not repaired: the value's invariants are the user's.
    fn under_lock(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
        copy: impl FnOnce(),
    ) -> Result<(), SharedError> {
        if self.mutex.held_by_current_thread() {
            copy();
            return Ok(());
        }
        match self.mutex.acquire(timeout, interrupt)? {
            Held::OwnerDied { previous } => {
                self.mutex
                    .release_inconsistent()
                    .expect("the mutex was just acquired by this thread");
                Err(SharedError::OwnerDied { previous })
            }
            Held::Once | Held::Reentered { .. } => {
                copy();
                self.mutex
                    .release()
                    .expect("the mutex was just acquired by this thread");
                Ok(())
            }
        }
    }
}

impl sealed::Sealed for SharedBytes {}

impl SegmentObject for SharedBytes {
    /// The value's type and initial bytes (written by the creator only).
    type Params = BytesSpec;
    const KIND: ObjectKind = ObjectKind::Shared;

    fn attach(segment: &Segment, offset: u64) -> Result<SharedBytes, SegmentError> {
        let (mutex, value, stored) = attach_block(segment, offset)?;
        let len = usize::try_from(stored.size).map_err(|_| SegmentError::BadOffset {
            offset,
            reason: "shared value larger than the address space",
        })?;
        Ok(SharedBytes {
            mutex,
            value,
            len,
            offset,
            stored,
        })
    }

    fn place(segment: &Segment, spec: &BytesSpec) -> Result<Placed, SegmentError> {
        place_block(segment, &spec.fingerprint(), &spec.init)
    }

    fn mismatch(&self, spec: &BytesSpec) -> Option<String> {
        // The initial bytes only matter to the creator.
        self.stored.mismatch(&spec.fingerprint())
    }
}
