//! Command rings from C: a client's call (request bytes out, reply bytes into the caller's
//! buffer, with a timeout and the outcome when it fails), a server's receive and reply, and
//! calls to a running device server (`shmkit_device_*`), which hold the device's mutex as
//! every Rust and Python client does.

use crate::args::{bytes, get, get_mut, out, put, text, timeout};
use crate::handle::{free, open_object};
use crate::interrupt::Flag;
use crate::segment::shmkit_segment;
use crate::status::{
    command_failure, device_failure, run, shmkit_outcome, shmkit_status, CResult, Failure,
};
use shmkit::rings::{CommandRing, CommandServer, CommandSpec, Request};
use shmkit::{SegmentObjects, Timeout};
use shmkit_devices::RawDeviceClient;
use std::ffi::c_char;

/// A command ring in a segment.
///
/// Thread-safety: one handle may be used from any number of threads at once (each call
/// takes a slot of its own).
pub struct shmkit_command_ring {
    inner: CommandRing,
}

/// Opens the command ring `name` in `segment` as it exists.
///
/// # Safety
/// `segment` is a live handle, `name` a NUL-terminated string, `out` writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_ring_open(
    segment: *const shmkit_segment,
    name: *const c_char,
    out: *mut *mut shmkit_command_ring,
) -> shmkit_status {
    open_ring(segment, name, out, |s, n| s.open::<CommandRing>(n))
}

/// Opens the command ring `name`, creating it if it does not exist with `slots` request
/// slots (calls in flight at once, 1 to 1024) and requests and replies of at most
/// `max_request` and `max_reply` bytes. An existing ring must match (`SHMKIT_E_MISMATCH`).
///
/// # Safety
/// `segment` is a live handle, `name` a NUL-terminated string, `out` writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_ring_open_or_create(
    segment: *const shmkit_segment,
    name: *const c_char,
    slots: u32,
    max_request: u32,
    max_reply: u32,
    out: *mut *mut shmkit_command_ring,
) -> shmkit_status {
    let spec = CommandSpec {
        slots,
        max_request,
        max_reply,
    };
    open_ring(segment, name, out, |s, n| s.command_ring(n, &spec))
}

fn open_ring(
    segment: *const shmkit_segment,
    name: *const c_char,
    out: *mut *mut shmkit_command_ring,
    open: impl FnOnce(&shmkit::Segment, &str) -> Result<CommandRing, shmkit::SegmentError>,
) -> shmkit_status {
    open_object(segment, name, out, open, |inner| shmkit_command_ring {
        inner,
    })
}

/// # Safety
/// `ring` is NULL or a live handle.
unsafe fn ring<'a>(ring: *const shmkit_command_ring) -> CResult<&'a CommandRing> {
    // SAFETY: the caller's promise.
    Ok(&unsafe { get(ring, "ring") }?.inner)
}

/// The largest reply the ring carries, in bytes: a reply buffer this large never gets
/// `SHMKIT_E_BUFFER_TOO_SMALL`. 0 for a NULL handle.
///
/// # Safety
/// `ring` is NULL or a live handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_ring_max_reply(ring: *const shmkit_command_ring) -> u32 {
    // SAFETY: the caller's promise.
    unsafe { ring.as_ref() }.map_or(0, |r| r.inner.spec().max_reply)
}

/// The largest request the ring carries, in bytes. 0 for a NULL handle.
///
/// # Safety
/// `ring` is NULL or a live handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_ring_max_request(ring: *const shmkit_command_ring) -> u32 {
    // SAFETY: the caller's promise.
    unsafe { ring.as_ref() }.map_or(0, |r| r.inner.spec().max_request)
}

/// Writes `outcome` if the caller asked for it.
fn tell(outcome_ptr: *mut shmkit_outcome, outcome: shmkit_outcome) {
    if !outcome_ptr.is_null() {
        // SAFETY: non-NULL, and writable by every caller's contract.
        unsafe { put(outcome_ptr, outcome) };
    }
}

/// A call's status, telling the caller (if it asked) whether the request ran: it did when
/// the server answered, whether or not the reply fit the caller's buffer.
fn settle(
    answer: Result<CResult, (Failure, shmkit_outcome)>,
    outcome_ptr: *mut shmkit_outcome,
) -> CResult {
    let (status, ran) = match answer {
        Ok(delivered) => (delivered, shmkit_outcome::SHMKIT_EXECUTED),
        Err((failure, ran)) => (Err(failure), ran),
    };
    tell(outcome_ptr, ran);
    status
}

/// Copies `reply` into the caller's buffer, or says how large it should have been.
fn deliver(reply: &[u8], buffer: *mut u8, capacity: usize, reply_len: *mut usize) -> CResult {
    // SAFETY: checked non-NULL by the callers before the call was sent.
    unsafe { put(reply_len, reply.len()) };
    if reply.len() > capacity {
        return Err(Failure::new(
            shmkit_status::SHMKIT_E_BUFFER_TOO_SMALL,
            format!(
                "the reply of {} bytes does not fit the {capacity}-byte buffer (the request ran)",
                reply.len()
            ),
        ));
    }
    if !reply.is_empty() {
        // SAFETY: `buffer` holds `capacity >= reply.len()` writable bytes (checked non-NULL
        // by the callers when `capacity > 0`), and does not overlap the ring's slot.
        unsafe { std::ptr::copy_nonoverlapping(reply.as_ptr(), buffer, reply.len()) };
    }
    Ok(shmkit_status::SHMKIT_OK)
}

/// Checks a reply buffer before anything is sent.
fn check_reply_buffer(buffer: *mut u8, capacity: usize, reply_len: *mut usize) -> CResult<()> {
    out(reply_len, "reply_len")?;
    if capacity > 0 {
        out(buffer, "reply")?;
    }
    Ok(())
}

/// Sends `request` (`request_len` bytes) and waits at most `timeout_ns` (negative: forever)
/// for the reply, which is copied into `reply` (`reply_capacity` bytes); `*reply_len` is its
/// length (also on `SHMKIT_E_BUFFER_TOO_SMALL`, when the request did run). On failure
/// `*outcome` (if not NULL) says whether the request ran: `SHMKIT_E_SERVER_DIED`,
/// `SHMKIT_E_TIMEOUT` and `SHMKIT_E_INTERRUPTED` never leave a reply to surface in a later
/// call. `SHMKIT_E_FAILED`: the server answered with a failure, its message the last error.
///
/// # Safety
/// `ring` is a live handle; `request` points to `request_len` bytes; `reply` to
/// `reply_capacity` writable bytes; `reply_len` is writable; `outcome` is NULL or writable.
///
/// Thread-safety: any thread; calls from many threads run concurrently.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_call(
    ring: *const shmkit_command_ring,
    request: *const u8,
    request_len: usize,
    reply: *mut u8,
    reply_capacity: usize,
    reply_len: *mut usize,
    timeout_ns: i64,
    outcome: *mut shmkit_outcome,
) -> shmkit_status {
    run(|| {
        check_reply_buffer(reply, reply_capacity, reply_len)?;
        // SAFETY: the caller's promise.
        let (r, request) = unsafe { (self::ring(ring)?, bytes(request, request_len, "request")?) };
        let answer = r.call_interruptible_with(request, timeout(timeout_ns), &Flag, |bytes| {
            deliver(bytes, reply, reply_capacity, reply_len)
        });
        settle(answer.map_err(command_failure), outcome)
    })
}

/// Frees the handle (NULL is a no-op). Servers made from it stay usable.
///
/// # Safety
/// `ring` is NULL or a live handle, unused afterwards.
///
/// Thread-safety: no other thread may use this handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_ring_free(ring: *mut shmkit_command_ring) {
    // SAFETY: the caller's promise.
    unsafe { free(ring) }
}

// ------------------------------------------------------------------------------- server

/// A command ring's single server (the role is taken while the handle lives), holding at
/// most one received request at a time.
///
/// Thread-safety: not thread-safe — one thread at a time (it may move between threads).
pub struct shmkit_command_server {
    /// The request received and not yet answered. It borrows `*server`: declared first so it
    /// is dropped first (an unanswered request is failed, "dropped by the server").
    pending: Option<Request<'static>>,
    /// Boxed so that the address `pending` borrows never moves.
    server: Box<CommandServer>,
}

/// Takes the server role of `ring` (`SHMKIT_E_BUSY` if another live process has it).
///
/// # Safety
/// `ring` is a live handle; `out` is writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_server_new(
    ring: *const shmkit_command_ring,
    out_ptr: *mut *mut shmkit_command_server,
) -> shmkit_status {
    run(|| {
        out(out_ptr, "out")?;
        // SAFETY: the caller's promise.
        let server = unsafe { self::ring(ring) }?.server()?;
        let handle = Box::new(shmkit_command_server {
            pending: None,
            server: Box::new(server),
        });
        // SAFETY: checked non-NULL; writable by the caller's promise.
        unsafe { put(out_ptr, Box::into_raw(handle)) };
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Waits at most `timeout_ns` (negative: forever) for the next request; `*request` points to
/// its bytes and `*request_len` is their length, valid until this request is answered with
/// `shmkit_command_server_reply` or `_fail`. `SHMKIT_E_STATE` if the previous request is
/// still unanswered.
///
/// # Safety
/// `server` is a live handle; `request` and `request_len` are writable.
///
/// Thread-safety: one thread at a time per server.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_server_recv(
    server: *mut shmkit_command_server,
    timeout_ns: i64,
    request: *mut *const u8,
    request_len: *mut usize,
) -> shmkit_status {
    run(|| {
        out(request, "request")?;
        out(request_len, "request_len")?;
        // SAFETY: the caller's promise.
        let s = unsafe { get_mut(server, "server") }?;
        if s.pending.is_some() {
            return Err(Failure::new(
                shmkit_status::SHMKIT_E_STATE,
                "the previous request is unanswered: reply or fail it first",
            ));
        }
        // SAFETY: `s.server` is boxed: its address is fixed while the handle lives, and the
        // request borrowing it is stored in `s.pending`, which is dropped (or answered) before
        // the box (field order) — so the borrow never outlives the server.
        let boxed: &'static CommandServer = unsafe { &*(&*s.server as *const CommandServer) };
        let received = boxed.recv_interruptible(timeout(timeout_ns), &Flag)?;
        let got = received.bytes();
        // SAFETY: both checked non-NULL; writable by the caller's promise.
        unsafe {
            put(request, got.as_ptr());
            put(request_len, got.len());
        }
        s.pending = Some(received);
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// How long the client of the pending request still waits for the answer, in ns (-1: no
/// deadline; 0: it has passed). -1 also when no request is pending or `server` is NULL.
///
/// # Safety
/// `server` is NULL or a live handle.
///
/// Thread-safety: one thread at a time per server.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_server_time_left(
    server: *const shmkit_command_server,
) -> i64 {
    // SAFETY: the caller's promise.
    let pending = unsafe { server.as_ref() }.and_then(|s| s.pending.as_ref());
    match pending.map(Request::time_left) {
        Some(Timeout::After(left)) => i64::try_from(left.as_nanos()).unwrap_or(i64::MAX),
        _ => -1,
    }
}

/// Takes the pending request out of the handle.
///
/// # Safety
/// `server` is NULL or a live handle no other thread uses now.
unsafe fn pending(server: *mut shmkit_command_server) -> CResult<Request<'static>> {
    // SAFETY: the caller's promise.
    let s = unsafe { get_mut(server, "server") }?;
    s.pending.take().ok_or_else(|| {
        Failure::new(
            shmkit_status::SHMKIT_E_STATE,
            "no request is pending: receive one first",
        )
    })
}

/// Answers the pending request with `reply` (`reply_len` bytes, at most the ring's
/// `max_reply`: `SHMKIT_E_TOO_LARGE` otherwise, and the request stays pending). `*delivered`
/// (if not NULL) is 0 when the client had already given up.
///
/// # Safety
/// `server` is a live handle; `reply` points to `reply_len` bytes; `delivered` is NULL or
/// writable.
///
/// Thread-safety: one thread at a time per server.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_server_reply(
    server: *mut shmkit_command_server,
    reply: *const u8,
    reply_len: usize,
    delivered: *mut i32,
) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        let reply = unsafe { bytes(reply, reply_len, "reply") }?;
        // SAFETY: the caller's promise.
        let s = unsafe { get_mut(server, "server") }?;
        let max = s.server.ring().spec().max_reply;
        if reply.len() > max as usize {
            return Err(Failure::new(
                shmkit_status::SHMKIT_E_TOO_LARGE,
                format!(
                    "reply of {} bytes exceeds the ring's maximum of {max}",
                    reply.len()
                ),
            ));
        }
        // SAFETY: `server` checked just above.
        let request = unsafe { pending(server) }?;
        let got = request.reply(reply)?;
        if !delivered.is_null() {
            // SAFETY: non-NULL and writable by the caller's promise.
            unsafe { put(delivered, i32::from(got)) };
        }
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Answers the pending request with a failure: the client's call returns `SHMKIT_E_FAILED`
/// with `message` (truncated to the ring's `max_reply` bytes) as its last error.
///
/// # Safety
/// `server` is a live handle; `message` is a NUL-terminated string.
///
/// Thread-safety: one thread at a time per server.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_server_fail(
    server: *mut shmkit_command_server,
    message: *const c_char,
) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        let message = unsafe { text(message, "message") }?;
        // SAFETY: the caller's promise.
        let request = unsafe { pending(server) }?;
        request.fail(message)?;
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Frees the server (NULL is a no-op): a pending request is failed, the server role
/// released (waiting clients then get `SHMKIT_E_SERVER_DIED`).
///
/// # Safety
/// `server` is NULL or a live handle, unused afterwards.
///
/// Thread-safety: no other thread may use this handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn shmkit_command_server_free(server: *mut shmkit_command_server) {
    // SAFETY: the caller's promise.
    unsafe { free(server) }
}

// ------------------------------------------------------------------------------- device

/// A client of a device server (Rust, Python or C) running in a segment. Commands and
/// replies are the device's own encoding: postcard's wire format of its `Command` and
/// `Reply` types (`shmkit_postcard.h` has the encoders a C client needs).
///
/// Thread-safety: one handle may be used from any number of threads at once (calls are
/// serialised by the device's mutex, as every client's are).
pub struct shmkit_device {
    inner: RawDeviceClient,
}

/// Opens a client of device `name`, which a server has started in `segment`
/// (`SHMKIT_E_NO_SERVER` if none ever did).
///
/// # Safety
/// `segment` is a live handle, `name` a NUL-terminated string, `out` writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_device_open(
    segment: *const shmkit_segment,
    name: *const c_char,
    out_ptr: *mut *mut shmkit_device,
) -> shmkit_status {
    run(|| {
        out(out_ptr, "out")?;
        // SAFETY: the C contract: a live segment handle and a NUL-terminated name.
        let (segment, name) = unsafe { (shmkit_segment::arg(segment)?, text(name, "name")?) };
        let inner = RawDeviceClient::open(segment, name).map_err(|e| device_failure(e).0)?;
        // SAFETY: checked non-NULL; writable by the caller's promise.
        unsafe { put(out_ptr, Box::into_raw(Box::new(shmkit_device { inner }))) };
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// The largest command and reply the device takes, in bytes (0 for NULL): a reply buffer
/// this large never gets `SHMKIT_E_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `device` is NULL or a live handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_device_max_message(device: *const shmkit_device) -> u32 {
    // SAFETY: the caller's promise.
    unsafe { device.as_ref() }.map_or(0, |d| d.inner.max_message())
}

/// Sends the encoded `command` to the device and waits at most `timeout_ns` (negative:
/// forever) for the device's mutex and for its reply each; the encoded reply is copied into
/// `reply` as by `shmkit_command_call`. `SHMKIT_E_FAILED`: the device failed the command (its
/// message is the last error); `SHMKIT_E_SERVER_DIED`: the server died; `SHMKIT_E_NO_SERVER`:
/// the device is closed; `SHMKIT_E_OWNER_DIED`: another client died holding the device's
/// mutex, the command did not run (retry). `*outcome` as for `shmkit_command_call`.
///
/// # Safety
/// As `shmkit_command_call`, with `device` a live handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_device_call(
    device: *const shmkit_device,
    command: *const u8,
    command_len: usize,
    reply: *mut u8,
    reply_capacity: usize,
    reply_len: *mut usize,
    timeout_ns: i64,
    outcome: *mut shmkit_outcome,
) -> shmkit_status {
    run(|| {
        check_reply_buffer(reply, reply_capacity, reply_len)?;
        // SAFETY: the caller's promise.
        let (d, command) = unsafe {
            (
                get(device, "device")?,
                bytes(command, command_len, "command")?,
            )
        };
        let answer =
            d.inner
                .call_interruptible_with(command, timeout(timeout_ns), &Flag, |bytes| {
                    deliver(bytes, reply, reply_capacity, reply_len)
                });
        settle(answer.map_err(device_failure), outcome)
    })
}

/// Frees the handle (NULL is a no-op); the device keeps running.
///
/// # Safety
/// `device` is NULL or a live handle, unused afterwards.
///
/// Thread-safety: no other thread may use this handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn shmkit_device_free(device: *mut shmkit_device) {
    // SAFETY: the caller's promise.
    unsafe { free(device) }
}
