//! The controller's arithmetic: centre-of-gravity slopes of a Shack-Hartmann image, the
//! truncated-SVD least-squares reconstructor (the decomposition is `nalgebra`'s) and the hot
//! path's matrix–vector product.

use nalgebra::DMatrix;
use shmkit_sim::ao::{AoGeometry, BIAS};

/// Modes with a singular value below this fraction of the largest are not corrected. At the
/// default bench that drops three: piston and the two waffle patterns, which a Shack-Hartmann
/// on the actuators' corners barely sees. Below 4 % the calibration's own noise decides which
/// weak modes look "seen", and inverting them costs ~40 nm of residual (measured: 1.4–2 × the
/// error budget at 1–3 %, within 1 % of it at 4–6 %).
pub const TRUNCATION: f64 = 4e-2;

/// Electrons above bias + background a pixel needs to count in a centre of gravity: four
/// read-noise σ at the default 0.5 e⁻, so the dark pixels of a sub-aperture do not pull its
/// spot towards the centre.
pub const THRESHOLD: f32 = 2.0;

/// Centre-of-gravity slopes (pixels from each sub-aperture's centre; x of every valid
/// sub-aperture, then y) of one image.
pub fn slopes(image: &[u16], geometry: &AoGeometry, background: f32, out: &mut [f32]) {
    let (subs, pix) = (geometry.subapertures(), geometry.pixels());
    let width = subs * pix;
    let centre = pix as f32 / 2.0 - 0.5;
    let floor = BIAS + background + THRESHOLD;
    let nv = geometry.valid().len();
    for (k, &(i, j)) in geometry.valid().iter().enumerate() {
        let (mut sum, mut mx, mut my) = (0.0f32, 0.0f32, 0.0f32);
        for y in 0..pix {
            let row = &image[(j * pix + y) * width + i * pix..][..pix];
            let (mut rs, mut rx) = (0.0f32, 0.0f32);
            for (x, &v) in row.iter().enumerate() {
                let v = (f32::from(v) - floor).max(0.0);
                rs += v;
                rx += v * x as f32;
            }
            sum += rs;
            mx += rx;
            my += rs * y as f32;
        }
        if sum > 0.0 {
            out[k] = mx / sum - centre;
            out[nv + k] = my / sum - centre;
        } else {
            out[k] = 0.0;
            out[nv + k] = 0.0;
        }
    }
}

/// `out = m x` for a row-major `m` (`out.len() × x.len()`). Eight independent accumulators
/// per row, so the compiler keeps them in one vector register (a single running sum is a
/// dependency chain the optimiser may not reorder).
pub fn mvm(m: &[f32], x: &[f32], out: &mut [f32]) {
    let cols = x.len();
    for (o, row) in out.iter_mut().zip(m.chunks_exact(cols)) {
        let mut acc = [0f32; 8];
        let (rc, xc) = (row.chunks_exact(8), x.chunks_exact(8));
        let (rr, xr) = (rc.remainder(), xc.remainder());
        for (r, v) in rc.zip(xc) {
            for k in 0..8 {
                acc[k] += r[k] * v[k];
            }
        }
        let tail: f32 = rr.iter().zip(xr).map(|(a, b)| a * b).sum();
        *o = acc.iter().sum::<f32>() + tail;
    }
}

/// The truncated-SVD least-squares reconstructor of `m` (`rows × cols`, row-major): `V Σ⁺ Uᵀ`,
/// `cols × rows`, with the modes whose singular value is below `TRUNCATION` × the largest
/// dropped (the mirror modes the sensor barely sees, which would amplify noise). Returns the
/// reconstructor and how many modes were dropped.
pub fn reconstructor(m: &[f32], rows: usize, cols: usize) -> (Vec<f32>, usize) {
    let a = DMatrix::from_row_iterator(rows, cols, m.iter().map(|&v| f64::from(v)));
    let svd = a.svd(true, true);
    let (u, v_t) = (
        svd.u.as_ref().expect("U was asked for"),
        svd.v_t.as_ref().expect("Vᵀ was asked for"),
    );
    let s = &svd.singular_values;
    let largest = s.iter().copied().fold(0.0f64, f64::max);
    let kept: Vec<usize> = (0..s.len())
        .filter(|&k| s[k] > largest * TRUNCATION)
        .collect();
    // V_k Σ_k⁻¹ U_kᵀ over the kept modes, as one product.
    let mut vs = DMatrix::<f64>::zeros(cols, kept.len());
    let mut uk = DMatrix::<f64>::zeros(rows, kept.len());
    for (c, &k) in kept.iter().enumerate() {
        vs.set_column(c, &(v_t.row(k).transpose() / s[k]));
        uk.set_column(c, &u.column(k));
    }
    let inverse = vs * uk.transpose();
    let mut r = vec![0f32; cols * rows];
    for i in 0..cols {
        for j in 0..rows {
            r[i * rows + j] = inverse[(i, j)] as f32;
        }
    }
    (r, s.len() - kept.len())
}
