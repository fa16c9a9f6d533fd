//! The owned reader's hold protocol: many frames of one reader share one pin of a slot, and
//! the last of the reader and its frames retires the registration.
//!
//! An owned reader hands out frames that are dropped on any thread, and several of its
//! frames may hold the same slot. The slot word has one bit per reader registration, so the
//! reader keeps a local count of its frames per slot and sets the shared bit on the count's
//! 0 → 1 and clears it on 1 → 0.
//!
//! Who may change a count, and how:
//!
//! | count            | set by                                   | meaning                      |
//! |------------------|------------------------------------------|------------------------------|
//! | `0`              | the last release (a plain store)         | no frame holds the slot      |
//! | `n ≥ 1`          | a hold (0 → 1 a plain store, n → n+1 CAS)| `n` frames hold it; bit set  |
//! | `UNPINNING`      | the last release's CAS from 1            | its bit is being cleared     |
//! | `… \| GONE`      | the reader's retirement (a CAS per slot) | the reader is gone           |
//!
//! Holds come from the reader's `next`/`latest`, which take it by `&mut`: they never race
//! each other, only releases. A count of 0 that is not `UNPINNING` therefore cannot change
//! under a hold (a release needs a frame, and none holds the slot), so the first hold pins
//! the slot word and then stores 1 — no read-modify-write of the count at all. A hold of a
//! slot its frames already hold trusts the bit, so the last release marks `UNPINNING` with
//! a compare-and-swap before it clears the bit: the hold's increment then fails, and the
//! hold waits for the clear to finish and pins afresh (a plain counter beside the bit would
//! let the hold see 1, trust the bit, and the release clear it before the increment lands).
//!
//! Lifetime without a reference count per frame: when the reader is dropped it marks every
//! count `GONE` (waiting out an `UNPINNING`), counting the slots still held. The release
//! that takes a `GONE` slot to 0 owes the reader one unit of `remaining`; the reader owes
//! one per empty slot plus its own. Whoever subtracts the last unit frees the reader's core
//! — exactly one party, after everybody else's last touch. Written against the `sync`
//! facade; the loom models below check the hold/release race, the writer's exclusion and the
//! retirement.

use super::slot_word;
use crate::sync::{spin_hint, AtomicU32, AtomicU64, Ordering};

/// Set in a slot's local hold count while its last release clears the shared bit.
pub(crate) const UNPINNING: u32 = 1 << 31;
/// Set in every slot's local hold count once the reader is gone.
pub(crate) const GONE: u32 = 1 << 30;
/// The number of frames in a count.
const FRAMES: u32 = GONE - 1;

/// Takes one more hold of the slot (`word`, local `count`) for frame `id` by reader
/// `reader`: the first hold pins the slot word. False if the slot no longer holds `id`.
///
/// Callers serialise their holds of one reader (its `&mut` methods) and never hold after
/// [`retire`].
#[inline]
pub(crate) fn hold(
    count: &AtomicU32,
    word: &AtomicU64,
    id: u64,
    reader: u32,
    likely: bool,
) -> bool {
    loop {
        // Acquire: pairs with the Release store that ended the last release's unpin, so our
        // pin comes after its clear in the slot word's order.
        let c = count.load(Ordering::Acquire);
        if c & UNPINNING != 0 {
            spin_hint();
            continue;
        }
        if c == 0 {
            // No frame holds the slot, so no release can run on it, and holds are
            // serialised: the count is ours until we publish it.
            if !slot_word::try_pin(word, id, reader, likely) {
                return false;
            }
            // Release: a frame handed to another thread carries this count with it (the
            // hand-over itself synchronises); Release keeps the order explicit anyway.
            count.store(1, Ordering::Release);
            return true;
        }
        // Held by one of our frames: the slot's frame cannot change, so it is `id` or not.
        if slot_word::id_of(word.load(Ordering::Relaxed)) != id {
            return false;
        }
        // A last release marking `UNPINNING` makes this fail; the loop then waits it out.
        if count
            .compare_exchange(c, c + 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
    }
}

/// Gives one hold of the slot back: the last one unpins the slot word. True when the reader
/// is gone and this settled the last unit of `remaining` (see [`retire`]): the caller frees
/// the reader's core, which nobody touches afterwards.
#[inline]
pub(crate) fn release(
    count: &AtomicU32,
    word: &AtomicU64,
    reader: u32,
    remaining: &AtomicU32,
) -> bool {
    loop {
        let c = count.load(Ordering::Relaxed);
        if c & UNPINNING != 0 {
            // Only a release of another frame of this slot could have set it, and that one
            // was the last: a double release, a bug elsewhere. Wait; it ends.
            spin_hint();
            continue;
        }
        match c & FRAMES {
            0 => return false, // not held: a bug elsewhere, and nothing to release
            1 => {
                // Acquire: pairs with the Release of the hold that made it 1 (and with the
                // retirement's Release that set `GONE`).
                if count
                    .compare_exchange(c, UNPINNING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    slot_word::unpin(word, reader);
                    // Release: pairs with the Acquire load of the next hold or of the
                    // retirement; the clear comes first. `GONE` cannot have been set since
                    // our CAS (the retirement waits out `UNPINNING`).
                    count.store(c & GONE, Ordering::Release);
                    // The reader is gone and this was the slot's last frame: settle its unit.
                    // Otherwise touch nothing more: the retirement may free the core as soon
                    // as it sees this 0.
                    return c & GONE != 0 && settle(remaining, 1);
                }
            }
            _ => {
                // AcqRel: our reads of the frame come before the last release's unpin.
                if count
                    .compare_exchange(c, c - 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return false;
                }
            }
        }
    }
}

/// The reader retires (its drop; no hold runs during or after it): marks every count
/// `GONE` and settles its own units of `remaining` — one per slot no frame holds, plus one
/// for itself. True: nothing holds a slot any more and the caller frees the core now; false:
/// the last release to settle frees it.
pub(crate) fn retire(counts: &[AtomicU32], remaining: &AtomicU32) -> bool {
    // Every party's units, before any release can see `GONE` and settle its own (the
    // `GONE` CAS below is Release, the release's CAS that sees it Acquire).
    let units = u32::try_from(counts.len()).map_or(u32::MAX, |n| n.saturating_add(1));
    remaining.store(units, Ordering::Relaxed);
    let mut mine = 1;
    for count in counts {
        loop {
            let c = count.load(Ordering::Acquire);
            if c & UNPINNING != 0 {
                // A last release is clearing its bit; it stores 0 when done.
                spin_hint();
                continue;
            }
            // Release: publishes `remaining` to the release that sees `GONE`; Acquire: pairs
            // with that slot's last Release store.
            if count
                .compare_exchange(c, c | GONE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                if c == 0 {
                    mine += 1;
                }
                break;
            }
        }
    }
    settle(remaining, mine)
}

/// Subtracts `units` from `remaining`: true for the party that subtracts the last, which
/// frees the reader's core (nobody touches it afterwards).
fn settle(remaining: &AtomicU32, units: u32) -> bool {
    // AcqRel: every other party's last touch of the core happens before the free.
    remaining.fetch_sub(units, Ordering::AcqRel) == units
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;
    use shm_layout::FRAME_READERS_SHIFT;

    fn pinned(word: &AtomicU64) -> bool {
        slot_word::readers_of(word.load(Ordering::Relaxed)) & 1 != 0
    }

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
            let dropper = thread::spawn(move || release(&c2, &w2, 0, &AtomicU32::new(0)));
            let held = hold(&count, &word, 1, 0, false);
            assert!(held, "frame 1 is still in its slot");
            assert!(
                pinned(&word),
                "a hold is counted but the slot is not pinned"
            );
            assert!(!dropper.join().unwrap(), "the reader is not gone");
            assert!(!release(&count, &word, 0, &AtomicU32::new(0)));
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
                        assert!(!release(&c, &w, 0, &AtomicU32::new(0)));
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

    /// A reader's core as the model sees it: two slots' counts and words, `remaining`, and
    /// a cell standing for the memory the free gives back (loom reports any access to it
    /// that the free does not happen after, or that follows it).
    struct Core {
        counts: [AtomicU32; 2],
        words: [AtomicU64; 2],
        remaining: AtomicU32,
        memory: UnsafeCell<bool>,
    }

    impl Core {
        fn touch(&self) {
            self.memory.with(|freed| {
                // SAFETY: loom checks this read against the free's write.
                let freed = unsafe { *freed };
                assert!(!freed, "used after free");
            });
        }

        fn free(&self, frees: &AtomicU32) {
            frees.fetch_add(1, Ordering::Relaxed);
            // SAFETY: loom checks this write against every other party's touches.
            self.memory.with_mut(|freed| unsafe { *freed = true });
        }
    }

    /// Frames in both slots (the first slot held twice) are dropped on two threads while the
    /// reader retires on a third: whatever the interleaving, the core is freed exactly once,
    /// after every other party's last touch, with both slots unpinned.
    #[test]
    fn the_last_of_a_retired_reader_and_its_frames_frees_it_once() {
        loom::model(|| {
            let core = Arc::new(Core {
                counts: [AtomicU32::new(0), AtomicU32::new(0)],
                words: [AtomicU64::new(1), AtomicU64::new(2)],
                remaining: AtomicU32::new(0),
                memory: UnsafeCell::new(false),
            });
            let frees = Arc::new(AtomicU32::new(0));
            assert!(hold(&core.counts[0], &core.words[0], 1, 0, true));
            assert!(hold(&core.counts[0], &core.words[0], 1, 0, true));
            assert!(hold(&core.counts[1], &core.words[1], 2, 0, false));
            let droppers: Vec<_> = [0usize, 1]
                .into_iter()
                .map(|slot| {
                    let (core, frees) = (core.clone(), frees.clone());
                    thread::spawn(move || {
                        // Slot 0's two frames go on this thread, slot 1's one on the other.
                        for _ in 0..(2 - slot) {
                            core.touch();
                            let (count, word) = (&core.counts[slot], &core.words[slot]);
                            if release(count, word, 0, &core.remaining) {
                                core.free(&frees);
                            }
                        }
                    })
                })
                .collect();
            core.touch();
            if retire(&core.counts, &core.remaining) {
                core.free(&frees);
            }
            for d in droppers {
                d.join().unwrap();
            }
            assert_eq!(frees.load(Ordering::Relaxed), 1, "freed once");
            assert!(!pinned(&core.words[0]) && !pinned(&core.words[1]));
        });
    }
}
