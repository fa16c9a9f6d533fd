//! The plotted report: one SVG per question an AO engineer asks of a run (no fonts needed;
//! text stays text).

use super::options::Options;
use super::rtf;
use super::stats::Percentiles;
use super::summary::Summary;
use super::telemetry::ControllerReport;
use super::Report;
use plotters::coord::Shift;
use plotters::prelude::*;
use shmkit_sim::ao::strehl;
use std::error::Error;
use std::path::{Path, PathBuf};

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Res<T> = Result<T, Box<dyn Error>>;

const FONT: (&str, u32) = ("sans-serif", 18);

/// At most `n` points: the mean of each of `n` consecutive buckets.
fn decimate(points: &[(f64, f64)], n: usize) -> Vec<(f64, f64)> {
    if points.len() <= n {
        return points.to_vec();
    }
    points
        .chunks(points.len().div_ceil(n))
        .map(|c| {
            let k = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / k,
                c.iter().map(|p| p.1).sum::<f64>() / k,
            )
        })
        .collect()
}

fn residual_plot(area: &Area<'_>, o: &Options, c: &ControllerReport) -> Res<()> {
    let panels = area.split_evenly((2, 1));
    let points: Vec<(f64, f64)> = c
        .residual
        .iter()
        .map(|&(t, r)| (f64::from(t) - c.t_close, f64::from(r)))
        .collect();
    let points = decimate(&points, 3000);
    let (x0, x1) = (
        points.first().map_or(-1.0, |p| p.0),
        points.last().map_or(1.0, |p| p.0).max(0.1),
    );
    let top = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.5;
    let bottom = points.iter().map(|p| p.1).fold(top, f64::min).max(1.0) * 0.7;
    let mut chart = ChartBuilder::on(&panels[0])
        .caption("Residual wavefront RMS (true, piston removed)", FONT)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (bottom..top).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("simulated time since the loop closed (s)")
        .y_desc("nm RMS")
        .draw()?;
    chart.draw_series(LineSeries::new(points.iter().copied(), &BLUE))?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, bottom), (0.0, top)],
            RED.stroke_width(2),
        ))?
        .label("loop closed")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    let mut chart = ChartBuilder::on(&panels[1])
        .caption(
            format!("Strehl ratio at {:.2} µm (Maréchal)", o.science_nm / 1000.0),
            FONT,
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("simulated time since the loop closed (s)")
        .y_desc("Strehl")
        .draw()?;
    chart.draw_series(LineSeries::new(
        points.iter().map(|&(t, r)| (t, strehl(r, o.science_nm))),
        &BLUE,
    ))?;
    chart.draw_series(LineSeries::new(
        [(0.0, 0.0), (0.0, 1.0)],
        RED.stroke_width(2),
    ))?;
    Ok(())
}

/// A histogram of `values` (µs) on logarithmic bins, log counts, with p50/p99/p99.9 lines.
fn latency_histogram(area: &Area<'_>, title: &str, values: &[f32], p: &Percentiles) -> Res<()> {
    let per_decade = 20.0;
    let (lo, hi) = (1.0f64, 1e5f64);
    let bins = ((hi / lo).log10() * per_decade) as usize;
    let mut counts = vec![0u64; bins];
    for &v in values {
        let b = ((f64::from(v).max(lo).log10() - lo.log10()) * per_decade) as usize;
        counts[b.min(bins - 1)] += 1;
    }
    let edge = |b: usize| lo * 10f64.powf(b as f64 / per_decade);
    let xmax = edge(
        counts
            .iter()
            .rposition(|&c| c > 0)
            .map_or(bins, |b| b + 2)
            .min(bins),
    );
    let ymax = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(title, FONT)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..xmax).log_scale(), (0.5..ymax).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("µs")
        .y_desc("frames")
        .draw()?;
    chart.draw_series(
        counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(b, &c)| {
                Rectangle::new(
                    [(edge(b), 0.5), (edge(b + 1), c as f64)],
                    BLUE.mix(0.6).filled(),
                )
            }),
    )?;
    for (name, v, color) in [
        ("p50", p.p50, GREEN),
        ("p99", p.p99, MAGENTA),
        ("p99.9", p.p999, RED),
    ] {
        if v > 0.0 {
            chart
                .draw_series(LineSeries::new(
                    [(v, 0.5), (v, ymax)],
                    color.stroke_width(2),
                ))?
                .label(format!("{name} {v:.1} µs"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn jitter_plot(area: &Area<'_>, o: &Options, c: &ControllerReport) -> Res<()> {
    let period = 1e6 / o.rate_hz;
    let (lo, hi) = (0.0f64, 2.0 * period);
    let bins = 200usize;
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for &v in &c.frame_period_us {
        let b = ((f64::from(v) - lo) / width).max(0.0) as usize;
        counts[b.min(bins - 1)] += 1;
    }
    let ymax = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("Frame period (nominal {period:.0} µs; last bin: {hi:.0} µs and beyond)"),
            FONT,
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, (0.5..ymax).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("publish-to-publish interval (µs)")
        .y_desc("frames")
        .draw()?;
    chart.draw_series(
        counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(b, &c)| {
                let x = lo + b as f64 * width;
                Rectangle::new([(x, 0.5), (x + width, c as f64)], BLUE.mix(0.6).filled())
            }),
    )?;
    Ok(())
}

/// A grey-scale image of `values` (`side × side`), square pixels.
fn image(area: &Area<'_>, title: &str, values: &[f64], side: usize, diverging: bool) -> Res<()> {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let span = if diverging {
        lo.abs().max(hi.abs()).max(1e-12)
    } else {
        (hi - lo).max(1e-12)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, FONT)
        .margin(10)
        .x_label_area_size(25)
        .y_label_area_size(40)
        .build_cartesian_2d(0..side, 0..side)?;
    chart.configure_mesh().disable_mesh().draw()?;
    chart.draw_series(values.iter().enumerate().map(|(k, &v)| {
        let (x, y) = (k % side, side - 1 - k / side);
        let color = if diverging {
            let t = (v / span).clamp(-1.0, 1.0);
            let u = (255.0 * (1.0 - t.abs())) as u8;
            if t >= 0.0 {
                RGBColor(255, u, u)
            } else {
                RGBColor(u, u, 255)
            }
        } else {
            let g = (255.0 * ((v - lo) / span).clamp(0.0, 1.0).sqrt()) as u8;
            RGBColor(g, g, g)
        };
        Rectangle::new([(x, y), (x + 1, y + 1)], color.filled())
    }))?;
    Ok(())
}

fn rtf_plot(area: &Area<'_>, o: &Options, s: &Summary, c: &ControllerReport) -> Res<()> {
    let fs = o.rate_hz;
    let (gain, leak) = (f64::from(o.gain), f64::from(o.leak));
    let model: Vec<(f64, f64)> = (1..=400)
        .map(|k| {
            let f = 10f64.powf(k as f64 / 400.0 * (fs / 2.0).log10());
            (f, rtf::model(f, fs, gain, leak, s.model_delay))
        })
        .collect();
    let lo = model.iter().map(|p| p.1).fold(1.0, f64::min) * 0.5;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "Rejection transfer function (gain {}, leak {}, delay {} frame)",
                o.gain, o.leak, s.model_delay
            ),
            FONT,
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0..fs / 2.0).log_scale(), (lo.max(1e-4)..5.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("frequency (Hz)")
        .y_desc("|residual / open loop|")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            c.rtf.iter().copied().filter(|p| p.1 > 0.0),
            BLUE.mix(0.7),
        ))?
        .label("measured (7 low-order modes, Welch)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(model, RED.stroke_width(2)))?
        .label("integrator model")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    let bw = s.bandwidth_hz;
    chart
        .draw_series(LineSeries::new([(bw, lo.max(1e-4)), (bw, 5.0)], BLACK))?
        .label(format!("model bandwidth {bw:.0} Hz"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn budget_plot(area: &Area<'_>, s: &Summary) -> Res<()> {
    let Some(b) = &s.budget else {
        return Ok(());
    };
    let bars = [
        ("fitting", b.fitting_nm, BLUE),
        ("aliasing", b.aliasing_nm, CYAN),
        ("temporal", b.temporal_nm, GREEN),
        ("noise", b.noise_nm, MAGENTA),
        ("budget", b.total_nm, BLACK),
        ("measured", b.measured_nm, RED),
    ];
    let top = bars.iter().map(|b| b.1).fold(1.0, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "Error budget vs measured residual (t = {:.1}..{:.1} s)",
                b.window.0, b.window.1
            ),
            FONT,
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..bars.len() as f64, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len())
        .x_label_formatter(&|x| {
            let k = x.floor() as usize;
            bars.get(k).map_or(String::new(), |b| b.0.to_string())
        })
        .y_desc("nm RMS")
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(k, &(_, v, color))| {
        Rectangle::new(
            [(k as f64 + 0.15, 0.0), (k as f64 + 0.85, v)],
            color.mix(0.7).filled(),
        )
    }))?;
    Ok(())
}

/// Writes every plot into `dir`; returns the files.
pub fn write_all(dir: &Path, o: &Options, r: &Report, s: &Summary) -> Res<Vec<PathBuf>> {
    let c = &r.controller;
    let mut files = Vec::new();
    let mut svg = |name: &str, size: (u32, u32), draw: &dyn Fn(&Area<'_>) -> Res<()>| -> Res<()> {
        let path = dir.join(name);
        {
            let root = SVGBackend::new(&path, size).into_drawing_area();
            root.fill(&WHITE)?;
            draw(&root)?;
            root.present()?;
        }
        files.push(path);
        Ok(())
    };
    svg("residual.svg", (1000, 700), &|a| residual_plot(a, o, c))?;
    svg("latency.svg", (1000, 700), &|a| {
        let p = a.split_evenly((2, 1));
        latency_histogram(
            &p[0],
            "Frame publish -> controller holds it",
            &c.frame_latency_us,
            &s.frame_latency,
        )?;
        latency_histogram(
            &p[1],
            "Command sent -> mirror applied it",
            &c.command_latency_us,
            &s.command_latency,
        )
    })?;
    svg("jitter.svg", (1000, 400), &|a| jitter_plot(a, o, c))?;
    let side = (o.subapertures * o.pixels) as usize;
    // A quarter of the sensor (its upper-left, across the pupil's edge): one rectangle per
    // pixel keeps the file small enough to open anywhere.
    let crop = |frame: &[u16]| -> Vec<f64> {
        let q = side / 2;
        (0..q * q)
            .map(|k| f64::from(frame.get((k / q) * side + k % q).copied().unwrap_or(0)))
            .collect()
    };
    if !c.frame_open.is_empty() && !c.frame_closed.is_empty() {
        svg("frames.svg", (1000, 520), &|a| {
            let p = a.split_evenly((1, 2));
            image(
                &p[0],
                "Camera, open loop (upper-left quarter)",
                &crop(&c.frame_open),
                side / 2,
                false,
            )?;
            image(
                &p[1],
                "Camera, closed loop (same quarter)",
                &crop(&c.frame_closed),
                side / 2,
                false,
            )
        })?;
    }
    let n = o.actuators() as usize;
    if c.mirror.len() == n * n {
        let values: Vec<f64> = c.mirror.iter().map(|&v| f64::from(v)).collect();
        svg("mirror.svg", (560, 560), &|a| {
            image(
                a,
                "Mirror command, last frame (µm; red +, blue -)",
                &values,
                n,
                true,
            )
        })?;
    }
    svg("rtf.svg", (1000, 600), &|a| rtf_plot(a, o, s, c))?;
    if s.budget.is_some() {
        svg("budget.svg", (900, 500), &|a| budget_plot(a, s))?;
    }
    Ok(files)
}
