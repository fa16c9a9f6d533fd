//! The named-object table protocol: find-or-create by name, lock-free lookup, and reclaiming
//! entries whose creator died half-way.
//!
//! Runs over a slice of [`EntryState`] (atomics only), so the same code serves the segment and
//! the heap-backed loom model. The byte layout and state table are in
//! `shm-layout/src/table.rs`. Invariants the protocol keeps:
//!
//! - An entry goes `EMPTY → CLAIMED(tid) → READY` (or back to `EMPTY` if creation fails), and a
//!   dead claimer's `CLAIMED(tid)` may be taken over as `CLAIMED(me)`. `READY` is final.
//! - A find-or-create never walks past a `CLAIMED` entry: it might be its own name being
//!   created. So no name is ever placed after a claimed slot on its probe path, and a lookup of
//!   an existing name meets only `READY` entries before it — it never waits or locks.

use crate::sync::{futex_wait, futex_wake, AtomicU32, AtomicU64, Ordering};
use crate::sync::{shared_view, Reserved, SharedWord};
use crate::sys::clock::Deadline;
use crate::sys::identity::{current_thread, holder_liveness, Liveness, Record, ThreadIdentity};
use shm_layout::{
    fnv1a_bytes, ObjectKind, TableEntry, MUTEX_TID_MASK, TABLE_CLAIMED, TABLE_NAME_MAX, TABLE_READY,
};
use std::fmt;
use std::time::Duration;

/// How often a caller waiting on a claimed entry checks that its creator is alive.
const CLAIM_CHECK_INTERVAL: Duration = Duration::from_millis(20);

shared_view! {
    /// One entry; byte-for-byte [`shm_layout::TableEntry`].
    pub(crate) struct EntryState mirrors TableEntry, align(64) {
        state: AtomicU32,
        kind: AtomicU32,
        claimer: AtomicU64,
        offset: AtomicU64,
        size: AtomicU64,
        param: AtomicU64,
        creator_pid: AtomicU32,
        name_len: AtomicU32,
        name_hash: AtomicU64,
        reserved: Reserved<u64>,
        name: NameWords,
    }
}

/// An entry's name: the layout's 64 bytes, read and written as eight 64-bit words so that a
/// lock-free lookup compares whole words (little-endian, as the bytes lie in memory).
#[repr(transparent)]
struct NameWords([AtomicU64; 8]);

impl std::ops::Deref for NameWords {
    type Target = [AtomicU64; 8];
    fn deref(&self) -> &[AtomicU64; 8] {
        &self.0
    }
}

// SAFETY: eight atomics, valid for any bytes and written through shared references, with the
// size and alignment of the layout's `[u8; 64]` field (asserted by `shared_view!`).
unsafe impl SharedWord for NameWords {
    type Plain = [u8; 64];
    fn load_plain(&self) -> [u8; 64] {
        let mut bytes = [0u8; 64];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(self.0.iter()) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        bytes
    }
}

impl EntryState {
    /// An empty entry (for heap-backed tables).
    #[cfg(any(test, loom))]
    pub(crate) fn new() -> Self {
        EntryState {
            state: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            claimer: AtomicU64::new(0),
            offset: AtomicU64::new(0),
            size: AtomicU64::new(0),
            param: AtomicU64::new(0),
            creator_pid: AtomicU32::new(0),
            name_len: AtomicU32::new(0),
            name_hash: AtomicU64::new(0),
            reserved: Reserved::new(),
            name: NameWords(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    fn matches(&self, name: &ObjectName<'_>) -> bool {
        self.name_hash.load(Ordering::Relaxed) == name.hash
            && self.name_len.load(Ordering::Relaxed) as usize == name.text.len()
            && self
                .name
                .iter()
                .enumerate()
                .all(|(i, w)| w.load(Ordering::Relaxed) == name.word(i))
    }

    /// The entry's location and kind (its name is the caller's to know).
    fn info(&self, index: usize) -> Result<EntryInfo, TableError> {
        let kind_raw = self.kind.load(Ordering::Relaxed);
        let kind = ObjectKind::from_raw(kind_raw).ok_or(TableError::Corrupt {
            index,
            what: "kind",
        })?;
        Ok(EntryInfo {
            kind,
            offset: self.offset.load(Ordering::Relaxed),
            size: self.size.load(Ordering::Relaxed),
            param: self.param.load(Ordering::Relaxed),
            creator_pid: self.creator_pid.load(Ordering::Relaxed),
            index: index as u32,
        })
    }

    /// The entry with its name read back from the segment (for listing).
    fn named(&self, index: usize) -> Result<NamedEntry, TableError> {
        let entry = self.info(index)?;
        let len = self.name_len.load(Ordering::Relaxed) as usize;
        if len == 0 || len > TABLE_NAME_MAX {
            return Err(TableError::Corrupt {
                index,
                what: "name length",
            });
        }
        let mut bytes = [0u8; 64];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(self.name.iter()) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        let name = std::str::from_utf8(&bytes[..len])
            .map_err(|_| TableError::Corrupt {
                index,
                what: "name is not UTF-8",
            })?
            .to_owned();
        Ok(NamedEntry { name, entry })
    }
}

/// A validated object name: 1–63 bytes of UTF-8 without control characters. Borrows the
/// caller's string: validating a name allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName<'a> {
    text: &'a str,
    hash: u64,
}

impl<'a> ObjectName<'a> {
    /// Validates `name`; the error says why it was refused.
    pub fn new(name: &'a str) -> Result<ObjectName<'a>, &'static str> {
        if name.is_empty() {
            return Err("is empty");
        }
        if name.len() > TABLE_NAME_MAX {
            return Err("is longer than 63 bytes");
        }
        // Control characters: C0 and DEL (one byte), C1 (U+0080..=U+009F, encoded C2 80..9F).
        // Checked on bytes: this runs on every lookup.
        let b = name.as_bytes();
        let control = b.iter().enumerate().any(|(i, &c)| {
            c < 0x20
                || c == 0x7F
                || (c == 0xC2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9F).contains(n)))
        });
        if control {
            return Err("contains a control character");
        }
        Ok(ObjectName {
            text: name,
            hash: fnv1a_bytes(name.as_bytes()),
        })
    }

    /// The name.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// Word `i` of the zero-padded 64-byte name, as stored in an entry.
    fn word(&self, i: usize) -> u64 {
        let bytes = self.text.as_bytes();
        let mut chunk = [0u8; 8];
        if let Some(part) = bytes.get(i * 8..) {
            let n = part.len().min(8);
            chunk[..n].copy_from_slice(&part[..n]);
        }
        u64::from_le_bytes(chunk)
    }
}

impl fmt::Display for ObjectName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

/// A finished entry, as found by name.
///
/// Small and `Copy` on purpose: lookups return it by value on the hot path, and a version that
/// carried the 64-byte name inline was copied through `Result` layers with overlapping moves
/// that defeat store forwarding (twice as slow). Names come with listings ([`NamedEntry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryInfo {
    /// What it is.
    pub kind: ObjectKind,
    /// Offset of the object in the segment.
    pub offset: u64,
    /// Size of its block in bytes.
    pub size: u64,
    /// Kind-specific parameter: barrier parties, shared-value type hash, dictionary capacity.
    pub param: u64,
    /// Pid of the process that created it.
    pub creator_pid: u32,
    /// Slot in the table.
    pub index: u32,
}

/// A finished entry with its name, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedEntry {
    /// The object's name.
    pub name: String,
    /// Where and what it is.
    pub entry: EntryInfo,
}

/// Why a table operation failed.
#[derive(Debug)]
pub(crate) enum TableError<E = std::convert::Infallible> {
    /// Every slot on the probe path is taken.
    Full { capacity: usize },
    /// A live creator did not finish within the deadline.
    Busy { creator_pid: u32, tid: u32 },
    /// An entry holds bytes no shmkit process writes.
    Corrupt { index: usize, what: &'static str },
    /// The caller's `create` failed (the claim was released).
    Create(E),
}

impl TableError {
    /// This error as a failure of a find-or-create whose creator fails with `E`.
    pub(crate) fn widen<E>(self) -> TableError<E> {
        match self {
            TableError::Full { capacity } => TableError::Full { capacity },
            TableError::Busy { creator_pid, tid } => TableError::Busy { creator_pid, tid },
            TableError::Corrupt { index, what } => TableError::Corrupt { index, what },
            TableError::Create(never) => match never {},
        }
    }
}

/// The probe sequence for `name` in a table of `len` entries.
fn probe(len: usize, name: &ObjectName<'_>) -> impl Iterator<Item = usize> {
    let start = (name.hash % len.max(1) as u64) as usize;
    (0..len).map(move |i| (start + i) % len)
}

/// Looks `name` up without waiting or locking. `Ok(None)` if it does not exist (or is being
/// created right now).
pub(crate) fn lookup(
    entries: &[EntryState],
    name: &ObjectName<'_>,
) -> Result<Option<EntryInfo>, TableError> {
    for index in probe(entries.len(), name) {
        let e = &entries[index];
        // Acquire: pairs with the Release store of READY; the fields below are then final.
        match e.state.load(Ordering::Acquire) {
            TABLE_READY if e.matches(name) => return e.info(index).map(Some),
            TABLE_READY => continue,
            // Empty, or claimed: a name is never placed past either on its probe path.
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Every finished entry.
pub(crate) fn list(entries: &[EntryState]) -> Vec<Result<NamedEntry, TableError>> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.state.load(Ordering::Acquire) == TABLE_READY)
        .map(|(i, e)| e.named(i))
        .collect()
}

/// What `create` produced for a claimed entry.
pub(crate) struct Created {
    pub offset: u64,
    pub size: u64,
    pub param: u64,
}

/// Finds `name`, or creates it with `create` (called at most once, only by the one caller that
/// claims the entry). Returns the entry and whether this call created it.
pub(crate) fn find_or_create<E>(
    entries: &[EntryState],
    name: &ObjectName<'_>,
    kind: ObjectKind,
    deadline: Deadline,
    create: impl FnOnce() -> Result<Created, E>,
) -> Result<(EntryInfo, bool), TableError<E>> {
    let me = current_thread();
    let mut create = Some(create);
    for index in probe(entries.len(), name) {
        let e = &entries[index];
        let mut next_check = 0u64;
        loop {
            let st = e.state.load(Ordering::Acquire);
            if st == TABLE_READY {
                if e.matches(name) {
                    return e.info(index).map(|i| (i, false)).map_err(TableError::widen);
                }
                break;
            }
            let claim_from = if st == 0 {
                Some(0)
            } else if st & TABLE_CLAIMED != 0 && st & !TABLE_CLAIMED & !MUTEX_TID_MASK == 0 {
                let tid = st & MUTEX_TID_MASK;
                if deadline.expired() {
                    if judge(e, tid, &me) == Liveness::Dead {
                        Some(st)
                    } else {
                        return Err(TableError::Busy {
                            creator_pid: e.creator_pid.load(Ordering::Relaxed),
                            tid,
                        });
                    }
                } else {
                    let now = crate::sys::clock::monotonic_ns();
                    let interval = CLAIM_CHECK_INTERVAL.as_nanos() as u64;
                    if next_check == 0 {
                        next_check = now.saturating_add(interval);
                        None
                    } else if now >= next_check {
                        next_check = now.saturating_add(interval);
                        (judge(e, tid, &me) == Liveness::Dead).then_some(st)
                    } else {
                        None
                    }
                }
            } else {
                return Err(TableError::Corrupt {
                    index,
                    what: "entry state",
                });
            };
            let Some(from) = claim_from else {
                futex_wait(&e.state, st, deadline.capped(CLAIM_CHECK_INTERVAL));
                continue;
            };
            // Acquire: a reclaimer sees the dead claimer's writes; nothing else to publish yet.
            if e.state
                .compare_exchange(
                    from,
                    TABLE_CLAIMED | me.tid,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            let create = create
                .take()
                .expect("an entry is claimed at most once per call");
            return claimed(e, index, name, kind, &me, create);
        }
    }
    Err(TableError::Full {
        capacity: entries.len(),
    })
}

/// The liveness of the claimer `tid` of `e`.
fn judge(e: &EntryState, tid: u32, me: &ThreadIdentity) -> Liveness {
    holder_liveness(tid, Record::from_raw(e.claimer.load(Ordering::Acquire)), me)
}

/// Fills a claimed entry and publishes it (or releases the claim if `create` fails).
fn claimed<E>(
    e: &EntryState,
    index: usize,
    name: &ObjectName<'_>,
    kind: ObjectKind,
    me: &ThreadIdentity,
    create: impl FnOnce() -> Result<Created, E>,
) -> Result<(EntryInfo, bool), TableError<E>> {
    e.claimer.store(me.owner_record().raw(), Ordering::Relaxed);
    e.creator_pid.store(me.pid, Ordering::Relaxed);
    let made = match create() {
        Ok(made) => made,
        Err(err) => {
            // Nobody walks past a claimed entry, so returning it to empty is safe.
            e.claimer.store(0, Ordering::Relaxed);
            e.state.store(0, Ordering::Release);
            futex_wake(&e.state, u32::MAX);
            return Err(TableError::Create(err));
        }
    };
    e.kind.store(kind as u32, Ordering::Relaxed);
    e.offset.store(made.offset, Ordering::Relaxed);
    e.size.store(made.size, Ordering::Relaxed);
    e.param.store(made.param, Ordering::Relaxed);
    e.name_len.store(name.text.len() as u32, Ordering::Relaxed);
    e.name_hash.store(name.hash, Ordering::Relaxed);
    for (i, w) in e.name.iter().enumerate() {
        w.store(name.word(i), Ordering::Relaxed);
    }
    // Release: publishes every field above to readers that Acquire-load READY.
    e.state.store(TABLE_READY, Ordering::Release);
    futex_wake(&e.state, u32::MAX);
    e.info(index).map(|i| (i, true)).map_err(TableError::widen)
}

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;
