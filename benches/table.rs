//! Named lookup and dictionary get, beside a `HashMap` behind a `std::sync::Mutex` in the
//! same run. Run: `cargo bench --bench table`.

use criterion::{criterion_group, criterion_main, Criterion};
use shmkit::{CreateOptions, Segment};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;

const N: u64 = 1000;

struct Temp(String, Segment);

impl Temp {
    fn new(tag: &str) -> Temp {
        let name = format!("shmkit-bench-table-{}-{tag}", std::process::id());
        let _ = Segment::unlink(&name);
        let seg =
            Segment::create(&name, &CreateOptions::new(16 << 20).table_capacity(2048)).unwrap();
        Temp(name, seg)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

fn named_lookup(c: &mut Criterion) {
    let t = Temp::new("lookup");
    for i in 0..N {
        t.1.event(&format!("name-{i}")).unwrap();
    }
    let map: Mutex<HashMap<String, u64>> =
        Mutex::new((0..N).map(|i| (format!("name-{i}"), i)).collect());
    let mut g = c.benchmark_group("named_lookup");
    g.bench_function("shmkit", |b| {
        b.iter(|| black_box(t.1.lookup(black_box("name-500")).unwrap()))
    });
    g.bench_function("std_hashmap", |b| {
        b.iter(|| black_box(map.lock().unwrap().get(black_box("name-500")).copied()))
    });
    g.finish();
}

fn dict_get(c: &mut Criterion) {
    let t = Temp::new("dict");
    let d = t.1.dict("d", N as u32).unwrap();
    for i in 0..N {
        d.insert(&format!("key-{i}"), &(i * 3)).unwrap();
    }
    let map: Mutex<HashMap<String, u64>> =
        Mutex::new((0..N).map(|i| (format!("key-{i}"), i * 3)).collect());
    let mut g = c.benchmark_group("dict_get");
    g.bench_function("shmkit", |b| {
        b.iter(|| black_box(d.get::<u64>(black_box("key-500")).unwrap()))
    });
    g.bench_function("std_hashmap", |b| {
        b.iter(|| black_box(map.lock().unwrap().get(black_box("key-500")).copied()))
    });
    g.finish();
}

criterion_group!(benches, named_lookup, dict_get);
criterion_main!(benches);
