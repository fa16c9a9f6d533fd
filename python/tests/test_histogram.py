"""Shared histograms from Python: durations in seconds, quantiles, windows, several processes
adding up exactly, pickling by name."""

from __future__ import annotations

import multiprocessing
import pickle
import time

import pytest

import shmkit


def _record_from_child(segment: str, k: int, n: int) -> None:
    h = shmkit.Segment.open(segment).histogram("lat")
    for i in range(n):
        h.record_ns(1_000 * (1 + (i + k) % 100))


def test_samples_from_several_processes_add_up_exactly(seg: shmkit.Segment) -> None:
    h = seg.histogram("lat")
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_record_from_child, args=(seg.name, k, 5_000)) for k in range(3)]
    for c in children:
        c.start()
    for c in children:
        c.join(60)
        assert c.exitcode == 0
    s = h.snapshot()
    assert s.count == 15_000
    assert s.max_ns == 100_000
    p50 = s.quantile_ns(0.5)
    assert p50 is not None and 50_000 <= p50 <= 50_000 * 17 // 16


def test_durations_are_seconds_and_a_timed_block_is_recorded(seg: shmkit.Segment) -> None:
    h = seg.histogram("t")
    h.record(0.002)
    with h.time():
        time.sleep(0.001)
    with pytest.raises(KeyError):
        with h.time():
            raise KeyError("the block's exception propagates; its time is still recorded")
    s = h.snapshot()
    assert s.count == 3
    assert s.max >= 0.002
    q = s.quantile(1.0)
    assert q is not None and q >= 0.001
    with pytest.raises(ValueError):
        h.record(-1.0)
    with pytest.raises(ValueError):
        s.quantile(1.5)


def test_a_window_and_a_reset(seg: shmkit.Segment) -> None:
    h = seg.histogram("w")
    h.record_ns(10)
    before = h.snapshot()
    h.record_ns(5_000)
    window = h.snapshot().since(before)
    assert window is not None and window.count == 1
    h.reset()
    after = h.snapshot()
    assert (after.count, after.generation, after.stable) == (0, 2, True)
    assert after.since(before) is None
    assert after.quantile(0.5) is None and after.mean is None


def test_a_histogram_pickles_by_name(seg: shmkit.Segment) -> None:
    h = seg.histogram("p")
    h.record_ns(7)
    again = pickle.loads(pickle.dumps(h))
    again.record_ns(7)
    assert h.snapshot().buckets[7] == 2
    assert "2 samples" in repr(h)
