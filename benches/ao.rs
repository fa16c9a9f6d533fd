//! What the simulated AO camera spends per frame at the bench's default size (8 m, 24 × 24
//! sub-apertures of 8 px, 25 × 25 actuators): the turbulence sampled on the grid, the mirror's
//! surface, the geometric slopes, the truth residual and the noisy spots. The camera renders
//! at 2 kHz on a 2-core machine beside the controller, so their sum must stay a small part of
//! the 500 µs frame period.

use criterion::{criterion_group, criterion_main, Criterion};
use shmkit_sim::ao::{AoConfig, AoModel};
use std::hint::black_box;

fn ao(c: &mut Criterion) {
    let mut model = AoModel::new(&AoConfig::default(), 24, 8).expect("the default model");
    let g = model.geometry().clone();
    let n = g.actuators();
    let mut commands = vec![0f32; n * n];
    for (k, &a) in g.active().iter().enumerate() {
        commands[a] = ((k * 37) % 11) as f32 * 0.01;
    }
    let mut w = model.grid_buffer();
    let mut s = vec![0f32; 2 * g.valid().len()];
    let mut image = vec![0u16; 192 * 192];
    let mut group = c.benchmark_group("ao_camera_frame");
    let mut t = 0.0;
    group.bench_function("atmosphere", |b| {
        b.iter(|| {
            t += 5e-4;
            model.atmosphere(black_box(t), &mut w)
        })
    });
    group.bench_function("mirror_surface", |b| {
        b.iter(|| model.add_mirror(black_box(&commands), -2.0, &mut w))
    });
    group.bench_function("slopes", |b| b.iter(|| model.slopes(black_box(&w), &mut s)));
    group.bench_function("residual_rms", |b| b.iter(|| g.rms(black_box(&w))));
    group.bench_function("render_spots", |b| {
        b.iter(|| model.render(black_box(&s), &mut image))
    });
    group.bench_function("whole_frame", |b| {
        b.iter(|| {
            t += 5e-4;
            model.wavefront(t, true, &commands, &mut w);
            black_box(g.rms(&w));
            model.slopes(&w, &mut s);
            model.render(&s, &mut image);
        })
    });
    group.finish();
}

criterion_group!(benches, ao);
criterion_main!(benches);
