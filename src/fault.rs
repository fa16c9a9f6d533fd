//! Deterministic crash injection: the points of the command server's take → execute → answer
//! sequence, and the middle of a trace event, where a test can make this process die by
//! `SIGKILL`, to check what a successor, the waiting client or a trace reader make of each. Random kills almost never land between two adjacent
//! stores; these do, every time.
//!
//! Arming is only possible with the `test-support` feature; without it every crash point is
//! an empty inline function.

/// A place in the command server's sequence where an armed process kills itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CrashPoint {
    /// Right after taking a request (`TAKEN`), before the handler sees it.
    ServerTaken = 1,
    /// The handler returned and the answer is about to start (still `TAKEN`).
    ServerBeforeAnswer = 2,
    /// Marked answering in `reply_len`, no reply byte written yet.
    ServerAnswering = 3,
    /// The reply and its length are written, not yet published.
    ServerReplyWritten = 4,
    /// The answer is published; the client's wake-up is not sent yet.
    ServerPublished = 5,
    /// A trace event's slot is claimed (its `seq` odd), no field written yet.
    TraceEventClaimed = 6,
}

#[cfg_attr(not(feature = "test-support"), allow(dead_code))]
impl CrashPoint {
    /// Every point of the command server's sequence, in order.
    pub const SERVER: [CrashPoint; 5] = [
        CrashPoint::ServerTaken,
        CrashPoint::ServerBeforeAnswer,
        CrashPoint::ServerAnswering,
        CrashPoint::ServerReplyWritten,
        CrashPoint::ServerPublished,
    ];
}

#[cfg(feature = "test-support")]
static ARMED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Makes this process `SIGKILL` itself the next time it reaches `point` (`None` disarms).
#[cfg(feature = "test-support")]
pub fn arm(point: Option<CrashPoint>) {
    ARMED.store(
        point.map_or(0, |p| p as u32),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Dies here if a test armed this point.
#[inline(always)]
pub(crate) fn crash_point(point: CrashPoint) {
    #[cfg(feature = "test-support")]
    if ARMED.load(std::sync::atomic::Ordering::Relaxed) == point as u32 {
        crate::sys::process::kill_self();
    }
    #[cfg(not(feature = "test-support"))]
    let _ = point;
}
