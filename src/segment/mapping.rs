//! The mapping of a segment and the only code that turns its addresses into references.
//!
//! Every accessor takes an offset, checks it against the mapping's length and the type's
//! alignment with checked arithmetic, and only then forms a reference. References are to
//! atomics (or state structs made only of atomics), which any byte pattern and any concurrent
//! writer in another process leave valid.

use super::image::SegmentBytes;
use super::MemoryOptions;
use crate::sync::SharedWord;
use crate::sys::shm;
use memmap2::MmapRaw;
use std::fs::File;
use std::io;
use std::mem::{align_of, size_of};
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A `MAP_SHARED` read-write mapping of a whole segment.
pub(crate) struct Mapping {
    raw: MmapRaw,
    len: u64,
}

impl Mapping {
    /// Maps `len` bytes of `fd`, then applies `memory`.
    pub(crate) fn map(fd: OwnedFd, len: u64, memory: MemoryOptions) -> io::Result<Mapping> {
        let size =
            usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let file = File::from(fd);
        let raw = shm::map_shared(&file, size)?;
        let map = Mapping { raw, len };
        if memory.prefault || memory.lock_in_memory {
            // SAFETY: the range is exactly our live mapping.
            unsafe { shm::prefault(map.raw.as_mut_ptr(), size)? };
        }
        if memory.lock_in_memory {
            // SAFETY: the range is exactly our live mapping.
            unsafe { shm::lock_in_memory(map.raw.as_mut_ptr(), size)? };
        }
        Ok(map)
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// A pointer to `size` bytes at `offset`, if they lie inside the mapping and `offset` is
    /// a multiple of `align`.
    pub(crate) fn ptr_at(&self, offset: u64, size: u64, align: u64) -> Option<NonNull<u8>> {
        let end = offset.checked_add(size)?;
        if end > self.len || align == 0 || offset % align != 0 {
            return None;
        }
        // The mapping's base is page-aligned, so offset alignment is address alignment.
        // SAFETY: `offset + size <= len`, so the result stays inside the mapping.
        NonNull::new(unsafe { self.raw.as_mut_ptr().add(offset as usize) })
    }

    /// The typed view `V` at `offset`, if it lies inside the mapping, aligned for `V`.
    pub(crate) fn view_at<V: SharedWord>(&self, offset: u64) -> Option<&V> {
        let ptr = self.ptr_at(offset, size_of::<V>() as u64, align_of::<V>() as u64)?;
        // SAFETY: `ptr_at` checked that `size_of::<V>()` bytes at an address aligned for `V`
        // lie inside the mapping, which lives as long as `&self`; a `SharedWord` is valid for
        // any bytes and is written by other processes only through atomics.
        Some(unsafe { ptr.cast::<V>().as_ref() })
    }

    /// The `AtomicU32` at `offset` (checked bounds and alignment).
    pub(crate) fn atomic_u32(&self, offset: u64) -> Option<&AtomicU32> {
        let ptr = self.ptr_at(offset, 4, 4)?;
        // SAFETY: in bounds and aligned (checked above); the mapping outlives `&self`; an
        // AtomicU32 is valid for any bytes and tolerates concurrent atomic access by others.
        Some(unsafe { AtomicU32::from_ptr(ptr.as_ptr().cast()) })
    }

    /// The `AtomicU64` at `offset` (checked bounds and alignment).
    pub(crate) fn atomic_u64(&self, offset: u64) -> Option<&AtomicU64> {
        let ptr = self.ptr_at(offset, 8, 8)?;
        // SAFETY: as in `atomic_u32`, for 8 bytes.
        Some(unsafe { AtomicU64::from_ptr(ptr.as_ptr().cast()) })
    }
}

impl SegmentBytes for Mapping {
    fn len(&self) -> u64 {
        self.len
    }

    fn load_u32(&self, offset: u64) -> Option<u32> {
        self.atomic_u32(offset).map(|a| a.load(Ordering::Relaxed))
    }

    fn load_u64(&self, offset: u64) -> Option<u64> {
        self.atomic_u64(offset).map(|a| a.load(Ordering::Relaxed))
    }
}
