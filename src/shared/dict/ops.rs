//! The operations on bytes: get, insert, update, remove, snapshots. Each runs in one
//! critical section; a record that does not fit triggers compaction into the other half.

use super::error::{corrupt, DictError, MAX_KEY_LEN};
use super::{key_hash, record_size, SharedDict, Slot};
use crate::sync::{AtomicU32, AtomicU64, Interrupt, NoInterrupt, Ordering, Timeout};
use shm_layout::{DICT_RECORD_HEADER, DICT_RECORD_LIVE, DICT_TOMBSTONE};

impl SharedDict {
    // ---- operations on bytes ----

    pub(super) fn check_key(key: &str) -> Result<&[u8], DictError> {
        let k = key.as_bytes();
        if k.is_empty() || k.len() > MAX_KEY_LEN {
            return Err(DictError::BadKey { len: k.len() });
        }
        Ok(k)
    }

    /// The value of `key`, if present.
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, DictError> {
        self.get_bytes_interruptible(key, self.default_timeout(), &NoInterrupt)
    }

    /// Sets `key` to `value`; returns the previous value.
    pub fn insert_bytes(&self, key: &str, value: &[u8]) -> Result<Option<Vec<u8>>, DictError> {
        self.insert_bytes_interruptible(key, value, self.default_timeout(), &NoInterrupt)
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &str) -> Result<Option<Vec<u8>>, DictError> {
        self.remove_interruptible(key, self.default_timeout(), &NoInterrupt)
    }

    /// Atomically replaces the value of `key` with `f(current)`: `None` removes it.
    pub fn update_bytes(
        &self,
        key: &str,
        f: impl FnOnce(Option<Vec<u8>>) -> Option<Vec<u8>>,
    ) -> Result<(), DictError> {
        let k = Self::check_key(key)?;
        self.locked(|d, half, used| {
            let current = d.value_of(half, used, k)?;
            let next = f(current);
            d.put(half, used, k, next.as_deref()).map(drop)
        })
    }

    /// The value of `key` in the active half (under the mutex).
    fn value_of(&self, half: u32, used: u64, key: &[u8]) -> Result<Option<Vec<u8>>, DictError> {
        match self.find(half, used, key)? {
            Slot::Found { record, .. } => {
                let r = self.record(half, record, used)?;
                self.value_bytes(half, record, &r).map(Some)
            }
            Slot::Vacant { .. } => Ok(None),
        }
    }

    /// Writes (or, with `None`, removes) `key` in the active half; returns the old value.
    pub(super) fn put(
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

    pub(super) fn mark_dead(&self, half: u32, record: u64) -> Result<(), DictError> {
        let p = self.data(half, record + 2, 2)?;
        // SAFETY: 2 bytes in bounds (checked by `data`); we hold the mutex.
        unsafe { p.cast::<u16>().write_unaligned(0) };
        Ok(())
    }

    /// Every live (key, value) of the active half, in index order.
    pub(super) fn scan(&self, half: u32, used: u64) -> Result<Vec<(String, Vec<u8>)>, DictError> {
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
        self.len_interruptible(self.default_timeout(), &NoInterrupt)
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> Result<bool, DictError> {
        self.len().map(|n| n == 0)
    }
}

/// The operations a binding runs with its own patience: each waits at most `timeout` for the
/// dictionary's mutex and gives up when `interrupt` says so (a Ctrl+C), with
/// [`DictError::Lock`]`(`[`LockError::Interrupted`](crate::LockError)`)` — invariant 3's
/// `_interruptible` form of every blocking call.
impl SharedDict {
    /// [`get_bytes`](Self::get_bytes), interruptible.
    pub fn get_bytes_interruptible(
        &self,
        key: &str,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Option<Vec<u8>>, DictError> {
        let k = Self::check_key(key)?;
        self.locked_within(timeout, interrupt, |d, half, used| {
            d.value_of(half, used, k)
        })
    }

    /// [`insert_bytes`](Self::insert_bytes), interruptible.
    pub fn insert_bytes_interruptible(
        &self,
        key: &str,
        value: &[u8],
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Option<Vec<u8>>, DictError> {
        let k = Self::check_key(key)?;
        self.locked_within(timeout, interrupt, |d, half, used| {
            d.put(half, used, k, Some(value))
        })
    }

    /// [`remove`](Self::remove), interruptible.
    pub fn remove_interruptible(
        &self,
        key: &str,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Option<Vec<u8>>, DictError> {
        let k = Self::check_key(key)?;
        self.locked_within(timeout, interrupt, |d, half, used| {
            d.put(half, used, k, None)
        })
    }

    /// [`keys`](Self::keys), interruptible.
    pub fn keys_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Vec<String>, DictError> {
        let items = self.locked_within(timeout, interrupt, |d, half, used| d.scan(half, used))?;
        Ok(items.into_iter().map(|(k, _)| k).collect())
    }

    /// [`len`](Self::len), interruptible.
    pub fn len_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<usize, DictError> {
        self.locked_within(timeout, interrupt, |d, _, _| {
            Ok(d.header().count.load(Ordering::Relaxed) as usize)
        })
    }

    /// [`lock`](SharedDict::lock), interruptible.
    pub fn lock_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<crate::primitives::MutexGuard<'_>, DictError> {
        self.locked_guard_within(timeout, interrupt)
    }
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
