//! The loom models of the command slot state machine: at-most-once settlement between a
//! client, a server and reclaimers, under every interleaving loom explores.

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
