//! `SharedDict`: string keys to byte values in a fixed region of the segment, every operation
//! under the dictionary's robust mutex (the Python system's `MutexedDict`, without its racy
//! snapshots: `keys()`, `values()` and `items()` are taken in one critical section).
//!
//! Layout and crash-consistency rules are in `shm-layout/src/dict.rs`. Removal frees space:
//! when a record does not fit, the live records are compacted into the other half of the
//! region and `active` flips (so a holder killed mid-compaction loses nothing). Every offset
//! and length read from the region is checked before use; a bad one is
//! [`DictError::Corrupt`].
//!
//! Files: `error.rs`, this file (the handle, raw access to the region, reading records and
//! finding keys), `repair.rs` (locking, repair after a death), `ops.rs` (operations on
//! bytes, compaction), `typed.rs` (serde values), `view.rs`, `attach.rs`.

use crate::primitives::Mutex;
use crate::sync::{AtomicU64, Ordering};
use shm_layout::validate::DictGeometry;
use shm_layout::{fnv1a_bytes, DictHeader, DICT_RECORD_HEADER, DICT_TOMBSTONE};
use std::mem::size_of;
use std::ptr::NonNull;
use view::DictHeaderView;

mod attach;
mod error;
mod ops;
mod repair;
mod typed;
mod view;

pub use attach::DictSpec;
use error::corrupt;
pub use error::{DictError, MAX_KEY_LEN};
const HEADER: u64 = size_of::<DictHeader>() as u64;

/// A dictionary in a segment. Cheap to clone.
#[derive(Clone)]
pub struct SharedDict {
    mutex: Mutex,
    offset: u64,
    base: NonNull<u8>,
    geometry: DictGeometry,
    timeout: std::time::Duration,
}

// SAFETY: the region is only touched under the process-shared mutex, which serialises threads
// as it serialises processes; the mapping is kept alive by `mutex`'s handle.
unsafe impl Send for SharedDict {}
// SAFETY: as above.
unsafe impl Sync for SharedDict {}

impl std::fmt::Debug for SharedDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDict")
            .field("max_entries", &self.geometry.max_entries)
            .field("data_capacity", &self.geometry.data_capacity)
            .finish()
    }
}

/// Where a key is, or where it would go.
enum Slot {
    Found { slot: u32, record: u64 },
    Vacant { slot: u32 },
}

/// One live record, as read.
struct Record {
    key_len: usize,
    value_len: usize,
    size: u64,
}

fn record_size(key_len: usize, value_len: usize) -> u64 {
    (DICT_RECORD_HEADER as u64 + key_len as u64 + value_len as u64).next_multiple_of(8)
}

fn key_hash(key: &[u8]) -> u64 {
    fnv1a_bytes(key)
}

impl SharedDict {
    /// The dictionary's mutex (its state, for inspection). To make several operations one
    /// critical section, hold [`lock`](Self::lock) instead: it repairs the dictionary after a
    /// holder's death, which a plain lock of this mutex does not.
    pub fn mutex(&self) -> &Mutex {
        &self.mutex
    }

    /// Locks the dictionary for a critical section of several operations (they lock it again
    /// reentrantly). If a holder died inside, the dictionary is repaired first and the call
    /// returns [`DictError::OwnerDied`] (the lock not taken; retry), as every operation does.
    pub fn lock(&self) -> Result<crate::primitives::MutexGuard<'_>, DictError> {
        self.locked_guard()
    }

    /// This handle, waiting at most `timeout` (default 60 s) for the dictionary's mutex.
    pub fn with_lock_timeout(mut self, timeout: std::time::Duration) -> SharedDict {
        self.timeout = timeout;
        self
    }

    /// The wait for the mutex of an operation without its own timeout (60 s unless set
    /// with [`with_lock_timeout`](Self::with_lock_timeout)).
    pub(super) fn default_timeout(&self) -> crate::sync::Timeout {
        crate::sync::Timeout::After(self.timeout)
    }

    /// Offset of the dictionary in its segment (for `Segment::attach` in another process).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Its capacity, as read from the segment.
    pub fn spec(&self) -> DictSpec {
        DictSpec {
            max_entries: self.geometry.max_entries,
            data_bytes: self.geometry.data_capacity,
        }
    }

    /// Most keys it can hold.
    pub fn max_entries(&self) -> u32 {
        self.geometry.max_entries
    }

    // ---- raw access (only under the mutex) ----

    /// The header's shared words.
    pub(super) fn header(&self) -> &DictHeaderView {
        // SAFETY: attach checked that the block at `base` holds the whole dictionary
        // (`geometry.size` bytes, at least the header) at a 64-aligned offset; atomics only;
        // the mutex handle keeps the mapping alive as long as `&self`.
        unsafe { self.base.cast::<DictHeaderView>().as_ref() }
    }

    /// Both index halves: `2 × slots` words after the header.
    fn index_words(&self) -> &[AtomicU64] {
        // SAFETY: as in `header`; the index halves follow the 128-byte header inside the
        // checked block, 8-aligned.
        unsafe {
            std::slice::from_raw_parts(
                self.base.as_ptr().add(HEADER as usize).cast::<AtomicU64>(),
                self.geometry.slots as usize * 2,
            )
        }
    }

    /// Index word `slot` of half `half` (both below their bounds, else a panic: a bug).
    pub(super) fn index(&self, half: u32, slot: u32) -> &AtomicU64 {
        assert!(half < 2 && slot < self.geometry.slots);
        &self.index_words()[(half * self.geometry.slots + slot) as usize]
    }

    /// `len` bytes of data half `half` at `at`, bounds-checked.
    fn data(&self, half: u32, at: u64, len: u64) -> Result<*mut u8, DictError> {
        if at
            .checked_add(len)
            .is_none_or(|e| e > self.geometry.data_capacity)
        {
            return Err(corrupt(
                "record bounds",
                format!(
                    "{len} bytes at {at} run past the data area of {}",
                    self.geometry.data_capacity
                ),
            ));
        }
        // SAFETY: `at + len <= data_capacity`, and the data half lies inside the block.
        Ok(unsafe {
            self.base
                .as_ptr()
                .add((self.geometry.data_base(half) + at) as usize)
        })
    }

    fn check_header(&self) -> Result<(u32, u64), DictError> {
        let g = &self.geometry;
        let slots = self.header().slots.load(Ordering::Relaxed);
        let max = self.header().max_entries.load(Ordering::Relaxed);
        let cap = self.header().data_capacity.load(Ordering::Relaxed);
        if (slots, max, cap) != (g.slots, g.max_entries, g.data_capacity) {
            return Err(corrupt(
                "header",
                format!("geometry changed to {slots} slots, {max} keys, {cap} bytes"),
            ));
        }
        let active = self.header().active.load(Ordering::Relaxed);
        let used = self.header().used.load(Ordering::Relaxed);
        if active > 1 || used > cap || used % 8 != 0 {
            return Err(corrupt(
                "header",
                format!("active half {active}, used {used} of {cap}"),
            ));
        }
        Ok((active, used))
    }

    /// Reads the record at `at` in half `half`, checking it lies below `used`.
    fn record(&self, half: u32, at: u64, used: u64) -> Result<Record, DictError> {
        if at % 8 != 0 || at + DICT_RECORD_HEADER as u64 > used {
            return Err(corrupt(
                "index",
                format!("record offset {at} outside 0..{used}"),
            ));
        }
        let p = self.data(half, at, DICT_RECORD_HEADER as u64)?;
        // SAFETY: 8 bytes in bounds (checked by `data`); unaligned reads of plain bytes.
        let (key_len, value_len) = unsafe {
            (
                usize::from(p.cast::<u16>().read_unaligned()),
                p.add(4).cast::<u32>().read_unaligned() as usize,
            )
        };
        let size = record_size(key_len, value_len);
        if key_len == 0 || key_len > MAX_KEY_LEN || at + size > used {
            return Err(corrupt(
                "record",
                format!("at {at}: key {key_len} bytes, value {value_len} bytes, used {used}"),
            ));
        }
        Ok(Record {
            key_len,
            value_len,
            size,
        })
    }

    fn key_bytes(&self, half: u32, at: u64, r: &Record) -> Result<Vec<u8>, DictError> {
        self.copy_out(half, at + DICT_RECORD_HEADER as u64, r.key_len)
    }

    fn value_bytes(&self, half: u32, at: u64, r: &Record) -> Result<Vec<u8>, DictError> {
        self.copy_out(
            half,
            at + DICT_RECORD_HEADER as u64 + r.key_len as u64,
            r.value_len,
        )
    }

    fn copy_out(&self, half: u32, at: u64, len: usize) -> Result<Vec<u8>, DictError> {
        let p = self.data(half, at, len as u64)?;
        let mut out = vec![0u8; len];
        // SAFETY: `len` bytes in bounds (checked by `data`); `out` is a distinct allocation.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), len) };
        Ok(out)
    }

    fn key_equals(&self, half: u32, at: u64, r: &Record, key: &[u8]) -> Result<bool, DictError> {
        if r.key_len != key.len() {
            return Ok(false);
        }
        let p = self.data(half, at + DICT_RECORD_HEADER as u64, key.len() as u64)?;
        // SAFETY: in bounds (checked by `data`); a transient view while we hold the mutex,
        // which gives us the region alone.
        Ok(unsafe { std::slice::from_raw_parts(p, key.len()) } == key)
    }

    fn find(&self, half: u32, used: u64, key: &[u8]) -> Result<Slot, DictError> {
        let hash = key_hash(key);
        let tag = (hash >> 32) << 32;
        let mask = self.geometry.slots - 1;
        let mut vacant = None;
        for i in 0..self.geometry.slots {
            let slot = (hash as u32).wrapping_add(i) & mask;
            let w = self.index(half, slot).load(Ordering::Relaxed);
            if w == 0 {
                return Ok(Slot::Vacant {
                    slot: vacant.unwrap_or(slot),
                });
            }
            if w == DICT_TOMBSTONE {
                vacant.get_or_insert(slot);
                continue;
            }
            if w & !0xFFFF_FFFF != tag {
                continue;
            }
            let at = (w & 0xFFFF_FFFF)
                .checked_sub(1)
                .ok_or_else(|| corrupt("index", format!("slot {slot} holds {w:#x}")))?;
            let r = self.record(half, at, used)?;
            if self.key_equals(half, at, &r, key)? {
                return Ok(Slot::Found { slot, record: at });
            }
        }
        vacant.map(|slot| Slot::Vacant { slot }).ok_or_else(|| {
            corrupt(
                "index",
                "no free slot although keys are capped at half the slots".into(),
            )
        })
    }
}
