//! The trace buffer's name table: each distinct name written once, events naming it by index.
//!
//! An entry's `word` is `hash << 32 | len << 8 | state` (`shm-layout/src/trace.rs`). A name is
//! filed by probing from `hash % entries`: a free entry is claimed by a CAS from 0 (state
//! "writing"), its bytes written, then made ready with a Release store. A prober that meets an
//! entry being written under the same hash and length waits briefly for it; a registrant that
//! stalls or dies there leaves the entry to be skipped, and the name is filed again further on
//! (two indices with one name read back the same; nothing else is lost).

use crate::sync::{shared_view, spin_hint, AtomicU64, Ordering};
use shm_layout::{
    trace_name_hash, TraceNameEntry, TRACE_NAME_FREE, TRACE_NAME_MAX, TRACE_NAME_READY,
    TRACE_NAME_WRITING,
};
use std::sync::atomic::AtomicU8;

shared_view! {
    /// One name entry's words; byte-for-byte [`shm_layout::TraceNameEntry`].
    pub(crate) struct NameView mirrors TraceNameEntry, align(64) {
        word: AtomicU64,
        bytes: [AtomicU8; TRACE_NAME_MAX],
    }
}

/// Spins a prober waits on an entry being written under its name's hash before it files the
/// name further on (a registrant writes at most 56 bytes: microseconds unless preempted).
const WRITING_PATIENCE: u32 = 20_000;

/// Why a name could not be filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameFault {
    /// Empty, or longer than [`TRACE_NAME_MAX`] bytes.
    Length(usize),
    /// Every entry holds another name.
    Full,
}

/// The index of `name` in `entries`, filing it if it is not there yet.
pub(crate) fn intern(entries: &[NameView], name: &str) -> Result<u16, NameFault> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > TRACE_NAME_MAX {
        return Err(NameFault::Length(bytes.len()));
    }
    let hash = u64::from(trace_name_hash(bytes));
    let len = bytes.len() as u64;
    let filed = |state: u64| hash << 32 | len << 8 | state;
    let count = entries.len();
    'probe: for i in 0..count {
        let index = (hash as usize + i) % count;
        let entry = &entries[index];
        let mut patience = WRITING_PATIENCE;
        loop {
            // Acquire: pairs with the ready store below: a ready entry's bytes are visible.
            let word = entry.word.load(Ordering::Acquire);
            if word == TRACE_NAME_FREE {
                if entry
                    .word
                    .compare_exchange(
                        TRACE_NAME_FREE,
                        filed(TRACE_NAME_WRITING),
                        Ordering::Acquire,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    for (cell, b) in entry.bytes.iter().zip(bytes) {
                        cell.store(*b, Ordering::Relaxed);
                    }
                    // Release: the bytes before the ready state (pairs with the Acquire loads
                    // of `word` in this function and in `name_at`).
                    entry.word.store(filed(TRACE_NAME_READY), Ordering::Release);
                    return Ok(index as u16);
                }
                continue;
            }
            if word >> 8 != hash << 24 | len {
                continue 'probe;
            }
            match word & 0xff {
                TRACE_NAME_READY if same_bytes(entry, bytes) => return Ok(index as u16),
                TRACE_NAME_WRITING if patience > 0 => {
                    patience -= 1;
                    spin_hint();
                }
                _ => continue 'probe,
            }
        }
    }
    Err(NameFault::Full)
}

fn same_bytes(entry: &NameView, bytes: &[u8]) -> bool {
    entry
        .bytes
        .iter()
        .zip(bytes)
        .all(|(cell, b)| cell.load(Ordering::Relaxed) == *b)
}

/// The name filed at `index`, if that entry is ready (bytes that are not UTF-8 are replaced,
/// as `String::from_utf8_lossy` does: the table is segment bytes, so anything may be there).
pub(crate) fn name_at(entries: &[NameView], index: u16) -> Option<String> {
    let entry = entries.get(usize::from(index))?;
    let word = entry.word.load(Ordering::Acquire);
    let len = (word >> 8 & 0xff) as usize;
    if word & 0xff != TRACE_NAME_READY || len == 0 || len > TRACE_NAME_MAX {
        return None;
    }
    let bytes: Vec<u8> = entry.bytes[..len]
        .iter()
        .map(|cell| cell.load(Ordering::Relaxed))
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn table(n: usize) -> Vec<NameView> {
        (0..n)
            .map(|_| NameView {
                word: AtomicU64::new(0),
                bytes: std::array::from_fn(|_| AtomicU8::new(0)),
            })
            .collect()
    }

    #[test]
    fn a_name_is_filed_once_and_read_back() {
        let t = table(8);
        let a = intern(&t, "centroid").unwrap();
        assert_eq!(intern(&t, "centroid").unwrap(), a);
        let b = intern(&t, "mvm").unwrap();
        assert_ne!(a, b);
        assert_eq!(name_at(&t, a).as_deref(), Some("centroid"));
        assert_eq!(name_at(&t, b).as_deref(), Some("mvm"));
        assert_eq!(name_at(&t, 99), None);
    }

    #[test]
    fn a_full_table_and_bad_lengths_are_refused() {
        let t = table(2);
        intern(&t, "a").unwrap();
        intern(&t, "b").unwrap();
        assert_eq!(intern(&t, "c"), Err(NameFault::Full));
        assert_eq!(intern(&t, ""), Err(NameFault::Length(0)));
        assert_eq!(intern(&t, &"x".repeat(57)), Err(NameFault::Length(57)));
        assert!(intern(&t, "a").is_ok());
    }

    #[test]
    fn an_entry_left_half_written_is_skipped_and_the_name_filed_further_on() {
        let t = table(4);
        let hash = u64::from(trace_name_hash(b"loop"));
        let home = hash as usize % 4;
        t[home]
            .word
            .store(hash << 32 | 4 << 8 | TRACE_NAME_WRITING, Ordering::Relaxed);
        let i = intern(&t, "loop").unwrap();
        assert_ne!(usize::from(i), home);
        assert_eq!(name_at(&t, i).as_deref(), Some("loop"));
        assert_eq!(name_at(&t, home as u16), None);
    }

    #[test]
    fn threads_filing_the_same_names_agree_on_their_indices() {
        let t = std::sync::Arc::new(table(64));
        let names: Vec<String> = (0..40).map(|i| format!("stage-{i}")).collect();
        let runs: Vec<Vec<u16>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| names.iter().map(|n| intern(&t, n).unwrap()).collect()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for run in &runs[1..] {
            for (i, (a, b)) in run.iter().zip(&runs[0]).enumerate() {
                assert_eq!(name_at(&t, *a), name_at(&t, *b), "{}", names[i]);
            }
        }
    }
}
