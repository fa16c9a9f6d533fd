//! The owned reader's hold protocol: many frames of one reader share one pin of a slot.
//!
//! An owned reader hands out frames that are dropped on any thread, and several of its
//! frames may hold the same slot. The slot word has one bit per reader registration, so the
//! reader keeps a local count of its frames per slot and sets the shared bit on the count's
//! 0 → 1 and clears it on 1 → 0. A bit change happens under the count's [`HOLD_LOCK`] bit, so
//! a frame dropped on one thread cannot clear the bit a new hold on another thread has just
//! relied on (a plain counter beside the bit would: the new hold sees count 1, trusts the
//! bit, and the dropping thread clears it before the increment lands). Written against the
//! `sync` facade; the loom models below check exactly that race and the writer's exclusion.

use super::slot_word;
use crate::sync::{spin_hint, AtomicU32, AtomicU64, Ordering};

/// Set in a slot's local hold count while the shared bit is being set or cleared.
pub(crate) const HOLD_LOCK: u32 = 1 << 31;

/// Takes one more hold of the slot (`word`, local `count`) for frame `id` by reader
/// `reader`: the first hold pins the slot word. False if the slot no longer holds `id`.
pub(crate) fn hold(
    count: &AtomicU32,
    word: &AtomicU64,
    id: u64,
    reader: u32,
    likely: bool,
) -> bool {
    loop {
        let c = count.load(Ordering::Acquire);
        if c & HOLD_LOCK != 0 {
            spin_hint();
            continue;
        }
        if c > 0 {
            // Held by one of our frames: the slot's frame cannot change, so it is `id` or not.
            if slot_word::id_of(word.load(Ordering::Relaxed)) != id {
                return false;
            }
            // AcqRel: the count orders this hold after the bit change that made it 1.
            if count
                .compare_exchange(c, c + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
            continue;
        }
        // Acquire: pairs with the Release store that ended the last bit change.
        if count
            .compare_exchange(0, HOLD_LOCK, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        let pinned = slot_word::try_pin(word, id, reader, likely);
        // Release: the bit change happens before any other thread's next look at the count.
        count.store(u32::from(pinned), Ordering::Release);
        return pinned;
    }
}

/// Gives one hold of the slot back: the last one unpins the slot word.
pub(crate) fn release(count: &AtomicU32, word: &AtomicU64, reader: u32) {
    loop {
        let c = count.load(Ordering::Acquire);
        if c & HOLD_LOCK != 0 {
            spin_hint();
            continue;
        }
        match c {
            0 => return, // not held: a bug elsewhere, and nothing to release
            1 => {
                // Acquire: pairs with the Release that ended the bit change or the increment.
                if count
                    .compare_exchange(1, HOLD_LOCK, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    slot_word::unpin(word, reader);
                    // Release: pairs with the Acquire of the next hold's 0 → HOLD_LOCK.
                    count.store(0, Ordering::Release);
                    return;
                }
            }
            _ => {
                if count
                    .compare_exchange(c, c - 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;
    use shm_layout::FRAME_READERS_SHIFT;

    /// One frame of reader 0 holds slot 0 (frame 1); it is dropped on another thread while
    /// this thread takes a second hold. Whatever the interleaving, the shared bit is set
    /// exactly while a hold is counted, and both end with the slot free.
    #[test]
    fn a_drop_on_another_thread_never_clears_a_new_holds_pin() {
        loom::model(|| {
            let count = Arc::new(AtomicU32::new(0));
            let word = Arc::new(AtomicU64::new(1));
            assert!(hold(&count, &word, 1, 0, false));
            let (c2, w2) = (count.clone(), word.clone());
            let dropper = thread::spawn(move || release(&c2, &w2, 0));
            let held = hold(&count, &word, 1, 0, false);
            assert!(held, "frame 1 is still in its slot");
            assert_ne!(
                slot_word::readers_of(word.load(Ordering::Relaxed)) & 1,
                0,
                "a hold is counted but the slot is not pinned"
            );
            dropper.join().unwrap();
            release(&count, &word, 0);
            assert_eq!(count.load(Ordering::Relaxed), 0);
            assert_eq!(slot_word::readers_of(word.load(Ordering::Relaxed)), 0);
        });
    }

    /// Two frames of one reader are dropped on two threads while the writer tries to claim
    /// the slot: the writer gets it only after both holds are gone, so the bytes a frame
    /// reads never change under it.
    #[test]
    fn the_writer_claims_a_slot_only_after_its_last_owned_frame_is_dropped() {
        loom::model(|| {
            let count = Arc::new(AtomicU32::new(0));
            let word = Arc::new(AtomicU64::new(1));
            let data = Arc::new(UnsafeCell::new(100u64));
            assert!(hold(&count, &word, 1, 0, false));
            assert!(hold(&count, &word, 1, 0, true));
            let frames: Vec<_> = (0..2)
                .map(|_| {
                    let (c, w, d) = (count.clone(), word.clone(), data.clone());
                    thread::spawn(move || {
                        // SAFETY: this frame's hold excludes the writer from the slot.
                        let seen = d.with(|p| unsafe { *p });
                        assert_eq!(seen, 100, "frame 1 changed while held");
                        release(&c, &w, 0);
                    })
                })
                .collect();
            if slot_word::try_claim(&word).is_some() {
                // SAFETY: the claim excludes every reader from the slot.
                data.with_mut(|p| unsafe { *p = 200 });
                slot_word::publish(&word, 2);
            }
            for f in frames {
                f.join().unwrap();
            }
            assert_eq!(
                word.load(Ordering::Relaxed) >> FRAME_READERS_SHIFT,
                0,
                "the last drop left the slot pinned"
            );
        });
    }
}
