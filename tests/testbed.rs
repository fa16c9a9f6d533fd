//! The testbed with real processes: safety trips stop experiments within 1 s, the failure
//! tolerance is honoured, stop-all-on-exception, run-forever experiments, the initial check,
//! and a SIGKILLed testbed whose servers and experiments exit and whose name starts again.
//!
//! Own `main` (no libtest harness): experiments and device servers are children of this
//! program.

#[path = "common/own_main.rs"]
mod own_main;

use serde::{Deserialize, Serialize};
use shmkit::process::{ChildContext, ChildError, Entries};
use shmkit::{Segment, SharedDict};
use shmkit_sim::{DmCommand, SimDm, SimDmConfig};
use shmkit_testbed::ExperimentEntries;
use shmkit_testbed::{
    safety_fn, Experiment, ExperimentContext, ExperimentFailure, Testbed, TestbedBuilder,
    TestbedError,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

shmkit_devices::devices! {
    /// A bench with one mirror.
    pub struct Bench {
        /// The mirror.
        Dm: SimDm = SimDmConfig::default(),
    }
}

/// Loops until told to stop.
#[derive(Debug, Serialize, Deserialize)]
struct Looper {
    forever: bool,
}

impl Experiment for Looper {
    const NAME: &'static str = "looper";

    fn run_forever(&self) -> bool {
        self.forever
    }

    fn experiment(&mut self, ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        while !ctx.should_stop() {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

/// Fails at once.
#[derive(Debug, Serialize, Deserialize)]
struct Failing;

impl Experiment for Failing {
    const NAME: &'static str = "failing";

    fn experiment(&mut self, _: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        Err("calibration diverged".into())
    }
}

/// Never looks at should_stop.
#[derive(Debug, Serialize, Deserialize)]
struct Deaf;

impl Experiment for Deaf {
    const NAME: &'static str = "deaf";

    fn experiment(&mut self, _: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    }
}

fn name(test: &str) -> String {
    format!("shmkit-test-tb-{test}-{}", std::process::id())
}

/// A safety test that fails while `flag` is non-zero, counting its runs.
fn flagged(flag: Arc<AtomicU32>, runs: Arc<AtomicU32>) -> impl shmkit_testbed::SafetyTest {
    safety_fn("dm_limits", move |_| {
        runs.fetch_add(1, Ordering::SeqCst);
        if flag.load(Ordering::SeqCst) != 0 {
            Err("DM command exceeds 0.8 of stroke on actuator 117".into())
        } else {
            Ok(())
        }
    })
}

fn a_failing_safety_check_stops_every_experiment_within_1s() {
    let (flag, runs) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let tb = TestbedBuilder::new(&name("trip"))
        .devices(Bench::NAMES)
        .safety_test(flagged(flag.clone(), runs.clone()))
        .safety_check_interval(Duration::from_millis(50))
        .start()
        .unwrap();
    Bench::Dm
        .client_in(tb.devices())
        .unwrap()
        .call(&DmCommand::Zero)
        .unwrap();
    for _ in 0..2 {
        tb.start_experiment(&Looper { forever: false }).unwrap();
    }
    tb.start_experiment(&Deaf).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(tb.running_experiments(), 3);
    flag.store(1, Ordering::SeqCst);
    let t = Instant::now();
    while tb.trip().is_none() {
        assert!(t.elapsed() < Duration::from_secs(1), "no trip");
        std::thread::sleep(Duration::from_millis(1));
    }
    let tripped = Instant::now();
    assert!(tb.wait_experiments(Duration::from_secs(2)));
    while tb.devices().status("Dm").unwrap().state != shmkit_devices::DeviceState::Closed {
        assert!(
            tripped.elapsed() < Duration::from_secs(1),
            "the mirror was not closed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let stopped = tripped.elapsed();
    // The deaf one is killed at the 1 s stop timeout; the others stop at once.
    assert!(
        stopped < Duration::from_millis(1500),
        "stopped after {stopped:?}"
    );
    let trip = tb.trip().unwrap();
    assert_eq!(trip.test, "dm_limits");
    assert!(trip.message.contains("actuator 117"));
    let report = tb.close();
    assert_eq!(report.experiments.len(), 3);
    let killed: Vec<_> = report.experiments.iter().filter(|o| o.killed).collect();
    assert_eq!(killed.len(), 1, "{:?}", report.experiments);
    assert_eq!(killed[0].name, "deaf");
    assert!(report
        .experiments
        .iter()
        .filter(|o| !o.killed)
        .all(|o| o.result.is_ok()));
}

fn max_consecutive_failures_is_honoured() {
    let (flag, runs) = (Arc::new(AtomicU32::new(1)), Arc::new(AtomicU32::new(0)));
    let tb = TestbedBuilder::new(&name("tolerance"))
        .safety_test(flagged(flag.clone(), runs.clone()))
        .safety_check_interval(Duration::from_millis(30))
        .max_consecutive_failures(2)
        .start_after_initial_pass(&flag)
        .unwrap();
    tb.start_experiment(&Looper { forever: false }).unwrap();
    let t = Instant::now();
    while tb.trip().is_none() {
        assert!(t.elapsed() < Duration::from_secs(2), "no trip");
        std::thread::sleep(Duration::from_millis(1));
    }
    let trip = tb.trip().unwrap();
    assert_eq!(
        trip.consecutive, 3,
        "tripped on failure {}",
        trip.consecutive
    );
    drop(tb);

    // Two failures, a pass, two failures: never more than 2 in a row, never a trip.
    let (flag, runs) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let pattern = Arc::new(AtomicU32::new(0));
    let p2 = pattern.clone();
    let tb = TestbedBuilder::new(&name("tolerance2"))
        .safety_test(safety_fn("flaky", move |_| {
            let n = p2.fetch_add(1, Ordering::SeqCst);
            // Run 0 is the initial check.
            if n > 0 && n % 3 != 0 {
                Err(format!("flaky failure {n}"))
            } else {
                Ok(())
            }
        }))
        .safety_check_interval(Duration::from_millis(20))
        .max_consecutive_failures(2)
        .start()
        .unwrap();
    let _ = (flag, runs);
    while pattern.load(Ordering::SeqCst) < 12 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(tb.trip().is_none(), "{:?}", tb.trip());
    drop(tb);
}

fn stop_all_on_exception_stops_the_others() {
    let tb = TestbedBuilder::new(&name("stopall")).start().unwrap();
    tb.start_experiment(&Looper { forever: true }).unwrap();
    tb.start_experiment(&Failing).unwrap();
    assert!(
        tb.wait_experiments(Duration::from_secs(2)),
        "the looper kept running"
    );
    let report = tb.close();
    let failing = report
        .experiments
        .iter()
        .find(|o| o.name == "failing")
        .unwrap();
    match &failing.result {
        Err(ChildError::Failed { report, .. }) => {
            assert!(
                report.message.contains("experiment failed"),
                "{}",
                report.message
            );
            assert!(
                report
                    .chain
                    .iter()
                    .any(|c| c.contains("calibration diverged"))
                    || report.message.contains("calibration diverged"),
                "{report:?}"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(report
        .experiments
        .iter()
        .find(|o| o.name == "looper")
        .unwrap()
        .result
        .is_ok());

    // Without stop-all, the other experiment keeps running.
    let tb = TestbedBuilder::new(&name("nostopall"))
        .stop_all_on_exception(false)
        .start()
        .unwrap();
    tb.start_experiment(&Looper { forever: false }).unwrap();
    tb.start_experiment(&Failing).unwrap();
    // The reap that removes the failed experiment is the one that would set STOP.
    let t = Instant::now();
    while tb.running_experiments() != 1 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the failure never ended"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!tb.stopping(), "STOP without stop-all");
    drop(tb);
}

fn run_forever_ignores_finish_but_stops_on_safety() {
    let (flag, runs) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let tb = TestbedBuilder::new(&name("forever"))
        .safety_test(flagged(flag.clone(), runs))
        .safety_check_interval(Duration::from_millis(30))
        .start()
        .unwrap();
    tb.start_experiment(&Looper { forever: true }).unwrap();
    tb.start_experiment(&Looper { forever: false }).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    tb.request_finish();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        tb.running_experiments(),
        1,
        "FINISH should end only the ordinary one"
    );
    flag.store(1, Ordering::SeqCst);
    assert!(
        tb.wait_experiments(Duration::from_secs(2)),
        "SAFETY did not stop it"
    );
    assert!(tb.trip().is_some());
    drop(tb);
}

fn the_initial_safety_check_must_pass() {
    let (flag, runs) = (Arc::new(AtomicU32::new(1)), Arc::new(AtomicU32::new(0)));
    let n = name("initial");
    let err = TestbedBuilder::new(&n)
        .safety_test(flagged(flag, runs.clone()))
        .start()
        .unwrap_err();
    assert!(
        matches!(err, TestbedError::InitialSafetyCheck { ref test, .. } if test == "dm_limits"),
        "{err}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(
        Segment::open(&n).is_err(),
        "a failed start leaves no segment"
    );
}

/// Child: runs a testbed with a mirror and a run-forever experiment, records their pids in
/// the coordination segment, then waits to be killed.
/// Child side of the two testbed-process tests: starts a testbed with the mirror and a
/// run-forever experiment, records the server's and the experiment's pids in the
/// coordination segment, and sets "up".
fn start_recorded_testbed(ctx: &ChildContext, tb_name: &str) -> (Testbed, SharedDict) {
    let tb = TestbedBuilder::new(tb_name)
        .devices(Bench::NAMES)
        .start()
        .unwrap();
    let dm = Bench::Dm.client_in(tb.devices()).unwrap();
    dm.call(&DmCommand::Zero).unwrap();
    let experiment = tb.start_experiment(&Looper { forever: true }).unwrap();
    let pids = ctx.segment().dict("pids", 4).unwrap();
    pids.insert("server", &dm.status().unwrap().pid).unwrap();
    pids.insert("experiment", &experiment).unwrap();
    ctx.segment().event("up").unwrap().set();
    (tb, pids)
}

fn doomed_testbed(ctx: &ChildContext, tb_name: String) -> Result<(), std::convert::Infallible> {
    let _testbed = start_recorded_testbed(ctx, &tb_name);
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

/// Child: runs a testbed until Ctrl+C (SIGINT) makes it stop, then tears it down and records
/// what the teardown found.
fn interrupted_testbed(
    ctx: &ChildContext,
    tb_name: String,
) -> Result<(), std::convert::Infallible> {
    let (tb, pids) = start_recorded_testbed(ctx, &tb_name);
    while !tb.stopping() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let report = tb.close();
    let clean = report.experiments.len() == 1
        && report
            .experiments
            .iter()
            .all(|o| o.result.is_ok() && !o.killed)
        && report.device_failures.is_empty();
    pids.insert("clean", &clean).unwrap();
    Ok(())
}

/// Parent side: a coordination segment, the child `entry` running a testbed named after
/// `test`, and the pids it recorded once up. Returns (coordination segment and its name,
/// testbed name, child, pids).
fn launch_testbed_process(
    entry: &str,
    test: &str,
) -> (Segment, String, String, shmkit::process::Child, SharedDict) {
    let coord_name = name(&format!("{test}-coord"));
    let _ = Segment::unlink(&coord_name);
    let coord = Segment::create(&coord_name, &shmkit::CreateOptions::new(4 << 20)).unwrap();
    let tb_name = name(test);
    let child = shmkit::process::spawn(&coord, entry, &tb_name).unwrap();
    assert!(coord.event("up").unwrap().wait(Duration::from_secs(10)));
    let pids = coord.dict("pids", 4).unwrap();
    (coord, coord_name, tb_name, child, pids)
}

fn ctrl_c_tears_the_testbed_down_cooperatively() {
    let (coord, coord_name, tb_name, mut child, pids) =
        launch_testbed_process("interrupted_testbed", "ctrlc");
    let server: u32 = pids.get("server").unwrap().unwrap();
    // SAFETY: interrupting the testbed process we started (as a terminal's Ctrl+C would).
    unsafe { libc::kill(child.pid() as libc::pid_t, libc::SIGINT) };
    child.join(Duration::from_secs(3)).unwrap();
    assert_eq!(
        pids.get::<bool>("clean").unwrap(),
        Some(true),
        "experiments or devices did not stop cleanly"
    );
    assert!(
        !pid_alive(server),
        "the mirror's server outlived the teardown"
    );
    assert!(
        Segment::open(&tb_name).is_err(),
        "the testbed's segment was not unlinked"
    );
    drop(coord);
    let _ = Segment::unlink(&coord_name);
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn a_killed_testbed_takes_its_processes_down_and_starts_again() {
    let (coord, coord_name, tb_name, mut child, pids) =
        launch_testbed_process("doomed_testbed", "doomed");
    let server: u32 = pids.get("server").unwrap().unwrap();
    let experiment: u32 = pids.get("experiment").unwrap().unwrap();
    child.kill().unwrap();
    let t = Instant::now();
    while pid_alive(server) || pid_alive(experiment) {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "after {:?}: server alive {}, experiment alive {}",
            t.elapsed(),
            pid_alive(server),
            pid_alive(experiment)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.join(Duration::from_secs(2));
    // The stale segment is replaced.
    let tb = TestbedBuilder::new(&tb_name)
        .devices(Bench::NAMES)
        .start()
        .unwrap();
    Bench::Dm
        .client_in(tb.devices())
        .unwrap()
        .call(&DmCommand::Zero)
        .unwrap();
    let report = tb.close();
    assert!(
        report.device_failures.is_empty(),
        "{:?}",
        report.device_failures
    );
    drop(coord);
    let _ = Segment::unlink(&coord_name);
}

/// `start` for a builder whose test fails from the start: passes the initial check by
/// clearing the flag around it.
trait StartAfterInitialPass {
    fn start_after_initial_pass(
        self,
        flag: &Arc<AtomicU32>,
    ) -> Result<shmkit_testbed::Testbed, TestbedError>;
}

impl StartAfterInitialPass for TestbedBuilder {
    fn start_after_initial_pass(
        self,
        flag: &Arc<AtomicU32>,
    ) -> Result<shmkit_testbed::Testbed, TestbedError> {
        flag.store(0, Ordering::SeqCst);
        let tb = self.start();
        flag.store(1, Ordering::SeqCst);
        tb
    }
}

/// What a host with its own SIGINT handling does (the Python testbed): names each
/// experiment's process, stops through `request_stop`, and collects outcomes as they end.
fn a_host_names_experiments_stops_them_and_collects_outcomes_live() {
    let tb = TestbedBuilder::new(&name("host"))
        .catch_ctrl_c(false)
        .start()
        .unwrap();
    tb.start_named_experiment("first loop", &Looper { forever: true })
        .unwrap();
    tb.start_named_experiment("second loop", &Looper { forever: true })
        .unwrap();
    assert!(tb.take_ended().is_empty(), "nothing ended yet");
    tb.request_stop();
    assert!(tb.stopping());
    assert!(
        tb.wait_experiments(Duration::from_secs(5)),
        "request_stop stops run-forever experiments"
    );
    let mut names: Vec<String> = tb.take_ended().into_iter().map(|o| o.name).collect();
    names.sort();
    assert_eq!(names, ["first loop", "second loop"]);
    assert!(
        tb.close().experiments.is_empty(),
        "taken outcomes are not reported twice"
    );
}

fn waiting_for_experiments_ends_within_100ms_of_an_interrupt() {
    let tb = TestbedBuilder::new(&name("waitint")).start().unwrap();
    tb.start_experiment(&Looper { forever: true }).unwrap();
    let start = Instant::now();
    let asked = start + Duration::from_millis(200);
    let check = || Instant::now() >= asked;
    match tb.wait_experiments_interruptible(shmkit::Timeout::Forever, &check) {
        Err(shmkit_testbed::TestbedError::Interrupted) => {}
        other => panic!("expected Interrupted, got {other:?}"),
    }
    let late = start.elapsed().saturating_sub(Duration::from_millis(200));
    assert!(
        late < Duration::from_millis(100),
        "ended {late:?} after the interrupt"
    );
    assert_eq!(tb.running_experiments(), 1, "the experiment keeps running");
    assert!(
        !tb.wait_experiments(Duration::from_millis(50)),
        "a timeout is false"
    );
    drop(tb.close());
}

/// A ring's writer publishes every 2 ms, then stops (alive, but stalled): the ready-made
/// `ring_stalled` test trips within its 100 ms limit plus one 20 ms check, says so, and
/// raised its alarm event.
fn a_stalled_writer_trips_the_ring_stalled_test_within_its_limit_and_one_check() {
    use shmkit::rings::{ElemType, FrameSpec};
    let (limit, interval) = (Duration::from_millis(100), Duration::from_millis(20));
    let test_name = "cam stalled";
    let seg_name = name("stall");
    let tb = TestbedBuilder::new(&seg_name)
        .safety_test(shmkit_testbed::ring_stalled("cam", limit))
        .safety_check_interval(interval)
        .start()
        .unwrap();
    let ring = tb
        .segment()
        .frame_ring("cam", &FrameSpec::new(4, ElemType::U8, &[16]))
        .unwrap();
    let mut writer = ring.writer().unwrap();
    for _ in 0..100 {
        let slot = writer.try_claim().unwrap();
        slot.publish();
        std::thread::sleep(Duration::from_millis(2));
        assert!(tb.trip().is_none(), "tripped while frames flowed");
    }
    let last = ring.stats().last_ts_ns;
    let alarm = tb
        .segment()
        .event(&shmkit_testbed::alarm_event(test_name))
        .unwrap();
    assert!(!alarm.is_set());
    while tb.trip().is_none() {
        let waited = shmkit::os::clock::monotonic_ns() - last;
        assert!(waited < 1_000_000_000, "no trip after 1 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    let tripped_after = Duration::from_nanos(shmkit::os::clock::monotonic_ns() - last);
    // The limit, one check interval, and this loop's 1 ms poll plus scheduling.
    assert!(
        tripped_after <= limit + interval + Duration::from_millis(15),
        "tripped {tripped_after:?} after the last frame"
    );
    let trip = tb.trip().unwrap();
    assert_eq!(trip.test, test_name);
    assert!(
        trip.message.contains("no frame for") && trip.message.contains("writer is alive"),
        "{}",
        trip.message
    );
    assert!(alarm.is_set());
    drop(writer);
    tb.close();
}

/// The ready-made `ring_cadence` test declares the ring's cadence; the writer, told to count
/// late frames, counts exactly the intervals past the deadline; the test tolerates `max_late`
/// of them, trips at the first check after one more, and raises its alarm. A second ring
/// that stops publishing trips it as stalled, counted once in `RING/stalls`.
fn a_ring_held_to_its_cadence_trips_on_late_frames_and_on_a_stall() {
    use shmkit::os::clock::monotonic_ns;
    use shmkit::rings::{Cadence, ElemType, FrameSpec};
    use shmkit_testbed::{ring_cadence, CadenceCheck};
    let cadence = Cadence {
        period: Duration::from_millis(2),
        deadline: Duration::from_millis(15),
    };
    let check = CadenceCheck {
        cadence,
        max_late: 2,
        window: Duration::from_secs(30),
        stalled_after: Duration::from_millis(300),
    };
    for (tag, stall) in [("late", false), ("stall", true)] {
        let tb = TestbedBuilder::new(&name(&format!("cadence-{tag}")))
            .safety_test(ring_cadence("cam", check))
            .safety_check_interval(Duration::from_millis(20))
            .start()
            .unwrap();
        let seg = tb.segment().clone();
        let ring = seg
            .frame_ring("cam", &FrameSpec::new(4, ElemType::U8, &[16]))
            .unwrap();
        let mut writer = ring.writer().unwrap();
        // The test declares the cadence at its first check.
        let declared = loop {
            if let Some(c) = Cadence::declared(&seg, "cam").unwrap() {
                break c;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(declared.cadence, cadence);
        writer.count_late(cadence.deadline, declared.late.clone());
        let alarm = seg
            .event(&shmkit_testbed::alarm_event("cam cadence"))
            .unwrap();
        for _ in 0..20 {
            writer.try_claim().unwrap().publish();
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(tb.trip().is_none() && !alarm.is_set());
        let on_time = declared.late.snapshot().count(); // a host stall may have made one late
        assert!(on_time <= 1, "{on_time} late frames at 2 ms");
        if stall {
            let last = ring.stats().last_ts_ns;
            while tb.trip().is_none() {
                assert!(monotonic_ns() - last < 2_000_000_000, "no trip after 2 s");
                std::thread::sleep(Duration::from_millis(1));
            }
            let message = tb.trip().unwrap().message;
            assert!(message.contains("no frame for"), "{message}");
            assert_eq!(declared.stalls.snapshot().count(), 1);
        } else {
            // Late frames, the input of the test: intervals of 40 ms against a 15 ms deadline.
            let mut late = on_time;
            while late <= check.max_late {
                std::thread::sleep(Duration::from_millis(40));
                writer.try_claim().unwrap().publish();
                late += 1;
                assert_eq!(declared.late.snapshot().count(), late);
            }
            let published = monotonic_ns();
            while tb.trip().is_none() {
                assert!(
                    monotonic_ns() - published < 2_000_000_000,
                    "no trip after 2 s"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            let message = tb.trip().unwrap().message;
            assert!(message.contains("3 frames late"), "{message}");
            assert!(declared.late.snapshot().max() >= 40_000_000);
            assert_eq!(declared.stalls.snapshot().count(), 0);
        }
        assert!(alarm.is_set());
        drop(writer);
        tb.close();
    }
}

/// The ready-made `latency_above` test: quiet while the recent p99 is low, trips at the first
/// check after the window's p99 goes above its limit, and raises its alarm.
fn a_latency_quantile_above_its_limit_trips_latency_above() {
    let seg_name = name("latency");
    let test = shmkit_testbed::latency_above(
        "loop",
        0.99,
        Duration::from_micros(500),
        Duration::from_millis(200),
        100,
    );
    let tb = TestbedBuilder::new(&seg_name)
        .safety_test(test)
        .safety_check_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    let h = tb.segment().histogram("loop").unwrap();
    for _ in 0..1000 {
        h.record(100_000);
    }
    // Several checks see a low p99.
    std::thread::sleep(Duration::from_millis(100));
    assert!(tb.trip().is_none());
    let t = Instant::now();
    for _ in 0..1000 {
        h.record(2_000_000);
    }
    while tb.trip().is_none() {
        assert!(t.elapsed() < Duration::from_secs(1), "no trip");
        std::thread::sleep(Duration::from_millis(1));
    }
    let trip = tb.trip().unwrap();
    assert!(trip.message.contains("p99"), "{}", trip.message);
    let alarm = tb
        .segment()
        .event(&shmkit_testbed::alarm_event(&trip.test))
        .unwrap();
    assert!(alarm.is_set());
    tb.close();
}

fn main() {
    Bench::entries(Entries::new())
        .experiment::<Looper>()
        .experiment::<Failing>()
        .experiment::<Deaf>()
        .entry("doomed_testbed", doomed_testbed)
        .entry("interrupted_testbed", interrupted_testbed)
        .dispatch();

    let tests: [(&str, fn()); 12] = [
        (
            "a_ring_held_to_its_cadence_trips_on_late_frames_and_on_a_stall",
            a_ring_held_to_its_cadence_trips_on_late_frames_and_on_a_stall,
        ),
        (
            "a_stalled_writer_trips_the_ring_stalled_test_within_its_limit_and_one_check",
            a_stalled_writer_trips_the_ring_stalled_test_within_its_limit_and_one_check,
        ),
        (
            "a_latency_quantile_above_its_limit_trips_latency_above",
            a_latency_quantile_above_its_limit_trips_latency_above,
        ),
        (
            "waiting_for_experiments_ends_within_100ms_of_an_interrupt",
            waiting_for_experiments_ends_within_100ms_of_an_interrupt,
        ),
        (
            "a_host_names_experiments_stops_them_and_collects_outcomes_live",
            a_host_names_experiments_stops_them_and_collects_outcomes_live,
        ),
        (
            "a_failing_safety_check_stops_every_experiment_within_1s",
            a_failing_safety_check_stops_every_experiment_within_1s,
        ),
        (
            "max_consecutive_failures_is_honoured",
            max_consecutive_failures_is_honoured,
        ),
        (
            "stop_all_on_exception_stops_the_others",
            stop_all_on_exception_stops_the_others,
        ),
        (
            "run_forever_ignores_finish_but_stops_on_safety",
            run_forever_ignores_finish_but_stops_on_safety,
        ),
        (
            "the_initial_safety_check_must_pass",
            the_initial_safety_check_must_pass,
        ),
        (
            "a_killed_testbed_takes_its_processes_down_and_starts_again",
            a_killed_testbed_takes_its_processes_down_and_starts_again,
        ),
        (
            "ctrl_c_tears_the_testbed_down_cooperatively",
            ctrl_c_tears_the_testbed_down_cooperatively,
        ),
    ];
    own_main::run_tests(&tests);
}
