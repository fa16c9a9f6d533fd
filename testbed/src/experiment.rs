//! Experiments: user code run in its own child process, stopped cooperatively.
//!
//! An experiment is a serde value: [`Testbed::start_experiment`](super::Testbed) sends it to a
//! child re-executed into the entry [`Entries::experiment`] registered under its `NAME`, which
//! runs `pre_experiment`, `experiment` and `post_experiment` (the last one also after a
//! failure). Errors and panics come back through the exception slots.

use super::events::Events;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shmkit::process::{ChildContext, Entries};
use shmkit::segment::Segment;
use shmkit_devices::DeviceCache;

/// An experiment's own failure; its message and `source()` chain reach the testbed.
pub type ExperimentFailure = Box<dyn std::error::Error + Send + Sync>;

/// User code that runs in its own process while the testbed is up.
pub trait Experiment: Serialize + DeserializeOwned + 'static {
    /// The entry name its process is started under (unique per experiment type).
    const NAME: &'static str;

    /// True for an experiment that keeps running through FINISH: only STOP (a safety
    /// failure, or teardown) stops it.
    fn run_forever(&self) -> bool {
        false
    }

    /// Set-up, before `experiment`.
    fn pre_experiment(&mut self, _ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        Ok(())
    }

    /// The experiment. Poll [`ExperimentContext::should_stop`] in its loop.
    fn experiment(&mut self, ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure>;

    /// Clean-up, after `experiment` (also when it failed).
    fn post_experiment(&mut self, _ctx: &ExperimentContext<'_>) -> Result<(), ExperimentFailure> {
        Ok(())
    }
}

/// What a running experiment sees: the segment, the devices, and whether to stop.
pub struct ExperimentContext<'a> {
    child: &'a ChildContext,
    devices: DeviceCache,
    events: Events,
    run_forever: bool,
}

impl std::fmt::Debug for ExperimentContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExperimentContext")
            .field("name", &self.child.name())
            .field("run_forever", &self.run_forever)
            .finish()
    }
}

impl ExperimentContext<'_> {
    /// The testbed's segment.
    pub fn segment(&self) -> &Segment {
        self.child.segment()
    }

    /// The testbed's devices (servers started here are owned by the testbed).
    pub fn devices(&self) -> &DeviceCache {
        &self.devices
    }

    /// This experiment's process name.
    pub fn name(&self) -> &str {
        self.child.name()
    }

    /// Should the experiment stop now? STOP or SAFETY is set, FINISH is set and the
    /// experiment does not run forever, or the testbed process died.
    pub fn should_stop(&self) -> bool {
        self.events.stop.is_set()
            || self.events.safety.is_set()
            || (!self.run_forever && self.events.finish.is_set())
            || !self.child.parent_alive()
    }

    /// Was FINISH requested (a run-forever experiment may ignore it)?
    pub fn finish_requested(&self) -> bool {
        self.events.finish.is_set()
    }

    /// Did a safety test fail?
    pub fn safety_tripped(&self) -> bool {
        self.events.safety.is_set()
    }
}

/// An experiment's failure as its process reports it: which stage failed, and why.
#[derive(Debug, thiserror::Error)]
#[error("{stage} failed")]
pub struct ExperimentError {
    /// `pre_experiment`, `experiment` or `post_experiment`.
    pub stage: &'static str,
    /// The experiment's error.
    #[source]
    pub source: ExperimentFailure,
}

/// Registering experiments as child entries: `Entries::new().experiment::<Scan>()`.
pub trait ExperimentEntries {
    /// Registers the entry that runs experiment type `E` in a child.
    fn experiment<E: Experiment>(self) -> Entries;
}

impl ExperimentEntries for Entries {
    fn experiment<E: Experiment>(self) -> Entries {
        self.entry(E::NAME, run::<E>)
    }
}

fn run<E: Experiment>(child: &ChildContext, mut experiment: E) -> Result<(), ExperimentError> {
    // Ctrl+C reaches the whole process group; the testbed turns it into STOP.
    shmkit::os::signals::ignore(libc::SIGINT);
    let events = Events::attach(child.segment()).map_err(|e| ExperimentError {
        stage: "attaching to the testbed",
        source: Box::new(e),
    })?;
    let ctx = ExperimentContext {
        child,
        devices: DeviceCache::new(child.segment()),
        events,
        run_forever: experiment.run_forever(),
    };
    let stage = |stage: &'static str| move |source| ExperimentError { stage, source };
    let mut outcome = experiment
        .pre_experiment(&ctx)
        .map_err(stage("pre_experiment"));
    if outcome.is_ok() {
        outcome = experiment.experiment(&ctx).map_err(stage("experiment"));
    }
    let post = experiment
        .post_experiment(&ctx)
        .map_err(stage("post_experiment"));
    outcome.and(post)
}
