//! The command slot state machine (table in `shm-layout/src/command.rs`), over the `sync`
//! facade so loom checks the same transitions the segment runs.
//!
//! A slot is claimed by swapping its `client` record from 0 to the caller's own record, so a
//! claimed slot names its claimer from the claim's first instant: a client killed at any point
//! after claiming leaves a slot that names a dead process and is reclaimed. Freeing stores the
//! state first and clears `client` last, so a slot is claimable only once it is free.

use crate::sync::{fence, futex_wake, AtomicU32, AtomicU64, Ordering};
use shm_layout::{
    CMD_ABANDONED, CMD_ANSWERING_MARK, CMD_FAILED, CMD_FREE, CMD_LOST, CMD_QUEUED, CMD_REPLIED,
    CMD_TAKEN,
};

/// One slot's protocol words: the state word (also the client's futex word), the claimer's
/// record, and the reply length (which carries the server's "answering" mark).
#[derive(Clone, Copy)]
pub(crate) struct SlotWords<'a> {
    /// `(generation << 8) | state`.
    pub state: &'a AtomicU32,
    /// The claiming client's record; 0 while the slot is claimable.
    pub client: &'a AtomicU64,
    /// The reply length; [`CMD_ANSWERING_MARK`] once the server started writing the answer.
    pub reply_len: &'a AtomicU32,
}

/// Has the server holding `s` started writing its answer (so the request ran, and an inline
/// request may be overwritten)?
fn answering(s: SlotWords<'_>) -> bool {
    s.reply_len.load(Ordering::Relaxed) & CMD_ANSWERING_MARK != 0
}

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

/// Client `me` (its non-zero record): claims a free slot; returns its generation.
pub(crate) fn claim(s: SlotWords<'_>, me: u64) -> Option<u32> {
    // A load first: a busy slot costs no locked instruction.
    if s.client.load(Ordering::Relaxed) != 0 {
        return None;
    }
    // Acquire: pairs with the Release clear in `release_client`; the previous call's reads
    // and the slot's FREE state are visible.
    s.client
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .ok()?;
    let w = s.state.load(Ordering::Relaxed);
    if state_of(w) != CMD_FREE {
        // Only a corrupt segment has a claimable slot that is not free: leave it.
        return None;
    }
    Some(generation_of(w))
}

/// The last step of every free: the slot becomes claimable.
fn release_client(s: SlotWords<'_>) {
    // Release: pairs with the Acquire claim; the FREE state stored before is visible.
    s.client.store(0, Ordering::Release);
}

/// Client: the request is written; hand it to the server.
pub(crate) fn queue(s: SlotWords<'_>, generation: u32) {
    // No answering mark from a previous call may survive into this one.
    s.reply_len.store(0, Ordering::Relaxed);
    // Release: pairs with the server's Acquire take; the request bytes (and the cleared
    // reply length) are visible to it.
    s.state
        .store(pack(generation, CMD_QUEUED), Ordering::Release);
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

/// Server: marks that it starts answering the request it took (the request ran; its bytes may
/// be overwritten from here on). A plain store in the slot's line rather than a state change,
/// so a spinning client does not pull the line away between the mark and the answer.
pub(crate) fn begin_answer(s: SlotWords<'_>) {
    s.reply_len.store(CMD_ANSWERING_MARK, Ordering::Relaxed);
    // Release fence: the mark is visible before any reply byte that may overwrite an inline
    // request, also to a successor reading the slot after this process was killed.
    fence(Ordering::Release);
}

/// Server: publishes the answer it wrote (`failed`: an error message). False if the client
/// abandoned the call meanwhile (the slot is then freed here, the answer goes nowhere).
pub(crate) fn answer(s: SlotWords<'_>, generation: u32, failed: bool) -> bool {
    publish(s, generation, if failed { CMD_FAILED } else { CMD_REPLIED })
}

/// Successor server: publishes the `LOST` outcome it wrote into a slot [`settle_orphan`]
/// returned as [`Orphan::Lost`]. False if the client abandoned it first (then freed here).
pub(crate) fn answer_lost(s: SlotWords<'_>, generation: u32) -> bool {
    publish(s, generation, CMD_LOST)
}

fn publish(s: SlotWords<'_>, generation: u32, state: u32) -> bool {
    // Release: pairs with the client's Acquire collect; the answer bytes are visible to it.
    match s.state.compare_exchange(
        pack(generation, CMD_TAKEN),
        pack(generation, state),
        Ordering::Release,
        Ordering::Relaxed,
    ) {
        Ok(_) => true,
        Err(_) => {
            free_abandoned(s, generation);
            false
        }
    }
}

/// Server: frees a slot its client abandoned (only the server holding a slot may).
fn free_abandoned(s: SlotWords<'_>, generation: u32) {
    // Release: our writes to the slot are done before the next claimer's Acquire claim.
    if s.state
        .compare_exchange(
            pack(generation, CMD_ABANDONED),
            pack(next(generation), CMD_FREE),
            Ordering::Release,
            Ordering::Relaxed,
        )
        .is_ok()
    {
        release_client(s);
    }
}

/// An answer a client can collect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The server's reply.
    Replied,
    /// The server's error message.
    Failed,
    /// The server died holding the request (outcome in the slot).
    Lost,
}

/// Client: the answer of its call, if there is one.
pub(crate) fn collect(word: &AtomicU32, generation: u32) -> Option<Answer> {
    // Acquire: pairs with the server's Release publish.
    let w = word.load(Ordering::Acquire);
    if generation_of(w) != generation {
        return None;
    }
    match state_of(w) {
        CMD_REPLIED => Some(Answer::Replied),
        CMD_FAILED => Some(Answer::Failed),
        CMD_LOST => Some(Answer::Lost),
        _ => None,
    }
}

/// Client: done with the answer; the slot is free for the next call.
pub(crate) fn free(s: SlotWords<'_>, generation: u32) {
    // Release: our reads of the reply happen before the next claimer's Acquire.
    s.state
        .store(pack(next(generation), CMD_FREE), Ordering::Release);
    release_client(s);
}

/// What giving up on a call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GaveUp {
    /// The server had not taken it: withdrawn (it will never run), slot free.
    Withdrawn,
    /// A server holds it: marked abandoned; that server frees the slot. `executed`: it was
    /// already writing the answer.
    Abandoned {
        /// The server had finished executing the request.
        executed: bool,
    },
    /// The answer arrived first: collect it after all.
    Answered(Answer),
}

/// Client: gives up on its call (timeout, server death). Never frees a slot a server holds.
pub(crate) fn give_up(s: SlotWords<'_>, generation: u32) -> GaveUp {
    loop {
        let w = s.state.load(Ordering::Acquire);
        if generation_of(w) != generation {
            // Not ours any more (cannot happen to a live caller).
            return GaveUp::Withdrawn;
        }
        let to = match state_of(w) {
            CMD_QUEUED => pack(next(generation), CMD_FREE),
            CMD_TAKEN => pack(generation, CMD_ABANDONED),
            CMD_REPLIED => return GaveUp::Answered(Answer::Replied),
            CMD_FAILED => return GaveUp::Answered(Answer::Failed),
            CMD_LOST => return GaveUp::Answered(Answer::Lost),
            _ => return GaveUp::Withdrawn,
        };
        if s.state
            .compare_exchange(w, to, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            if state_of(to) == CMD_FREE {
                release_client(s);
                return GaveUp::Withdrawn;
            }
            // The mark read after abandoning: a server that marks later is still "may or may
            // not have run" to us, which stays true.
            return GaveUp::Abandoned {
                executed: answering(s),
            };
        }
    }
}

/// Anyone: frees slot `s` if its claim belongs to a dead client (`dead` says which records
/// are dead). Returns whether this caller freed it.
///
/// The claim is read first and the state after it, and the claim is checked again before
/// every compare-and-swap: a dead client never claims again (its record is unique), so a
/// claim seen as `x` before and after a state read was `x`'s all along, and that state
/// belongs to `x`'s call. Checking the claim only *before* the state read (as this did)
/// let a late reclaimer read a new live client's queued state after another reclaimer had
/// freed the slot and the new client had claimed it — and free it, losing that request.
pub(crate) fn reclaim_if_dead(s: SlotWords<'_>, dead: impl Fn(u64) -> bool) -> bool {
    // Acquire: pairs with the claim's CAS; a state read after it belongs to that claim or a
    // later one (told apart by the re-check in `reclaim_dead_client`).
    let client = s.client.load(Ordering::Acquire);
    if client == 0 || !dead(client) {
        return false;
    }
    let w = s.state.load(Ordering::Acquire);
    reclaim_dead_client(s, w, client)
}

/// Frees a slot whose claim is the dead client `dead`, from the state `observed` (read after
/// the claim was seen as `dead`).
fn reclaim_dead_client(s: SlotWords<'_>, mut observed: u32, dead: u64) -> bool {
    // A server may move the state meanwhile (take a queued request, answer it): look again,
    // as long as the slot is still that dead client's.
    for _ in 0..8 {
        // Acquire: the state `observed` was read before this load; the claim still being
        // `dead` now means it was `dead`'s throughout, so `observed` is its call's state.
        if s.client.load(Ordering::Acquire) != dead {
            return false;
        }
        if try_reclaim_dead_client(s, observed, dead) {
            return true;
        }
        let now = s.state.load(Ordering::Acquire);
        if now == observed {
            return false;
        }
        observed = now;
    }
    false
}

fn try_reclaim_dead_client(s: SlotWords<'_>, observed: u32, dead: u64) -> bool {
    let generation = generation_of(observed);
    let to = match state_of(observed) {
        // Claimed but never queued (or a free cut short before its last step): only the
        // claim is left to undo, and only if it is still that dead client's.
        CMD_FREE => {
            return s
                .client
                .compare_exchange(dead, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }
        // A server's to free.
        CMD_ABANDONED => return false,
        CMD_TAKEN => pack(generation, CMD_ABANDONED),
        _ => pack(next(generation), CMD_FREE),
    };
    if s.state
        .compare_exchange(observed, to, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    if state_of(to) == CMD_FREE {
        // Not a plain store of 0: another reclaimer that saw the slot FREE with the dead
        // claim may have ended this free already, and a live client claimed the slot since;
        // a store would erase that claim. Whoever clears the dead claim did the reclaim.
        // Release: pairs with the next claim's Acquire, as `release_client`.
        return s
            .client
            .compare_exchange(dead, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok();
    }
    true
}

/// What a successor server did with a slot the dead server may have held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Orphan {
    /// Not a dead server's slot.
    Untouched,
    /// A retry-safe request queued again.
    Requeued,
    /// The successor now holds it (still `TAKEN`, so that a client giving up meanwhile learns
    /// the same outcome) and must write the `LOST` outcome, then call [`answer_lost`].
    /// `executed`: the dead server had started answering.
    Lost {
        /// Its generation.
        generation: u32,
        /// Whether the request had run.
        executed: bool,
    },
    /// An abandoned slot the dead server never freed, freed now.
    Freed,
}

/// Successor server, right after taking the role from a dead server (so every `TAKEN` and
/// `ABANDONED` slot is the dead one's): settles the slot. `retry_safe` tells whether its
/// request may run again.
pub(crate) fn settle_orphan(s: SlotWords<'_>, retry_safe: impl Fn() -> bool) -> Orphan {
    loop {
        let w = s.state.load(Ordering::Acquire);
        let generation = generation_of(w);
        match state_of(w) {
            // Not answered yet: the request bytes are intact and may run again if allowed.
            // A failed CAS means the client abandoned it meanwhile: look again.
            CMD_TAKEN if !answering(s) && retry_safe() => {
                if s.state
                    .compare_exchange(
                        w,
                        pack(generation, CMD_QUEUED),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return Orphan::Requeued;
                }
            }
            // Already a server's (ours now): no transition needed to own it. Passing through
            // another state would tell a client giving up meanwhile another outcome.
            CMD_TAKEN => {
                return Orphan::Lost {
                    generation,
                    executed: answering(s),
                }
            }
            // Ours to free now, as the server holding it.
            CMD_ABANDONED => {
                free_abandoned(s, generation);
                return Orphan::Freed;
            }
            _ => return Orphan::Untouched,
        }
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
mod loom_tests;
