//! Safety tests: checks the testbed runs before anything starts and then periodically.

use shmkit::segment::Segment;
use shmkit_devices::DeviceCache;

/// What a safety check can look at.
#[derive(Debug)]
pub struct SafetyContext<'a> {
    pub(crate) segment: &'a Segment,
    pub(crate) devices: &'a DeviceCache,
}

impl SafetyContext<'_> {
    /// The testbed's segment (shared values, frame rings...).
    pub fn segment(&self) -> &Segment {
        self.segment
    }

    /// The testbed's devices.
    pub fn devices(&self) -> &DeviceCache {
        self.devices
    }
}

/// A check of the bench's safety, e.g. "no DM actuator beyond 0.8 of its stroke".
pub trait SafetyTest: Send + 'static {
    /// Its name, in reports.
    fn name(&self) -> &str;

    /// `Ok` when safe; `Err(message)` describing the violation otherwise.
    fn check(&mut self, ctx: &SafetyContext<'_>) -> Result<(), String>;
}

/// A safety test from a name and a closure.
pub struct SafetyFn<F> {
    name: String,
    check: F,
}

impl<F> std::fmt::Debug for SafetyFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetyFn")
            .field("name", &self.name)
            .finish()
    }
}

/// A safety test named `name` that runs `check`.
pub fn safety_fn<F>(name: &str, check: F) -> SafetyFn<F>
where
    F: FnMut(&SafetyContext<'_>) -> Result<(), String> + Send + 'static,
{
    SafetyFn {
        name: name.to_owned(),
        check,
    }
}

impl<F> SafetyTest for SafetyFn<F>
where
    F: FnMut(&SafetyContext<'_>) -> Result<(), String> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&mut self, ctx: &SafetyContext<'_>) -> Result<(), String> {
        (self.check)(ctx)
    }
}

/// A safety failure that stopped the testbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyTrip {
    /// The failing test.
    pub test: String,
    /// Its message.
    pub message: String,
    /// Consecutive failures when it tripped.
    pub consecutive: u32,
}
