//! Ending waits from a signal handler: one process-wide flag that every wait of the C API
//! consults while it sleeps (never on its fast path).

use shmkit::Interrupt;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// The check the C API's waits pass to the core.
pub(crate) struct Flag;

impl Interrupt for Flag {
    fn should_stop(&self) -> bool {
        STOP.load(Ordering::Relaxed)
    }
}

/// Makes every wait of this process's C API calls, current and future, return
/// `SHMKIT_E_INTERRUPTED` within 100 ms, until `shmkit_interrupt_clear`. One atomic store:
/// async-signal-safe, so a `SIGINT` handler may call it.
///
/// Thread-safety: any thread, and signal handlers.
#[no_mangle]
pub extern "C" fn shmkit_interrupt() {
    STOP.store(true, Ordering::Relaxed);
}

/// Lets waits wait again after `shmkit_interrupt`.
///
/// Thread-safety: any thread, and signal handlers.
#[no_mangle]
pub extern "C" fn shmkit_interrupt_clear() {
    STOP.store(false, Ordering::Relaxed);
}
