//! The command slot state machine (table in `shm-layout/src/command.rs`), over the `sync`
//! facade so loom checks the same transitions the segment runs.

use crate::sync::{AtomicU32, Ordering};
use shm_layout::{
    CMD_ABANDONED, CMD_CLAIMED, CMD_FAILED, CMD_FREE, CMD_QUEUED, CMD_REPLIED, CMD_TAKEN,
};

pub(crate) fn pack(generation: u32, state: u32) -> u32 {
    (generation << 8) | state
}

pub(crate) fn state_of(w: u32) -> u32 {
    w & 0xFF
}

pub(crate) fn generation_of(w: u32) -> u32 {
    w >> 8
}

/// Next generation (24 bits, wrapping).
fn next(generation: u32) -> u32 {
    (generation + 1) & 0x00FF_FFFF
}

/// Client: claims a free slot; returns its generation.
pub(crate) fn claim(word: &AtomicU32) -> Option<u32> {
    let w = word.load(Ordering::Relaxed);
    if state_of(w) != CMD_FREE {
        return None;
    }
    // Acquire: the previous call's reads of the reply are done (its free was Release).
    word.compare_exchange(
        w,
        pack(generation_of(w), CMD_CLAIMED),
        Ordering::Acquire,
        Ordering::Relaxed,
    )
    .ok()
    .map(generation_of)
}

/// Client: the request is written; hand it to the server.
pub(crate) fn queue(word: &AtomicU32, generation: u32) {
    // SeqCst (a release store and more): pairs with the server's take (the request bytes are
    // visible to it) and is the first half of the client's sleep handshake with the server.
    word.store(pack(generation, CMD_QUEUED), Ordering::SeqCst);
}

/// Server: takes a queued request; returns its generation.
pub(crate) fn take(word: &AtomicU32) -> Option<u32> {
    let w = word.load(Ordering::Acquire);
    if state_of(w) != CMD_QUEUED {
        return None;
    }
    word.compare_exchange(
        w,
        pack(generation_of(w), CMD_TAKEN),
        Ordering::Acquire,
        Ordering::Relaxed,
    )
    .ok()
    .map(generation_of)
}

/// Server: publishes the answer of the request it took. False if the client had abandoned
/// it (the slot is then freed here, and the answer goes nowhere).
pub(crate) fn answer(word: &AtomicU32, generation: u32, failed: bool) -> bool {
    let to = pack(generation, if failed { CMD_FAILED } else { CMD_REPLIED });
    // Release: pairs with the client's Acquire collect; the reply bytes are visible to it.
    // SeqCst: the first half of the server's wake handshake with a sleeping client.
    match word.compare_exchange(
        pack(generation, CMD_TAKEN),
        to,
        Ordering::SeqCst,
        Ordering::Relaxed,
    ) {
        Ok(_) => true,
        Err(_) => {
            // Only the client can have moved it: to ABANDONED.
            let _ = word.compare_exchange(
                pack(generation, CMD_ABANDONED),
                pack(next(generation), CMD_FREE),
                Ordering::Release,
                Ordering::Relaxed,
            );
            false
        }
    }
}

/// Client: the answer of its call, if there is one (`Some(failed)`).
pub(crate) fn collect(word: &AtomicU32, generation: u32) -> Option<bool> {
    // Acquire: pairs with the server's Release answer.
    let w = word.load(Ordering::Acquire);
    if generation_of(w) != generation {
        return None;
    }
    match state_of(w) {
        CMD_REPLIED => Some(false),
        CMD_FAILED => Some(true),
        _ => None,
    }
}

/// Client: done with the answer; the slot is free for the next call.
pub(crate) fn free(word: &AtomicU32, generation: u32) {
    // Release: our reads of the reply happen before the next claimer's Acquire.
    word.store(pack(next(generation), CMD_FREE), Ordering::Release);
}

/// What giving up on a call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GaveUp {
    /// The server had not taken it: withdrawn, slot free.
    Withdrawn,
    /// The server holds it: marked abandoned; the server frees the slot.
    Abandoned,
    /// The answer arrived first (`failed` or not): collect it after all.
    Answered(bool),
}

/// Client: gives up on its call (timeout, server death).
pub(crate) fn give_up(word: &AtomicU32, generation: u32, server_dead: bool) -> GaveUp {
    loop {
        let w = word.load(Ordering::Acquire);
        let to = match state_of(w) {
            CMD_QUEUED => pack(next(generation), CMD_FREE),
            // A dead server will never answer: free it ourselves.
            CMD_TAKEN if server_dead => pack(next(generation), CMD_FREE),
            CMD_TAKEN => pack(generation, CMD_ABANDONED),
            CMD_REPLIED => return GaveUp::Answered(false),
            CMD_FAILED => return GaveUp::Answered(true),
            // Not ours any more (cannot happen to a live caller).
            _ => return GaveUp::Withdrawn,
        };
        if word
            .compare_exchange(w, to, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return if state_of(to) == CMD_ABANDONED {
                GaveUp::Abandoned
            } else {
                GaveUp::Withdrawn
            };
        }
    }
}

/// Anyone: frees a slot whose client is dead. Returns true if it was freed (or abandoned
/// to the server, which then frees it).
pub(crate) fn reclaim_dead_client(word: &AtomicU32, observed: u32) -> bool {
    let generation = generation_of(observed);
    let to = match state_of(observed) {
        CMD_FREE => return false,
        CMD_TAKEN => pack(generation, CMD_ABANDONED),
        _ => pack(next(generation), CMD_FREE),
    };
    word.compare_exchange(observed, to, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

/// Server taking over from a dead server: requests it had taken go back to the queue.
pub(crate) fn requeue_taken(word: &AtomicU32) {
    let w = word.load(Ordering::Acquire);
    if state_of(w) == CMD_TAKEN {
        let _ = word.compare_exchange(
            w,
            pack(generation_of(w), CMD_QUEUED),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A client that times out while the server works never sees a stale answer, every
    /// answer is delivered at most once, and the slot always ends free.
    #[test]
    fn give_up_races_answer_and_the_slot_ends_free() {
        loom::model(|| {
            let word = Arc::new(AtomicU32::new(0));
            let generation = claim(&word).unwrap();
            queue(&word, generation);
            let w2 = word.clone();
            let server = thread::spawn(move || {
                if let Some(g) = take(&w2) {
                    answer(&w2, g, false)
                } else {
                    false
                }
            });
            let outcome = give_up(&word, generation, false);
            let delivered = server.join().unwrap();
            match outcome {
                GaveUp::Answered(false) => {
                    assert!(delivered);
                    assert_eq!(collect(&word, generation), Some(false));
                    free(&word, generation);
                }
                GaveUp::Withdrawn => assert!(!delivered),
                GaveUp::Abandoned => assert!(!delivered),
                GaveUp::Answered(true) => panic!("nobody failed it"),
            }
            let w = word.load(Ordering::SeqCst);
            assert_eq!(
                state_of(w),
                CMD_FREE,
                "slot leaked in state {}",
                state_of(w)
            );
            assert_ne!(
                generation_of(w),
                generation,
                "the next call cannot see this call's answer"
            );
        });
    }
}
