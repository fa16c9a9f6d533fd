//! The physical adaptive-optics model behind the simulated camera's `ao` mode: frozen-flow
//! von Kármán turbulence over a circular obstructed pupil, a Gaussian-influence mirror on the
//! sub-aperture corners, a geometric Shack-Hartmann sensor and its spots rendered with photon
//! and read noise.
//!
//! Everything is sampled on one square grid, `samples` points per sub-aperture side, whose step
//! is also the phase screens' step (so a translated screen is sampled with one set of bilinear
//! weights per frame) and on which every actuator sits on a grid point (so the separable
//! Gaussian influence is two banded passes, not a dense product). Wavefronts are optical path
//! differences in nanometres; mirror commands are micrometres of surface at the actuator; the
//! wavefront seen by the sensor is the atmosphere minus twice the surface (reflection).
//!
//! A camera built on this model (see [`SimCamera`](super::SimCamera)) is deterministic given
//! its seed and the simulated time, which the frame carries; so anyone holding the
//! configuration — an error budget, a test — can rebuild the same atmosphere and replay it.

use super::optics::Pupil;
use super::turbulence::{FrozenFlow, Layer, PhaseScreen, ScreenSpec};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// One turbulent layer of an [`AoConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindLayer {
    /// This layer's share of the turbulence (of ∫Cn²; the shares should sum to 1).
    pub fraction: f64,
    /// Wind speed, m/s.
    pub speed: f64,
    /// Wind direction, degrees from +x towards +y.
    pub direction_deg: f64,
}

/// The physics of the simulated adaptive-optics bench (defaults: an 8 m telescope in median
/// seeing, a bright guide star).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// As `SimCameraConfig`: defaults for missing fields, unknown ones refused.
#[serde(default, deny_unknown_fields)]
pub struct AoConfig {
    /// Pupil diameter, metres.
    pub diameter: f64,
    /// Central obstruction, fraction of the diameter.
    pub obstruction: f64,
    /// Fried parameter, metres, at `r0_wavelength_nm`.
    pub r0: f64,
    /// The wavelength `r0` is given at, nm.
    pub r0_wavelength_nm: f64,
    /// Outer scale, metres.
    pub outer_scale: f64,
    /// The layers (one by default).
    pub layers: Vec<WindLayer>,
    /// Seed of the phase screens and of the noise.
    pub seed: u64,
    /// The sensor's wavelength, nm: its pixels are `λ / 2d` (Nyquist-sampled spots).
    pub wfs_wavelength_nm: f64,
    /// Photo-electrons per fully lit sub-aperture per frame.
    pub photons: f64,
    /// Read noise, electrons RMS per pixel.
    pub read_noise: f64,
    /// Sky and dark background, electrons per pixel per frame.
    pub background: f64,
    /// Spot width (Gaussian σ), pixels.
    pub spot_sigma: f64,
    /// Influence of an actuator at its neighbour (inter-actuator coupling).
    pub coupling: f64,
    /// Grid samples per sub-aperture side.
    pub samples: u32,
}

impl Default for AoConfig {
    fn default() -> Self {
        AoConfig {
            diameter: 8.0,
            obstruction: 0.14,
            r0: 0.16,
            r0_wavelength_nm: 500.0,
            outer_scale: 25.0,
            layers: vec![WindLayer {
                fraction: 1.0,
                speed: 10.0,
                direction_deg: 0.0,
            }],
            seed: 1,
            wfs_wavelength_nm: 700.0,
            photons: 500.0,
            read_noise: 0.5,
            background: 0.2,
            spot_sigma: 0.85,
            coupling: 0.3,
            samples: 4,
        }
    }
}

/// The bias every pixel carries, ADU (one electron per ADU).
pub const BIAS: f32 = 100.0;

/// The precomputed normal deviates: `NOISE_MASK + 1` of them.
const NOISE_MASK: usize = (1 << 16) - 1;

/// How far (in actuator pitches) an influence function is evaluated; at the default coupling
/// 0.3 the influence there is 0.3⁹ ≈ 2·10⁻⁵.
const INFLUENCE_PITCHES: usize = 3;

/// The bench's geometry: pupil, grid, valid sub-apertures, active actuators. Cheap to build
/// (no screens): a controller builds it to know which sub-apertures and actuators it has.
#[derive(Debug, Clone, PartialEq)]
pub struct AoGeometry {
    pupil: Pupil,
    pixels: usize,
    samples: usize,
    grid: usize,
    mask: Vec<bool>,
    valid: Vec<(usize, usize)>,
    illumination: Vec<f64>,
    active: Vec<usize>,
}

impl AoGeometry {
    /// The geometry of `subapertures × subapertures` sub-apertures of `pixels` pixels under
    /// `config`, with `(subapertures + 1)²` actuators on their corners.
    pub fn new(config: &AoConfig, subapertures: usize, pixels: usize) -> Result<Self, String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(positive(config.diameter)
            && (0.0..0.9).contains(&config.obstruction)
            && positive(config.wfs_wavelength_nm)
            && positive(config.spot_sigma)
            && config.photons.is_finite()
            && config.photons >= 0.0
            && config.read_noise.is_finite()
            && config.read_noise >= 0.0
            && config.background.is_finite()
            && config.background >= 0.0
            && (0.01..0.99).contains(&config.coupling)
            && (2..=16).contains(&config.samples)
            && (2..=128).contains(&subapertures)
            && (4..=64).contains(&pixels))
        {
            return Err(format!(
                "AO configuration out of range: {config:?} with {subapertures} sub-apertures \
                 of {pixels} px (diameter, wavelengths and spot width positive, obstruction \
                 below 0.9, coupling in (0.01, 0.99), 2 to 16 samples, 2 to 128 \
                 sub-apertures of 4 to 64 px)"
            ));
        }
        let pupil = Pupil {
            diameter: config.diameter,
            obstruction: config.obstruction,
            subapertures,
        };
        let samples = config.samples as usize;
        let grid = subapertures * samples + 1;
        let step = pupil.pitch() / samples as f64;
        let half = config.diameter / 2.0;
        let mut mask = Vec::with_capacity(grid * grid);
        for gy in 0..grid {
            for gx in 0..grid {
                mask.push(pupil.contains(gx as f64 * step - half, gy as f64 * step - half));
            }
        }
        let valid = pupil.valid_subapertures();
        let illumination = valid
            .iter()
            .map(|&(i, j)| pupil.illumination(i, j, 16))
            .collect();
        // The rule of `GaussianDm::on`: an actuator within half a pitch of the clear aperture.
        let n = subapertures + 1;
        let d = pupil.pitch();
        let active = (0..n * n)
            .filter(|&k| {
                let (x, y) = ((k % n) as f64 * d - half, (k / n) as f64 * d - half);
                let r = (x * x + y * y).sqrt();
                r <= half + d / 2.0 && r + d / 2.0 >= half * config.obstruction
            })
            .collect();
        Ok(AoGeometry {
            pupil,
            pixels,
            samples,
            grid,
            mask,
            valid,
            illumination,
            active,
        })
    }

    /// The pupil.
    pub fn pupil(&self) -> &Pupil {
        &self.pupil
    }

    /// Sub-apertures per side.
    pub fn subapertures(&self) -> usize {
        self.pupil.subapertures
    }

    /// Pixels per sub-aperture side.
    pub fn pixels(&self) -> usize {
        self.pixels
    }

    /// Grid points per side (`subapertures × samples + 1`).
    pub fn grid(&self) -> usize {
        self.grid
    }

    /// Grid step, metres.
    pub fn step(&self) -> f64 {
        self.pupil.pitch() / self.samples as f64
    }

    /// Which grid points (row-major) are in the clear aperture.
    pub fn mask(&self) -> &[bool] {
        &self.mask
    }

    /// The sub-apertures measured, `(column, row)`, in slope order (x slopes of all, then y).
    pub fn valid(&self) -> &[(usize, usize)] {
        &self.valid
    }

    /// Actuators per side (`subapertures + 1`).
    pub fn actuators(&self) -> usize {
        self.pupil.subapertures + 1
    }

    /// The active actuators, as indices into the `actuators()²` row-major command array.
    pub fn active(&self) -> &[usize] {
        &self.active
    }

    /// RMS (piston removed) of a grid wavefront over the clear aperture.
    pub fn rms(&self, wavefront: &[f32]) -> f64 {
        let (mut s, mut s2, mut n) = (0.0f64, 0.0f64, 0usize);
        for (&w, _) in wavefront.iter().zip(&self.mask).filter(|(_, &m)| m) {
            let w = f64::from(w);
            s += w;
            s2 += w * w;
            n += 1;
        }
        if n == 0 {
            return 0.0;
        }
        let mean = s / n as f64;
        (s2 / n as f64 - mean * mean).max(0.0).sqrt()
    }

    /// The geometric Shack-Hartmann slopes of a grid wavefront (nm), as spot displacements in
    /// pixels: the mean gradient over each valid sub-aperture is the difference of its
    /// opposite edges' means (trapezoid rule along each edge) over its width, and a spot moves
    /// `2 ΔOPD / λ` pixels for an edge-to-edge path difference `ΔOPD` (pixels of `λ / 2d`).
    pub fn slopes(&self, wavefront: &[f32], wavelength_nm: f64, out: &mut [f32]) {
        let (m, g, nv) = (self.samples, self.grid, self.valid.len());
        let column_mean = |gx: usize, gy0: usize| -> f32 {
            let mut s = 0.5 * (wavefront[gy0 * g + gx] + wavefront[(gy0 + m) * g + gx]);
            for k in 1..m {
                s += wavefront[(gy0 + k) * g + gx];
            }
            s / m as f32
        };
        let row_mean = |gx0: usize, gy: usize| -> f32 {
            let row = &wavefront[gy * g + gx0..][..=m];
            (0.5 * (row[0] + row[m]) + row[1..m].iter().sum::<f32>()) / m as f32
        };
        let scale = (2.0 / wavelength_nm) as f32;
        for (k, &(i, j)) in self.valid.iter().enumerate() {
            let (gx, gy) = (i * m, j * m);
            out[k] = scale * (column_mean(gx + m, gy) - column_mean(gx, gy));
            out[nv + k] = scale * (row_mean(gx, gy + m) - row_mean(gx, gy));
        }
    }
}

/// The full model: geometry, turbulence, mirror influence and the sensor's renderer.
#[derive(Debug, Clone)]
pub struct AoModel {
    config: AoConfig,
    geometry: AoGeometry,
    flow: FrozenFlow,
    /// Screen radians at `r0_wavelength_nm` → nm of path.
    nm_per_radian: f32,
    /// Influence at grid offsets `-R..=R` (`R = INFLUENCE_PITCHES × samples`).
    influence: Vec<f32>,
    /// One actuator row's surface along x, per actuator row (scratch of the separable pass).
    rows: Vec<f32>,
    noise: Vec<f32>,
    rng: u64,
    /// Scratch of `render`: spot profiles, and which sub-aperture has which.
    profiles: Vec<f32>,
    spot: Vec<usize>,
}

/// Samples per side of the screens a model draws: a power of two covering three outer scales
/// and twice the pupil, within 256 to 2048.
fn screen_samples(config: &AoConfig, step: f64) -> usize {
    let span = (3.0 * config.outer_scale).max(2.0 * config.diameter);
    ((span / step).ceil() as usize)
        .next_power_of_two()
        .clamp(256, 2048)
}

impl AoModel {
    /// The model of `config` for `subapertures` of `pixels` pixels: draws the screens (one
    /// FFT per layer; a few hundred ms at the defaults).
    pub fn new(config: &AoConfig, subapertures: usize, pixels: usize) -> Result<Self, String> {
        let geometry = AoGeometry::new(config, subapertures, pixels)?;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(positive(config.r0)
            && positive(config.r0_wavelength_nm)
            && positive(config.outer_scale)
            && !config.layers.is_empty()
            && config.layers.len() <= 8
            && config.layers.iter().all(|l| {
                positive(l.fraction) && l.speed.is_finite() && l.direction_deg.is_finite()
            }))
        {
            return Err(format!(
                "turbulence out of range: r0 {} m at {} nm, L0 {} m, layers {:?} (positive \
                 values, 1 to 8 layers with positive fractions)",
                config.r0, config.r0_wavelength_nm, config.outer_scale, config.layers
            ));
        }
        let step = geometry.step();
        let n = screen_samples(config, step);
        let layers = config
            .layers
            .iter()
            .enumerate()
            .map(|(k, l)| {
                let spec = ScreenSpec {
                    n,
                    dx: step,
                    // r0^(-5/3) scales with the layer's share of Cn².
                    r0: config.r0 * l.fraction.powf(-3.0 / 5.0),
                    l0: config.outer_scale,
                    subharmonics: false,
                };
                let dir = l.direction_deg.to_radians();
                Layer {
                    screen: PhaseScreen::von_karman(&spec, config.seed.wrapping_add(k as u64)),
                    wind: (l.speed * dir.cos(), l.speed * dir.sin()),
                }
            })
            .collect();
        let samples = geometry.samples;
        let reach = INFLUENCE_PITCHES * samples;
        let influence = (0..=2 * reach)
            .map(|k| {
                let pitches = (k as f64 - reach as f64) / samples as f64;
                config.coupling.powf(pitches * pitches) as f32
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x006E_6F69_7365);
        let noise = (0..=NOISE_MASK)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                z as f32
            })
            .collect();
        Ok(AoModel {
            nm_per_radian: (config.r0_wavelength_nm / (2.0 * std::f64::consts::PI)) as f32,
            rows: vec![0.0; geometry.actuators() * geometry.grid],
            config: config.clone(),
            geometry,
            flow: FrozenFlow::new(layers),
            influence,
            noise,
            rng: config.seed | 1,
            profiles: Vec::new(),
            spot: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AoConfig {
        &self.config
    }

    /// The geometry.
    pub fn geometry(&self) -> &AoGeometry {
        &self.geometry
    }

    /// Changes the guide star's flux (photo-electrons per sub-aperture per frame): a bench
    /// calibrates on a bright calibration source.
    pub fn set_photons(&mut self, photons: f64) -> Result<(), String> {
        if !(photons.is_finite() && photons >= 0.0) {
            return Err(format!(
                "{photons} photo-electrons; expected a finite value >= 0"
            ));
        }
        self.config.photons = photons;
        Ok(())
    }

    /// A zeroed grid.
    pub fn grid_buffer(&self) -> Vec<f32> {
        vec![0.0; self.geometry.grid * self.geometry.grid]
    }

    /// Overwrites `out` (a grid) with the atmosphere's path difference at simulated time `t`
    /// seconds, nm.
    pub fn atmosphere(&self, t: f64, out: &mut [f32]) {
        out.fill(0.0);
        let half = self.config.diameter / 2.0;
        let g = self.geometry.grid;
        self.flow
            .add_grid(-half, -half, g, g, t, self.nm_per_radian, out);
    }

    /// Adds `scale ×` the mirror's surface (nm) for `commands` (µm at each actuator,
    /// `actuators()²` row-major; inactive actuators are ignored) to `out` (a grid). The
    /// Gaussian influence is separable and every actuator sits on a grid point, so this is a
    /// pass along x per actuator row and a pass along y, each over a band of
    /// `2 × 3 pitches`.
    pub fn add_mirror(&mut self, commands: &[f32], scale: f32, out: &mut [f32]) {
        let (g, m, n) = (
            self.geometry.grid,
            self.geometry.samples,
            self.geometry.actuators(),
        );
        let reach = INFLUENCE_PITCHES * m;
        self.rows.fill(0.0);
        let mut any = false;
        for &k in &self.geometry.active {
            let c = commands.get(k).copied().unwrap_or(0.0);
            if c == 0.0 || !c.is_finite() {
                continue;
            }
            any = true;
            let (a, b) = (k % n, k / n);
            let centre = a * m;
            let lo = centre.saturating_sub(reach);
            let hi = (centre + reach).min(g - 1);
            let row = &mut self.rows[b * g + lo..=b * g + hi];
            let weights = &self.influence[lo + reach - centre..];
            for (o, &w) in row.iter_mut().zip(weights) {
                *o += c * w;
            }
        }
        if !any {
            return;
        }
        let scale = scale * 1000.0; // µm → nm
        for b in 0..n {
            let row = &self.rows[b * g..][..g];
            if row.iter().all(|&v| v == 0.0) {
                continue;
            }
            let centre = b * m;
            let lo = centre.saturating_sub(reach);
            let hi = (centre + reach).min(g - 1);
            for gy in lo..=hi {
                let w = scale * self.influence[gy + reach - centre];
                for (o, &r) in out[gy * g..][..g].iter_mut().zip(row) {
                    *o += w * r;
                }
            }
        }
    }

    /// The wavefront the sensor sees at time `t` with mirror `commands`: atmosphere (or none,
    /// with `turbulence` off) minus twice the surface, nm, into `out`.
    pub fn wavefront(&mut self, t: f64, turbulence: bool, commands: &[f32], out: &mut [f32]) {
        if turbulence {
            self.atmosphere(t, out);
        } else {
            out.fill(0.0);
        }
        self.add_mirror(commands, -2.0, out);
    }

    /// Slopes (pixels) of a grid wavefront at the sensor's wavelength.
    pub fn slopes(&self, wavefront: &[f32], out: &mut [f32]) {
        self.geometry
            .slopes(wavefront, self.config.wfs_wavelength_nm, out);
    }

    /// Renders the spots for `slopes` (pixels) into `image` (`(subapertures × pixels)²` u16):
    /// a Gaussian spot of `spot_sigma` per valid sub-aperture holding `photons ×` its lit
    /// fraction, moved by its slopes (clipped a pixel and a half short of its edges, as a
    /// real spot leaves its sub-aperture), on `background`, with photon noise (Gaussian, its
    /// variance the mean) and read noise drawn from a precomputed table, plus [`BIAS`].
    pub fn render(&mut self, slopes: &[f32], image: &mut [u16]) {
        let (subs, pix) = (self.geometry.subapertures(), self.geometry.pixels);
        let width = subs * pix;
        if image.len() < width * width {
            return;
        }
        let bg = self.config.background as f32;
        let rn2 = (self.config.read_noise * self.config.read_noise) as f32;
        let nv = self.geometry.valid.len();
        let max_shift = pix as f32 / 2.0 - 1.5;
        let inv = -1.0 / (2.0 * self.config.spot_sigma * self.config.spot_sigma) as f32;
        let centre = pix as f32 / 2.0 - 0.5;
        // Each sub-aperture's spot profile along x, and along y times its flux, in `profiles`
        // (`2 × pix` per sub-aperture); `spot` says where, for the lit ones.
        let profiles = &mut self.profiles;
        profiles.resize(2 * pix * nv, 0.0);
        let spot = &mut self.spot;
        spot.clear();
        spot.resize(subs * subs, usize::MAX);
        for k in 0..nv {
            let (i, j) = self.geometry.valid[k];
            let flux = (self.config.photons * self.geometry.illumination[k]) as f32;
            let c = [
                centre + slopes[k].clamp(-max_shift, max_shift),
                centre + slopes[nv + k].clamp(-max_shift, max_shift),
            ];
            for (axis, &c) in c.iter().enumerate() {
                let v = &mut profiles[(2 * k + axis) * pix..][..pix];
                for (p, o) in v.iter_mut().enumerate() {
                    *o = ((p as f32 - c).powi(2) * inv).exp();
                }
                let scale = if axis == 0 { 1.0 } else { flux } / v.iter().sum::<f32>().max(1e-30);
                for o in v.iter_mut() {
                    *o *= scale;
                }
            }
            spot[j * subs + i] = k;
        }
        let mut mean = vec![0f32; width];
        let mut sigma = vec![0f32; width];
        for row in 0..width {
            let (j, py) = (row / pix, row % pix);
            for i in 0..subs {
                let m = &mut mean[i * pix..][..pix];
                match spot[j * subs + i] {
                    usize::MAX => m.fill(bg),
                    k => {
                        let gx = &profiles[2 * k * pix..][..pix];
                        let wy = profiles[(2 * k + 1) * pix + py];
                        for (o, &wx) in m.iter_mut().zip(gx) {
                            *o = bg + wy * wx;
                        }
                    }
                }
            }
            // The row's deviates: a random start and odd stride through the table (so pixels do
            // not form one serial chain of generator steps and the loop vectorises).
            let r = next_random(&mut self.rng);
            let (start, stride) = (r as usize, ((r >> 32) as usize) | 1);
            // Square roots in a loop of their own, which vectorises.
            for (s, &m) in sigma.iter_mut().zip(&mean) {
                *s = (m + rn2).sqrt();
            }
            let out = &mut image[row * width..][..width];
            for (x, ((o, &m), &s)) in out.iter_mut().zip(&mean).zip(&sigma).enumerate() {
                let z = self.noise[(start.wrapping_add(x.wrapping_mul(stride))) & NOISE_MASK];
                // Float-to-int `as` saturates: negative values land on 0, huge ones on 65535.
                *o = (BIAS + m + s * z + 0.5) as u16;
            }
        }
    }
}

/// xorshift64*: the row offsets into the table of normal deviates.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Strehl ratio by Maréchal's approximation, `exp(−(2π σ / λ)²)`, for a residual of `rms_nm`
/// at `wavelength_nm`.
pub fn strehl(rms_nm: f64, wavelength_nm: f64) -> f64 {
    (-(2.0 * std::f64::consts::PI * rms_nm / wavelength_nm).powi(2)).exp()
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::optics::GaussianDm;

    fn small() -> AoConfig {
        AoConfig {
            diameter: 2.0,
            outer_scale: 10.0,
            ..AoConfig::default()
        }
    }

    #[test]
    fn the_separable_mirror_matches_the_gaussian_influence_model() {
        let config = small();
        let mut model = AoModel::new(&config, 8, 8).unwrap();
        let g = model.geometry().clone();
        let dm = GaussianDm::on(g.pupil(), config.coupling);
        assert_eq!(
            dm.actuators().len(),
            g.active().len(),
            "the same active set"
        );
        let n = g.actuators();
        let mut commands = vec![0f32; n * n];
        let mut dense = vec![0f64; dm.actuators().len()];
        for (k, &a) in g.active().iter().enumerate() {
            let v = ((a * 7919) % 13) as f32 / 13.0 - 0.5;
            commands[a] = v;
            dense[k] = f64::from(v);
        }
        let mut grid = model.grid_buffer();
        model.add_mirror(&commands, 1.0, &mut grid);
        let step = g.step();
        let half = config.diameter / 2.0;
        for gy in (0..g.grid()).step_by(3) {
            for gx in (0..g.grid()).step_by(5) {
                let (x, y) = (gx as f64 * step - half, gy as f64 * step - half);
                let want = 1000.0 * dm.surface(&dense, x, y);
                let got = f64::from(grid[gy * g.grid() + gx]);
                // The band stops at three pitches: 0.3⁹ of an actuator, at most.
                assert!((got - want).abs() < 0.05, "({gx}, {gy}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn a_tilted_wavefront_moves_every_spot_by_two_path_differences_per_wavelength() {
        let config = small();
        let model = AoModel::new(&config, 8, 8).unwrap();
        let g = model.geometry();
        // 100 nm of path per metre along x, -50 along y.
        let step = g.step();
        let mut w = model.grid_buffer();
        for gy in 0..g.grid() {
            for gx in 0..g.grid() {
                w[gy * g.grid() + gx] = (100.0 * gx as f64 * step - 50.0 * gy as f64 * step) as f32;
            }
        }
        let nv = g.valid().len();
        let mut s = vec![0f32; 2 * nv];
        model.slopes(&w, &mut s);
        let d = g.pupil().pitch();
        let (want_x, want_y) = (2.0 * 100.0 * d / 700.0, -2.0 * 50.0 * d / 700.0);
        assert!(s[..nv]
            .iter()
            .all(|&v| (f64::from(v) - want_x).abs() < 1e-4));
        assert!(s[nv..]
            .iter()
            .all(|&v| (f64::from(v) - want_y).abs() < 1e-4));
    }

    #[test]
    fn rendered_spots_sit_where_the_slopes_put_them() {
        let config = AoConfig {
            photons: 1e5,
            ..small()
        };
        let mut model = AoModel::new(&config, 8, 8).unwrap();
        let g = model.geometry().clone();
        let nv = g.valid().len();
        let mut s = vec![0f32; 2 * nv];
        for k in 0..nv {
            s[k] = 0.7;
            s[nv + k] = -0.4;
        }
        let mut image = vec![0u16; 64 * 64];
        model.render(&s, &mut image);
        for &(i, j) in g.valid() {
            let (mut sum, mut mx, mut my) = (0.0f64, 0.0, 0.0);
            for y in 0..8 {
                for x in 0..8 {
                    let v = (f64::from(image[(j * 8 + y) * 64 + i * 8 + x]) - 100.2).max(0.0);
                    sum += v;
                    mx += v * x as f64;
                    my += v * y as f64;
                }
            }
            // Bright spots: the centre of gravity is the displacement within a few %.
            assert!((mx / sum - 3.5 - 0.7).abs() < 0.05, "{}", mx / sum - 3.5);
            assert!((my / sum - 3.5 + 0.4).abs() < 0.05, "{}", my / sum - 3.5);
        }
    }

    #[test]
    fn the_atmosphere_has_the_expected_strength_and_moves_with_the_wind() {
        let config = AoConfig::default();
        let model = AoModel::new(&config, 24, 8).unwrap();
        let mut a = model.grid_buffer();
        let mut b = model.grid_buffer();
        // Over 8 m in r0 = 0.16 m seeing with L0 = 25 m, the piston-removed phase is about
        // 1.0 (D/r0)^(5/3) rad² reduced by the outer scale to roughly half: ~0.8–2 µm RMS.
        let mut sum = 0.0;
        for k in 0..8 {
            model.atmosphere(k as f64 * 1.7, &mut a);
            sum += model.geometry().rms(&a);
        }
        let mean = sum / 8.0;
        assert!((600.0..2500.0).contains(&mean), "{mean} nm RMS");
        // Frozen flow: after one grid step's travel the pattern has moved by one step.
        let step = model.geometry().step();
        let g = model.geometry().grid();
        model.atmosphere(0.0, &mut a);
        model.atmosphere(step / 10.0, &mut b);
        for gy in 0..g {
            for gx in 0..g - 1 {
                assert!((b[gy * g + gx] - a[gy * g + gx + 1]).abs() < 0.5);
            }
        }
    }

    #[test]
    fn marechal_strehl() {
        assert!((strehl(0.0, 1650.0) - 1.0).abs() < 1e-12);
        assert!(
            (strehl(1650.0 / (2.0 * std::f64::consts::PI), 1650.0) - (-1.0f64).exp()).abs() < 1e-12
        );
    }

    #[test]
    fn out_of_range_configurations_are_refused() {
        let bad = AoConfig {
            coupling: 1.5,
            ..AoConfig::default()
        };
        assert!(AoGeometry::new(&bad, 24, 8)
            .unwrap_err()
            .contains("coupling"));
        let bad = AoConfig {
            layers: vec![],
            ..AoConfig::default()
        };
        assert!(AoModel::new(&bad, 24, 8).unwrap_err().contains("layers"));
    }
}
