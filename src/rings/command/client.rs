//! The client side of the command ring: claim a slot, queue the request, wait for the answer
//! (checking the server's liveness), and settle the slot whatever happens.

use super::super::cmd_state::{self, Answer, GaveUp, SlotWords};
use super::{CommandError, CommandRing, Outcome, SERVER_CHECK, SLOT_POLL};
use crate::sync::{
    futex_wait, spin_hint, Interrupt, NoInterrupt, Ordering, SpinCounter, Stop, Timeout, Waiting,
};
use crate::sys::clock::{monotonic_ns, Deadline};
use crate::sys::identity::{ProcessIdentity, Record};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shm_layout::{
    CMD_ANSWERING_MARK, CMD_INLINE, CMD_LOST_EXECUTED, CMD_NO_DEADLINE, CMD_RETRY_SAFE,
};
use std::time::Duration;

/// Why a client stops waiting for its answer.
#[derive(Debug, Clone, Copy)]
enum GiveUp {
    /// Its deadline (the timeout it was given) passed.
    Deadline(Duration),
    /// The server (this pid) died and the request is not retry-safe.
    ServerDied(u32),
    /// The caller's interrupt check said stop.
    Interrupted,
}

impl CommandRing {
    /// Sends `request` and waits at most `timeout` for the reply.
    pub fn call(
        &self,
        request: &[u8],
        timeout: impl Into<Timeout>,
    ) -> Result<Vec<u8>, CommandError> {
        self.call_with(request, timeout, <[u8]>::to_vec)
    }

    /// Sends `request` and hands the reply to `read` in place, without copying or allocating;
    /// the slot is released when `read` returns. For control loops calling at kHz rates.
    #[inline]
    pub fn call_with<R>(
        &self,
        request: &[u8],
        timeout: impl Into<Timeout>,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CommandError> {
        self.call_interruptible_with(request, timeout.into(), &NoInterrupt, read)
    }

    /// [`call`](Self::call) within `timeout`, giving up with [`CommandError::Interrupted`]
    /// (the request withdrawn or abandoned, its outcome said) within 100 ms of `interrupt`
    /// saying stop.
    pub fn call_interruptible(
        &self,
        request: &[u8],
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<Vec<u8>, CommandError> {
        self.call_interruptible_with(request, timeout, interrupt, <[u8]>::to_vec)
    }

    /// [`call_with`](Self::call_with), interruptible as
    /// [`call_interruptible`](Self::call_interruptible).
    pub fn call_interruptible_with<R>(
        &self,
        request: &[u8],
        timeout: Timeout,
        interrupt: &dyn Interrupt,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CommandError> {
        let len = u32::try_from(request.len())
            .ok()
            .filter(|&l| l <= self.geometry.max_request)
            .ok_or(CommandError::TooLarge {
                what: "request",
                len: request.len(),
                max: self.geometry.max_request,
            })?;
        if self.header().server.load().is_none() {
            return Err(CommandError::NoServer);
        }
        // The ticket is taken before the slot so that every write to the slot's line happens
        // in one burst, between the claim and the queue.
        let deadline = timeout.deadline().as_ns().unwrap_or(CMD_NO_DEADLINE);
        let ticket = self.header().next_ticket.fetch_add(1, Ordering::Relaxed);
        let (slot, generation) = self.claim_slot(timeout, interrupt)?;
        self.slot(slot).ticket.store(ticket, Ordering::Relaxed);
        self.slot(slot).deadline.store(deadline, Ordering::Relaxed);
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
        self.slot(slot)
            .request_len
            .store(len | flags, Ordering::Relaxed);
        cmd_state::queue(self.slot(slot).words(), generation);
        cmd_state::wake_server_if_asleep(&self.header().server_sleeping, &self.header().notify);
        self.await_answer(slot, generation, timeout, interrupt, read)
    }

    /// A free slot, reclaiming dead clients' slots if there is none, and waiting (polling)
    /// up to `timeout` for one to come free: a dead client's slot that a server is still
    /// answering is freed by that server's answer.
    fn claim_slot(
        &self,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
    ) -> Result<(u32, u32), CommandError> {
        // The claim itself records who we are (see `cmd_state`).
        let me = ProcessIdentity::current().record().raw();
        let mut waiting = None;
        loop {
            for pass in 0..2 {
                for slot in 0..self.geometry.slots {
                    if let Some(generation) = cmd_state::claim(self.slot(slot).words(), me) {
                        return Ok((slot, generation));
                    }
                }
                if pass == 0 {
                    self.reclaim_dead_clients();
                }
            }
            // Slots a dead server held stay with it until a successor settles them: say so.
            let server = self.header().server.load();
            if server.process_dead() {
                return Err(CommandError::ServerDied {
                    pid: server.id(),
                    outcome: Outcome::NotExecuted,
                });
            }
            let waiting =
                waiting.get_or_insert_with(|| Waiting::new(timeout.deadline(), interrupt));
            match waiting.check() {
                Ok(()) => {}
                Err(Stop::TimedOut) => {
                    return Err(CommandError::RingFull {
                        slots: self.geometry.slots,
                    })
                }
                Err(Stop::Interrupted) => {
                    return Err(CommandError::Interrupted {
                        outcome: Outcome::NotExecuted,
                    })
                }
            }
            std::thread::sleep(SLOT_POLL);
        }
    }

    /// Frees the slots of clients that died mid-call. Returns how many.
    pub fn reclaim_dead_clients(&self) -> u32 {
        let mut freed = 0;
        for slot in 0..self.geometry.slots {
            let words = self.slot(slot).words();
            if cmd_state::reclaim_if_dead(words, |c| Record::from_raw(c).process_dead()) {
                freed += 1;
            }
        }
        freed
    }

    fn await_answer<R>(
        &self,
        slot: u32,
        generation: u32,
        timeout: Timeout,
        interrupt: &dyn Interrupt,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CommandError> {
        let word = &self.slot(slot).state;
        // The clock is read while the server works, not before the request leaves.
        let started = monotonic_ns();
        let deadline = match timeout {
            Timeout::After(d) => Deadline::after_from(started, d),
            Timeout::Forever => Deadline::NEVER,
        };
        let mut waiting = Waiting::new(deadline, interrupt);
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
                    let server = self.header().server.load();
                    server_dead = server.process_dead();
                    server_pid = server.id();
                }
                // A retry-safe call outlives a dead server: a successor runs it again.
                if server_dead && !self.retry_safe {
                    return self.give_up(slot, generation, GiveUp::ServerDied(server_pid), read);
                }
                match waiting.check_at(now) {
                    Ok(()) => {}
                    Err(Stop::TimedOut) => {
                        let why = if server_dead {
                            GiveUp::ServerDied(server_pid)
                        } else {
                            GiveUp::Deadline(timeout.as_duration())
                        };
                        return self.give_up(slot, generation, why, read);
                    }
                    Err(Stop::Interrupted) => {
                        return self.give_up(slot, generation, GiveUp::Interrupted, read)
                    }
                }
            }
            if spinning {
                spin_hint();
                continue;
            }
            let waiting_word = &self.slot(slot).waiting;
            // The handshake with `cmd_state::client_may_sleep` (loom-checked there).
            cmd_state::client_prepares_to_sleep(waiting_word);
            let w = word.load(Ordering::Acquire);
            if cmd_state::generation_of(w) == generation
                && cmd_state::collect(word, generation).is_none()
            {
                let outcome = futex_wait(word, w, waiting.sleep_deadline_capped(SERVER_CHECK));
                waiting.slept(outcome);
            }
            waiting_word.store(0, Ordering::Relaxed);
        }
    }

    /// Ends a call without an answer (for `why`): withdraws or abandons it, or collects the
    /// answer that won the race.
    fn give_up<R>(
        &self,
        slot: u32,
        generation: u32,
        why: GiveUp,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CommandError> {
        let outcome = match cmd_state::give_up(self.slot(slot).words(), generation) {
            GaveUp::Answered(answer) => return self.take_answer(slot, generation, answer, read),
            GaveUp::Withdrawn => Outcome::NotExecuted,
            GaveUp::Abandoned { executed: false } => Outcome::Unknown,
            GaveUp::Abandoned { executed: true } => Outcome::Executed,
        };
        Err(match why {
            GiveUp::ServerDied(pid) => CommandError::ServerDied { pid, outcome },
            GiveUp::Deadline(waited) => CommandError::Timeout { waited },
            GiveUp::Interrupted => CommandError::Interrupted { outcome },
        })
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
        let _free = FreeOnDrop(self.slot(slot).words(), generation);
        if answer == Answer::Lost {
            let pid = self.slot(slot).ticket.load(Ordering::Relaxed) as u32;
            let code = self.slot(slot).reply_len.load(Ordering::Relaxed);
            let outcome = if code == CMD_LOST_EXECUTED {
                Outcome::Executed
            } else {
                Outcome::Unknown
            };
            return Err(CommandError::ServerDied { pid, outcome });
        }
        let len = self.slot(slot).reply_len.load(Ordering::Relaxed) & !CMD_ANSWERING_MARK;
        if len > self.geometry.max_reply.max(CMD_INLINE) {
            return Err(CommandError::Corrupt(format!(
                "reply length {len} above {}",
                self.geometry.max_reply
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
        timeout: impl Into<Timeout>,
    ) -> Result<R, CommandError> {
        let bytes = crate::codec::encode(request, "the request")?;
        let reply = self.call(&bytes, timeout)?;
        Ok(crate::codec::decode(&reply, "the reply")?)
    }
}
