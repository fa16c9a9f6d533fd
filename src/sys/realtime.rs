//! Real-time mode for a loop's thread: memory locked (no page fault in the loop) and a
//! `SCHED_FIFO` priority (not preempted by ordinary work), with an error that says what the
//! user lacks when the system refuses.
//!
//! Both are privileges: locking more than `RLIMIT_MEMLOCK` needs `CAP_IPC_LOCK` (or a larger
//! limit), a real-time priority needs `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` at least that high
//! (`ulimit -r`, `/etc/security/limits.conf`). The priority applies to the calling thread
//! only (Linux schedules threads), and is reset in children (`SCHED_RESET_ON_FORK`) so a
//! loop's helpers do not inherit it by accident.

/// Why real-time mode could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// `mlockall` was refused.
    #[error(
        "locking memory failed ({source}): raise `ulimit -l` (RLIMIT_MEMLOCK) or grant CAP_IPC_LOCK"
    )]
    LockMemory {
        /// The system's error.
        source: std::io::Error,
    },
    /// The priority is outside `SCHED_FIFO`'s range.
    #[error("real-time priority {priority} is outside {min}..={max}")]
    BadPriority {
        /// What was asked.
        priority: i32,
        /// The lowest `SCHED_FIFO` priority.
        min: i32,
        /// The highest.
        max: i32,
    },
    /// `sched_setscheduler` was refused.
    #[error(
        "a SCHED_FIFO priority of {priority} was refused ({source}): raise `ulimit -r` \
         (RLIMIT_RTPRIO, currently {rtprio_limit}) or grant CAP_SYS_NICE"
    )]
    Schedule {
        /// What was asked.
        priority: i32,
        /// The soft `RLIMIT_RTPRIO` at the time.
        rtprio_limit: u64,
        /// The system's error.
        source: std::io::Error,
    },
}

/// What [`enter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Realtime {
    /// The `SCHED_FIFO` priority the calling thread now runs at.
    pub priority: i32,
}

/// Locks the process's memory (current and future pages) and gives the calling thread the
/// `SCHED_FIFO` priority `priority` (1 = lowest real-time; 50 is the customary loop
/// priority, below the kernel's own interrupt threads).
pub fn enter(priority: i32) -> Result<Realtime, RealtimeError> {
    // SAFETY: plain system calls with scalar arguments and a stack-local struct the kernel
    // reads.
    unsafe {
        let (min, max) = (
            libc::sched_get_priority_min(libc::SCHED_FIFO),
            libc::sched_get_priority_max(libc::SCHED_FIFO),
        );
        if !(min..=max).contains(&priority) {
            return Err(RealtimeError::BadPriority { priority, min, max });
        }
        if libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) != 0 {
            return Err(RealtimeError::LockMemory {
                source: super::last_os_error(),
            });
        }
        let param = libc::sched_param {
            sched_priority: priority,
        };
        if libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param) != 0 {
            let source = super::last_os_error();
            return Err(RealtimeError::Schedule {
                priority,
                rtprio_limit: rtprio_limit(),
                source,
            });
        }
    }
    Ok(Realtime { priority })
}

/// Back to ordinary scheduling for the calling thread, and memory unlocked.
pub fn leave() {
    // SAFETY: as in `enter`; both calls only change this process's scheduling and locking.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &param);
        libc::munlockall();
    }
}

/// The soft `RLIMIT_RTPRIO`.
fn rtprio_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut limit) } != 0 {
        return 0;
    }
    limit.rlim_cur
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// In a thread of its own: the policy is per thread, so the test harness is unaffected.
    #[test]
    fn entering_real_time_sets_fifo_or_says_what_is_missing() {
        std::thread::spawn(|| {
            match enter(10) {
                Ok(r) => {
                    // SAFETY: queries the calling thread's policy.
                    let policy = unsafe { libc::sched_getscheduler(0) };
                    assert_eq!(policy & !libc::SCHED_RESET_ON_FORK, libc::SCHED_FIFO);
                    assert_eq!(r.priority, 10);
                    leave();
                    // SAFETY: as above.
                    assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
                }
                Err(e @ (RealtimeError::LockMemory { .. } | RealtimeError::Schedule { .. })) => {
                    // Unprivileged: the message names the limit or capability to change.
                    let text = e.to_string();
                    assert!(text.contains("ulimit"), "{text}");
                }
                Err(e) => panic!("{e}"),
            }
        })
        .join()
        .unwrap();
        assert!(matches!(
            enter(1000),
            Err(RealtimeError::BadPriority { priority: 1000, .. })
        ));
    }
}
