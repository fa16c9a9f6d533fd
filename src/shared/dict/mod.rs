//! `SharedDict`: string keys to byte values in a fixed region of the segment, every operation
//! under the dictionary's robust mutex (the Python system's `MutexedDict`, without its racy
//! snapshots: `keys()`, `values()` and `items()` are taken in one critical section).
//!
//! Layout and crash-consistency rules are in `shm-layout/src/dict.rs`. Removal frees space:
//! when a record does not fit, the live records are compacted into the other half of the
//! region and `active` flips (so a holder killed mid-compaction loses nothing). Every offset
//! and length read from the region is checked before use; a bad one is
//! [`DictError::Corrupt`].

use crate::primitives::{Acquired, LockError, Mutex, OwnerInfo};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shm_layout::validate::DictGeometry;
use shm_layout::{fnv1a_bytes, DictHeader, DICT_RECORD_HEADER, DICT_RECORD_LIVE, DICT_TOMBSTONE};
use std::mem::size_of;
use std::ptr::NonNull;
use view::DictHeaderView;

mod attach;
mod view;

pub use attach::DictSpec;

/// Longest key in bytes.
pub const MAX_KEY_LEN: usize = 1024;
const HEADER: u64 = size_of::<DictHeader>() as u64;

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

fn corrupt(what: &'static str, detail: String) -> DictError {
    DictError::Corrupt { what, detail }
}

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
    /// The dictionary's mutex: hold it to make several operations one critical section (the
    /// operations lock it reentrantly).
    pub fn mutex(&self) -> &Mutex {
        &self.mutex
    }

    /// This handle, waiting at most `timeout` (default 60 s) for the dictionary's mutex.
    pub fn with_lock_timeout(mut self, timeout: std::time::Duration) -> SharedDict {
        self.timeout = timeout;
        self
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

    // ---- locking and repair ----

    /// Runs `f` with the mutex held. After a holder's death, repairs and reports instead.
    fn locked<R>(
        &self,
        f: impl FnOnce(&Self, u32, u64) -> Result<R, DictError>,
    ) -> Result<R, DictError> {
        let guard = match self.mutex.lock_timeout(self.timeout)? {
            Acquired::Locked(g) => g,
            Acquired::OwnerDied(g) => {
                let previous = g.previous_owner();
                let lost = self.rebuild(true)?;
                drop(g.make_consistent());
                return Err(DictError::OwnerDied { previous, lost });
            }
        };
        let (active, used) = self.check_header()?;
        let result = f(self, active, used);
        drop(guard);
        result
    }

    /// Copies every live record of the active half into the other half, rebuilding its index
    /// and counters, then flips `active`. With `salvage`, damaged records are dropped (and
    /// counted) instead of failing. Returns the number dropped.
    fn rebuild(&self, salvage: bool) -> Result<usize, DictError> {
        let g = self.geometry;
        let from = self.header().active.load(Ordering::Relaxed) & 1;
        let used = self
            .header()
            .used
            .load(Ordering::Relaxed)
            .min(g.data_capacity);
        let to = 1 - from;
        for slot in 0..g.slots {
            self.index(to, slot).store(0, Ordering::Relaxed);
        }
        let mut lost = 0;
        let mut out = 0u64;
        let mut count = 0u32;
        for slot in 0..g.slots {
            let w = self.index(from, slot).load(Ordering::Relaxed);
            if w == 0 || w == DICT_TOMBSTONE {
                continue;
            }
            let moved = (|| {
                let at = (w & 0xFFFF_FFFF)
                    .checked_sub(1)
                    .ok_or_else(|| corrupt("index", format!("slot {slot} holds {w:#x}")))?;
                let r = self.record(from, at, used)?;
                let key = self.key_bytes(from, at, &r)?;
                if count >= g.max_entries {
                    return Err(corrupt("index", "more live keys than the maximum".into()));
                }
                let src = self.data(from, at, r.size)?;
                let dst = self.data(to, out, r.size)?;
                // SAFETY: both ranges are in bounds (checked by `data`) and in different
                // halves, so they do not overlap.
                unsafe { std::ptr::copy_nonoverlapping(src, dst, r.size as usize) };
                let hash = key_hash(&key);
                let mask = g.slots - 1;
                let free = (0..g.slots)
                    .map(|i| (hash as u32).wrapping_add(i) & mask)
                    .find(|&s| self.index(to, s).load(Ordering::Relaxed) == 0)
                    .expect("the new index has more slots than keys");
                self.index(to, free)
                    .store(((hash >> 32) << 32) | (out + 1), Ordering::Relaxed);
                out += r.size;
                count += 1;
                Ok(())
            })();
            match moved {
                Ok(()) => {}
                Err(e) if !salvage => return Err(e),
                Err(_) => lost += 1,
            }
        }
        // Commit: one store makes the new half live.
        self.header().active.store(to, Ordering::Release);
        self.header().used.store(out, Ordering::Relaxed);
        self.header().garbage.store(0, Ordering::Relaxed);
        self.header().count.store(count, Ordering::Relaxed);
        self.header().tombstones.store(0, Ordering::Relaxed);
        Ok(lost)
    }

    // ---- operations on bytes ----

    fn check_key(key: &str) -> Result<&[u8], DictError> {
        let k = key.as_bytes();
        if k.is_empty() || k.len() > MAX_KEY_LEN {
            return Err(DictError::BadKey { len: k.len() });
        }
        Ok(k)
    }

    /// The value of `key`, if present.
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, DictError> {
        let k = Self::check_key(key)?;
        self.locked(|d, half, used| match d.find(half, used, k)? {
            Slot::Found { record, .. } => {
                let r = d.record(half, record, used)?;
                d.value_bytes(half, record, &r).map(Some)
            }
            Slot::Vacant { .. } => Ok(None),
        })
    }

    /// Sets `key` to `value`; returns the previous value.
    pub fn insert_bytes(&self, key: &str, value: &[u8]) -> Result<Option<Vec<u8>>, DictError> {
        let k = Self::check_key(key)?;
        self.locked(|d, half, used| d.put(half, used, k, Some(value)))
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &str) -> Result<Option<Vec<u8>>, DictError> {
        let k = Self::check_key(key)?;
        self.locked(|d, half, used| d.put(half, used, k, None))
    }

    /// Atomically replaces the value of `key` with `f(current)`: `None` removes it.
    pub fn update_bytes(
        &self,
        key: &str,
        f: impl FnOnce(Option<Vec<u8>>) -> Option<Vec<u8>>,
    ) -> Result<(), DictError> {
        let k = Self::check_key(key)?;
        self.locked(|d, half, used| {
            let current = match d.find(half, used, k)? {
                Slot::Found { record, .. } => {
                    let r = d.record(half, record, used)?;
                    Some(d.value_bytes(half, record, &r)?)
                }
                Slot::Vacant { .. } => None,
            };
            let next = f(current);
            d.put(half, used, k, next.as_deref()).map(drop)
        })
    }

    /// Writes (or, with `None`, removes) `key` in the active half; returns the old value.
    fn put(
        &self,
        mut half: u32,
        mut used: u64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, DictError> {
        let g = self.geometry;
        let mut slot = self.find(half, used, key)?;
        let mut old = match &slot {
            Slot::Found { record, .. } => {
                let r = self.record(half, *record, used)?;
                Some((*record, r.size, self.value_bytes(half, *record, &r)?))
            }
            Slot::Vacant { .. } => None,
        };
        let Some(value) = value else {
            if let (Slot::Found { slot, record }, Some((_, size, _))) = (&slot, &old) {
                self.index(half, *slot)
                    .store(DICT_TOMBSTONE, Ordering::Relaxed);
                self.mark_dead(half, *record)?;
                bump(&self.header().garbage, *size as i64);
                bump32(&self.header().count, -1);
                bump32(&self.header().tombstones, 1);
            }
            return Ok(old.map(|(_, _, v)| v));
        };
        if value.len() > u32::MAX as usize {
            return Err(DictError::OutOfSpace {
                needed: value.len() as u64,
                available: g.data_capacity,
            });
        }
        let count = self.header().count.load(Ordering::Relaxed);
        if old.is_none() && count >= g.max_entries {
            return Err(DictError::TooManyKeys { max: g.max_entries });
        }
        let size = record_size(key.len(), value.len());
        let tombstones = self.header().tombstones.load(Ordering::Relaxed);
        if used + size > g.data_capacity || tombstones > g.slots / 4 {
            self.rebuild(false)?;
            (half, used) = self.check_header()?;
            slot = self.find(half, used, key)?;
            // The old record moved with the compaction.
            if let (Slot::Found { record, .. }, Some(old)) = (&slot, old.as_mut()) {
                old.0 = *record;
            }
            if used + size > g.data_capacity {
                return Err(DictError::OutOfSpace {
                    needed: size,
                    available: g.data_capacity - used,
                });
            }
        }
        // 1. the record, past `used`: invisible until published.
        let p = self.data(half, used, size)?;
        // SAFETY: `size` bytes in bounds (checked by `data`); we hold the mutex.
        unsafe {
            p.cast::<u16>().write_unaligned(key.len() as u16);
            p.add(2).cast::<u16>().write_unaligned(DICT_RECORD_LIVE);
            p.add(4).cast::<u32>().write_unaligned(value.len() as u32);
            std::ptr::copy_nonoverlapping(key.as_ptr(), p.add(DICT_RECORD_HEADER), key.len());
            std::ptr::copy_nonoverlapping(
                value.as_ptr(),
                p.add(DICT_RECORD_HEADER + key.len()),
                value.len(),
            );
        }
        // 2. `used` covers it.
        self.header().used.store(used + size, Ordering::Relaxed);
        // 3. one index store publishes it.
        let hash = key_hash(key);
        let word = ((hash >> 32) << 32) | (used + 1);
        let (Slot::Found { slot: s, .. } | Slot::Vacant { slot: s }) = slot;
        let was_tombstone = self.index(half, s).swap(word, Ordering::Relaxed) == DICT_TOMBSTONE;
        // 4. bookkeeping (recomputed by a repair if we die here).
        match old {
            Some((record, old_size, value)) => {
                self.mark_dead(half, record)?;
                bump(&self.header().garbage, old_size as i64);
                Ok(Some(value))
            }
            None => {
                bump32(&self.header().count, 1);
                if was_tombstone {
                    bump32(&self.header().tombstones, -1);
                }
                Ok(None)
            }
        }
    }

    fn mark_dead(&self, half: u32, record: u64) -> Result<(), DictError> {
        let p = self.data(half, record + 2, 2)?;
        // SAFETY: 2 bytes in bounds (checked by `data`); we hold the mutex.
        unsafe { p.cast::<u16>().write_unaligned(0) };
        Ok(())
    }

    /// Every live (key, value) of the active half, in index order.
    fn scan(&self, half: u32, used: u64) -> Result<Vec<(String, Vec<u8>)>, DictError> {
        let mut items = Vec::new();
        for slot in 0..self.geometry.slots {
            let w = self.index(half, slot).load(Ordering::Relaxed);
            if w == 0 || w == DICT_TOMBSTONE {
                continue;
            }
            let at = (w & 0xFFFF_FFFF)
                .checked_sub(1)
                .ok_or_else(|| corrupt("index", format!("slot {slot} holds {w:#x}")))?;
            let r = self.record(half, at, used)?;
            let key = String::from_utf8(self.key_bytes(half, at, &r)?)
                .map_err(|_| corrupt("record", format!("key at {at} is not UTF-8")))?;
            items.push((key, self.value_bytes(half, at, &r)?));
        }
        Ok(items)
    }

    /// One consistent snapshot of every key and raw value.
    pub fn items_bytes(&self) -> Result<Vec<(String, Vec<u8>)>, DictError> {
        self.locked(|d, half, used| d.scan(half, used))
    }

    /// One consistent snapshot of every key.
    pub fn keys(&self) -> Result<Vec<String>, DictError> {
        Ok(self.items_bytes()?.into_iter().map(|(k, _)| k).collect())
    }

    /// Number of keys.
    pub fn len(&self) -> Result<usize, DictError> {
        self.locked(|d, _, _| Ok(d.header().count.load(Ordering::Relaxed) as usize))
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> Result<bool, DictError> {
        self.len().map(|n| n == 0)
    }

    // ---- typed layer (serde + postcard) ----

    /// Sets `key` to `value` (serialised with postcard).
    pub fn insert<V: Serialize>(&self, key: &str, value: &V) -> Result<(), DictError> {
        let bytes = crate::codec::encode(value, "the value").map_err(DictError::Encode)?;
        self.insert_bytes(key, &bytes).map(drop)
    }

    /// The value of `key`, deserialised as `V` (straight from the region: no copy).
    pub fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, DictError> {
        let k = Self::check_key(key)?;
        self.locked(|d, half, used| match d.find(half, used, k)? {
            Slot::Found { record, .. } => {
                let r = d.record(half, record, used)?;
                let at = record + DICT_RECORD_HEADER as u64 + r.key_len as u64;
                let p = d.data(half, at, r.value_len as u64)?;
                // SAFETY: in bounds (checked by `data`); a transient view while we hold the
                // mutex, dropped before it is released (`V` owns its data).
                let bytes = unsafe { std::slice::from_raw_parts(p, r.value_len) };
                decode(key, bytes).map(Some)
            }
            Slot::Vacant { .. } => Ok(None),
        })
    }

    /// Atomically replaces the value of `key` with `f(current)`; `None` removes it.
    pub fn update<V: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<(), DictError> {
        let mut failure = None;
        self.update_bytes(key, |current| {
            let current = match current.map(|b| decode::<V>(key, &b)).transpose() {
                Ok(v) => v,
                Err(e) => {
                    failure = Some(e);
                    return None;
                }
            };
            match f(current)
                .map(|v| crate::codec::encode(&v, "the value"))
                .transpose()
            {
                Ok(next) => next,
                Err(e) => {
                    failure = Some(DictError::Encode(e));
                    None
                }
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// One consistent snapshot of every key and value, deserialised as `V`.
    pub fn items<V: DeserializeOwned>(&self) -> Result<Vec<(String, V)>, DictError> {
        self.items_bytes()?
            .into_iter()
            .map(|(k, b)| decode(&k, &b).map(|v| (k, v)))
            .collect()
    }

    /// One consistent snapshot of every value, deserialised as `V`.
    pub fn values<V: DeserializeOwned>(&self) -> Result<Vec<V>, DictError> {
        Ok(self.items()?.into_iter().map(|(_, v)| v).collect())
    }
}

fn decode<V: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<V, DictError> {
    crate::codec::decode(bytes, "the value").map_err(|source| DictError::Decode {
        key: key.to_owned(),
        source,
    })
}

/// Adds `by` to a counter only the mutex holder writes.
fn bump(a: &AtomicU64, by: i64) {
    a.store(
        a.load(Ordering::Relaxed).wrapping_add_signed(by),
        Ordering::Relaxed,
    );
}

/// As [`bump`], for a 32-bit counter.
fn bump32(a: &AtomicU32, by: i32) {
    a.store(
        a.load(Ordering::Relaxed).wrapping_add_signed(by),
        Ordering::Relaxed,
    );
}
