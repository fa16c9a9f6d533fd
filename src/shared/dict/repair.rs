//! Locking the dictionary, and repairing it after a holder died inside (rebuilding the other
//! half from the live one).

use super::error::{corrupt, DictError};
use super::{key_hash, SharedDict};
use crate::primitives::{Acquired, MutexGuard};
use crate::sync::{Interrupt, NoInterrupt, Ordering, Timeout};
use shm_layout::DICT_TOMBSTONE;

impl SharedDict {
    // ---- locking and repair ----

    /// The mutex, held. After a holder's death, repairs and reports instead.
    pub(super) fn locked_guard(&self) -> Result<MutexGuard<'_>, DictError> {
        self.locked_guard_within(Timeout::After(self.timeout), &NoInterrupt)
    }

    /// [`locked_guard`](Self::locked_guard), waiting at most `timeout` for the mutex and
    /// giving up when `interrupt` says so ([`LockError::Interrupted`] in
    /// [`DictError::Lock`]).
    pub(super) fn locked_guard_within(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<MutexGuard<'_>, DictError> {
        match self.mutex.lock_interruptible(timeout, interrupt)? {
            Acquired::Locked(g) => Ok(g),
            Acquired::OwnerDied(g) => {
                let previous = g.previous_owner();
                let lost = self.rebuild(true)?;
                drop(g.make_consistent());
                Err(DictError::OwnerDied { previous, lost })
            }
        }
    }

    /// Runs `f` with the mutex held. After a holder's death, repairs and reports instead.
    pub(super) fn locked<R>(
        &self,
        f: impl FnOnce(&Self, u32, u64) -> Result<R, DictError>,
    ) -> Result<R, DictError> {
        self.locked_within(Timeout::After(self.timeout), &NoInterrupt, f)
    }

    /// [`locked`](Self::locked) with the wait for the mutex bounded by `timeout` and
    /// `interrupt`.
    pub(super) fn locked_within<R>(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
        f: impl FnOnce(&Self, u32, u64) -> Result<R, DictError>,
    ) -> Result<R, DictError> {
        let guard = self.locked_guard_within(timeout, interrupt)?;
        let (active, used) = self.check_header()?;
        let result = f(self, active, used);
        drop(guard);
        result
    }

    /// Copies every live record of the active half into the other half, rebuilding its index
    /// and counters, then flips `active`. With `salvage`, damaged records are dropped (and
    /// counted) instead of failing. Returns the number dropped.
    pub(super) fn rebuild(&self, salvage: bool) -> Result<usize, DictError> {
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
}
