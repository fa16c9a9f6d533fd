//! The rejection transfer function: measured by the loop (power spectra of the residual and of
//! the pseudo-open-loop signal, Welch-averaged) and the leaky integrator's model.

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;
use std::f64::consts::PI;

/// The longest Welch segment, frames (2 s at 2 kHz: 0.5 Hz resolution, so the steep
/// low-frequency part of the open-loop spectrum does not leak into the bins compared).
pub const MAX_SEGMENT: usize = 4096;

/// The segment for `frames` samples: the largest power of two giving at least 4 segments,
/// within 128 and [`MAX_SEGMENT`].
pub fn segment(frames: usize) -> usize {
    let mut n = 128;
    while n * 2 <= MAX_SEGMENT && n * 2 * 4 <= frames {
        n *= 2;
    }
    n
}

/// `|RTF(f)|` of a leaky integrator `c ← l c − g e` whose command reaches the sensor `delay`
/// frames after the frame it was computed from, at frame rate `fs`:
/// `(1 − l z⁻¹) / (1 − l z⁻¹ + g z⁻ᵈ)`.
pub fn model(f: f64, fs: f64, gain: f64, leak: f64, delay: u32) -> f64 {
    let w = 2.0 * PI * f / fs;
    let z1 = Complex::new(w.cos(), -w.sin()); // z⁻¹
    let zd = Complex::from_polar(1.0, -w * f64::from(delay));
    let num = Complex::new(1.0, 0.0) - z1 * leak;
    (num / (num + zd * gain)).norm()
}

/// The model's rejection bandwidth: the lowest frequency where `|RTF|` reaches 1.
pub fn bandwidth(fs: f64, gain: f64, leak: f64, delay: u32) -> f64 {
    let steps = 20_000;
    (1..steps)
        .map(|k| k as f64 / steps as f64 * fs / 2.0)
        .find(|&f| model(f, fs, gain, leak, delay) >= 1.0)
        .unwrap_or(fs / 2.0)
}

/// Welch power spectrum summed over `series` (each one signal sampled at every frame):
/// Hann-windowed segments of `seg` samples, half overlapping, mean removed; bins 0..=seg/2.
fn power(series: &[Vec<f32>], seg: usize) -> Vec<f64> {
    let mut planner = FftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(seg);
    let window: Vec<f64> = (0..seg)
        .map(|k| 0.5 - 0.5 * (2.0 * PI * k as f64 / seg as f64).cos())
        .collect();
    let mut sum = vec![0.0f64; seg / 2 + 1];
    let mut buf = vec![Complex::new(0.0, 0.0); seg];
    for s in series {
        let mut start = 0;
        while start + seg <= s.len() {
            let chunk = &s[start..start + seg];
            let mean = chunk.iter().map(|&v| f64::from(v)).sum::<f64>() / seg as f64;
            for ((b, &v), w) in buf.iter_mut().zip(chunk).zip(&window) {
                *b = Complex::new((f64::from(v) - mean) * w, 0.0);
            }
            fft.process(&mut buf);
            for (acc, b) in sum.iter_mut().zip(&buf) {
                *acc += b.norm_sqr();
            }
            start += seg / 2;
        }
    }
    sum
}

/// The measured `|RTF|`: `sqrt(PSD(residual) / PSD(pseudo open loop))` per frequency bin
/// (from bin 1), both summed over the modes given. Empty with less than one segment.
pub fn measured(residual: &[Vec<f32>], open: &[Vec<f32>], fs: f64) -> Vec<(f64, f64)> {
    let seg = segment(residual.iter().map(Vec::len).min().unwrap_or(0));
    let (e, p) = (power(residual, seg), power(open, seg));
    (1..e.len())
        .filter(|&k| p[k] > 0.0)
        .map(|k| (k as f64 * fs / seg as f64, (e[k] / p[k]).sqrt()))
        .collect()
}

/// The measured RTF against the model below the bandwidth, in bands of a fifth of a decade
/// (bin ratios averaged in log): `(band centre Hz, measured / model)` per band from 4 Hz or
/// eight frequency bins, whichever is higher (below, the window's leakage of the open-loop
/// spectrum's steep low end dominates the bins).
pub fn compare(
    measured: &[(f64, f64)],
    fs: f64,
    gain: f64,
    leak: f64,
    delay: u32,
) -> Vec<(f64, f64)> {
    let top = bandwidth(fs, gain, leak, delay);
    let mut bands: Vec<(f64, f64)> = Vec::new();
    let resolution = measured.first().map_or(1.0, |m| m.0);
    let mut lo = (8.0 * resolution).max(4.0);
    while lo < top {
        let hi = (lo * 10f64.powf(0.2)).min(top);
        let logs: Vec<f64> = measured
            .iter()
            .filter(|(f, _)| *f >= lo && *f < hi)
            .map(|&(f, m)| (m / model(f, fs, gain, leak, delay)).ln())
            .collect();
        if !logs.is_empty() {
            let mean = logs.iter().sum::<f64>() / logs.len() as f64;
            bands.push(((lo * hi).sqrt(), mean.exp()));
        }
        lo = hi;
    }
    bands
}
