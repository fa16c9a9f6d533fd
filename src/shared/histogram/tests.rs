//! Unit tests on a real (small) segment: quantiles within a bucket's width, windows, resets.

use super::*;
use crate::segment::{CreateOptions, SegmentError, SegmentObjects};

fn segment(tag: &str) -> Segment {
    let name = format!("shmkit-unit-histogram-{tag}-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
    let _ = Segment::unlink(&name);
    seg
}

#[test]
fn quantiles_overstate_by_at_most_one_bucket_and_the_max_is_exact() {
    let seg = segment("q");
    let h: Histogram = seg.create("h", &()).unwrap();
    assert_eq!(h.snapshot().quantile(0.5), None);
    for v in 1..=10_000u64 {
        h.record(v * 1000);
    }
    let s = h.snapshot();
    assert_eq!(s.count(), 10_000);
    assert_eq!(s.max(), 10_000_000);
    for (q, exact) in [(0.5, 5_000_000u64), (0.99, 9_900_000), (0.999, 9_990_000)] {
        let got = s.quantile(q).unwrap();
        assert!(
            got >= exact && got <= exact + exact / 16,
            "q {q}: {got} vs {exact}"
        );
    }
    assert_eq!(s.quantile(1.0), Some(10_000_000));
    let mean = s.mean().unwrap();
    assert!((mean - 5_000_500.0).abs() < 5_000_500.0 * 0.04, "{mean}");
}

#[test]
fn a_window_holds_the_samples_between_two_snapshots_and_none_across_a_reset() {
    let seg = segment("w");
    let h: Histogram = seg.create("h", &()).unwrap();
    for _ in 0..100 {
        h.record(10);
    }
    let before = h.snapshot();
    for _ in 0..5 {
        h.record(1_000_000);
    }
    let window = h.snapshot().since(&before).unwrap();
    assert_eq!(window.count(), 5);
    assert_eq!(window.quantile(0.5), Some(1_000_000));
    h.reset();
    let after = h.snapshot();
    assert_eq!((after.count(), after.max(), after.generation()), (0, 0, 2));
    assert!(after.since(&before).is_none());
    h.record_duration(Duration::from_micros(3));
    assert_eq!(h.snapshot().quantile(0.5), Some(3000));
}

#[test]
fn a_histogram_opened_by_name_is_the_same_counts() {
    let seg = segment("n");
    let a: Histogram = seg.open_or_create("lat", &()).unwrap();
    let b: Histogram = seg.open("lat").unwrap();
    a.record(7);
    b.record(7);
    assert_eq!(b.snapshot().buckets()[7], 2);
    assert!(matches!(
        seg.open::<crate::Event>("lat"),
        Err(SegmentError::KindMismatch { .. })
    ));
}
