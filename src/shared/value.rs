//! `Shared<T>`: a plain-data value in the segment with its own robust mutex (the Python
//! system's "mutexed namespace").
//!
//! The block is a [`shm_layout::SharedHeader`] (mutex, then the type fingerprint: FNV hash of
//! the type name, size, alignment, and the name itself for messages) followed by the value.
//! Every attach compares the fingerprint, so a process built with another `T` gets a typed
//! error naming both types instead of reinterpreting bytes.
//!
//! The value is ordinary memory, touched only by the mutex holder (ARCHITECTURE.md, invariant 1).
//! `&mut T` is handed out only through a guard that is the thread's sole hold on the mutex, so
//! a reentrant second lock can never alias it.

use crate::primitives::{Acquired, LockError, Mutex, MutexGuard, MutexState, OwnerInfo};
use crate::segment::{sealed, Placed, Segment, SegmentError, SegmentObject};
use crate::sync::{
    shared_view, AtomicU32, AtomicU64, Interrupt, NoInterrupt, Ordering, SharedWord, Timeout,
};
use shm_layout::{
    fnv1a_bytes, validate, BlockKind, ObjectKind, SharedHeader, SHARED_TYPE_NAME_MAX,
};
use std::borrow::Cow;
use std::marker::PhantomData;
use std::mem::align_of;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU8;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Plain data that may live in a segment: valid for any bytes, no pointers, no padding.
/// Derive zerocopy's `FromBytes`, `IntoBytes`, `KnownLayout` and `Immutable` (and `Copy`).
pub trait PlainData: FromBytes + IntoBytes + KnownLayout + Immutable + Copy + 'static {}

impl<T: FromBytes + IntoBytes + KnownLayout + Immutable + Copy + 'static> PlainData for T {}

/// What a shared-value block records about its type, compared at every attach.
pub(super) struct Fingerprint {
    hash: u64,
    size: u64,
    align: u32,
    name: Cow<'static, str>,
}

impl Fingerprint {
    fn of<T: PlainData>() -> Fingerprint {
        Fingerprint::new(
            Cow::Borrowed(std::any::type_name::<T>()),
            size_of::<T>() as u64,
            align_of::<T>() as u32,
        )
    }

    /// The fingerprint of a type described at run time (`align` a power of two up to 4096).
    pub(super) fn new(name: Cow<'static, str>, size: u64, align: u32) -> Fingerprint {
        Fingerprint {
            // Size and alignment are mixed in so that a type renamed but reshaped differs too.
            hash: fnv1a_bytes(name.as_bytes())
                ^ size.rotate_left(17)
                ^ u64::from(align).rotate_left(41),
            size,
            align,
            name,
        }
    }
}

/// Why a shorthand operation on a shared value failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedError {
    /// The mutex could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A previous holder died; the value may be half-updated. Shorthands do not guess: lock
    /// with [`Shared::lock`], check the value, and make it consistent.
    #[error("a previous holder ({previous:?}) died while holding the value; lock it, repair it and call make_consistent")]
    OwnerDied {
        /// The dead holder.
        previous: Option<OwnerInfo>,
    },
    /// This thread already holds the value's mutex (a second typed guard would alias `&mut`).
    #[error("this thread already holds the value's mutex; use the guard it has")]
    AlreadyHeld,
    /// The guard passed in does not hold this value's mutex, or is not the thread's only guard.
    #[error("the guard does not hold this value's mutex alone")]
    WrongGuard,
    /// A run-time typed value was read into or written from a buffer of the wrong size.
    #[error("the value is {expected} bytes, the buffer {got}")]
    WrongLength {
        /// The value's size.
        expected: usize,
        /// The buffer's size.
        got: usize,
    },
}

/// A `T` in a segment, with its robust mutex. Cheap to clone.
pub struct Shared<T: PlainData> {
    mutex: Mutex,
    value: NonNull<T>,
    offset: u64,
    timeout: std::time::Duration,
    _type: PhantomData<T>,
}

impl<T: PlainData> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            offset: self.offset,
            mutex: self.mutex.clone(),
            value: self.value,
            timeout: self.timeout,
            _type: PhantomData,
        }
    }
}

// SAFETY: the value is only reached through guards of the process-shared mutex, which
// serialises access across threads as it does across processes; `T: Copy` plain data has no
// thread affinity. The mapping is kept alive by `mutex`'s handle.
unsafe impl<T: PlainData + Send> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: PlainData + Send> Sync for Shared<T> {}

impl<T: PlainData> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("type", &std::any::type_name::<T>())
            .field("mutex", &self.mutex)
            .finish()
    }
}

impl<T: PlainData> Shared<T> {
    /// The value's mutex, to hold one critical section across several calls, or to lock
    /// several values at once with [`crate::lock_all`].
    pub fn mutex(&self) -> &Mutex {
        &self.mutex
    }

    /// Offset of the value's block in its segment (for `Segment::attach` in another process).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// This handle, waiting at most `timeout` (default 60 s) in `lock`, `read` and `update`.
    pub fn with_lock_timeout(mut self, timeout: std::time::Duration) -> Shared<T> {
        self.timeout = timeout;
        self
    }

    /// Locks the value (60 s deadline unless set with [`with_lock_timeout`](Self::with_lock_timeout)).
    pub fn lock(&self) -> Result<Acquired<'_, T>, SharedError> {
        self.lock_interruptible(Timeout::After(self.timeout), &NoInterrupt)
    }

    /// Locks the value within `timeout`, giving up with [`LockError::Interrupted`] (as
    /// [`SharedError::Lock`]) within 100 ms of `interrupt` saying stop.
    pub fn lock_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Acquired<'_, T>, SharedError> {
        if self.mutex.held_by_current_thread() {
            return Err(SharedError::AlreadyHeld);
        }
        Ok(match self.mutex.lock_interruptible(timeout, interrupt)? {
            // SAFETY: the value is in bounds and aligned (checked at attach), lives as long as
            // the mapping the mutex handle keeps, and is touched only by holders of this
            // mutex; the guard is the thread's only hold (checked above, before locking).
            Acquired::Locked(g) => Acquired::Locked(unsafe { g.over(self.value) }),
            // SAFETY: as for `Locked`.
            Acquired::OwnerDied(g) => Acquired::OwnerDied(unsafe { g.over(self.value) }),
        })
    }

    fn locked(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<MutexGuard<'_, T>, SharedError> {
        match self.lock_interruptible(timeout, interrupt)? {
            Acquired::Locked(g) => Ok(g),
            Acquired::OwnerDied(g) => {
                let previous = g.previous_owner();
                g.release_inconsistent();
                Err(SharedError::OwnerDied { previous })
            }
        }
    }

    /// A copy of the value, read under the mutex.
    pub fn read(&self) -> Result<T, SharedError> {
        self.read_interruptible(Timeout::After(self.timeout), &NoInterrupt)
    }

    /// [`read`](Self::read) within `timeout`, giving up within 100 ms of `interrupt`.
    pub fn read_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<T, SharedError> {
        self.locked(timeout, interrupt).map(|g| *g)
    }

    /// Runs `f` on the value under the mutex: an atomic read-modify-write.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, SharedError> {
        self.update_interruptible(Timeout::After(self.timeout), &NoInterrupt, f)
    }

    /// [`update`](Self::update) within `timeout`, giving up within 100 ms of `interrupt`
    /// (before `f` runs: an interrupted update changed nothing).
    pub fn update_interruptible<R>(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, SharedError> {
        let mut g = self.locked(timeout, interrupt)?;
        Ok(f(&mut g))
    }

    /// The value, through a guard of this value's mutex taken elsewhere (e.g. by
    /// [`crate::lock_all`]). The guard must be the thread's only hold on the mutex.
    pub fn get<'g>(&self, guard: &'g MutexGuard<'_>) -> Result<&'g T, SharedError> {
        self.check_guard(guard)?;
        // SAFETY: the guard holds this value's mutex alone, and the returned borrow is tied to
        // a shared borrow of that guard, so no `&mut` to the value can exist meanwhile.
        Ok(unsafe { self.value.as_ref() })
    }

    /// The value mutably, through a guard of this value's mutex taken elsewhere.
    pub fn get_mut<'g>(&self, guard: &'g mut MutexGuard<'_>) -> Result<&'g mut T, SharedError> {
        self.check_guard(guard)?;
        // SAFETY: as in `get`, with the borrow tied to a unique borrow of the guard.
        Ok(unsafe { self.value.as_ptr().as_mut().expect("non-null") })
    }

    fn check_guard(&self, guard: &MutexGuard<'_>) -> Result<(), SharedError> {
        if guard.mutex().same_as(&self.mutex) && guard.is_sole() {
            Ok(())
        } else {
            Err(SharedError::WrongGuard)
        }
    }
}

shared_view! {
    /// The header's words: the value's mutex, then the type fingerprint.
    struct SharedHeaderView mirrors SharedHeader, align(64) {
        mutex: MutexState,
        type_hash: AtomicU64,
        size: AtomicU64,
        align: AtomicU32,
        type_name_len: AtomicU32,
        type_name: [AtomicU8; SHARED_TYPE_NAME_MAX],
    }
}

impl<T: PlainData> sealed::Sealed for Shared<T> {}

impl<T: PlainData> SegmentObject for Shared<T> {
    /// The initial value, written by the creator only.
    type Params = T;
    const KIND: ObjectKind = ObjectKind::Shared;

    fn attach(segment: &Segment, offset: u64) -> Result<Shared<T>, SegmentError> {
        let (mutex, value, stored) = attach_block(segment, offset)?;
        // A matching fingerprint means the recorded size and alignment are `T`'s, so the
        // pointer holds an aligned `T`.
        if let Some(detail) = stored.mismatch(&Fingerprint::of::<T>()) {
            return Err(SegmentError::ParamMismatch {
                name: format!("shared value at offset {offset}"),
                detail,
            });
        }
        Ok(Shared {
            mutex,
            value: value.cast::<T>(),
            offset,
            timeout: crate::primitives::DEFAULT_LOCK_TIMEOUT,
            _type: PhantomData,
        })
    }

    fn place(segment: &Segment, init: &T) -> Result<Placed, SegmentError> {
        place_block(segment, &Fingerprint::of::<T>(), init.as_bytes())
    }

    fn mismatch(&self, _: &T) -> Option<String> {
        // The type was compared at attach; the initial value only matters to the creator.
        None
    }
}

/// What an attached shared-value block says about its type.
#[derive(Debug, Clone)]
pub(super) struct StoredType {
    /// The fingerprint's hash.
    pub(super) hash: u64,
    /// The value's size in bytes.
    pub(super) size: u64,
    /// The value's alignment.
    pub(super) align: u32,
    /// The type's name as recorded (truncated to `SHARED_TYPE_NAME_MAX` bytes).
    pub(super) name: String,
}

impl StoredType {
    /// `None` if this is `fp`'s type, else a sentence naming both.
    pub(super) fn mismatch(&self, fp: &Fingerprint) -> Option<String> {
        if (self.hash, self.size, self.align) == (fp.hash, fp.size, fp.align) {
            return None;
        }
        Some(format!(
            "it holds `{}` ({} bytes, align {}); `{}` ({} bytes, align {}) was asked for",
            self.name, self.size, self.align, fp.name, fp.size, fp.align
        ))
    }
}

/// Attaches the shared-value block at `offset`: its mutex, a pointer to its value bytes
/// (`size` of them, aligned to `align`, both as the block records them) and its type.
pub(super) fn attach_block(
    segment: &Segment,
    offset: u64,
) -> Result<(Mutex, NonNull<u8>, StoredType), SegmentError> {
    let block = segment.view_of_kind::<SharedHeaderView>(offset, BlockKind::Shared)?;
    let h = block.view.load_plain();
    let g = validate::shared(&h, block.size).map_err(SegmentError::invalid_object)?;
    // SAFETY: the validator checked that `value_offset + size` bytes lie in the block.
    let value = unsafe { block.base.add(g.value_offset as usize) };
    if value.as_ptr() as usize % g.align as usize != 0 {
        return Err(SegmentError::BadOffset {
            offset,
            reason: "shared value misaligned for its type",
        });
    }
    let stored = StoredType {
        hash: h.type_hash,
        size: g.size,
        align: g.align,
        name: String::from_utf8_lossy(&h.type_name[..g.type_name_len]).into_owned(),
    };
    Ok((
        segment.mutex_in_block(offset, BlockKind::Shared)?,
        value,
        stored,
    ))
}

/// Places a shared-value block for `fp`, its value initialised from `init` (`fp.size` bytes).
pub(super) fn place_block(
    segment: &Segment,
    fp: &Fingerprint,
    init: &[u8],
) -> Result<Placed, SegmentError> {
    assert_eq!(
        init.len() as u64,
        fp.size,
        "initial bytes match the fingerprint's size"
    );
    let align = u64::from(fp.align).max(64);
    let value_offset = SharedHeader::value_offset(fp.align as usize) as u64;
    let size = value_offset + fp.size;
    let offset =
        segment.allocate_view::<SharedHeaderView>(BlockKind::Shared, size, align, |h, block| {
            let name = &fp.name.as_bytes()[..fp.name.len().min(SHARED_TYPE_NAME_MAX)];
            h.type_hash.store(fp.hash, Ordering::Relaxed);
            h.size.store(fp.size, Ordering::Relaxed);
            h.align.store(fp.align, Ordering::Relaxed);
            h.type_name_len.store(name.len() as u32, Ordering::Relaxed);
            for (cell, &b) in h.type_name.iter().zip(name) {
                cell.store(b, Ordering::Relaxed);
            }
            let value = block.as_ptr().wrapping_add(value_offset as usize);
            // SAFETY: the unpublished block is ours (allocator lock held) and holds
            // `value_offset + init.len()` bytes; `init` is a separate buffer.
            unsafe { std::ptr::copy_nonoverlapping(init.as_ptr(), value, init.len()) };
        })?;
    Ok(Placed {
        offset,
        size,
        param: fp.hash,
    })
}
