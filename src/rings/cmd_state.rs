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
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A client's record.
    const ME: u64 = 0x1234;

    struct Words {
        state: AtomicU32,
        client: AtomicU64,
        reply_len: AtomicU32,
    }

    impl Words {
        fn new() -> Arc<Words> {
            Arc::new(Words {
                state: AtomicU32::new(0),
                client: AtomicU64::new(0),
                reply_len: AtomicU32::new(0),
            })
        }

        fn s(&self) -> SlotWords<'_> {
            SlotWords {
                state: &self.state,
                client: &self.client,
                reply_len: &self.reply_len,
            }
        }

        /// Free and claimable again.
        fn assert_free(&self) {
            let w = self.state.load(Ordering::SeqCst);
            assert_eq!(state_of(w), CMD_FREE, "slot left in state {}", state_of(w));
            assert_eq!(self.client.load(Ordering::SeqCst), 0, "slot left claimed");
        }
    }

    /// A client that times out while the server works never sees a stale answer, every
    /// answer is delivered at most once, and the slot always ends free.
    #[test]
    fn give_up_races_answer_and_the_slot_ends_free() {
        loom::model(|| {
            let word = Words::new();
            let generation = claim(word.s(), ME).unwrap();
            queue(word.s(), generation);
            let w2 = word.clone();
            let server = thread::spawn(move || match take(&w2.state) {
                Some(g) => {
                    begin_answer(w2.s());
                    answer(w2.s(), g, false)
                }
                None => false,
            });
            let outcome = give_up(word.s(), generation);
            let delivered = server.join().unwrap();
            match outcome {
                GaveUp::Answered(Answer::Replied) => {
                    assert!(delivered);
                    assert_eq!(collect(&word.state, generation), Some(Answer::Replied));
                    free(word.s(), generation);
                }
                GaveUp::Withdrawn | GaveUp::Abandoned { .. } => assert!(!delivered),
                GaveUp::Answered(other) => panic!("nobody produced {other:?}"),
            }
            word.assert_free();
            let w = word.state.load(Ordering::SeqCst);
            assert_ne!(
                generation_of(w),
                generation,
                "the next call cannot see this call's answer"
            );
        });
    }

    /// A server died holding a request (`TAKEN`; marked answering with `answering`). Its
    /// successor settles the slot while the client, which noticed the death too, gives up:
    /// whoever wins, the client learns the same outcome, the request is not queued again, and
    /// the slot ends free.
    fn a_dead_servers_slot_is_settled_once(answering: bool) {
        loom::model(move || {
            let word = Words::new();
            let generation = claim(word.s(), ME).unwrap();
            queue(word.s(), generation);
            let g = take(&word.state).unwrap();
            assert_eq!(g, generation);
            if answering {
                begin_answer(word.s());
            }
            // The server dies here. Its successor:
            let w2 = word.clone();
            let successor = thread::spawn(move || match settle_orphan(w2.s(), || false) {
                Orphan::Lost {
                    generation,
                    executed,
                } => {
                    assert_eq!(executed, answering);
                    answer_lost(w2.s(), generation);
                }
                Orphan::Freed | Orphan::Untouched => {}
                Orphan::Requeued => panic!("not retry-safe: must not run again"),
            });
            let executed = match give_up(word.s(), generation) {
                GaveUp::Abandoned { executed } => executed,
                GaveUp::Answered(Answer::Lost) => {
                    free(word.s(), generation);
                    answering
                }
                other => panic!("unexpected {other:?}"),
            };
            successor.join().unwrap();
            assert_eq!(executed, answering, "both paths tell the same outcome");
            word.assert_free();
        });
    }

    #[test]
    fn a_dead_servers_taken_slot_is_settled_once() {
        a_dead_servers_slot_is_settled_once(false);
    }

    #[test]
    fn a_dead_servers_answering_slot_is_settled_once() {
        a_dead_servers_slot_is_settled_once(true);
    }

    /// A retry-safe request held by a dead server is queued again by the successor and run
    /// at most once more; a client giving up meanwhile withdraws it before it runs, or
    /// abandons it to the successor, which frees the slot.
    #[test]
    fn a_retry_safe_request_runs_again_at_most_once() {
        loom::model(|| {
            let word = Words::new();
            let generation = claim(word.s(), ME).unwrap();
            queue(word.s(), generation);
            take(&word.state).unwrap();
            let w2 = word.clone();
            let successor = thread::spawn(move || match settle_orphan(w2.s(), || true) {
                // The client abandoned it first: freed, never run again.
                Orphan::Freed => false,
                Orphan::Requeued => match take(&w2.state) {
                    Some(g) => {
                        begin_answer(w2.s());
                        answer(w2.s(), g, false)
                    }
                    None => false,
                },
                other => panic!("unexpected {other:?}"),
            });
            let outcome = give_up(word.s(), generation);
            let delivered = successor.join().unwrap();
            match outcome {
                GaveUp::Answered(Answer::Replied) => {
                    assert!(delivered);
                    free(word.s(), generation);
                }
                GaveUp::Withdrawn | GaveUp::Abandoned { .. } => assert!(!delivered),
                GaveUp::Answered(other) => panic!("nobody produced {other:?}"),
            }
            word.assert_free();
        });
    }

    /// A client killed right after claiming (never queued): two reclaimers that saw its dead
    /// record and a live client wanting the slot. The slot is reclaimed once and claimed by
    /// the live client at most once; it is never claimed by two.
    #[test]
    fn a_dead_claimers_slot_is_reclaimed_once_and_claimed_once() {
        const DEAD: u64 = 0xDEAD;
        loom::model(|| {
            let word = Words::new();
            claim(word.s(), DEAD).unwrap();
            let reclaimers: Vec<_> = (0..2)
                .map(|_| {
                    let w = word.clone();
                    thread::spawn(move || {
                        let observed = w.state.load(Ordering::Acquire);
                        reclaim_dead_client(w.s(), observed, DEAD)
                    })
                })
                .collect();
            let w = word.clone();
            let live = thread::spawn(move || claim(w.s(), ME).is_some());
            let reclaimed = reclaimers
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&r| r)
                .count();
            let claimed = live.join().unwrap();
            assert_eq!(reclaimed, 1, "reclaimed exactly once");
            let client = word.client.load(Ordering::SeqCst);
            assert_eq!(client, if claimed { ME } else { 0 });
        });
    }

    /// A late reclaimer that saw the dead client's claim never frees the slot after another
    /// reclaimer freed it and a live client claimed it and queued a request (the fault
    /// injection test's "call through a reclaimed slot" timeout).
    #[test]
    fn a_late_reclaimer_never_frees_a_live_clients_queued_request() {
        const DEAD: u64 = 0xDEAD;
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let word = Words::new();
            let generation = claim(word.s(), DEAD).unwrap();
            queue(word.s(), generation);
            let reclaimers: Vec<_> = (0..2)
                .map(|_| {
                    let w = word.clone();
                    thread::spawn(move || reclaim_if_dead(w.s(), |c| c == DEAD))
                })
                .collect();
            let w = word.clone();
            let live = thread::spawn(move || {
                for _ in 0..3 {
                    if let Some(g) = claim(w.s(), ME) {
                        queue(w.s(), g);
                        return Some(g);
                    }
                    thread::yield_now();
                }
                None
            });
            let reclaimed = reclaimers
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&r| r)
                .count();
            let queued = live.join().unwrap();
            assert_eq!(reclaimed, 1, "reclaimed exactly once");
            if let Some(g) = queued {
                assert_eq!(
                    word.client.load(Ordering::SeqCst),
                    ME,
                    "the live claim was undone"
                );
                assert_eq!(
                    word.state.load(Ordering::SeqCst),
                    pack(g, CMD_QUEUED),
                    "the live client's queued request was freed"
                );
            }
        });
    }

    /// A request queued while the server goes to sleep is never slept through: either the
    /// server's re-scan finds it, or `notify` moved past the value the server sleeps on.
    #[test]
    fn a_request_queued_as_the_server_falls_asleep_is_not_lost() {
        loom::model(|| {
            let word = Words::new();
            let sleeping = Arc::new(AtomicU32::new(0));
            let notify = Arc::new(AtomicU32::new(0));
            let (w2, s2, n2) = (word.clone(), sleeping.clone(), notify.clone());
            let client = thread::spawn(move || {
                let generation = claim(w2.s(), ME).unwrap();
                queue(w2.s(), generation);
                wake_server_if_asleep(&s2, &n2);
            });
            let queued = |w: &AtomicU32| state_of(w.load(Ordering::Acquire)) == CMD_QUEUED;
            let mut slept_on = None;
            if !queued(&word.state) {
                let seen = server_prepares_to_sleep(&sleeping, &notify);
                if !queued(&word.state) {
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
            let word = Words::new();
            let waiting = Arc::new(AtomicU32::new(0));
            let generation = claim(word.s(), ME).unwrap();
            queue(word.s(), generation);
            let (w2, wait2) = (word.clone(), waiting.clone());
            let server = thread::spawn(move || {
                let g = take(&w2.state).unwrap();
                begin_answer(w2.s());
                answer(w2.s(), g, false) && client_may_sleep(&wait2)
            });
            let mut would_sleep = false;
            if collect(&word.state, generation).is_none() {
                client_prepares_to_sleep(&waiting);
                would_sleep = collect(&word.state, generation).is_none();
            }
            let woken = server.join().unwrap();
            assert!(
                !would_sleep || woken,
                "the client would sleep through its answer"
            );
        });
    }
}
