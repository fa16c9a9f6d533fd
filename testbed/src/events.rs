//! The testbed's named events: STOP, FINISH and SAFETY.

use shmkit::primitives::Event;
use shmkit::segment::{Segment, SegmentError};

/// The three events every testbed process shares.
#[derive(Clone)]
pub(crate) struct Events {
    /// Everything stops (safety failure, teardown).
    pub stop: Event,
    /// Experiments should finish (run-forever ones ignore it).
    pub finish: Event,
    /// A safety test failed.
    pub safety: Event,
}

impl Events {
    pub(crate) fn attach(segment: &Segment) -> Result<Events, SegmentError> {
        Ok(Events {
            stop: segment.event("testbed/STOP")?,
            finish: segment.event("testbed/FINISH")?,
            safety: segment.event("testbed/SAFETY")?,
        })
    }
}
