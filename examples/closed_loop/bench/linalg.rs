//! The controller's arithmetic: slopes of a Shack-Hartmann image, RMS, and the regularised
//! least-squares reconstructor.

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

/// `(MᵀM + αI)⁻¹ Mᵀ` for `m` of `rows × cols` (row-major), by Cholesky: `cols × rows`.
pub fn reconstructor(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut a = vec![0f64; cols * cols];
    for i in 0..cols {
        for j in 0..=i {
            let mut s = 0.0;
            for r in 0..rows {
                s += f64::from(m[r * cols + i]) * f64::from(m[r * cols + j]);
            }
            a[i * cols + j] = s;
            a[j * cols + i] = s;
        }
    }
    let trace: f64 = (0..cols).map(|i| a[i * cols + i]).sum();
    let alpha = 1e-3 * trace / cols as f64;
    for i in 0..cols {
        a[i * cols + i] += alpha;
    }
    // Cholesky: a = L Lᵀ, L in the lower triangle.
    for j in 0..cols {
        let mut d = a[j * cols + j];
        for k in 0..j {
            d -= a[j * cols + k] * a[j * cols + k];
        }
        let d = d.max(1e-12).sqrt();
        a[j * cols + j] = d;
        for i in j + 1..cols {
            let mut s = a[i * cols + j];
            for k in 0..j {
                s -= a[i * cols + k] * a[j * cols + k];
            }
            a[i * cols + j] = s / d;
        }
    }
    // Solve (L Lᵀ) X = Mᵀ, one column of Mᵀ (= one row of M) at a time.
    let mut r = vec![0f32; cols * rows];
    let mut y = vec![0f64; cols];
    for row in 0..rows {
        for i in 0..cols {
            let mut s = f64::from(m[row * cols + i]);
            for k in 0..i {
                s -= a[i * cols + k] * y[k];
            }
            y[i] = s / a[i * cols + i];
        }
        for i in (0..cols).rev() {
            let mut s = y[i];
            for k in i + 1..cols {
                s -= a[k * cols + i] * y[k];
            }
            y[i] = s / a[i * cols + i];
        }
        for i in 0..cols {
            r[i * rows + row] = y[i] as f32;
        }
    }
    r
}
