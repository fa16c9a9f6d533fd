//! The frame slot word protocol: readers pin, the writer claims and publishes.
//!
//! Word layout and rules: `shm-layout/src/frame.rs`. Written against the `sync` facade so the
//! loom model exercises the same code as the segment.

use crate::sync::{AtomicU64, Ordering};
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
pub(crate) fn try_pin(word: &AtomicU64, id: u64, reader: u32) -> bool {
    let bit = 1u64 << (FRAME_READERS_SHIFT + reader);
    let mut w = word.load(Ordering::Relaxed);
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

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    /// A reader that pins a frame sees exactly the bytes published with it, while the writer
    /// claims, fills and publishes the next frame into whichever slot it may.
    #[test]
    fn a_pinned_frame_never_changes_under_its_reader() {
        loom::model(|| {
            let words: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(1), AtomicU64::new(0)]);
            let data: Arc<[UnsafeCell<u64>; 2]> =
                Arc::new([UnsafeCell::new(100), UnsafeCell::new(0)]);
            let (w2, d2) = (words.clone(), data.clone());
            let writer = thread::spawn(move || {
                // Frame 2 goes into whichever slot is free.
                for slot in 0..2 {
                    if try_claim(&w2[slot]).is_some() {
                        // SAFETY: the claim excludes readers from this slot.
                        d2[slot].with_mut(|p| unsafe { *p = 200 });
                        publish(&w2[slot], 2);
                        return;
                    }
                }
            });
            if try_pin(&words[0], 1, 0) {
                // SAFETY: the pin excludes the writer from this slot.
                let seen = data[0].with(|p| unsafe { *p });
                assert_eq!(seen, 100, "frame 1's bytes changed while pinned");
                unpin(&words[0], 0);
            }
            writer.join().unwrap();
        });
    }
}
