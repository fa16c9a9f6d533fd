//! Commands in: a remote command ring made local. The bridge creates a local command ring
//! sized from the remote `…/cmd/<ring>/@spec` and becomes its server; each request it takes is
//! forwarded by one of a few workers as one Zenoh query carrying the caller's remaining
//! deadline ([`CallHeader`]), and the one answer that comes back is the local answer. Local
//! clients do not change: they `call` a ring in their segment.
//!
//! Errors reach them as [`CommandError::Failed`]: a
//! server's own failure unchanged, anything else tagged so that [`RemoteError::of`] reads it
//! back typed (no server, timeout, server died on host X, bridge down, version mismatch). While
//! the remote host's bridge is not seen (its liveliness token gone: killed, or cut off for a
//! lease) a call fails at once with [`RemoteError::BridgeDown`] instead of waiting out its
//! deadline; one already in flight when the link goes down fails within 20 ms of it.
//! At most once: see [`crate::cmd_wire`].

use crate::cmd_wire::{
    CallHeader, CommandSpecReply, RemoteError, WireOutcome, CALL_VERSION, NO_BUDGET,
};
use crate::config::ImportCommands;
use crate::error::BridgeError;
use crate::keys::RingKey;
use crate::status::{status_name, LinkStatus, LINK_COMMANDS_IN};
use shmkit::rings::{CommandError, CommandRing, CommandServer, CommandSpec, Request};
use shmkit::{Segment, Shared, Timeout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zenoh::query::{ConsolidationMode, QueryTarget};
use zenoh::Wait;

/// How long to wait for the remote `@spec`.
pub const SPEC_TIMEOUT: Duration = Duration::from_secs(5);
/// Room every local reply buffer has at least, so a tagged remote error fits whole.
pub const MIN_LOCAL_REPLY: u32 = 512;
/// How much longer than the caller's budget a forwarded call waits for the remote answer
/// (the remote side's own timeout answer, in flight, is what should end it).
const ANSWER_GRACE: Duration = Duration::from_millis(250);
/// How long a call without a deadline waits for its answer over the network.
const FOREVER_WAIT: Duration = Duration::from_secs(24 * 3600);
/// How often a forwarded call looks at the link while waiting.
const LINK_POLL: Duration = Duration::from_millis(20);
/// How often the dispatcher looks at the stop flag.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// Asks the remote bridge for the command ring's spec; a bridge of another layout or call
/// version is [`BridgeError::VersionMismatch`].
pub fn remote_command_spec(
    session: &zenoh::Session,
    key: &RingKey,
) -> Result<CommandSpecReply, BridgeError> {
    let spec_key = key.command_spec();
    let replies = session
        .get(&spec_key)
        .timeout(SPEC_TIMEOUT)
        .wait()
        .map_err(BridgeError::zenoh)?;
    let Ok(reply) = replies.recv() else {
        return Err(BridgeError::NoSpec {
            key: spec_key,
            waited_ms: SPEC_TIMEOUT.as_millis() as u64,
        });
    };
    let bytes = match reply.result() {
        Ok(sample) => sample.payload().to_bytes().into_owned(),
        Err(e) => {
            return Err(BridgeError::BadSpec {
                key: spec_key,
                detail: format!(
                    "error reply: {}",
                    String::from_utf8_lossy(&e.payload().to_bytes())
                ),
            })
        }
    };
    let spec: CommandSpecReply =
        serde_json::from_slice(&bytes).map_err(|e| BridgeError::BadSpec {
            key: spec_key.clone(),
            detail: e.to_string(),
        })?;
    let ours = (u32::from(shm_layout::VERSION_MAJOR), CALL_VERSION);
    if (spec.layout_major, spec.call_version) != ours {
        return Err(BridgeError::VersionMismatch {
            key: spec_key,
            remote: format!("{} / call {}", spec.layout_major, spec.call_version),
            local: format!("{} / call {}", ours.0, ours.1),
        });
    }
    Ok(spec)
}

/// A remote command ring served locally. Dropping it (after the bridge's stop flag is set)
/// stops forwarding; [`join`](Self::join) waits for the calls in flight.
pub struct CommandImport {
    /// The remote ring's key.
    pub key: RingKey,
    /// The local ring local clients call.
    pub ring: CommandRing,
    /// The link's status value in the local segment (`link/<ring>`).
    pub status: Shared<LinkStatus>,
    thread: Option<std::thread::JoinHandle<()>>,
    _liveliness: zenoh::pubsub::Subscriber<()>,
    _segment: Segment,
}

/// What every forwarding worker shares.
struct Forwarder {
    session: zenoh::Session,
    key: RingKey,
    up: Arc<AtomicBool>,
    status: Shared<LinkStatus>,
    next_call: AtomicU64,
}

impl CommandImport {
    /// Starts importing `i`: asks the remote spec, finds or creates the local segment and
    /// ring (an existing ring of another spec is [`BridgeError::SpecMismatch`]; one with a
    /// live server already is a [`BridgeError::Command`]), and serves it.
    /// A remote ring with more than 1024 slots or requests or replies larger than
    /// `max_message_bytes` is refused ([`BridgeError::TooLarge`]) before the local ring is sized.
    pub fn start(
        session: &zenoh::Session,
        i: &ImportCommands,
        stop: Arc<AtomicBool>,
        max_message_bytes: u64,
    ) -> Result<CommandImport, BridgeError> {
        let key = RingKey::new(&i.host, &i.segment, &i.ring)?;
        let remote = remote_command_spec(session, &key)?;
        let largest = u64::from(remote.max_request.max(remote.max_reply));
        if remote.slots > 1024 || largest > max_message_bytes {
            return Err(BridgeError::TooLarge {
                key: key.command_spec(),
                detail: format!(
                    "{} slots, requests up to {} and replies up to {} bytes; this bridge takes \
                     up to 1024 slots and messages up to {max_message_bytes} bytes",
                    remote.slots, remote.max_request, remote.max_reply
                ),
            });
        }
        let spec = CommandSpec {
            slots: remote.slots,
            max_request: remote.max_request,
            max_reply: remote.max_reply.max(MIN_LOCAL_REPLY),
        };
        let slot_bytes = u64::from(spec.max_request) + u64::from(spec.max_reply) + 64;
        let (segment, ring) = crate::local::open_ring::<CommandRing>(
            &i.local_segment,
            slot_bytes.checked_mul(u64::from(spec.slots) + 1),
            &i.local_ring,
            &spec,
            spec.to_string(),
        )?;
        let server = ring.server().map_err(BridgeError::Command)?;
        let status = segment.shared(&status_name(&i.local_ring), LinkStatus::default())?;
        let _ = status.update(|s| {
            *s = LinkStatus {
                kind: LINK_COMMANDS_IN,
                // It just answered the spec; its token confirms it a moment later.
                up: 1,
                ..LinkStatus::default()
            }
        });
        let up = Arc::new(AtomicBool::new(true));
        let liveliness =
            crate::liveness::watch_host(session, &i.host, Arc::clone(&up), status.clone())?;
        let forwarder = Forwarder {
            session: session.clone(),
            key: key.clone(),
            up,
            status: status.clone(),
            next_call: AtomicU64::new(1),
        };
        let workers = i.workers.max(1);
        let thread = std::thread::Builder::new()
            .name(format!("zenoh-cmd-in-{}", i.local_ring))
            .spawn(move || serve(&server, &forwarder, workers, &stop))
            .map_err(|e| BridgeError::Config(format!("spawning the command thread: {e}")))?;
        Ok(CommandImport {
            key,
            ring,
            status,
            thread: Some(thread),
            _liveliness: liveliness,
            _segment: segment,
        })
    }

    /// The link's status now.
    pub fn link(&self) -> LinkStatus {
        self.status.read().unwrap_or_default()
    }

    /// Waits for the forwarding threads (after the stop flag was set).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Takes the local ring's requests and hands each to a worker; returns once `stop` is set
/// and the calls in flight are answered.
fn serve(server: &CommandServer, forwarder: &Forwarder, workers: u32, stop: &AtomicBool) {
    let interrupt = || stop.load(Ordering::Relaxed);
    // Rendezvous: a request is taken from the ring only when a worker is free for it, so the
    // calls waiting stay in the ring (where their clients can still withdraw them).
    let (tx, rx) = std::sync::mpsc::sync_channel::<Request<'_>>(0);
    let rx = Mutex::new(rx);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let next = match rx.lock() {
                    Ok(rx) => rx.recv_timeout(IDLE_CHECK),
                    Err(_) => return,
                };
                match next {
                    Ok(request) => forwarder.forward(request),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            });
        }
        while !interrupt() {
            match server.recv_interruptible(Timeout::After(IDLE_CHECK), &interrupt) {
                Ok(request) => {
                    if tx.send(request).is_err() {
                        return;
                    }
                }
                Err(CommandError::Timeout { .. } | CommandError::Interrupted { .. }) => {}
                Err(_) => return,
            }
        }
        drop(tx);
    });
}

impl Forwarder {
    fn count(&self, f: impl FnOnce(&mut LinkStatus)) {
        let _ = self.status.update(f);
    }

    /// Answers `request` locally with `e` (counted as a remote error unless it is the
    /// server's own failure).
    fn fail(&self, request: Request<'_>, e: &RemoteError) {
        let own = matches!(e, RemoteError::Failed { .. });
        self.count(|s| {
            s.last_rx_ns = shmkit::clock::monotonic_ns();
            if own {
                s.received += 1;
            } else {
                s.remote_errors += 1;
            }
        });
        let _ = request.fail(&e.to_failure());
    }

    /// Sends one request as one query and answers it with what comes back.
    fn forward(&self, request: Request<'_>) {
        let host = self.key.host.clone();
        if !self.up.load(Ordering::Acquire) {
            self.count(|s| s.rejected += 1);
            let _ = request.fail(
                &RemoteError::BridgeDown {
                    host,
                    outcome: WireOutcome::NotExecuted,
                }
                .to_failure(),
            );
            return;
        }
        let (budget_ns, wait) = match request.time_left() {
            Timeout::Forever => (NO_BUDGET, FOREVER_WAIT),
            Timeout::After(left) => (
                left.as_nanos().min(u128::from(NO_BUDGET - 1)) as u64,
                left + ANSWER_GRACE,
            ),
        };
        if budget_ns == 0 {
            // Its client has given up: nothing is sent.
            return self.fail(
                request,
                &RemoteError::Timeout {
                    host,
                    outcome: WireOutcome::NotExecuted,
                },
            );
        }
        let header = CallHeader {
            budget_ns,
            call_id: self.next_call.fetch_add(1, Ordering::Relaxed),
        };
        let started = Instant::now();
        let replies = match self
            .session
            .get(self.key.command())
            .payload(request.bytes().to_vec())
            .attachment(header.encode().to_vec())
            .target(QueryTarget::BestMatching)
            .consolidation(ConsolidationMode::None)
            .timeout(wait)
            .wait()
        {
            Ok(r) => r,
            Err(_) => {
                return self.fail(
                    request,
                    &RemoteError::BridgeDown {
                        host,
                        outcome: WireOutcome::NotExecuted,
                    },
                )
            }
        };
        loop {
            match replies.recv_timeout(LINK_POLL) {
                Ok(Some(reply)) => {
                    return match reply.result() {
                        Ok(sample) => {
                            let bytes = sample.payload().to_bytes();
                            self.count(|s| {
                                s.last_rx_ns = shmkit::clock::monotonic_ns();
                                s.received += 1;
                            });
                            // The local ring's replies are at least the remote's, so only a
                            // hostile peer's oversized reply fails here (the client then gets
                            // "request dropped by the server").
                            let _ = request.reply(&bytes);
                        }
                        Err(e) => {
                            let err = RemoteError::from_json(&host, &e.payload().to_bytes());
                            self.fail(request, &err)
                        }
                    };
                }
                Ok(None) => {
                    if !self.up.load(Ordering::Acquire) {
                        return self.fail(
                            request,
                            &RemoteError::BridgeDown {
                                host,
                                outcome: WireOutcome::Unknown,
                            },
                        );
                    }
                }
                Err(_) => {
                    // The query ended without an answer: its time ran out, or no bridge
                    // (any more) answers the key. It was sent, so it may have run.
                    let err = if started.elapsed() >= wait {
                        RemoteError::Timeout {
                            host,
                            outcome: WireOutcome::Unknown,
                        }
                    } else {
                        RemoteError::BridgeDown {
                            host,
                            outcome: WireOutcome::Unknown,
                        }
                    };
                    return self.fail(request, &err);
                }
            }
        }
    }
}
