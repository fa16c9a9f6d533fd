//! A safety trip stopping everything cleanly.
//!
//! ```text
//! cargo run --release --example safety_trip
//! ```
//!
//! A testbed with a simulated mirror and a safety test on its stroke (no actuator beyond 0.8)
//! runs two experiments: a "drift" experiment that walks one actuator towards the limit, and a
//! run-forever "monitor" that only a safety failure may stop. When the drift crosses 0.8 the
//! safety test fails: SAFETY and STOP are set, the mirror is closed to its safe (flat) state,
//! both experiments stop on their own (nothing is signalled), and the report says so.

use serde::{Deserialize, Serialize};
use shmkit::process::Entries;
use shmkit_devices::DeviceEntries;
use shmkit_sim::stroke_test;
use shmkit_sim::{DmCommand, SimDm, SimDmConfig};
use shmkit_testbed::ExperimentEntries;
use shmkit_testbed::{Experiment, ExperimentContext, ExperimentFailure, TestbedBuilder};
use std::time::{Duration, Instant};

/// Walks actuator 117 up by 0.01 every 10 ms.
#[derive(Debug, Serialize, Deserialize)]
struct Drift;

impl Experiment for Drift {
    const NAME: &'static str = "drift";

    fn experiment(&mut self, ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        let dm = ctx.devices().get::<SimDm>("Dm", &SimDmConfig::default())?;
        let mut values = vec![0.0f32; 144];
        while !ctx.should_stop() {
            values[117] += 0.01;
            // The mirror may already be closed by the trip: stop quietly then.
            if dm
                .call(&DmCommand::Set {
                    values: values.clone(),
                    tag: 0,
                })
                .is_err()
                && ctx.should_stop()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("[drift] stopped cooperatively at {:.2}", values[117]);
        Ok(())
    }
}

/// Runs until a safety failure.
#[derive(Debug, Serialize, Deserialize)]
struct Monitor;

impl Experiment for Monitor {
    const NAME: &'static str = "monitor";

    fn run_forever(&self) -> bool {
        true
    }

    fn experiment(&mut self, ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        while !ctx.should_stop() {
            std::thread::sleep(Duration::from_millis(5));
        }
        println!("[monitor] saw the safety trip: {}", ctx.safety_tripped());
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    Entries::new()
        .device::<SimDm>()
        .experiment::<Drift>()
        .experiment::<Monitor>()
        .dispatch();
    let name = format!("shmkit-safety-trip-{}", std::process::id());
    let tb = TestbedBuilder::new(&name)
        .devices(&["Dm"])
        .safety_check_interval(Duration::from_millis(20))
        .safety_test(stroke_test("Dm", 1.0, 0.8))
        .start()?;
    tb.devices().get::<SimDm>("Dm", &SimDmConfig::default())?;
    tb.start_experiment(&Drift)?;
    tb.start_experiment(&Monitor)?;
    let started = Instant::now();
    while tb.trip().is_none() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let tripped = Instant::now();
    let all_stopped = tb.wait_experiments(Duration::from_secs(3));
    let stopped_in = tripped.elapsed();
    let dm_state = tb.devices().status("Dm")?.state;
    let trip = tb.trip();
    let report = tb.close();
    println!(
        "safety trip after {:.2} s: {:?}",
        (tripped - started).as_secs_f64(),
        trip
    );
    println!(
        "experiments stopped {} within {stopped_in:?}; mirror {dm_state:?}",
        if all_stopped { "all" } else { "NOT all" }
    );
    for o in &report.experiments {
        println!(
            "  {} (pid {}): {}{}",
            o.name,
            o.pid,
            match &o.result {
                Ok(()) => "ended cleanly".to_string(),
                Err(e) => format!("failed: {e}"),
            },
            if o.killed { " (killed)" } else { "" }
        );
    }
    let clean = trip.is_some()
        && all_stopped
        && report
            .experiments
            .iter()
            .all(|o| o.result.is_ok() && !o.killed)
        && report.device_failures.is_empty();
    if !clean {
        std::process::exit(1);
    }
    Ok(())
}
