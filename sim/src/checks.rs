//! Ready-made safety tests on the simulated devices (feature `sim`).

use shmkit::rings::{FrameRing, ReadMode};
use shmkit::segment::{SegmentError, SegmentObjects};
use shmkit_testbed::{safety_fn, SafetyTest};

/// A safety test on mirror `dm`'s applied shape (read in place from its shape ring): every
/// actuator within `fraction` of `stroke`. Passes while the mirror has published nothing.
pub fn stroke_test(dm: &str, stroke: f32, fraction: f32) -> impl SafetyTest {
    let ring_name = shmkit_devices::object_name(dm, "shape");
    let limit = stroke * fraction;
    safety_fn(&format!("{dm} stroke"), move |ctx| {
        let ring: FrameRing = match ctx.segment().open(&ring_name) {
            Ok(ring) => ring,
            Err(SegmentError::ObjectNotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let mut reader = ring
            .reader(ReadMode::NewestOnly)
            .map_err(|e| e.to_string())?;
        let Some(frame) = reader.latest().map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let values = frame.typed::<f32>().map_err(|e| e.to_string())?;
        match values.iter().enumerate().find(|(_, v)| v.abs() > limit) {
            Some((i, v)) => Err(format!(
                "DM command {v:.3} exceeds {fraction} of stroke on actuator {i} of {}",
                values.len()
            )),
            None => Ok(()),
        }
    })
}
