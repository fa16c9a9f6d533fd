//! The frame slot word protocol: readers pin, the writer claims and publishes.
//!
//! Word layout and rules: `shm-layout/src/frame.rs`. Written against the `sync` facade so the
//! loom model exercises the same code as the segment.

use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use shm_layout::{FRAME_ID_MASK, FRAME_READERS_SHIFT, FRAME_WRITING};

/// The frame id in a word.
pub(crate) fn id_of(w: u64) -> u64 {
    w & FRAME_ID_MASK
}

/// The reader bits of a word.
pub(crate) fn readers_of(w: u64) -> u64 {
    w >> FRAME_READERS_SHIFT
}

/// Is the writer filling this slot?
pub(crate) fn writing(w: u64) -> bool {
    w & FRAME_WRITING != 0
}

/// Reader `reader` pins the slot if it still holds frame `id` and is not being written.
///
/// `likely`: the caller expects the slot to hold `id` with no other reader (the newest
/// frame's slot, when readers keep up). The compare-and-swap then goes first, without a load
/// before it: a load would fetch the line shared and the CAS fetch it again exclusive, two
/// cache-line transfers from the writer's core instead of one.
pub(crate) fn try_pin(word: &AtomicU64, id: u64, reader: u32, likely: bool) -> bool {
    let bit = 1u64 << (FRAME_READERS_SHIFT + reader);
    let mut w = if likely {
        id & FRAME_ID_MASK
    } else {
        word.load(Ordering::Relaxed)
    };
    loop {
        if id_of(w) != id || writing(w) {
            return false;
        }
        // Acquire: pairs with the writer's Release publish, so the frame's bytes and
        // metadata are visible once pinned.
        match word.compare_exchange_weak(w, w | bit, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) => w = now,
        }
    }
}

/// Reader `reader` lets go of the slot.
pub(crate) fn unpin(word: &AtomicU64, reader: u32) {
    let bit = 1u64 << (FRAME_READERS_SHIFT + reader);
    // Release: our reads of the frame happen before the writer may claim the slot (its
    // claim CAS is Acquire).
    word.fetch_and(!bit, Ordering::Release);
}

/// The writer claims the slot if it holds exactly frame `old_id`, unheld: one
/// compare-and-swap without a load first (see `try_pin`'s `likely`). For the slot a
/// round-robin writer expects to reuse next.
pub(crate) fn try_claim_holding(word: &AtomicU64, old_id: u64) -> bool {
    let old = old_id & FRAME_ID_MASK;
    // Acquire: as in `try_claim`.
    word.compare_exchange(
        old,
        old | FRAME_WRITING,
        Ordering::Acquire,
        Ordering::Relaxed,
    )
    .is_ok()
}

/// The writer claims a slot nobody holds: `Some(old id)` on success.
pub(crate) fn try_claim(word: &AtomicU64) -> Option<u64> {
    let w = word.load(Ordering::Relaxed);
    if readers_of(w) != 0 || writing(w) {
        return None;
    }
    // Acquire: pairs with readers' Release unpin; their reads of the old frame are done.
    word.compare_exchange(
        w,
        id_of(w) | FRAME_WRITING,
        Ordering::Acquire,
        Ordering::Relaxed,
    )
    .ok()
    .map(id_of)
}

/// The writer publishes frame `id` in the slot it claimed.
pub(crate) fn publish(word: &AtomicU64, id: u64) {
    // Release: the frame's bytes and metadata, written while claimed, are visible to a
    // reader whose pin (Acquire) sees this id.
    word.store(id & FRAME_ID_MASK, Ordering::Release);
}

/// The writer gives a claimed slot back unpublished; its old frame was (partly) overwritten,
/// so it holds no frame any more.
pub(crate) fn abandon(word: &AtomicU64) {
    word.store(0, Ordering::Release);
}

/// Clears reader `reader`'s bit (a dead reader's holds).
pub(crate) fn clear_reader(word: &AtomicU64, reader: u32) {
    unpin(word, reader);
}

/// Anyone: reclaims reader index `reader`, whose registration `record` was seen holding the
/// dead process record `dead`, clearing its bit from every slot word in `slots`. Returns
/// whether this caller did it.
///
/// The index is claimed first, by swapping `dead` for the caller's own record `me`: a second
/// reclaimer that saw `dead` too but runs late fails that compare-and-swap and clears
/// nothing, so it can never clear the bit of a new reader registered on the freed index
/// (the bits are cleared before the index is free). A reclaimer that dies half-way leaves its
/// own (now dead) record, which the next reclaimer takes over the same way.
pub(crate) fn reclaim_reader<'a>(
    record: &AtomicU64,
    dead: u64,
    me: u64,
    reader: u32,
    slots: impl IntoIterator<Item = &'a AtomicU64>,
) -> bool {
    // Acquire: pairs with the Release free of a previous reclaimer, if any; Relaxed failure:
    // somebody else has the index, we touch nothing.
    if record
        .compare_exchange(dead, me, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    for word in slots {
        clear_reader(word, reader);
    }
    // Release: pairs with the Acquire of the registration that reads 0 next; our clears
    // come before that reader's first pin in every slot word's order.
    record.store(0, Ordering::Release);
    true
}

// The sleep handshake between the writer and sleeping readers is a Dekker pair: each side
// stores its own word, issues a SeqCst fence, then loads the other's, so at least one side
// sees the other's store. Fences rather than SeqCst accesses because loom checks fences.

/// Writer, after the Release store of `last_id`: rings the futex word with `id` and says
/// whether a reader may be asleep on it (then the caller wakes it).
pub(crate) fn ring_doorbell(notify: &AtomicU32, sleepers: &AtomicU32, id: u64) -> bool {
    notify.store(id as u32, Ordering::Release);
    // SeqCst fence: pairs with the one in `reader_prepares_to_sleep`.
    fence(Ordering::SeqCst);
    sleepers.load(Ordering::Relaxed) > 0
}

/// Reader that has seen frame `seen` as the newest: announces that it may sleep, and says
/// whether it still should (no newer frame rang the doorbell). The caller sleeps on
/// `notify == seen as u32`, then calls `reader_awake`.
pub(crate) fn reader_prepares_to_sleep(
    notify: &AtomicU32,
    sleepers: &AtomicU32,
    seen: u64,
) -> bool {
    sleepers.fetch_add(1, Ordering::Relaxed);
    // SeqCst fence: pairs with the one in `ring_doorbell`.
    fence(Ordering::SeqCst);
    notify.load(Ordering::Relaxed) == seen as u32
}

/// Reader, awake again (or not sleeping after all).
pub(crate) fn reader_awake(sleepers: &AtomicU32) {
    sleepers.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    /// A reader that pins a frame sees exactly the bytes published with it, while the writer
    /// claims, fills and publishes the next frame into whichever slot it may — for both the
    /// load-first and the guessing forms of pin and claim.
    fn pinned_frame_never_changes(likely: bool) {
        loom::model(move || {
            let words: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(1), AtomicU64::new(0)]);
            let data: Arc<[UnsafeCell<u64>; 2]> =
                Arc::new([UnsafeCell::new(100), UnsafeCell::new(0)]);
            let (w2, d2) = (words.clone(), data.clone());
            let writer = thread::spawn(move || {
                // Frame 2 goes into whichever slot is free; a round-robin writer expects
                // slot 0 (holding frame 1) to be next.
                let claimed = if likely && try_claim_holding(&w2[0], 1) {
                    Some(0)
                } else {
                    (0..2).find(|&slot| try_claim(&w2[slot]).is_some())
                };
                if let Some(slot) = claimed {
                    // SAFETY: the claim excludes readers from this slot.
                    d2[slot].with_mut(|p| unsafe { *p = 200 });
                    publish(&w2[slot], 2);
                }
            });
            if try_pin(&words[0], 1, 0, likely) {
                // SAFETY: the pin excludes the writer from this slot.
                let seen = data[0].with(|p| unsafe { *p });
                assert_eq!(seen, 100, "frame 1's bytes changed while pinned");
                unpin(&words[0], 0);
            }
            writer.join().unwrap();
        });
    }

    #[test]
    fn a_pinned_frame_never_changes_under_its_reader() {
        pinned_frame_never_changes(false);
    }

    #[test]
    fn a_pinned_frame_never_changes_under_its_reader_when_both_sides_guess() {
        pinned_frame_never_changes(true);
    }

    /// Two reclaimers that both saw reader 0's dead record, and a new reader that registers
    /// on index 0 as soon as it is free and pins a frame: the new reader's pin survives
    /// (clearing before claiming the index would let the late reclaimer clear it).
    #[test]
    fn a_late_reclaimer_never_clears_a_new_readers_pin() {
        const DEAD: u64 = 0xDEAD;
        const NEW: u64 = 0x1111;
        loom::model(|| {
            let record = Arc::new(AtomicU64::new(DEAD));
            // Frame 1, held by dead reader 0.
            let word = Arc::new(AtomicU64::new(1 | (1 << FRAME_READERS_SHIFT)));
            let reclaimers: Vec<_> = [0x2222u64, 0x3333]
                .into_iter()
                .map(|me| {
                    let (r, w) = (record.clone(), word.clone());
                    thread::spawn(move || reclaim_reader(&r, DEAD, me, 0, [&*w]))
                })
                .collect();
            let (r, w) = (record.clone(), word.clone());
            let reader = thread::spawn(move || {
                let registered = r
                    .compare_exchange(0, NEW, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok();
                registered && try_pin(&w, 1, 0, false)
            });
            let reclaimed: Vec<bool> = reclaimers.into_iter().map(|h| h.join().unwrap()).collect();
            let pinned = reader.join().unwrap();
            assert!(
                reclaimed.iter().filter(|&&r| r).count() <= 1,
                "one reclaim per death"
            );
            if pinned {
                assert_ne!(
                    readers_of(word.load(Ordering::SeqCst)) & 1,
                    0,
                    "a late reclaimer cleared the new reader's pin"
                );
            }
        });
    }

    /// A frame published as a reader falls asleep is never slept through: either the
    /// reader's re-check sees it, or the writer sees the reader and wakes it.
    #[test]
    fn a_frame_published_as_a_reader_falls_asleep_is_not_slept_through() {
        loom::model(|| {
            let notify = Arc::new(AtomicU32::new(1));
            let sleepers = Arc::new(AtomicU32::new(0));
            let (n2, s2) = (notify.clone(), sleepers.clone());
            let writer = thread::spawn(move || ring_doorbell(&n2, &s2, 2));
            let would_sleep = reader_prepares_to_sleep(&notify, &sleepers, 1);
            let woken = writer.join().unwrap();
            reader_awake(&sleepers);
            assert!(
                !would_sleep || woken,
                "the reader would sleep through frame 2"
            );
        });
    }
}
