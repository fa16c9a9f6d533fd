//! Frame rings from C: the ring handle, its one writer (claim a slot in place, fill it,
//! publish) and its readers (the next or newest frame, held in place until released).
//!
//! A held frame lives in the caller's `shmkit_frame` — no allocation per frame: the hold
//! (an `OwnedFrame`) is stored in the struct's private words, and `shmkit_frame_release`
//! takes it back out. A held frame must therefore not be copied (pass it by pointer), as a
//! `pthread_mutex_t` must not be.

use crate::args::{get, get_mut, out, put, timeout};
use crate::handle::{free, open_object};
use crate::interrupt::Flag;
use crate::segment::shmkit_segment;
use crate::status::{run, shmkit_status, CResult, Failure};
use shmkit::rings::{
    ElemType, FrameRing, FrameSpec, FrameWriter, OwnedFrame, OwnedFrameReader, ReadMode, RingError,
    WriteSlot,
};
use shmkit::{SegmentObjects, Timeout, WaitStrategy};
use std::ffi::c_char;
use std::mem::{align_of, offset_of, size_of};
use std::ptr::NonNull;

/// The element types of a frame (the values of `shmkit_frame_ring_info.elem`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmkit_elem {
    /// `uint8_t`.
    SHMKIT_U8 = 1,
    /// `uint16_t`.
    SHMKIT_U16 = 2,
    /// `uint32_t`.
    SHMKIT_U32 = 3,
    /// `int16_t`.
    SHMKIT_I16 = 4,
    /// `int32_t`.
    SHMKIT_I32 = 5,
    /// `float`.
    SHMKIT_F32 = 6,
    /// `double`.
    SHMKIT_F64 = 7,
}

/// Which frames a reader gets.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmkit_read_mode {
    /// Only the newest frame; frames published in between are skipped (a controller).
    SHMKIT_NEWEST = 0,
    /// Every frame in order; falling more than the ring behind is `SHMKIT_E_OVERRUN` (a
    /// recorder).
    SHMKIT_OLDEST_FIRST = 1,
}

/// How a reader waits for a frame (`shmkit_frame_reader_set_wait`). Every way keeps the
/// call's timeout and ends within 100 ms of `shmkit_interrupt`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmkit_wait {
    /// Sleep in the kernel until the writer's wake-up (the default): no CPU while waiting,
    /// a thread wake-up (µs) of latency.
    SHMKIT_WAIT_BLOCK = 0,
    /// Poll without sleeping: the lowest latency, one CPU busy for as long as it waits (a
    /// real-time loop on its own core).
    SHMKIT_WAIT_SPIN = 1,
    /// Poll for a few µs, then sleep: frames that come quickly cost no wake-up.
    SHMKIT_WAIT_SPIN_THEN_BLOCK = 2,
}

/// The most dimensions a frame has.
pub const SHMKIT_MAX_DIMS: usize = 4;

/// A frame ring's geometry.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmkit_frame_ring_info {
    /// Slots in the ring.
    pub slots: u32,
    /// Element type (a `shmkit_elem` value).
    pub elem: u32,
    /// Dimensions in use in `shape` (1 to 4).
    pub ndim: u32,
    /// Shape, outermost first; unused dimensions are 0.
    pub shape: [u32; SHMKIT_MAX_DIMS],
    /// Bytes of a whole frame (the size `shmkit_frame_writer_claim` gives).
    pub max_bytes: u64,
}

/// A frame ring in a segment.
///
/// Thread-safety: one handle may be used from any number of threads at once.
pub struct shmkit_frame_ring {
    inner: FrameRing,
}

/// `shmkit_frame.state` of a frame that holds a slot.
const HELD: u64 = 0x5348_4d4b_4652_4d31; // "SHMKFRM1"

/// A frame held in place: `data` points into the ring's slot and stays valid, unchanged,
/// until `shmkit_frame_release`. Zero-initialise it before its first use
/// (`shmkit_frame f = {0};`); do not copy a held frame.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct shmkit_frame {
    /// The frame's bytes.
    pub data: *const u8,
    /// How many bytes the frame uses.
    pub size: usize,
    /// Its id (1, 2, 3, ... in publish order).
    pub id: u64,
    /// Publish time (`CLOCK_MONOTONIC`, ns).
    pub ts_ns: u64,
    /// The writer's five metadata words.
    pub user: [u64; 5],
    /// Private: whether the struct holds a frame.
    pub state: u64,
    /// Private: the hold.
    pub hold: [u64; 4],
}

// The hold fits `shmkit_frame.hold`, the struct's last field, and its alignment.
const _: () =
    assert!(size_of::<OwnedFrame>() <= size_of::<shmkit_frame>() - offset_of!(shmkit_frame, hold));
const _: () = assert!(align_of::<OwnedFrame>() <= align_of::<u64>());
// The C enum is the core's element type, value for value (`ElemType::from_raw` decodes it).
const _: () = {
    use shmkit_elem::*;
    let pairs = [
        (SHMKIT_U8, ElemType::U8),
        (SHMKIT_U16, ElemType::U16),
        (SHMKIT_U32, ElemType::U32),
        (SHMKIT_I16, ElemType::I16),
        (SHMKIT_I32, ElemType::I32),
        (SHMKIT_F32, ElemType::F32),
        (SHMKIT_F64, ElemType::F64),
    ];
    let mut i = 0;
    while i < pairs.len() {
        assert!(pairs[i].0 as u32 == pairs[i].1 as u32);
        i += 1;
    }
};

impl shmkit_frame {
    fn is_held(&self) -> bool {
        self.state == HELD
    }

    /// Stores `frame`'s hold and describes it. Inlined into its callers, so the frame goes
    /// from registers into the struct: passed through memory, its pieces would be stored
    /// word by word and reloaded as one wide copy, a store-forwarding stall (~5 ns).
    #[inline(always)]
    fn hold(&mut self, frame: OwnedFrame) {
        let bytes = frame.bytes();
        self.data = bytes.as_ptr();
        self.size = bytes.len();
        self.id = frame.id();
        self.ts_ns = frame.ts_ns();
        self.user = frame.user_words();
        // SAFETY: `hold` is large and aligned enough for an `OwnedFrame` (asserted above) and
        // holds none now (`is_held` was false: callers check); `state` says it does from here.
        unsafe { self.hold.as_mut_ptr().cast::<OwnedFrame>().write(frame) };
        self.state = HELD;
    }

    /// Takes the hold back out (`None` if it holds none).
    fn take(&mut self) -> Option<OwnedFrame> {
        if !self.is_held() {
            return None;
        }
        self.state = 0;
        self.data = std::ptr::null();
        self.size = 0;
        // SAFETY: `state` said `hold` holds an `OwnedFrame` written by `hold`; it is read out
        // exactly once (`state` is cleared first).
        Some(unsafe { self.hold.as_ptr().cast::<OwnedFrame>().read() })
    }
}

/// Opens the frame ring `name` in `segment` as it exists, with its creator's geometry.
///
/// # Safety
/// `segment` is a live handle, `name` a NUL-terminated string, `out` writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_ring_open(
    segment: *const shmkit_segment,
    name: *const c_char,
    out: *mut *mut shmkit_frame_ring,
) -> shmkit_status {
    open_ring(segment, name, out, |s, n| s.open::<FrameRing>(n))
}

/// Opens the frame ring `name`, creating it if it does not exist: `slots` slots (2 to 1024)
/// of frames of `ndim` (1 to 4) dimensions `shape` (outermost first) of `elem` elements. An
/// existing ring must have this geometry (`SHMKIT_E_MISMATCH` otherwise).
///
/// # Safety
/// `segment` is a live handle, `name` a NUL-terminated string, `shape` points to `ndim`
/// values, `out` writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_ring_open_or_create(
    segment: *const shmkit_segment,
    name: *const c_char,
    slots: u32,
    elem: u32,
    shape: *const u32,
    ndim: u32,
    out: *mut *mut shmkit_frame_ring,
) -> shmkit_status {
    let mut spec = None;
    let checked = run(|| {
        let elem = ElemType::from_raw(elem)
            .ok_or_else(|| invalid(format!("elem {elem} is not a shmkit_elem value")))?;
        if ndim == 0 || ndim as usize > SHMKIT_MAX_DIMS {
            return Err(invalid(format!(
                "ndim {ndim} is not 1 to {SHMKIT_MAX_DIMS}"
            )));
        }
        if shape.is_null() {
            return Err(Failure::new(
                shmkit_status::SHMKIT_E_NULL,
                "argument `shape` is NULL",
            ));
        }
        // SAFETY: non-NULL and `ndim` (<= 4) values long by the caller's promise.
        let shape = unsafe { std::slice::from_raw_parts(shape, ndim as usize) };
        spec = Some(FrameSpec::new(slots, elem, shape));
        Ok(shmkit_status::SHMKIT_OK)
    });
    match spec {
        Some(spec) => open_ring(segment, name, out, |s, n| s.frame_ring(n, &spec)),
        None => checked,
    }
}

fn invalid(message: String) -> Failure {
    Failure::new(shmkit_status::SHMKIT_E_INVALID, message)
}

fn open_ring(
    segment: *const shmkit_segment,
    name: *const c_char,
    out: *mut *mut shmkit_frame_ring,
    open: impl FnOnce(&shmkit::Segment, &str) -> Result<FrameRing, shmkit::SegmentError>,
) -> shmkit_status {
    open_object(segment, name, out, open, |inner| shmkit_frame_ring {
        inner,
    })
}

/// # Safety
/// `ring` is NULL or a live handle.
unsafe fn ring<'a>(ring: *const shmkit_frame_ring) -> CResult<&'a FrameRing> {
    // SAFETY: the caller's promise.
    Ok(&unsafe { get(ring, "ring") }?.inner)
}

/// The ring's geometry.
///
/// # Safety
/// `ring` is a live handle; `info` is writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_ring_get_info(
    ring: *const shmkit_frame_ring,
    info: *mut shmkit_frame_ring_info,
) -> shmkit_status {
    run(|| {
        out(info, "info")?;
        // SAFETY: the caller's promise.
        let r = unsafe { self::ring(ring) }?;
        let mut shape = [0u32; SHMKIT_MAX_DIMS];
        for (dst, src) in shape.iter_mut().zip(r.shape()) {
            *dst = *src;
        }
        let value = shmkit_frame_ring_info {
            slots: r.slots(),
            elem: r.elem() as u32,
            ndim: r.shape().len() as u32,
            shape,
            max_bytes: r.max_bytes(),
        };
        // SAFETY: checked non-NULL; writable by the caller's promise.
        unsafe { put(info, value) };
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Frees the handle (NULL is a no-op). Writers and readers made from it stay usable.
///
/// # Safety
/// `ring` is NULL or a live handle, unused afterwards.
///
/// Thread-safety: no other thread may use this handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_ring_free(ring: *mut shmkit_frame_ring) {
    // SAFETY: the caller's promise.
    unsafe { free(ring) }
}

// ------------------------------------------------------------------------------- writer

/// A ring's single writer (the role is taken while the handle lives: a second one, in any
/// process, gets `SHMKIT_E_BUSY`).
///
/// Thread-safety: not thread-safe — one thread at a time (it may move between threads).
pub struct shmkit_frame_writer {
    /// The claimed slot, if any. It borrows `*writer` mutably: declared first so it is dropped
    /// first (an unpublished slot is given back), and `writer` is not touched while it lives.
    slot: Option<WriteSlot<'static>>,
    /// The writer, at a fixed address (from `Box::into_raw`; freed in `Drop`).
    writer: NonNull<FrameWriter>,
}

impl Drop for shmkit_frame_writer {
    fn drop(&mut self) {
        // The slot's borrow of the writer ends here, before the writer is freed.
        drop(self.slot.take());
        // SAFETY: `writer` came from `Box::into_raw` in `shmkit_frame_writer_new` and is
        // freed only here; no slot borrows it any more.
        drop(unsafe { Box::from_raw(self.writer.as_ptr()) });
    }
}

/// Takes the writer role of `ring`.
///
/// # Safety
/// `ring` is a live handle; `out` is writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_writer_new(
    ring: *const shmkit_frame_ring,
    out_ptr: *mut *mut shmkit_frame_writer,
) -> shmkit_status {
    run(|| {
        out(out_ptr, "out")?;
        // SAFETY: the caller's promise.
        let writer = unsafe { self::ring(ring) }?.writer()?;
        let handle = Box::new(shmkit_frame_writer {
            slot: None,
            writer: NonNull::from(Box::leak(Box::new(writer))),
        });
        // SAFETY: checked non-NULL; writable by the caller's promise.
        unsafe { put(out_ptr, Box::into_raw(handle)) };
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// # Safety
/// `writer` is NULL or a live handle no other thread uses now.
unsafe fn writer<'a>(writer: *mut shmkit_frame_writer) -> CResult<&'a mut shmkit_frame_writer> {
    // SAFETY: the caller's promise.
    unsafe { get_mut(writer, "writer") }
}

fn state_error(message: &str) -> Failure {
    Failure::new(shmkit_status::SHMKIT_E_STATE, message)
}

/// Claims a slot to fill in place, waiting at most `timeout_ns` (negative: forever; 0: do
/// not wait) for readers to let one go. On success `*data` is the slot's buffer and `*size`
/// its length (a whole frame, `max_bytes`); write the frame there, then
/// `shmkit_frame_writer_publish` (or `_abandon`). `SHMKIT_E_STATE` if a slot is already
/// claimed; `SHMKIT_E_FULL` if every slot stayed held by readers.
///
/// # Safety
/// `writer` is a live handle; `data` and `size` are writable.
///
/// Thread-safety: one thread at a time per writer.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_writer_claim(
    writer: *mut shmkit_frame_writer,
    timeout_ns: i64,
    data: *mut *mut u8,
    size: *mut usize,
) -> shmkit_status {
    run(|| {
        out(data, "data")?;
        out(size, "size")?;
        // SAFETY: the caller's promise.
        let w = unsafe { self::writer(writer) }?;
        if w.slot.is_some() {
            return Err(state_error(
                "a slot is already claimed: publish or abandon it first",
            ));
        }
        // SAFETY: the writer lives at a fixed address until the handle is dropped, and the
        // slot borrowing it is stored in the handle, dropped before it (see `Drop`); nothing
        // else uses the writer while the slot lives (`slot` is `None` here).
        let owner: &'static mut FrameWriter = unsafe { &mut *w.writer.as_ptr() };
        // A zero timeout never reads the clock (a camera's writer claims this way).
        let mut slot = if timeout_ns == 0 {
            owner.try_claim()?
        } else {
            owner.claim_interruptible(timeout(timeout_ns), &Flag)?
        };
        let buffer = slot.bytes_mut();
        // SAFETY: both checked non-NULL; writable by the caller's promise.
        unsafe {
            put(data, buffer.as_mut_ptr());
            put(size, buffer.len());
        }
        w.slot = Some(slot);
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// # Safety
/// `writer` is NULL or a live handle no other thread uses now.
unsafe fn claimed<'a>(writer: *mut shmkit_frame_writer) -> CResult<&'a mut WriteSlot<'static>> {
    // SAFETY: the caller's promise.
    let w = unsafe { self::writer(writer) }?;
    w.slot
        .as_mut()
        .ok_or_else(|| state_error("no slot is claimed: claim one first"))
}

/// Takes the claimed slot out of the handle.
///
/// # Safety
/// `writer` is NULL or a live handle no other thread uses now.
unsafe fn take_claimed(writer: *mut shmkit_frame_writer) -> CResult<WriteSlot<'static>> {
    // SAFETY: the caller's promise.
    let w = unsafe { self::writer(writer) }?;
    w.slot
        .take()
        .ok_or_else(|| state_error("no slot is claimed: claim one first"))
}

/// Sets how many bytes of the claimed slot the frame uses (default: all of it; capped at
/// the frame size).
///
/// # Safety
/// `writer` is a live handle.
///
/// Thread-safety: one thread at a time per writer.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_writer_set_size(
    writer: *mut shmkit_frame_writer,
    size: usize,
) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        unsafe { claimed(writer) }?.set_len(size as u64);
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Sets metadata word `index` (0 to 4) of the claimed frame.
///
/// # Safety
/// `writer` is a live handle.
///
/// Thread-safety: one thread at a time per writer.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_writer_set_user(
    writer: *mut shmkit_frame_writer,
    index: u32,
    value: u64,
) -> shmkit_status {
    run(|| {
        if index >= 5 {
            return Err(invalid(format!("user word {index} is not 0 to 4")));
        }
        // SAFETY: the caller's promise.
        unsafe { claimed(writer) }?.set_user(index as usize, value);
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Publishes the claimed frame: readers see it from now on. `*id` (if not NULL) is its id.
///
/// # Safety
/// `writer` is a live handle; `id` is NULL or writable.
///
/// Thread-safety: one thread at a time per writer.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_writer_publish(
    writer: *mut shmkit_frame_writer,
    id: *mut u64,
) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        let published = unsafe { take_claimed(writer) }?.publish();
        if !id.is_null() {
            // SAFETY: non-NULL and writable by the caller's promise.
            unsafe { put(id, published) };
        }
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Gives the claimed slot back unpublished (readers never see it).
///
/// # Safety
/// `writer` is a live handle.
///
/// Thread-safety: one thread at a time per writer.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_writer_abandon(
    writer: *mut shmkit_frame_writer,
) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        // Dropping an unpublished slot gives it back.
        drop(unsafe { take_claimed(writer) }?);
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Frees the writer (NULL is a no-op): a claimed slot is given back unpublished and the
/// writer role is released.
///
/// # Safety
/// `writer` is NULL or a live handle, unused afterwards.
///
/// Thread-safety: no other thread may use this handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_writer_free(writer: *mut shmkit_frame_writer) {
    // SAFETY: the caller's promise.
    unsafe { free(writer) }
}

// ------------------------------------------------------------------------------- reader

/// A registered reader of a ring (it counts against the ring's reader table until freed).
///
/// Thread-safety: `next` and `latest` one thread at a time per reader; its frames may be
/// released from any thread.
pub struct shmkit_frame_reader {
    inner: OwnedFrameReader,
}

/// Registers a reader of `ring` in `mode`.
///
/// # Safety
/// `ring` is a live handle; `out` is writable.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_reader_new(
    ring: *const shmkit_frame_ring,
    mode: u32,
    out_ptr: *mut *mut shmkit_frame_reader,
) -> shmkit_status {
    run(|| {
        out(out_ptr, "out")?;
        let mode = match mode {
            0 => ReadMode::NewestOnly,
            1 => ReadMode::OldestFirst,
            other => return Err(invalid(format!("mode {other} is not a shmkit_read_mode"))),
        };
        // SAFETY: the caller's promise.
        let reader = unsafe { self::ring(ring) }?.reader(mode)?.into_owned();
        let handle = Box::new(shmkit_frame_reader { inner: reader });
        // SAFETY: checked non-NULL; writable by the caller's promise.
        unsafe { put(out_ptr, Box::into_raw(handle)) };
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Sets how `reader` waits in `shmkit_frame_reader_next` from its next call on: a
/// `shmkit_wait` value (`SHMKIT_E_INVALID` otherwise; nothing changes).
///
/// # Safety
/// `reader` is a live handle.
///
/// Thread-safety: one thread at a time per reader, as `shmkit_frame_reader_next`.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_reader_set_wait(
    reader: *mut shmkit_frame_reader,
    wait: u32,
) -> shmkit_status {
    run(|| {
        let strategy = match wait {
            0 => WaitStrategy::Block,
            1 => WaitStrategy::Spin,
            2 => WaitStrategy::SpinThenBlock,
            other => return Err(invalid(format!("wait {other} is not a shmkit_wait"))),
        };
        // SAFETY: the caller's promise.
        unsafe { get_mut(reader, "reader") }?
            .inner
            .set_strategy(strategy);
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// The reader and the caller's empty frame struct.
///
/// # Safety
/// Both NULL or live and unshared for the call.
unsafe fn reader_and_frame<'a>(
    reader: *mut shmkit_frame_reader,
    frame: *mut shmkit_frame,
) -> CResult<(&'a mut OwnedFrameReader, &'a mut shmkit_frame)> {
    // SAFETY: the caller's promise.
    let (reader, frame) = unsafe { (get_mut(reader, "reader")?, get_mut(frame, "frame")?) };
    if frame.is_held() {
        return Err(state_error(
            "this frame struct still holds a frame: release it first",
        ));
    }
    Ok((&mut reader.inner, frame))
}

/// Waits at most `timeout_ns` (negative: forever; 0: poll) for the next frame — the newest
/// one newer than the last this reader got (`SHMKIT_NEWEST`), or the next in order
/// (`SHMKIT_OLDEST_FIRST`) — and holds it in `*frame` until `shmkit_frame_release`. The
/// writer never changes a held frame (it writes other slots). `*frame` must not hold a frame
/// (`SHMKIT_E_STATE`).
///
/// # Safety
/// `reader` is a live handle; `frame` points to a zero-initialised or released
/// `shmkit_frame`.
///
/// Thread-safety: one thread at a time per reader.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_reader_next(
    reader: *mut shmkit_frame_reader,
    timeout_ns: i64,
    frame: *mut shmkit_frame,
) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        let (reader, frame) = unsafe { reader_and_frame(reader, frame) }?;
        // A frame that is there already is taken without the interruptible wait's set-up
        // (a third of the call's cost): only a call that will sleep needs the interrupt.
        let got = match reader.next(Timeout::ZERO) {
            Err(RingError::Timeout { .. }) if timeout_ns != 0 => {
                reader.next_interruptible(timeout(timeout_ns), &Flag)?
            }
            other => other?,
        };
        frame.hold(got);
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Holds the newest frame in `*frame` without waiting; `SHMKIT_E_NOT_FOUND` before the
/// first publish.
///
/// # Safety
/// As `shmkit_frame_reader_next`.
///
/// Thread-safety: one thread at a time per reader.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_reader_latest(
    reader: *mut shmkit_frame_reader,
    frame: *mut shmkit_frame,
) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        let (reader, frame) = unsafe { reader_and_frame(reader, frame) }?;
        match reader.latest()? {
            Some(got) => {
                frame.hold(got);
                Ok(shmkit_status::SHMKIT_OK)
            }
            None => Err(Failure::new(
                shmkit_status::SHMKIT_E_NOT_FOUND,
                "no frame has been published yet",
            )),
        }
    })
}

/// Releases a held frame: the writer may reuse its slot. Releasing a frame struct that holds
/// none is a no-op (`SHMKIT_OK`); NULL is `SHMKIT_E_NULL`. May outlive its reader's handle.
///
/// # Safety
/// `frame` is NULL or a `shmkit_frame` filled by a reader (or zero-initialised).
///
/// Thread-safety: any thread, one call per frame.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_release(frame: *mut shmkit_frame) -> shmkit_status {
    run(|| {
        // SAFETY: the caller's promise.
        let frame = unsafe { get_mut(frame, "frame") }?;
        drop(frame.take());
        Ok(shmkit_status::SHMKIT_OK)
    })
}

/// Frees the reader (NULL is a no-op). Frames it holds stay valid until released.
///
/// # Safety
/// `reader` is NULL or a live handle, unused afterwards.
///
/// Thread-safety: no other thread may use this handle during or after the call.
#[no_mangle]
pub unsafe extern "C" fn shmkit_frame_reader_free(reader: *mut shmkit_frame_reader) {
    // SAFETY: the caller's promise.
    unsafe { free(reader) }
}
