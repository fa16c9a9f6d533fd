//! Simulated devices: a wavefront-sensor-like camera and a deformable mirror whose shape the
//! camera's simulation sees. They are what the examples and tests use, and what a user tries
//! first (the `shmkit-sim` crate: it brings the FFT and random-number crates the IPC core does without).
//!
//! Two cameras in one: with [`SimCameraConfig::ao`] set, a physical adaptive-optics sensor
//! ([`ao`]: moving von Kármán turbulence, a Gaussian-influence mirror, a geometric
//! Shack-Hartmann with noisy spots). Without it, the toy below, which the tests use:
//! the optics are deliberately simple: a fixed aberration `W(x, y)` plus twice the mirror's
//! surface (reflection) is the wavefront; each sub-aperture's spot moves with the local
//! wavefront slope. A controller that drives the mirror to `-W / 2` flattens it.

// Under `--cfg loom` (the core's model checks, which build its dev-dependencies) this crate
// is empty: the core it builds on is reduced to its lock-free protocols there.
#![cfg(not(loom))]

pub mod ao;
mod camera;
mod checks;
mod dm;
pub mod optics;
pub mod turbulence;

pub use camera::{CameraCommand, CameraReply, SimCamera, SimCameraConfig};
pub use checks::stroke_test;
pub use dm::{DmCommand, DmReply, SimDm, SimDmConfig};

/// Puts a simulated device's server in real-time mode if its configuration asks; a refusal
/// is reported, not fatal (a bench without the privilege still runs, with ordinary latency).
fn enter_realtime(kind: &str, priority: Option<i32>) {
    if let Some(priority) = priority {
        match shmkit::realtime::enter(priority) {
            Ok(r) => eprintln!("{kind}: real-time mode, SCHED_FIFO {}", r.priority),
            Err(e) => eprintln!("{kind}: running without real-time mode: {e}"),
        }
    }
}

/// A fast checksum of a frame's bytes (64-bit words folded with a multiply-rotate), which
/// the simulated camera stores in each frame's user word 1.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(0xFF51_AFD7_ED55_8CCD).rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    }
    h
}

/// The fixed aberration the simulated bench starts with, at pupil coordinates in [-1, 1]:
/// a tilt, an astigmatism-like cross term and a defocus.
pub fn aberration(x: f32, y: f32) -> f32 {
    0.30 * x - 0.15 * y + 0.20 * x * y - 0.25 * (x * x + y * y)
}

/// The mirror's surface at pupil coordinates in [-1, 1], bilinear between actuators
/// (`n × n`, row-major, rows along y).
pub fn mirror_surface(shape: &[f32], n: usize, x: f32, y: f32) -> f32 {
    if n < 2 || shape.len() < n * n {
        return 0.0;
    }
    let max = (n - 1) as f32;
    let fx = ((x + 1.0) * 0.5 * max).clamp(0.0, max);
    let fy = ((y + 1.0) * 0.5 * max).clamp(0.0, max);
    let (ix, iy) = ((fx as usize).min(n - 2), (fy as usize).min(n - 2));
    let (tx, ty) = (fx - ix as f32, fy - iy as f32);
    let at = |c: usize, r: usize| shape[r * n + c];
    let top = at(ix, iy) * (1.0 - tx) + at(ix + 1, iy) * tx;
    let bottom = at(ix, iy + 1) * (1.0 - tx) + at(ix + 1, iy + 1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// The wavefront (aberration plus twice the mirror) at pupil coordinates.
pub fn wavefront(shape: &[f32], n: usize, x: f32, y: f32) -> f32 {
    aberration(x, y) + 2.0 * mirror_surface(shape, n, x, y)
}
