//! Simulated devices: a wavefront-sensor-like camera and a deformable mirror whose shape the
//! camera's simulation sees. They are what the examples and tests use, and what a user tries
//! first (feature `sim`, on by default).
//!
//! The optics are deliberately simple: a fixed aberration `W(x, y)` plus twice the mirror's
//! surface (reflection) is the wavefront; each sub-aperture's spot moves with the local
//! wavefront slope. A controller that drives the mirror to `-W / 2` flattens it.

mod camera;
mod dm;

pub use camera::{CameraCommand, CameraReply, SimCamera, SimCameraConfig};
pub use dm::{DmCommand, DmReply, SimDm, SimDmConfig};

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
