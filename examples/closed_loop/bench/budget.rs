//! The error budget: what the residual should be, term by term, from the simulation's own
//! model — rebuilt from the run's configuration and seed, replayed over the same stretch of
//! simulated time as the measured closed loop.
//!
//! - **fitting**: the least-squares best mirror shape for the turbulence (over the pupil) still
//!   leaves this — the spatial frequencies 25 × 25 actuators cannot make;
//! - **aliasing**: a perfect-tracking loop (zero delay) reconstructing through the geometric
//!   sensor leaves this on top: what the sensor cannot see folds into what it corrects;
//! - **temporal**: an ideal, noise-free loop with the run's gain, leak and the model's delay
//!   (1 frame) leaves this on top — the turbulence moved before the correction arrived;
//! - **noise**: the same loop driven by the sensor's noise alone (its variance measured by
//!   rendering and centroiding flat-wavefront frames; the centre of gravity's gain too).
//!
//! The terms add in variance (the loop is linear). The measured residual is the camera's
//! truth word, averaged over the same frames; a real-time pipeline that lost frames or added
//! delay shows up as the difference.

use super::linalg::{mvm, reconstructor, slopes};
use super::options::Options;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use shmkit_sim::ao::AoModel;

/// The budget, nm RMS per term.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Budget {
    /// Fitting error.
    pub fitting_nm: f64,
    /// Aliasing (reconstruction through the sensor).
    pub aliasing_nm: f64,
    /// Servo-lag error.
    pub temporal_nm: f64,
    /// Propagated sensor noise.
    pub noise_nm: f64,
    /// All terms in quadrature.
    pub total_nm: f64,
    /// The measured residual over the same frames.
    pub measured_nm: f64,
    /// The uncorrected turbulence over the same frames.
    pub turbulence_nm: f64,
    /// Simulated time window, s.
    pub window: (f64, f64),
    /// Slope noise per sub-aperture and axis (centre-of-gravity pixels).
    pub slope_noise_px: f64,
    /// Centre-of-gravity gain (measured / true spot displacement).
    pub centroid_gain: f64,
}

/// Noise deviates for the noise-only loop (a seeded xorshift + Box–Muller).
struct Gaussian(u64);

impl Gaussian {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn next(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Slope noise (pixels RMS) and centre-of-gravity gain, from `frames` rendered flat-wavefront
/// and half-pixel-tilted frames centroided as the controller does.
fn sensor_noise(model: &mut AoModel, frames: usize) -> (f64, f64) {
    let g = model.geometry().clone();
    let nv = g.valid().len();
    let bg = model.config().background as f32;
    let side = g.subapertures() * g.pixels();
    let mut image = vec![0u16; side * side];
    let mut s = vec![0f32; 2 * nv];
    let (mut sum, mut sum2) = (vec![0f64; 2 * nv], vec![0f64; 2 * nv]);
    let flat = vec![0f32; 2 * nv];
    for _ in 0..frames {
        model.render(&flat, &mut image);
        slopes(&image, &g, bg, &mut s);
        for k in 0..2 * nv {
            sum[k] += f64::from(s[k]);
            sum2[k] += f64::from(s[k]).powi(2);
        }
    }
    let f = frames as f64;
    let var = (0..2 * nv)
        .map(|k| sum2[k] / f - (sum[k] / f).powi(2))
        .sum::<f64>()
        / (2 * nv) as f64;
    let shifted = vec![0.5f32; 2 * nv];
    let mut mean = 0.0;
    for _ in 0..frames.min(20) {
        model.render(&shifted, &mut image);
        slopes(&image, &g, bg, &mut s);
        mean += s.iter().map(|&v| f64::from(v)).sum::<f64>() / (2 * nv) as f64;
    }
    let gain = mean / frames.min(20) as f64 / 0.5;
    (var.sqrt(), gain)
}

/// Computes the budget over `[t0, t1]` of simulated time (the measured residual from
/// `residual`, `(t, nm)` per frame).
pub fn error_budget(
    o: &Options,
    t0: f64,
    t1: f64,
    residual: &[(f32, f32)],
) -> Result<Budget, String> {
    let mut model = AoModel::new(&o.ao, o.subapertures as usize, o.pixels as usize)?;
    let g = model.geometry().clone();
    let (nv, n) = (g.valid().len(), g.actuators());
    let active = g.active().to_vec();
    let na = active.len();
    let mask: Vec<usize> = (0..g.mask().len()).filter(|&p| g.mask()[p]).collect();
    // The geometric interaction matrix (slopes per µm, the −2 of reflection included) and the
    // influence functions on the pupil's grid points.
    let mut interaction = vec![0f32; 2 * nv * na];
    let mut influence = DMatrix::<f64>::zeros(mask.len(), na);
    let mut grid = model.grid_buffer();
    let mut s = vec![0f32; 2 * nv];
    let mut c = vec![0f32; n * n];
    for (col, &k) in active.iter().enumerate() {
        c[k] = 1.0;
        grid.fill(0.0);
        model.add_mirror(&c, 1.0, &mut grid);
        c[k] = 0.0;
        for (row, &p) in mask.iter().enumerate() {
            influence[(row, col)] = f64::from(grid[p]);
        }
        for v in grid.iter_mut() {
            *v *= -2.0;
        }
        model.slopes(&grid, &mut s);
        for r in 0..2 * nv {
            interaction[r * na + col] = s[r];
        }
    }
    let (rec, _) = reconstructor(&interaction, 2 * nv, na);
    let normal = influence.transpose() * &influence;
    let normal = normal
        .cholesky()
        .ok_or("the influence functions are not independent on the pupil")?;

    let (slope_noise, centroid_gain) = sensor_noise(&mut model, 200);
    // The controller's reconstructor is calibrated on centroids: its noise, in true pixels.
    let noise_true = slope_noise / centroid_gain.max(1e-6);

    let (gain, leak, stroke) = (o.gain, o.leak, o.stroke);
    let dt = 1.0 / o.rate_hz;
    let warm_up = 0.25;
    let frames = ((t1 - t0) / dt).round().max(0.0) as usize;
    let warm = (warm_up / dt) as usize;
    let mut phi = model.grid_buffer();
    let mut w = model.grid_buffer();
    let (mut e, mut cmd_loop, mut cmd_noise) = (vec![0f32; na], vec![0f32; na], vec![0f32; na]);
    let mut full = vec![0f32; n * n];
    let mut rng = Gaussian(o.ao.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut fit2, mut fits) = (0.0f64, 0usize);
    let (mut spatial2, mut loop2, mut noise2, mut turb2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let scatter = |values: &[f32], full: &mut Vec<f32>| {
        full.fill(0.0);
        for (&k, &v) in active.iter().zip(values) {
            full[k] = v;
        }
    };
    for step in 0..warm + frames {
        let t = t0 - warm_up + step as f64 * dt;
        let counted = step >= warm;
        model.atmosphere(t, &mut phi);
        // The ideal loop: the command computed from this frame reaches the next one.
        w.copy_from_slice(&phi);
        scatter(&cmd_loop, &mut full);
        model.add_mirror(&full, -2.0, &mut w);
        if counted {
            loop2 += g.rms(&w).powi(2);
        }
        model.slopes(&w, &mut s);
        mvm(&rec, &s, &mut e);
        for (c, d) in cmd_loop.iter_mut().zip(&e) {
            *c = (leak * *c - gain * d).clamp(-stroke, stroke);
        }
        // The noise alone through the same loop.
        w.fill(0.0);
        scatter(&cmd_noise, &mut full);
        model.add_mirror(&full, -2.0, &mut w);
        if counted {
            noise2 += g.rms(&w).powi(2);
        }
        model.slopes(&w, &mut s);
        for v in s.iter_mut() {
            *v += (noise_true * rng.next()) as f32;
        }
        mvm(&rec, &s, &mut e);
        for (c, d) in cmd_noise.iter_mut().zip(&e) {
            *c = leak * *c - gain * d;
        }
        if !counted {
            continue;
        }
        turb2 += g.rms(&phi).powi(2);
        // Perfect tracking: this frame's reconstruction applied to this frame.
        model.slopes(&phi, &mut s);
        mvm(&rec, &s, &mut e);
        for v in e.iter_mut() {
            *v = -*v;
        }
        scatter(&e, &mut full);
        w.copy_from_slice(&phi);
        model.add_mirror(&full, -2.0, &mut w);
        spatial2 += g.rms(&w).powi(2);
        // The best fit, on every 10th frame.
        if step % 10 == 0 {
            let target =
                DVector::from_iterator(mask.len(), mask.iter().map(|&p| f64::from(phi[p])));
            let coeffs = normal.solve(&(influence.transpose() * &target));
            let fitted = &influence * coeffs;
            for (row, &p) in mask.iter().enumerate() {
                w[p] = (target[row] - fitted[row]) as f32;
            }
            fit2 += g.rms(&w).powi(2);
            fits += 1;
        }
    }
    let per = |v: f64| v / frames.max(1) as f64;
    let fitting = fit2 / fits.max(1) as f64;
    let spatial = per(spatial2).max(fitting);
    let ideal = per(loop2).max(spatial);
    let noise = per(noise2);
    let measured: Vec<f64> = residual
        .iter()
        .filter(|&&(t, _)| f64::from(t) >= t0 && f64::from(t) <= t1)
        .map(|&(_, r)| f64::from(r).powi(2))
        .collect();
    Ok(Budget {
        fitting_nm: fitting.sqrt(),
        aliasing_nm: (spatial - fitting).sqrt(),
        temporal_nm: (ideal - spatial).sqrt(),
        noise_nm: noise.sqrt(),
        total_nm: (ideal + noise).sqrt(),
        measured_nm: (measured.iter().sum::<f64>() / measured.len().max(1) as f64).sqrt(),
        turbulence_nm: per(turb2).sqrt(),
        window: (t0, t1),
        slope_noise_px: slope_noise,
        centroid_gain,
    })
}
