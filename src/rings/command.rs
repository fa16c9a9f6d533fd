//! The command ring: clients `call`, one server `recv`s and answers each request at most once.
//!
//! Layout and the slot state machine: `shm-layout/src/command.rs` and [`super::cmd_state`].
//! A request whose server dies while holding it is not run again by a successor: its client
//! gets [`CommandError::ServerDied`] with the [`Outcome`] (did it run?), unless the client
//! marked it retry-safe ([`CommandRing::with_retry_safe`]), in which case a successor runs it
//! again and the client waits for that answer until its deadline.
//! Enqueueing is lock-free (claim a free slot with a compare-and-swap, take a ticket with a
//! fetch-add); the server serves the lowest ticket first. Clients sleep on their slot's state
//! word and check the server's liveness every 20 ms, so a dead server is noticed within
//! 100 ms; a dead client's slot is reclaimed by the next client that finds no free slot.

use super::cmd_state::{self, Answer, GaveUp, Orphan, SlotWords};
use super::{record_dead, record_pid};
use crate::fault::{self, CrashPoint};
use crate::segment::{Segment, SegmentError};
use crate::sync::{futex_wait, futex_wake, spin_hint, SpinCounter, WaitStrategy};
use crate::sys::clock::{monotonic_ns, Deadline};
use crate::sys::identity::ProcessIdentity;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shm_layout::{
    BlockKind, CommandRingHeader, CommandSlotMeta, ObjectKind, CMD_ANSWERING_MARK, CMD_INLINE,
    CMD_LOST_EXECUTED, CMD_LOST_UNKNOWN, CMD_MAX_SLOTS, CMD_QUEUED, CMD_RETRY_SAFE,
};
use std::mem::{offset_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const HEADER: u64 = size_of::<CommandRingHeader>() as u64;
const META: u64 = size_of::<CommandSlotMeta>() as u64;
/// How often a call that found every slot in use looks again.
const SLOT_POLL: Duration = Duration::from_micros(50);
/// How often a waiting client checks that the server is alive.
const SERVER_CHECK: Duration = Duration::from_millis(20);

/// Why a call or a receive failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No answer before the deadline; the request was withdrawn or abandoned (no stale reply
    /// will ever reach a later call).
    #[error("no reply within {waited:?}")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
    },
    /// The server died before answering; `outcome` says whether the request ran.
    #[error("the server (pid {pid}) died before answering: {outcome}")]
    ServerDied {
        /// Its pid.
        pid: u32,
        /// Whether the request ran.
        outcome: Outcome,
    },
    /// No server is attached to the ring.
    #[error("no server is attached to the command ring")]
    NoServer,
    /// Another live process is the server.
    #[error("the command ring already has a live server (pid {pid})")]
    ServerBusy {
        /// Its pid.
        pid: u32,
    },
    /// Every slot held a call in progress for the whole timeout.
    #[error("all {slots} request slots stayed in use until the deadline")]
    RingFull {
        /// Slots in the ring.
        slots: u32,
    },
    /// The request or reply does not fit its buffer.
    #[error("{what} of {len} bytes exceeds the ring's maximum of {max}")]
    TooLarge {
        /// "request" or "reply".
        what: &'static str,
        /// Its length.
        len: usize,
        /// The maximum.
        max: u32,
    },
    /// The server answered with an error.
    #[error("the server failed the request: {0}")]
    Failed(String),
    /// A message could not be encoded or decoded.
    #[error("message encoding: {0}")]
    Codec(String),
    /// The ring's bytes hold values no shmkit process writes.
    #[error("corrupt command ring: {0}")]
    Corrupt(String),
}

/// Whether a request whose server died ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It never reached the server and never will (it was withdrawn).
    NotExecuted,
    /// The server had taken it: it may or may not have run, partly or wholly.
    Unknown,
    /// It ran; the server died while writing its reply.
    Executed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::NotExecuted => "the request did not run",
            Outcome::Unknown => "the request may or may not have run",
            Outcome::Executed => "the request ran, its reply was lost",
        })
    }
}

/// A command ring in a segment. Cheap to clone.
#[derive(Clone)]
pub struct CommandRing {
    _segment: Segment,
    base: NonNull<u8>,
    slots: u32,
    max_request: u32,
    max_reply: u32,
    stride: u64,
    strategy: WaitStrategy,
    retry_safe: bool,
}

// SAFETY: shared words are atomics; request and reply buffers are only touched by the side the
// slot state grants them to; the segment handle keeps the mapping alive.
unsafe impl Send for CommandRing {}
// SAFETY: as above.
unsafe impl Sync for CommandRing {}

impl std::fmt::Debug for CommandRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandRing")
            .field("slots", &self.slots)
            .field("max_request", &self.max_request)
            .field("max_reply", &self.max_reply)
            .finish()
    }
}

impl CommandRing {
    fn header_u64(&self, field: usize) -> &AtomicU64 {
        // SAFETY: an 8-aligned offset inside the 128-byte header, inside the block checked at
        // attach; atomics are valid for any bytes.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(field).cast()) }
    }

    fn header_u32(&self, field: usize) -> &AtomicU32 {
        // SAFETY: as in `header_u64`, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(field).cast()) }
    }

    fn slot_base(&self, slot: u32) -> *mut u8 {
        // SAFETY: `slot < slots`, and `HEADER + slots × stride` bytes are inside the block.
        unsafe {
            self.base
                .as_ptr()
                .add((HEADER + u64::from(slot) * self.stride) as usize)
        }
    }

    fn meta_u32(&self, slot: u32, field: usize) -> &AtomicU32 {
        // SAFETY: a 4-aligned field of a 64-aligned slot's metadata, inside the block.
        unsafe { AtomicU32::from_ptr(self.slot_base(slot).add(field).cast()) }
    }

    fn meta_u64(&self, slot: u32, field: usize) -> &AtomicU64 {
        // SAFETY: as in `meta_u32`, 8-aligned.
        unsafe { AtomicU64::from_ptr(self.slot_base(slot).add(field).cast()) }
    }

    fn state(&self, slot: u32) -> &AtomicU32 {
        self.meta_u32(slot, offset_of!(CommandSlotMeta, state))
    }

    fn words(&self, slot: u32) -> SlotWords<'_> {
        SlotWords {
            state: self.state(slot),
            client: self.meta_u64(slot, offset_of!(CommandSlotMeta, client)),
            reply_len: self.meta_u32(slot, offset_of!(CommandSlotMeta, reply_len)),
        }
    }

    fn request_buf(&self, slot: u32) -> *mut u8 {
        // SAFETY: the request buffer follows the 64-byte metadata inside the slot.
        unsafe { self.slot_base(slot).add(META as usize) }
    }

    fn reply_buf(&self, slot: u32) -> *mut u8 {
        // SAFETY: the reply buffer follows the request buffer inside the slot.
        unsafe { self.request_buf(slot).add(self.max_request as usize) }
    }

    /// Where a request of `len` bytes lives: inline in the metadata line when it fits, else in
    /// the slot's request buffer.
    fn request_at(&self, slot: u32, len: u32) -> *mut u8 {
        if len <= CMD_INLINE {
            self.inline_buf(slot)
        } else {
            self.request_buf(slot)
        }
    }

    /// Where a reply of `len` bytes lives (as for requests).
    fn reply_at(&self, slot: u32, len: u32) -> *mut u8 {
        if len <= CMD_INLINE {
            self.inline_buf(slot)
        } else {
            self.reply_buf(slot)
        }
    }

    fn inline_buf(&self, slot: u32) -> *mut u8 {
        // SAFETY: the inline bytes are the last 32 of the slot's 64-byte metadata.
        unsafe {
            self.slot_base(slot)
                .add(offset_of!(CommandSlotMeta, inline))
        }
    }

    fn server_record(&self) -> &AtomicU64 {
        self.header_u64(offset_of!(CommandRingHeader, server))
    }

    /// This handle, waiting for replies (client) or requests (server) with `strategy`.
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> CommandRing {
        self.strategy = strategy;
        self
    }

    /// This handle, marking its calls retry-safe (or not, the default): if the server dies
    /// while holding one, a successor server runs it again (so it may run twice) and the call
    /// waits for that answer until its deadline. For idempotent requests (set a value, read a
    /// status); never for "move by" commands.
    pub fn with_retry_safe(mut self, retry_safe: bool) -> CommandRing {
        self.retry_safe = retry_safe;
        self
    }

    /// Sends `request` and waits at most `timeout` for the reply.
    pub fn call(&self, request: &[u8], timeout: Duration) -> Result<Vec<u8>, CommandError> {
        self.call_with(request, timeout, <[u8]>::to_vec)
    }

    /// Sends `request` and hands the reply to `read` in place, without copying or allocating;
    /// the slot is released when `read` returns. For control loops calling at kHz rates.
    pub fn call_with<R>(
        &self,
        request: &[u8],
        timeout: Duration,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CommandError> {
        let len = u32::try_from(request.len())
            .ok()
            .filter(|&l| l <= self.max_request)
            .ok_or(CommandError::TooLarge {
                what: "request",
                len: request.len(),
                max: self.max_request,
            })?;
        if self.server_record().load(Ordering::Acquire) == 0 {
            return Err(CommandError::NoServer);
        }
        // The ticket is taken before the slot so that every write to the slot's line happens
        // in one burst, between the claim and the queue.
        let ticket = self
            .header_u64(offset_of!(CommandRingHeader, next_ticket))
            .fetch_add(1, Ordering::Relaxed);
        let (slot, generation) = self.claim_slot(timeout)?;
        self.meta_u64(slot, offset_of!(CommandSlotMeta, ticket))
            .store(ticket, Ordering::Relaxed);
        // SAFETY: the slot is CLAIMED by us: nobody else touches its metadata payload or
        // request buffer, and `request_at` picks a region of at least `len` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                request.as_ptr(),
                self.request_at(slot, len),
                request.len(),
            )
        };
        let flags = if self.retry_safe { CMD_RETRY_SAFE } else { 0 };
        self.meta_u32(slot, offset_of!(CommandSlotMeta, request_len))
            .store(len | flags, Ordering::Relaxed);
        cmd_state::queue(self.words(slot), generation);
        cmd_state::wake_server_if_asleep(
            self.header_u32(offset_of!(CommandRingHeader, server_sleeping)),
            self.header_u32(offset_of!(CommandRingHeader, notify)),
        );
        self.await_answer(slot, generation, timeout, read)
    }

    /// A free slot, reclaiming dead clients' slots if there is none, and waiting (polling)
    /// up to `timeout` for one to come free: a dead client's slot that a server is still
    /// answering is freed by that server's answer.
    fn claim_slot(&self, timeout: Duration) -> Result<(u32, u32), CommandError> {
        // The claim itself records who we are (see `cmd_state`).
        let me = ProcessIdentity::current().record().raw();
        let mut deadline = None;
        loop {
            for pass in 0..2 {
                for slot in 0..self.slots {
                    if let Some(generation) = cmd_state::claim(self.words(slot), me) {
                        return Ok((slot, generation));
                    }
                }
                if pass == 0 {
                    self.reclaim_dead_clients();
                }
            }
            // Slots a dead server held stay with it until a successor settles them: say so.
            let server = self.server_record().load(Ordering::Acquire);
            if server == 0 || record_dead(server) {
                return Err(CommandError::ServerDied {
                    pid: record_pid(server),
                    outcome: Outcome::NotExecuted,
                });
            }
            let deadline = *deadline.get_or_insert_with(|| Deadline::after(timeout));
            if deadline.expired() {
                return Err(CommandError::RingFull { slots: self.slots });
            }
            std::thread::sleep(SLOT_POLL);
        }
    }

    /// Frees the slots of clients that died mid-call. Returns how many.
    pub fn reclaim_dead_clients(&self) -> u32 {
        let mut freed = 0;
        for slot in 0..self.slots {
            let words = self.words(slot);
            // The claim word first: a state read after it belongs to that claim or later.
            let client = words.client.load(Ordering::Acquire);
            if client == 0 || !record_dead(client) {
                continue;
            }
            let w = words.state.load(Ordering::Acquire);
            if cmd_state::reclaim_dead_client(words, w, client) {
                freed += 1;
            }
        }
        freed
    }

    fn await_answer<R>(
        &self,
        slot: u32,
        generation: u32,
        timeout: Duration,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CommandError> {
        let word = self.state(slot);
        // The clock is read while the server works, not before the request leaves.
        let started = monotonic_ns();
        let deadline = Deadline::after_from(started, timeout);
        let mut next_check = started + SERVER_CHECK.as_nanos() as u64;
        let mut spins = SpinCounter::new();
        // The verdict of the last server check (every SERVER_CHECK), and the pid it judged.
        let (mut server_dead, mut server_pid) = (false, 0);
        loop {
            if let Some(answer) = cmd_state::collect(word, generation) {
                return self.take_answer(slot, generation, answer, read);
            }
            let spinning = self.strategy.keeps_spinning(spins.count());
            // A spinning client looks at the clock every 64 polls, a sleeping one every time.
            if spins.tick() || !spinning {
                let now = monotonic_ns();
                if now >= next_check {
                    next_check = now + SERVER_CHECK.as_nanos() as u64;
                    let server = self.server_record().load(Ordering::Acquire);
                    server_dead = server == 0 || record_dead(server);
                    server_pid = record_pid(server);
                }
                // A retry-safe call outlives a dead server: a successor runs it again.
                let expired = deadline.as_ns().is_some_and(|d| now >= d);
                if (server_dead && !self.retry_safe) || expired {
                    return self.give_up(slot, generation, timeout, server_dead, server_pid, read);
                }
            }
            if spinning {
                spin_hint();
                continue;
            }
            let waiting = self.meta_u32(slot, offset_of!(CommandSlotMeta, waiting));
            // The handshake with `cmd_state::client_may_sleep` (loom-checked there).
            cmd_state::client_prepares_to_sleep(waiting);
            let w = word.load(Ordering::Acquire);
            if cmd_state::generation_of(w) == generation
                && cmd_state::collect(word, generation).is_none()
            {
                futex_wait(word, w, deadline.capped(SERVER_CHECK));
            }
            waiting.store(0, Ordering::Relaxed);
        }
    }

    /// Ends a call without an answer (deadline, or `server_dead`): withdraws or abandons it,
    /// or collects the answer that won the race.
    fn give_up<R>(
        &self,
        slot: u32,
        generation: u32,
        timeout: Duration,
        server_dead: bool,
        pid: u32,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CommandError> {
        let outcome = match cmd_state::give_up(self.words(slot), generation) {
            GaveUp::Answered(answer) => return self.take_answer(slot, generation, answer, read),
            GaveUp::Withdrawn => Outcome::NotExecuted,
            GaveUp::Abandoned { executed: false } => Outcome::Unknown,
            GaveUp::Abandoned { executed: true } => Outcome::Executed,
        };
        if server_dead {
            Err(CommandError::ServerDied { pid, outcome })
        } else {
            Err(CommandError::Timeout { waited: timeout })
        }
    }

    /// Hands the answer to `read` (or turns it into the server's error) and frees the slot,
    /// also if `read` panics.
    fn take_answer<R>(
        &self,
        slot: u32,
        generation: u32,
        answer: Answer,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CommandError> {
        struct FreeOnDrop<'a>(SlotWords<'a>, u32);
        impl Drop for FreeOnDrop<'_> {
            fn drop(&mut self) {
                cmd_state::free(self.0, self.1);
            }
        }
        let _free = FreeOnDrop(self.words(slot), generation);
        if answer == Answer::Lost {
            let pid = self
                .meta_u64(slot, offset_of!(CommandSlotMeta, ticket))
                .load(Ordering::Relaxed) as u32;
            let code = self
                .meta_u32(slot, offset_of!(CommandSlotMeta, reply_len))
                .load(Ordering::Relaxed);
            let outcome = if code == CMD_LOST_EXECUTED {
                Outcome::Executed
            } else {
                Outcome::Unknown
            };
            return Err(CommandError::ServerDied { pid, outcome });
        }
        let len = self
            .meta_u32(slot, offset_of!(CommandSlotMeta, reply_len))
            .load(Ordering::Relaxed)
            & !CMD_ANSWERING_MARK;
        if len > self.max_reply.max(CMD_INLINE) {
            return Err(CommandError::Corrupt(format!(
                "reply length {len} above {}",
                self.max_reply
            )));
        }
        // SAFETY: the slot is answered and ours until `_free` releases it, so the server no
        // longer writes it; `reply_at` picks a region of at least `len` bytes inside the slot.
        let reply = unsafe { std::slice::from_raw_parts(self.reply_at(slot, len), len as usize) };
        if answer == Answer::Failed {
            Err(CommandError::Failed(
                String::from_utf8_lossy(reply).into_owned(),
            ))
        } else {
            Ok(read(reply))
        }
    }

    /// Sends a serde request and decodes the serde reply.
    pub fn call_typed<Q: Serialize, R: DeserializeOwned>(
        &self,
        request: &Q,
        timeout: Duration,
    ) -> Result<R, CommandError> {
        let bytes =
            postcard::to_allocvec(request).map_err(|e| CommandError::Codec(e.to_string()))?;
        let reply = self.call(&bytes, timeout)?;
        postcard::from_bytes(&reply).map_err(|e| CommandError::Codec(e.to_string()))
    }

    /// Becomes the ring's server. A dead server's role is taken over and the requests it had
    /// taken are queued again; a live one's is [`CommandError::ServerBusy`].
    pub fn server(&self) -> Result<CommandServer, CommandError> {
        let me = ProcessIdentity::current().record().raw();
        let record = self.server_record();
        loop {
            let current = record.load(Ordering::Acquire);
            if current != 0 && !record_dead(current) {
                return Err(CommandError::ServerBusy {
                    pid: record_pid(current),
                });
            }
            if record
                .compare_exchange(current, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                if current != 0 {
                    self.settle_orphans(record_pid(current));
                }
                return Ok(CommandServer {
                    ring: self.clone(),
                    record: me,
                });
            }
        }
    }
}

impl CommandRing {
    /// Right after taking the server role from the dead server `dead_pid`: settles every slot
    /// it held (see `shm-layout/src/command.rs`): at most once, unless retry-safe.
    fn settle_orphans(&self, dead_pid: u32) {
        for slot in 0..self.slots {
            let request_len = self.meta_u32(slot, offset_of!(CommandSlotMeta, request_len));
            let retry_safe = || request_len.load(Ordering::Relaxed) & CMD_RETRY_SAFE != 0;
            if let Orphan::Lost {
                generation,
                executed,
            } = cmd_state::settle_orphan(self.words(slot), retry_safe)
            {
                let code = if executed {
                    CMD_LOST_EXECUTED
                } else {
                    CMD_LOST_UNKNOWN
                };
                self.meta_u32(slot, offset_of!(CommandSlotMeta, reply_len))
                    .store(code, Ordering::Relaxed);
                self.meta_u64(slot, offset_of!(CommandSlotMeta, ticket))
                    .store(u64::from(dead_pid), Ordering::Relaxed);
                if cmd_state::answer_lost(self.words(slot), generation)
                    && cmd_state::client_may_sleep(
                        self.meta_u32(slot, offset_of!(CommandSlotMeta, waiting)),
                    )
                {
                    futex_wake(self.state(slot), 1);
                }
            }
        }
    }
}

/// The ring's single server. Dropping it detaches (waiting clients then get `ServerDied`).
pub struct CommandServer {
    ring: CommandRing,
    record: u64,
}

impl std::fmt::Debug for CommandServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandServer")
            .field("ring", &self.ring)
            .finish()
    }
}

impl Drop for CommandServer {
    fn drop(&mut self) {
        let _ = self.ring.server_record().compare_exchange(
            self.record,
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// A request taken by the server: answer it with [`reply`](Self::reply) or
/// [`fail`](Self::fail). Dropping it fails it ("dropped by the server").
pub struct Request<'s> {
    server: &'s CommandServer,
    slot: u32,
    generation: u32,
    answered: bool,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("slot", &self.slot)
            .field("len", &self.bytes().len())
            .finish()
    }
}

impl CommandServer {
    /// The next request (lowest ticket first), waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Result<Request<'_>, CommandError> {
        let ring = &self.ring;
        let deadline = Deadline::after(timeout);
        let notify = ring.header_u32(offset_of!(CommandRingHeader, notify));
        let sleeping = ring.header_u32(offset_of!(CommandRingHeader, server_sleeping));
        let mut spins = SpinCounter::new();
        loop {
            if let Some(request) = self.take_oldest() {
                return Ok(request);
            }
            let spinning = ring.strategy.keeps_spinning(spins.count());
            if (spins.tick() || !spinning) && deadline.expired() {
                return Err(CommandError::Timeout { waited: timeout });
            }
            if spinning {
                spin_hint();
                continue;
            }
            // The handshake with `cmd_state::wake_server_if_asleep` (loom-checked there).
            let seen = cmd_state::server_prepares_to_sleep(sleeping, notify);
            if let Some(request) = self.take_oldest() {
                cmd_state::server_awake(sleeping);
                return Ok(request);
            }
            futex_wait(notify, seen, deadline);
            cmd_state::server_awake(sleeping);
        }
    }

    /// Takes the queued request with the lowest ticket, if any. Polling only the slots' state
    /// words (lines the clients hand over anyway) keeps a spinning server off the header.
    fn take_oldest(&self) -> Option<Request<'_>> {
        let ring = &self.ring;
        loop {
            let mut best: Option<(u32, u64)> = None;
            for slot in 0..ring.slots {
                // Acquire: pairs with the client's Release queue (its ticket and request).
                let w = ring.state(slot).load(Ordering::Acquire);
                if cmd_state::state_of(w) == CMD_QUEUED {
                    let ticket = ring
                        .meta_u64(slot, offset_of!(CommandSlotMeta, ticket))
                        .load(Ordering::Relaxed);
                    if best.is_none_or(|(_, t)| ticket < t) {
                        best = Some((slot, ticket));
                    }
                }
            }
            let (slot, _) = best?;
            // A failed take means the client withdrew it meanwhile: look again.
            if let Some(generation) = cmd_state::take(ring.state(slot)) {
                fault::crash_point(CrashPoint::ServerTaken);
                return Some(Request {
                    server: self,
                    slot,
                    generation,
                    answered: false,
                });
            }
        }
    }

    /// The ring this server serves.
    pub fn ring(&self) -> &CommandRing {
        &self.ring
    }
}

impl Request<'_> {
    /// The request's bytes, in place.
    pub fn bytes(&self) -> &[u8] {
        let ring = &self.server.ring;
        let len = (ring
            .meta_u32(self.slot, offset_of!(CommandSlotMeta, request_len))
            .load(Ordering::Relaxed)
            & !CMD_RETRY_SAFE)
            .min(ring.max_request);
        // SAFETY: the slot is TAKEN by this server: the client does not write the request
        // any more; `request_at` picks a region of at least `len <= max_request` bytes.
        unsafe { std::slice::from_raw_parts(ring.request_at(self.slot, len), len as usize) }
    }

    /// Decodes the request as `Q` (serde).
    pub fn decode<Q: DeserializeOwned>(&self) -> Result<Q, CommandError> {
        postcard::from_bytes(self.bytes()).map_err(|e| CommandError::Codec(e.to_string()))
    }

    fn answer(&mut self, bytes: &[u8], failed: bool) -> Result<bool, CommandError> {
        let ring = &self.server.ring;
        if bytes.len() > ring.max_reply as usize {
            return Err(CommandError::TooLarge {
                what: "reply",
                len: bytes.len(),
                max: ring.max_reply,
            });
        }
        let len = bytes.len() as u32;
        self.answered = true;
        fault::crash_point(CrashPoint::ServerBeforeAnswer);
        cmd_state::begin_answer(ring.words(self.slot));
        fault::crash_point(CrashPoint::ServerAnswering);
        // SAFETY: the slot is TAKEN (or ABANDONED), held by this server: a client that gives
        // up only marks it ABANDONED, and only we free it, so nobody else writes or reads these
        // bytes now; the request it carried is consumed (`bytes()` borrows are over, `self` is
        // being answered) and marked as such; `reply_at` picks a region of at least
        // `len <= max_reply` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                ring.reply_at(self.slot, len),
                bytes.len(),
            )
        };
        // The mark stays: until the answer is published, a successor must still see that
        // the request ran.
        ring.meta_u32(self.slot, offset_of!(CommandSlotMeta, reply_len))
            .store(len | CMD_ANSWERING_MARK, Ordering::Relaxed);
        fault::crash_point(CrashPoint::ServerReplyWritten);
        let delivered = cmd_state::answer(ring.words(self.slot), self.generation, failed);
        fault::crash_point(CrashPoint::ServerPublished);
        // The handshake with `cmd_state::client_prepares_to_sleep` (loom-checked there).
        if delivered
            && cmd_state::client_may_sleep(
                ring.meta_u32(self.slot, offset_of!(CommandSlotMeta, waiting)),
            )
        {
            futex_wake(ring.state(self.slot), 1);
        }
        Ok(delivered)
    }

    /// Answers with `bytes`. `Ok(false)` if the client had already given up.
    pub fn reply(mut self, bytes: &[u8]) -> Result<bool, CommandError> {
        self.answer(bytes, false)
    }

    /// Answers with a serde value.
    pub fn reply_typed<R: Serialize>(self, value: &R) -> Result<bool, CommandError> {
        let bytes = postcard::to_allocvec(value).map_err(|e| CommandError::Codec(e.to_string()))?;
        self.reply(&bytes)
    }

    /// Answers with an error message (truncated to the reply buffer).
    pub fn fail(mut self, message: &str) -> Result<bool, CommandError> {
        let max = self.server.ring.max_reply as usize;
        let mut end = message.len().min(max);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        self.answer(&message.as_bytes()[..end], true)
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.answer(b"request dropped by the server", true);
        }
    }
}

/// The shape of a command ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// Request slots (calls in flight at once), 1..=1024.
    pub slots: u32,
    /// Largest request in bytes.
    pub max_request: u32,
    /// Largest reply in bytes.
    pub max_reply: u32,
}

impl Segment {
    /// Finds or creates the command ring `name`; an existing ring must have the same spec.
    pub fn command_ring(
        &self,
        name: &str,
        spec: &CommandSpec,
    ) -> Result<CommandRing, SegmentError> {
        if !(1..=CMD_MAX_SLOTS).contains(&spec.slots)
            || spec.max_request == 0
            || spec.max_request >= CMD_RETRY_SAFE
            || spec.max_reply >= CMD_ANSWERING_MARK
        {
            return Err(SegmentError::InvalidOption(format!(
                "command ring {name:?}: {} slots (1..={CMD_MAX_SLOTS}), max request {}",
                spec.slots, spec.max_request
            )));
        }
        let stride =
            (META + u64::from(spec.max_request) + u64::from(spec.max_reply)).next_multiple_of(64);
        let size = HEADER + stride * u64::from(spec.slots);
        let fingerprint = u64::from(spec.slots) << 48
            ^ u64::from(spec.max_request) << 24
            ^ u64::from(spec.max_reply);
        let info = self.find_or_create(
            name,
            ObjectKind::CommandRing,
            |info| {
                if info.param != fingerprint {
                    return Err(format!("it was created with another spec than {spec:?}"));
                }
                Ok(())
            },
            || {
                let offset = self.allocate(BlockKind::CommandRing, size, 64, |ptr| {
                    let base = ptr.as_ptr();
                    // SAFETY: the fresh block is ours (unpublished, allocator lock held) and at
                    // least 128 bytes; the fields are aligned header offsets.
                    unsafe {
                        AtomicU32::from_ptr(base.add(offset_of!(CommandRingHeader, slots)).cast())
                            .store(spec.slots, Ordering::Relaxed);
                        AtomicU32::from_ptr(
                            base.add(offset_of!(CommandRingHeader, max_request)).cast(),
                        )
                        .store(spec.max_request, Ordering::Relaxed);
                        AtomicU32::from_ptr(
                            base.add(offset_of!(CommandRingHeader, max_reply)).cast(),
                        )
                        .store(spec.max_reply, Ordering::Relaxed);
                        AtomicU64::from_ptr(
                            base.add(offset_of!(CommandRingHeader, slot_stride)).cast(),
                        )
                        .store(stride, Ordering::Relaxed);
                    }
                })?;
                Ok(crate::table::Created {
                    offset,
                    size,
                    param: fingerprint,
                })
            },
        )?;
        self.command_ring_at(info.offset)
    }

    /// The command ring at `offset` (geometry checked against the block).
    pub fn command_ring_at(&self, offset: u64) -> Result<CommandRing, SegmentError> {
        let header = self.block_ptr_of_kind(offset, BlockKind::CommandRing, HEADER)?;
        let base = header.as_ptr();
        // SAFETY: the header is inside the checked block; aligned fields; atomics are valid
        // for any bytes.
        let (slots, max_request, max_reply, stride) = unsafe {
            (
                AtomicU32::from_ptr(base.add(offset_of!(CommandRingHeader, slots)).cast())
                    .load(Ordering::Relaxed),
                AtomicU32::from_ptr(base.add(offset_of!(CommandRingHeader, max_request)).cast())
                    .load(Ordering::Relaxed),
                AtomicU32::from_ptr(base.add(offset_of!(CommandRingHeader, max_reply)).cast())
                    .load(Ordering::Relaxed),
                AtomicU64::from_ptr(base.add(offset_of!(CommandRingHeader, slot_stride)).cast())
                    .load(Ordering::Relaxed),
            )
        };
        let need = META + u64::from(max_request) + u64::from(max_reply);
        let valid = (1..=CMD_MAX_SLOTS).contains(&slots)
            && max_request < CMD_RETRY_SAFE
            && max_reply < CMD_ANSWERING_MARK
            && stride >= need
            && stride % 64 == 0;
        let size = stride
            .checked_mul(u64::from(slots))
            .and_then(|s| s.checked_add(HEADER))
            .filter(|_| valid)
            .ok_or_else(|| SegmentError::Corrupt {
                what: "command ring header",
                detail: format!(
                    "{slots} slots, stride {stride}, request {max_request}, reply {max_reply}"
                ),
            })?;
        let base = self.block_ptr_of_kind(offset, BlockKind::CommandRing, size)?;
        Ok(CommandRing {
            _segment: self.clone(),
            base,
            slots,
            max_request,
            max_reply,
            stride,
            strategy: WaitStrategy::Block,
            retry_safe: false,
        })
    }
}
