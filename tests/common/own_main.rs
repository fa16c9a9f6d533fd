//! The runner of test binaries that have their own `main` (they dispatch shmkit children at
//! its top, which libtest's harness would not let them do): runs each named test, or those
//! whose name contains a command-line filter, catching panics, and prints libtest-like lines
//! ending with "N passed, N failed, N skipped". Exits 1 if any failed.
//!
//! A test that cannot run here (it needs root, say) calls [`skip`]: it is reported as
//! `SKIPPED` with its reason and counted apart, never as passed. Where `SHMKIT_REQUIRE_ALL=1`
//! (CI sets it: CI runs as root) a skip is a failure, so a green CI run has run everything.

#![allow(dead_code)] // each binary uses the part it needs

use std::sync::atomic::{AtomicU32, Ordering};

/// The panic payload of [`skip`].
struct Skipped(String);

/// Parts of passing tests that could not run (see [`skip_part`]).
static PARTS_SKIPPED: AtomicU32 = AtomicU32::new(0);

/// Whether a skip counts as a failure (`SHMKIT_REQUIRE_ALL=1`).
pub fn skips_forbidden() -> bool {
    std::env::var("SHMKIT_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Ends the running test as skipped because `reason` (what it needs that this machine lacks).
pub fn skip(reason: &str) -> ! {
    std::panic::resume_unwind(Box::new(Skipped(reason.to_owned())))
}

/// Reports that one part of the running test (`what`) cannot run here because `reason`; the
/// rest of the test goes on. Counted in the summary; a failure under `SHMKIT_REQUIRE_ALL=1`.
pub fn skip_part(what: &str, reason: &str) {
    println!("SKIPPED part: {what} ({reason})");
    PARTS_SKIPPED.fetch_add(1, Ordering::Relaxed);
}

/// Runs `tests` as described above.
pub fn run_tests(tests: &[(&str, fn())]) {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for &(name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(payload) => match payload.downcast::<Skipped>() {
                Ok(why) => {
                    println!("test {name} ... SKIPPED ({})", why.0);
                    skipped += 1;
                }
                Err(_) => {
                    println!("test {name} ... FAILED");
                    failed += 1;
                }
            },
        }
    }
    let parts = PARTS_SKIPPED.load(Ordering::Relaxed);
    println!("{passed} passed, {failed} failed, {skipped} skipped, {parts} parts skipped");
    if skips_forbidden() && skipped + parts > 0 {
        println!("SHMKIT_REQUIRE_ALL=1: a skip is a failure here");
        std::process::exit(1);
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
