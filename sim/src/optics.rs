//! The simulated bench's optics: a circular pupil with a central obstruction, a geometric
//! Shack-Hartmann wavefront sensor on it, and a deformable mirror of Gaussian influence
//! functions on the sub-aperture corners.
//!
//! Geometric means exact in the limit the sensor is designed for: a sub-aperture's slope is the
//! mean gradient of the phase over it, which for a square sub-aperture is the difference of the
//! phase's means along its opposite edges divided by its width (the divergence theorem) — so
//! the model needs the phase on a grid, not its derivatives. The spot moves by that slope times
//! `d / π` pixels with Nyquist-sampled spots (pixel = λ / 2d): a phase difference of π across a
//! sub-aperture moves it one pixel.

/// A circular pupil of `diameter` metres with a central obstruction of `obstruction` × the
/// diameter, cut into `subapertures × subapertures` squares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pupil {
    /// Diameter, metres.
    pub diameter: f64,
    /// Central obstruction as a fraction of the diameter (0: none).
    pub obstruction: f64,
    /// Sub-apertures across the diameter.
    pub subapertures: usize,
}

impl Pupil {
    /// A sub-aperture's side, metres.
    pub fn pitch(&self) -> f64 {
        self.diameter / self.subapertures as f64
    }

    /// Is the point `(x, y)` (metres from the centre) inside the clear aperture?
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let r = (x * x + y * y).sqrt();
        let outer = self.diameter / 2.0;
        r <= outer && r >= outer * self.obstruction
    }

    /// The lower-left corner of sub-aperture `(i, j)` (column, row), metres.
    pub fn corner(&self, i: usize, j: usize) -> (f64, f64) {
        let d = self.pitch();
        let half = self.diameter / 2.0;
        (i as f64 * d - half, j as f64 * d - half)
    }

    /// The illuminated fraction of sub-aperture `(i, j)`, from `samples × samples` points.
    pub fn illumination(&self, i: usize, j: usize, samples: usize) -> f64 {
        let (x0, y0) = self.corner(i, j);
        let d = self.pitch();
        let mut lit = 0usize;
        for v in 0..samples {
            for u in 0..samples {
                let x = x0 + (u as f64 + 0.5) / samples as f64 * d;
                let y = y0 + (v as f64 + 0.5) / samples as f64 * d;
                lit += usize::from(self.contains(x, y));
            }
        }
        lit as f64 / (samples * samples) as f64
    }

    /// The sub-apertures a sensor uses: at least half illuminated, as `(i, j)`, row by row.
    pub fn valid_subapertures(&self) -> Vec<(usize, usize)> {
        let n = self.subapertures;
        (0..n)
            .flat_map(|j| (0..n).map(move |i| (i, j)))
            .filter(|&(i, j)| self.illumination(i, j, 16) >= 0.5)
            .collect()
    }
}

/// A geometric Shack-Hartmann sensor: slopes are mean phase gradients over each valid
/// sub-aperture, estimated from `samples` points along each edge.
#[derive(Debug, Clone, PartialEq)]
pub struct ShackHartmann {
    pupil: Pupil,
    valid: Vec<(usize, usize)>,
    samples: usize,
}

impl ShackHartmann {
    /// A sensor on `pupil`, sampling each sub-aperture edge at `samples` points.
    pub fn new(pupil: Pupil, samples: usize) -> ShackHartmann {
        ShackHartmann {
            valid: pupil.valid_subapertures(),
            pupil,
            samples: samples.max(2),
        }
    }

    /// The pupil.
    pub fn pupil(&self) -> &Pupil {
        &self.pupil
    }

    /// The sub-apertures measured, `(i, j)`, in slope order.
    pub fn valid(&self) -> &[(usize, usize)] {
        &self.valid
    }

    /// Slopes of `phase` (radians at `(x, y)` metres): x slopes of every valid sub-aperture,
    /// then y slopes, in radians per metre, into `out` (`2 × valid().len()`).
    pub fn slopes(&self, phase: impl Fn(f64, f64) -> f64, out: &mut [f64]) {
        let d = self.pupil.pitch();
        let m = self.samples;
        let nv = self.valid.len();
        let edge_mean = |x0: f64, y0: f64, along_x: bool| -> f64 {
            (0..m)
                .map(|k| {
                    let t = (k as f64 + 0.5) / m as f64 * d;
                    if along_x {
                        phase(x0 + t, y0)
                    } else {
                        phase(x0, y0 + t)
                    }
                })
                .sum::<f64>()
                / m as f64
        };
        for (k, &(i, j)) in self.valid.iter().enumerate() {
            let (x0, y0) = self.pupil.corner(i, j);
            out[k] = (edge_mean(x0 + d, y0, false) - edge_mean(x0, y0, false)) / d;
            out[nv + k] = (edge_mean(x0, y0 + d, true) - edge_mean(x0, y0, true)) / d;
        }
    }

    /// A slope (radians per metre) as a spot displacement in pixels, spots Nyquist-sampled.
    pub fn pixels_per_slope(&self) -> f64 {
        self.pupil.pitch() / std::f64::consts::PI
    }
}

/// A deformable mirror: actuators on the sub-aperture corners (`subapertures + 1` per side,
/// those within half a pitch of the clear aperture active), each with a Gaussian influence
/// function whose value at the neighbouring actuator is `coupling`.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianDm {
    pitch: f64,
    coupling: f64,
    actuators: Vec<(f64, f64)>,
}

impl GaussianDm {
    /// The mirror matching `pupil`'s sub-apertures.
    pub fn on(pupil: &Pupil, coupling: f64) -> GaussianDm {
        let n = pupil.subapertures + 1;
        let d = pupil.pitch();
        let half = pupil.diameter / 2.0;
        let mut actuators = Vec::new();
        for j in 0..n {
            for i in 0..n {
                let (x, y) = (i as f64 * d - half, j as f64 * d - half);
                let r = (x * x + y * y).sqrt();
                if r <= half + d / 2.0 && r + d / 2.0 >= half * pupil.obstruction {
                    actuators.push((x, y));
                }
            }
        }
        GaussianDm {
            pitch: d,
            coupling: coupling.clamp(1e-6, 0.999),
            actuators,
        }
    }

    /// The active actuators' positions, metres.
    pub fn actuators(&self) -> &[(f64, f64)] {
        &self.actuators
    }

    /// One actuator's influence at distance² `r2` from it (1 at the actuator).
    pub fn influence(&self, r2: f64) -> f64 {
        (self.coupling.ln() * r2 / (self.pitch * self.pitch)).exp()
    }

    /// The surface at `(x, y)` for actuator commands `commands` (one per active actuator, in
    /// the mirror's units: the surface of one actuator pushed by 1).
    pub fn surface(&self, commands: &[f64], x: f64, y: f64) -> f64 {
        self.actuators
            .iter()
            .zip(commands)
            .map(|(&(ax, ay), &c)| c * self.influence((x - ax).powi(2) + (y - ay).powi(2)))
            .sum()
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    fn pupil() -> Pupil {
        Pupil {
            diameter: 8.0,
            obstruction: 0.14,
            subapertures: 24,
        }
    }

    #[test]
    fn a_known_tilt_gives_the_expected_slopes_in_every_subaperture() {
        let sh = ShackHartmann::new(pupil(), 8);
        let nv = sh.valid().len();
        let mut s = vec![0.0; 2 * nv];
        // 3 radians per metre along x, -1.5 along y.
        sh.slopes(|x, y| 3.0 * x - 1.5 * y, &mut s);
        assert!(s[..nv].iter().all(|&v| (v - 3.0).abs() < 1e-9), "x slopes");
        assert!(s[nv..].iter().all(|&v| (v + 1.5).abs() < 1e-9), "y slopes");
        // π radians across a sub-aperture is one pixel of spot motion.
        let per_pixel = std::f64::consts::PI / sh.pupil().pitch();
        assert!((per_pixel * sh.pixels_per_slope() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn defocus_slopes_grow_linearly_from_the_centre() {
        let sh = ShackHartmann::new(pupil(), 8);
        let nv = sh.valid().len();
        let mut s = vec![0.0; 2 * nv];
        sh.slopes(|x, y| x * x + y * y, &mut s);
        let d = sh.pupil().pitch();
        for (k, &(i, j)) in sh.valid().iter().enumerate() {
            let (x0, y0) = sh.pupil().corner(i, j);
            // Mean of 2x over the square is 2 × its centre's x.
            assert!((s[k] - 2.0 * (x0 + d / 2.0)).abs() < 1e-9);
            assert!((s[nv + k] - 2.0 * (y0 + d / 2.0)).abs() < 1e-9);
        }
    }

    #[test]
    fn the_pupil_keeps_the_illuminated_subapertures_of_an_obstructed_disc() {
        let p = pupil();
        let valid = p.valid_subapertures();
        // A 24 × 24 grid on an 8 m disc with a 14 % obstruction: the corners and the centre
        // are dark; the count is the disc's area in sub-apertures, roughly.
        let area = std::f64::consts::PI / 4.0 * (1.0 - 0.14f64.powi(2)) * 24.0 * 24.0;
        assert!(
            (valid.len() as f64 - area).abs() < 0.05 * area,
            "{} vs {area:.0}",
            valid.len()
        );
        assert!(!valid.contains(&(0, 0)), "a corner is outside the disc");
        assert!(!p.contains(0.1, 0.1), "the obstruction is dark");
    }

    #[test]
    fn an_actuator_pushes_its_neighbour_by_the_coupling() {
        let p = pupil();
        let dm = GaussianDm::on(&p, 0.3);
        let n = dm.actuators().len();
        // 25 × 25 corners, the ones near the disc active.
        assert!(n > 400 && n < 625, "{n} active actuators");
        let k = dm
            .actuators()
            .iter()
            .position(|&(x, y)| (x - 1.0).abs() < 1e-9 && (y - 1.0).abs() < 1e-9)
            .expect("an actuator at (1, 1) m");
        let mut c = vec![0.0; n];
        c[k] = 1.0;
        let (x, y) = dm.actuators()[k];
        assert!((dm.surface(&c, x, y) - 1.0).abs() < 1e-12);
        assert!((dm.surface(&c, x + p.pitch(), y) - 0.3).abs() < 1e-12);
        assert!(dm.surface(&c, x + 3.0 * p.pitch(), y) < 0.3f64.powi(9) * 1.01);
    }
}
