//! This crate's only OS calls: putting a recorder thread on a CPU of the user's choice and at
//! idle priority, so that it takes only time the loop leaves; a replay's sleeps made precise.

/// Pins the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::other(format!(
            "CPU {cpu} is beyond the CPU set"
        )));
    }
    // SAFETY: `set` is a zero-initialised cpu_set_t on our stack, `cpu` is inside it (checked
    // above); pid 0 is the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Puts the calling thread in `SCHED_IDLE`: it runs only when no other thread wants the CPU.
pub fn idle_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a live local; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// This host's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The calling thread's timer slack (how late the kernel may end its sleeps, 50 µs by
/// default) set to 1 µs while this lives, and restored when it drops: a replay then keeps its
/// frames' pace by sleeping, without spinning on a CPU the loop may share.
pub struct PreciseSleeps {
    previous: libc::c_ulong,
}

impl PreciseSleeps {
    /// Sets the calling thread's timer slack to 1 µs (unchanged where the kernel refuses).
    pub fn new() -> PreciseSleeps {
        // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the slack (ns) or -1.
        let previous = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
        let previous = libc::c_ulong::try_from(previous).unwrap_or(50_000);
        // SAFETY: PR_SET_TIMERSLACK takes the slack by value and affects only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0) };
        PreciseSleeps { previous }
    }
}

impl Drop for PreciseSleeps {
    fn drop(&mut self) {
        // SAFETY: as in `new`; the value is the slack this thread had before.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, self.previous, 0, 0, 0) };
    }
}
