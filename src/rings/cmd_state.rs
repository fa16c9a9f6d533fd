//! The command slot state machine (table in `shm-layout/src/command.rs`), over the `sync`
//! facade so loom checks the same transitions the segment runs.

use crate::sync::{fence, futex_wake, AtomicU32, Ordering};
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
    // Release: pairs with the server's Acquire take; the request bytes are visible to it.
    word.store(pack(generation, CMD_QUEUED), Ordering::Release);
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
    match word.compare_exchange(
        pack(generation, CMD_TAKEN),
        to,
        Ordering::Release,
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

// The two sleep handshakes below are Dekker pairs: each side stores its own word, issues a
// SeqCst fence, then loads the other's. Of two SeqCst fences one comes first in the single
// total order, so at least one side sees the other's store. Fences rather than SeqCst
// accesses because loom checks fences (it does not model SeqCst loads and stores); on x86
// both cost one locked instruction.

/// Client, after `queue`: wakes the server if it may be asleep. A spinning server costs no
/// write to the shared header.
pub(crate) fn wake_server_if_asleep(sleeping: &AtomicU32, notify: &AtomicU32) {
    // SeqCst fence: pairs with the one in `server_prepares_to_sleep`: either the server's
    // re-scan sees our QUEUED state, or we see `sleeping` here.
    fence(Ordering::SeqCst);
    if sleeping.load(Ordering::Relaxed) != 0 {
        // Release: a server whose Acquire load of `notify` reads this bump also sees the
        // queued state (so it never sleeps on a value that already counts our request
        // without seeing the request).
        notify.fetch_add(1, Ordering::Release);
        futex_wake(notify, 1);
    }
}

/// Server, found nothing queued: announces that it may sleep. Returns the `notify` value to
/// sleep on; the caller must re-scan the slot states before sleeping.
pub(crate) fn server_prepares_to_sleep(sleeping: &AtomicU32, notify: &AtomicU32) -> u32 {
    sleeping.store(1, Ordering::Relaxed);
    // SeqCst fence: pairs with the one in `wake_server_if_asleep`.
    fence(Ordering::SeqCst);
    // Acquire: pairs with the client's Release bump.
    notify.load(Ordering::Acquire)
}

/// Server, awake again (or not sleeping after all).
pub(crate) fn server_awake(sleeping: &AtomicU32) {
    sleeping.store(0, Ordering::Relaxed);
}

/// Server, after `answer`: is the client asleep (so it needs a futex wake)? A spinning
/// client costs no system call.
pub(crate) fn client_may_sleep(waiting: &AtomicU32) -> bool {
    // SeqCst fence: pairs with the one in `client_prepares_to_sleep`: either the client's
    // re-check sees our answer, or we see its `waiting` flag.
    fence(Ordering::SeqCst);
    waiting.load(Ordering::Relaxed) != 0
}

/// Client, no answer yet: announces that it may sleep on its state word; the caller must
/// re-check the state before sleeping.
pub(crate) fn client_prepares_to_sleep(waiting: &AtomicU32) {
    waiting.store(1, Ordering::Relaxed);
    // SeqCst fence: pairs with the one in `client_may_sleep`.
    fence(Ordering::SeqCst);
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

    /// A request queued while the server goes to sleep is never slept through: either the
    /// server's re-scan finds it, or `notify` moved past the value the server sleeps on.
    #[test]
    fn a_request_queued_as_the_server_falls_asleep_is_not_lost() {
        loom::model(|| {
            let word = Arc::new(AtomicU32::new(0));
            let sleeping = Arc::new(AtomicU32::new(0));
            let notify = Arc::new(AtomicU32::new(0));
            let (w2, s2, n2) = (word.clone(), sleeping.clone(), notify.clone());
            let client = thread::spawn(move || {
                let generation = claim(&w2).unwrap();
                queue(&w2, generation);
                wake_server_if_asleep(&s2, &n2);
            });
            let queued = |w: &AtomicU32| state_of(w.load(Ordering::Acquire)) == CMD_QUEUED;
            let mut slept_on = None;
            if !queued(&word) {
                let seen = server_prepares_to_sleep(&sleeping, &notify);
                if !queued(&word) {
                    slept_on = Some(seen);
                }
            }
            // The server "sleeps" here: it only clears its flag once the client is done, as a
            // real server does only after its futex wait returns.
            client.join().unwrap();
            server_awake(&sleeping);
            if let Some(seen) = slept_on {
                assert_ne!(
                    notify.load(Ordering::SeqCst),
                    seen,
                    "the server would sleep through a queued request"
                );
            }
        });
    }

    /// An answer given as the client falls asleep is never slept through: either the
    /// client's re-check sees it, or the server sees the client waiting and wakes it.
    #[test]
    fn an_answer_given_as_the_client_falls_asleep_is_not_lost() {
        loom::model(|| {
            let word = Arc::new(AtomicU32::new(0));
            let waiting = Arc::new(AtomicU32::new(0));
            let generation = claim(&word).unwrap();
            queue(&word, generation);
            let (w2, wait2) = (word.clone(), waiting.clone());
            let server = thread::spawn(move || {
                let g = take(&w2).unwrap();
                answer(&w2, g, false) && client_may_sleep(&wait2)
            });
            let mut would_sleep = false;
            if collect(&word, generation).is_none() {
                client_prepares_to_sleep(&waiting);
                would_sleep = collect(&word, generation).is_none();
            }
            let woken = server.join().unwrap();
            assert!(
                !would_sleep || woken,
                "the client would sleep through its answer"
            );
        });
    }
}
