//! The controller's arithmetic: slopes of a Shack-Hartmann image, RMS, and the truncated-SVD
//! least-squares reconstructor (the decomposition is `nalgebra`'s).

use nalgebra::DMatrix;

/// Modes with a singular value below this fraction of the largest are not corrected.
pub const TRUNCATION: f64 = 1e-2;

/// Slopes (x for every sub-aperture, then y) of one image, in pixels from each centre.
pub fn slopes(image: &[u16], subs: usize, pix: usize, out: &mut [f32]) {
    let width = subs * pix;
    let centre = pix as f32 / 2.0 - 0.5;
    for sy in 0..subs {
        for sx in 0..subs {
            let (mut sum, mut mx, mut my) = (0.0f32, 0.0f32, 0.0f32);
            for y in 0..pix {
                let row = &image[(sy * pix + y) * width + sx * pix..][..pix];
                for (x, &v) in row.iter().enumerate() {
                    let v = (f32::from(v) - 100.0).max(0.0);
                    sum += v;
                    mx += v * x as f32;
                    my += v * y as f32;
                }
            }
            let k = sy * subs + sx;
            if sum > 0.0 {
                out[k] = mx / sum - centre;
                out[subs * subs + k] = my / sum - centre;
            } else {
                out[k] = 0.0;
                out[subs * subs + k] = 0.0;
            }
        }
    }
}

/// Root mean square.
pub fn rms(v: &[f32]) -> f64 {
    (v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / v.len().max(1) as f64).sqrt()
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
    let mut inverse = DMatrix::<f64>::zeros(cols, rows);
    let mut dropped = 0;
    for (k, &sigma) in s.iter().enumerate() {
        if sigma <= largest * TRUNCATION {
            dropped += 1;
            continue;
        }
        // V[:, k] (1/σ) U[:, k]ᵀ
        inverse += (v_t.row(k).transpose() / sigma) * u.column(k).transpose();
    }
    let mut r = vec![0f32; cols * rows];
    for i in 0..cols {
        for j in 0..rows {
            r[i * rows + j] = inverse[(i, j)] as f32;
        }
    }
    (r, dropped)
}
