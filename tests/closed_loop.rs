//! The closed-loop example, run short: no torn frame, no failure, a converging residual.
//!
//! Own `main` (no libtest harness): the example's device servers and experiments are children
//! of this program.

#[path = "../examples/closed_loop/bench/mod.rs"]
// The example's report printer is not used here.
#[allow(dead_code, unused_imports)]
mod closed_loop;

use shmkit::process::Entries;

fn main() {
    closed_loop::entries(Entries::new()).dispatch();
    let options = closed_loop::Options {
        duration_s: 2.0,
        rate_hz: 1000.0,
        segment: format!("shmkit-test-closed-loop-{}", std::process::id()),
        ..closed_loop::Options::default()
    };
    let report = closed_loop::run(&options, false).expect("the bench runs");
    let c = &report.controller;
    println!(
        "controller: {} frames, {} verified, {} torn, {} missed; residual {:.4} -> {:?}",
        c.frames, c.verified, c.torn, c.missed, c.open_loop_residual, c.residual_per_second
    );
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    // A debug build computes slower than 1 kHz; the loop still closes on the newest frames.
    assert!(c.frames > 100, "only {} frames in 2 s", c.frames);
    assert_eq!(c.torn, 0, "torn frames in the controller");
    assert_eq!(
        report.statistics.torn, 0,
        "torn frames in the statistics reader"
    );
    assert_eq!(c.verified, c.frames);
    assert!(report.statistics.verified > 0);
    let last = *c.residual_per_second.last().expect("a residual per second");
    assert!(
        last < 0.1 * c.open_loop_residual,
        "residual {last} did not converge from {}",
        c.open_loop_residual
    );
    let early = c.first_frames.first().expect("early residuals").1;
    assert!(
        c.first_frames
            .windows(2)
            .all(|w| w[1].1 <= w[0].1 * 1.05 + 1e-3),
        "{:?}",
        c.first_frames
    );
    assert!(last < early);
    println!("1 passed, 0 failed");
}
