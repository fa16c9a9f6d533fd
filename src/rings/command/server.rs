//! The server side of the command ring: take the role (settling a dead predecessor's slots
//! at most once), receive the oldest request, answer it in place.

use super::super::cmd_state::{self, Orphan};
use super::{CommandError, CommandRing, Outcome};
use crate::fault::{self, CrashPoint};
use crate::sync::{
    futex_wait, futex_wake, spin_hint, Interrupt, NoInterrupt, Ordering, SpinCounter, Stop,
    Timeout, Waiting,
};
use crate::sys::identity::{ProcessIdentity, Record};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shm_layout::{
    CMD_ANSWERING_MARK, CMD_LOST_EXECUTED, CMD_LOST_UNKNOWN, CMD_NO_DEADLINE, CMD_QUEUED,
    CMD_RETRY_SAFE,
};
use std::time::Duration;

impl CommandRing {
    /// Becomes the ring's server. A dead server's role is taken over and the requests it had
    /// taken are queued again; a live one's is [`CommandError::ServerBusy`].
    pub fn server(&self) -> Result<CommandServer, CommandError> {
        let me = ProcessIdentity::current().record();
        let previous = self
            .header()
            .server
            .claim_if_dead(me)
            .map_err(|held| CommandError::ServerBusy { pid: held.0.id() })?;
        if !previous.is_none() {
            self.settle_orphans(previous.id());
        }
        Ok(CommandServer {
            ring: self.clone(),
            record: me,
        })
    }

    /// Right after taking the server role from the dead server `dead_pid`: settles every slot
    /// it held (see `shm-layout/src/command.rs`): at most once, unless retry-safe.
    fn settle_orphans(&self, dead_pid: u32) {
        for slot in 0..self.geometry.slots {
            let request_len = &self.slot(slot).request_len;
            let retry_safe = || request_len.load(Ordering::Relaxed) & CMD_RETRY_SAFE != 0;
            if let Orphan::Lost {
                generation,
                executed,
            } = cmd_state::settle_orphan(self.slot(slot).words(), retry_safe)
            {
                let code = if executed {
                    CMD_LOST_EXECUTED
                } else {
                    CMD_LOST_UNKNOWN
                };
                self.slot(slot).reply_len.store(code, Ordering::Relaxed);
                self.slot(slot)
                    .ticket
                    .store(u64::from(dead_pid), Ordering::Relaxed);
                if cmd_state::answer_lost(self.slot(slot).words(), generation)
                    && cmd_state::client_may_sleep(&self.slot(slot).waiting)
                {
                    futex_wake(&self.slot(slot).state, 1);
                }
            }
        }
    }
}

/// The ring's single server. Dropping it detaches (waiting clients then get `ServerDied`).
pub struct CommandServer {
    ring: CommandRing,
    record: Record,
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
        self.ring.header().server.release(self.record);
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
    pub fn recv(&self, timeout: impl Into<Timeout>) -> Result<Request<'_>, CommandError> {
        let timeout = timeout.into();
        let mut waiting = Waiting::new(timeout.deadline(), &NoInterrupt);
        self.recv_waiting(&mut waiting, timeout.as_duration())
    }

    /// [`recv`](Self::recv) within `timeout`, giving up with [`CommandError::Interrupted`]
    /// within 100 ms of `interrupt` saying stop.
    pub fn recv_interruptible(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Request<'_>, CommandError> {
        let mut waiting = Waiting::new(timeout.deadline(), interrupt);
        self.recv_waiting(&mut waiting, timeout.as_duration())
    }

    fn recv_waiting(
        &self,
        waiting: &mut Waiting<'_>,
        timeout: Duration,
    ) -> Result<Request<'_>, CommandError> {
        let ring = &self.ring;
        let notify = &ring.header().notify;
        let sleeping = &ring.header().server_sleeping;
        let mut spins = SpinCounter::new();
        loop {
            if let Some(request) = self.take_oldest() {
                return Ok(request);
            }
            let spinning = ring.strategy.keeps_spinning(spins.count());
            if spins.tick() || !spinning {
                match waiting.check() {
                    Ok(()) => {}
                    Err(Stop::TimedOut) => return Err(CommandError::Timeout { waited: timeout }),
                    Err(Stop::Interrupted) => {
                        return Err(CommandError::Interrupted {
                            outcome: Outcome::NotExecuted,
                        })
                    }
                }
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
            let outcome = futex_wait(notify, seen, waiting.sleep_deadline());
            waiting.slept(outcome);
            cmd_state::server_awake(sleeping);
        }
    }

    /// Takes the queued request with the lowest ticket, if any. Polling only the slots' state
    /// words (lines the clients hand over anyway) keeps a spinning server off the header.
    fn take_oldest(&self) -> Option<Request<'_>> {
        let ring = &self.ring;
        loop {
            let mut best: Option<(u32, u64)> = None;
            for slot in 0..ring.geometry.slots {
                // Acquire: pairs with the client's Release queue (its ticket and request).
                let w = ring.slot(slot).state.load(Ordering::Acquire);
                if cmd_state::state_of(w) == CMD_QUEUED {
                    let ticket = ring.slot(slot).ticket.load(Ordering::Relaxed);
                    if best.is_none_or(|(_, t)| ticket < t) {
                        best = Some((slot, ticket));
                    }
                }
            }
            let (slot, _) = best?;
            // A failed take means the client withdrew it meanwhile: look again.
            if let Some(generation) = cmd_state::take(&ring.slot(slot).state) {
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
        let len = (ring.slot(self.slot).request_len.load(Ordering::Relaxed) & !CMD_RETRY_SAFE)
            .min(ring.geometry.max_request);
        // SAFETY: the slot is TAKEN by this server: the client does not write the request
        // any more; `request_at` picks a region of at least `len <= max_request` bytes.
        unsafe { std::slice::from_raw_parts(ring.request_at(self.slot, len), len as usize) }
    }

    /// How long the calling client still waits for the answer ([`Timeout::Forever`] for a
    /// call without a deadline; zero once it has passed). A server forwarding the call
    /// elsewhere passes it on; one whose work is stale past it may fail the request at once.
    pub fn time_left(&self) -> Timeout {
        // Relaxed: written before the client's Release queue, which our Acquire take saw.
        let deadline = self
            .server
            .ring
            .slot(self.slot)
            .deadline
            .load(Ordering::Relaxed);
        if deadline == CMD_NO_DEADLINE {
            Timeout::Forever
        } else {
            Timeout::After(Duration::from_nanos(
                deadline.saturating_sub(crate::sys::clock::monotonic_ns()),
            ))
        }
    }

    /// Decodes the request as `Q` (serde).
    pub fn decode<Q: DeserializeOwned>(&self) -> Result<Q, CommandError> {
        Ok(crate::codec::decode(self.bytes(), "the request")?)
    }

    fn answer(&mut self, bytes: &[u8], failed: bool) -> Result<bool, CommandError> {
        let ring = &self.server.ring;
        if bytes.len() > ring.geometry.max_reply as usize {
            return Err(CommandError::TooLarge {
                what: "reply",
                len: bytes.len(),
                max: ring.geometry.max_reply,
            });
        }
        let len = bytes.len() as u32;
        self.answered = true;
        fault::crash_point(CrashPoint::ServerBeforeAnswer);
        cmd_state::begin_answer(ring.slot(self.slot).words());
        fault::crash_point(CrashPoint::ServerAnswering);
        // The slot is TAKEN (or ABANDONED) and held by this server: a client that gives up
        // only marks it ABANDONED and only we free it; the request's `bytes()` borrows ended
        // with `self` being answered.
        // SAFETY: so nobody else reads or writes these bytes now, and `reply_at` gives a region
        // of at least `len` bytes (inline when `len <= CMD_INLINE`, else the `max_reply` buffer).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                ring.reply_at(self.slot, len),
                bytes.len(),
            )
        };
        // The mark stays: until the answer is published, a successor must still see that
        // the request ran.
        ring.slot(self.slot)
            .reply_len
            .store(len | CMD_ANSWERING_MARK, Ordering::Relaxed);
        fault::crash_point(CrashPoint::ServerReplyWritten);
        let delivered = cmd_state::answer(ring.slot(self.slot).words(), self.generation, failed);
        fault::crash_point(CrashPoint::ServerPublished);
        // The handshake with `cmd_state::client_prepares_to_sleep` (loom-checked there).
        if delivered && cmd_state::client_may_sleep(&ring.slot(self.slot).waiting) {
            futex_wake(&ring.slot(self.slot).state, 1);
        }
        Ok(delivered)
    }

    /// Answers with `bytes`. `Ok(false)` if the client had already given up.
    pub fn reply(mut self, bytes: &[u8]) -> Result<bool, CommandError> {
        self.answer(bytes, false)
    }

    /// Answers with a serde value.
    pub fn reply_typed<R: Serialize>(self, value: &R) -> Result<bool, CommandError> {
        let bytes = crate::codec::encode(value, "the reply")?;
        self.reply(&bytes)
    }

    /// Answers with an error message (truncated to the reply buffer).
    pub fn fail(mut self, message: &str) -> Result<bool, CommandError> {
        let max = self.server.ring.geometry.max_reply as usize;
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
