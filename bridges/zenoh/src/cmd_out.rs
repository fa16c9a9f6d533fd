//! Commands out: a local command ring answered to the network. A queryable on
//! `…/cmd/<ring>` hands each query to a small worker pool (a Zenoh callback must not block,
//! and a call can take as long as its server does); a worker checks the call header, calls
//! the local ring with the caller's remaining budget, and replies once: the reply's bytes, or
//! a [`RemoteError`] as an error reply. `…/cmd/<ring>/@spec` answers the ring's sizes and the
//! versions, so an importing bridge creates a ring that fits.
//!
//! One executor per call: both queryables are `complete` (a `BestMatching` query goes to one
//! of them, never to every match), a query for any key but the ring's exact one (a wildcard
//! such as `shmkit/**`) is refused without running anything, and a bridge that finds the
//! ring already exported — another bridge's token on `…/cmd/<ring>/@exporter/*` — refuses
//! to start with [`BridgeError::AlreadyExported`].

use crate::cmd_wire::{CallHeader, CommandSpecReply, HeaderProblem, RemoteError, NO_BUDGET};
use crate::config::ExportCommands;
use crate::error::BridgeError;
use crate::keys::RingKey;
use shmkit::rings::CommandRing;
use shmkit::{Segment, SegmentObjects, Timeout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zenoh::query::Query;
use zenoh::Wait;

/// How often an idle worker looks at the stop flag.
const IDLE_CHECK: Duration = Duration::from_millis(100);
/// How long a starting export asks the network for another exporter of its ring.
const EXPORTER_CHECK: Duration = Duration::from_millis(500);

/// A query waiting for a worker, with when it arrived.
type Queued = (Query, Instant);

/// What a command export has done (shared with its workers).
#[derive(Debug, Default)]
pub struct CommandCounters {
    /// Calls answered with the server's reply.
    pub replied: AtomicU64,
    /// Calls answered with an error (the server's failure included).
    pub failed: AtomicU64,
    /// Calls refused at once because every worker was busy and the queue full.
    pub busy: AtomicU64,
    /// Queries refused unrun: another key than the ring's (a wildcard), or too large.
    pub refused: AtomicU64,
}

/// A command ring being exported; its workers stop when the bridge's stop flag is set.
pub struct CommandExport {
    /// The ring's key.
    pub key: RingKey,
    /// Its counters.
    pub counters: Arc<CommandCounters>,
    workers: Vec<std::thread::JoinHandle<()>>,
    _calls: zenoh::query::Queryable<()>,
    _spec: zenoh::query::Queryable<()>,
    _exporter: zenoh::liveliness::LivelinessToken,
}

impl CommandExport {
    /// Starts exporting `e` (a command ring of a local segment) as host `host`.
    pub fn start(
        session: &zenoh::Session,
        host: &str,
        e: &ExportCommands,
        stop: Arc<AtomicBool>,
    ) -> Result<CommandExport, BridgeError> {
        let key = RingKey::new(host, &e.segment, &e.ring)?;
        let segment = Segment::open(&e.segment)?;
        let ring: CommandRing = segment.open(&e.ring)?;
        let exporter = claim_export(session, &key)?;
        let spec = serde_json::to_vec(&CommandSpecReply::of(&ring.spec()))
            .map_err(|e| BridgeError::Config(e.to_string()))?;
        let spec_queryable = session
            .declare_queryable(key.command_spec())
            .complete(true)
            .callback(move |query| {
                // Queued for sending, not awaited: the callback does not block.
                let _ = query.reply(query.key_expr().clone(), spec.clone()).wait();
            })
            .wait()
            .map_err(BridgeError::zenoh)?;
        let workers = e.workers.max(1);
        let cap = Duration::from_millis(e.max_call_ms);
        // Room for one call per slot of the ring beyond those being worked on: more than that
        // could only wait for a slot anyway.
        let (tx, rx): (SyncSender<Queued>, Receiver<Queued>) =
            std::sync::mpsc::sync_channel(ring.spec().slots as usize);
        let counters = Arc::new(CommandCounters::default());
        let calls = session
            .declare_queryable(key.command())
            .complete(true)
            .callback({
                let counters = Arc::clone(&counters);
                let host = host.to_owned();
                let exact = key.command();
                let max_request = ring.spec().max_request as usize;
                move |query| {
                    if query.key_expr().as_str() != exact {
                        counters.refused.fetch_add(1, Ordering::Relaxed);
                        let refused = RemoteError::BadRequest {
                            host: host.clone(),
                            detail: format!(
                                "a call names its ring exactly ({exact}); {} runs nothing",
                                query.key_expr()
                            ),
                        };
                        let _ = query.reply_err(refused.to_json()).wait();
                        return;
                    }
                    // Nothing larger than the ring takes is queued: the queue's bytes are
                    // bounded by its length times the ring's largest request.
                    let len = query.payload().map_or(0, |p| p.len());
                    if len > max_request {
                        counters.refused.fetch_add(1, Ordering::Relaxed);
                        let too_large = RemoteError::TooLarge {
                            host: host.clone(),
                            len: len as u64,
                            max: max_request as u32,
                        };
                        let _ = query.reply_err(too_large.to_json()).wait();
                        return;
                    }
                    match tx.try_send((query, Instant::now())) {
                        Ok(()) => {}
                        Err(TrySendError::Full((query, _)))
                        | Err(TrySendError::Disconnected((query, _))) => {
                            counters.busy.fetch_add(1, Ordering::Relaxed);
                            let busy = RemoteError::Busy { host: host.clone() };
                            let _ = query.reply_err(busy.to_json()).wait();
                        }
                    }
                }
            })
            .wait()
            .map_err(BridgeError::zenoh)?;
        let rx = Arc::new(Mutex::new(rx));
        let ring = Arc::new((segment, ring));
        let mut handles = Vec::new();
        for n in 0..workers {
            let (rx, ring, stop, counters) = (
                Arc::clone(&rx),
                Arc::clone(&ring),
                Arc::clone(&stop),
                Arc::clone(&counters),
            );
            let host = host.to_owned();
            let handle = std::thread::Builder::new()
                .name(format!("zenoh-cmd-{}-{n}", e.ring))
                .spawn(move || worker(&ring.1, &rx, &host, &stop, &counters, cap))
                .map_err(|e| BridgeError::Config(format!("spawning a command worker: {e}")))?;
            handles.push(handle);
        }
        Ok(CommandExport {
            key,
            counters,
            workers: handles,
            _calls: calls,
            _spec: spec_queryable,
            _exporter: exporter,
        })
    }

    /// Waits for the workers (after the stop flag was set).
    pub fn join(self) {
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Declares this bridge the exporter of `key`'s command ring, after asking the network
/// (for [`EXPORTER_CHECK`]) whether another bridge already is; if one is, refuses.
fn claim_export(
    session: &zenoh::Session,
    key: &RingKey,
) -> Result<zenoh::liveliness::LivelinessToken, BridgeError> {
    let replies = session
        .liveliness()
        .get(key.command_exporters())
        .timeout(EXPORTER_CHECK)
        .wait()
        .map_err(BridgeError::zenoh)?;
    while let Ok(reply) = replies.recv() {
        if let Ok(sample) = reply.result() {
            return Err(BridgeError::AlreadyExported {
                key: key.command(),
                by: sample.key_expr().as_str().to_owned(),
            });
        }
    }
    session
        .liveliness()
        .declare_token(key.command_exporter(&session.zid().to_string())?)
        .wait()
        .map_err(BridgeError::zenoh)
}

fn worker(
    ring: &CommandRing,
    rx: &Mutex<Receiver<Queued>>,
    host: &str,
    stop: &AtomicBool,
    counters: &CommandCounters,
    cap: Duration,
) {
    while !stop.load(Ordering::Relaxed) {
        // The lock is held only while taking the next query, never while serving one.
        let next = match rx.lock() {
            Ok(rx) => rx.recv_timeout(IDLE_CHECK),
            Err(_) => return,
        };
        let (query, arrived) = match next {
            Ok(q) => q,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        match serve(ring, &query, arrived, host, stop, cap) {
            Ok(reply) => {
                counters.replied.fetch_add(1, Ordering::Relaxed);
                let _ = query.reply(query.key_expr().clone(), reply).wait();
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                let _ = query.reply_err(e.to_json()).wait();
            }
        }
    }
}

/// Runs one call through the local ring.
fn serve(
    ring: &CommandRing,
    query: &Query,
    arrived: Instant,
    host: &str,
    stop: &AtomicBool,
    cap: Duration,
) -> Result<Vec<u8>, RemoteError> {
    let attachment = query.attachment().map(|a| a.to_bytes());
    let header = match attachment.as_deref().map(CallHeader::decode) {
        Some(Ok(h)) => h,
        Some(Err(HeaderProblem::Version(v))) => {
            return Err(RemoteError::VersionMismatch {
                host: host.to_owned(),
                detail: format!(
                    "call header version {v}; this bridge reads {}",
                    crate::cmd_wire::CALL_VERSION
                ),
            })
        }
        Some(Err(HeaderProblem::Malformed(why))) => {
            return Err(RemoteError::BadRequest {
                host: host.to_owned(),
                detail: format!("call header: {why}"),
            })
        }
        None => {
            return Err(RemoteError::BadRequest {
                host: host.to_owned(),
                detail: "no call header attached".into(),
            })
        }
    };
    // The budget counts from the call's arrival: time spent queued here is the caller's too.
    let queued = arrived.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
    let timeout = match header.budget_ns {
        // No deadline from the caller: the export's cap, so a peer cannot pin a worker.
        NO_BUDGET => Timeout::After(cap.saturating_sub(Duration::from_nanos(queued))),
        ns if ns <= queued => {
            // The caller has given up already: running it now would be a call nobody awaits.
            return Err(RemoteError::Timeout {
                host: host.to_owned(),
                outcome: crate::cmd_wire::WireOutcome::NotExecuted,
            });
        }
        ns => Timeout::After(Duration::from_nanos(ns - queued)),
    };
    let request = query.payload().map(|p| p.to_bytes()).unwrap_or_default();
    let interrupt = || stop.load(Ordering::Relaxed);
    ring.call_interruptible_with(&request, timeout, &interrupt, <[u8]>::to_vec)
        .map_err(|e| RemoteError::from_local(e, host))
}
