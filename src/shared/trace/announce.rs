//! Which thread and process recorded an event: each thread records its own and its process's
//! names into a buffer at its first event there and once a second after, so every window of a
//! trace (the ring keeps only the newest events) names the threads in it.

use crate::sys::identity::{current_thread, process_name, task_name};
use std::cell::RefCell;
use std::sync::Mutex;

/// How often a thread names itself again in a buffer it keeps recording into.
const EVERY_NS: u64 = 1_000_000_000;
/// Buffers a thread remembers announcing to (beyond these it announces again: harmless).
const REMEMBERED: usize = 8;

#[derive(Default)]
struct ThreadNames {
    /// The name given by `name_thread`, if any.
    given: Option<String>,
    /// (buffer address, when this thread last named itself there).
    announced: Vec<(usize, u64)>,
}

thread_local! {
    static THREAD: RefCell<ThreadNames> = RefCell::new(ThreadNames::default());
}

/// The name given by `name_process`, if any.
static PROCESS: Mutex<Option<String>> = Mutex::new(None);

/// Whether this thread should name itself in buffer `key` before recording at `now_ns`
/// (and, if so, notes that it does).
#[inline]
pub(super) fn due(key: usize, now_ns: u64) -> bool {
    THREAD
        .try_with(|t| {
            let mut t = t.borrow_mut();
            if let Some(seen) = t.announced.iter_mut().find(|(k, _)| *k == key) {
                if now_ns.saturating_sub(seen.1) < EVERY_NS {
                    return false;
                }
                seen.1 = now_ns;
                return true;
            }
            if t.announced.len() == REMEMBERED {
                t.announced.remove(0);
            }
            t.announced.push((key, now_ns));
            true
        })
        // During thread-local teardown: record without naming.
        .unwrap_or(false)
}

/// Gives the calling thread `name` in every buffer from now on.
pub(super) fn set_thread_name(name: &str) {
    let _ = THREAD.try_with(|t| t.borrow_mut().given = Some(name.to_owned()));
}

/// Gives the process `name` in every buffer from now on.
pub(super) fn set_process_name(name: &str) {
    *PROCESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.to_owned());
}

/// The calling thread's and process's names: as given, else the thread's Rust name (but
/// not "main"), else what the kernel calls them.
pub(super) fn names() -> (String, String) {
    let me = current_thread();
    let given = THREAD.try_with(|t| t.borrow().given.clone()).ok().flatten();
    let thread = given
        .or_else(|| {
            std::thread::current()
                .name()
                .filter(|n| *n != "main")
                .map(str::to_owned)
        })
        .or_else(|| task_name(me.pid, me.tid))
        .unwrap_or_else(|| format!("thread {}", me.tid));
    let process = PROCESS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .or_else(|| process_name(me.pid))
        .unwrap_or_else(|| format!("process {}", me.pid));
    (truncate(thread), truncate(process))
}

/// `name` cut to a name table entry's 56 bytes, on a character boundary.
fn truncate(mut name: String) -> String {
    let mut end = name.len().min(shm_layout::TRACE_NAME_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}
