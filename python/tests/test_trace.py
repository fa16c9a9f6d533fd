"""Tracing from Python: spans (also when the block raises), instants and counters with their
names, threads named by their ``threading`` names, several processes into one buffer, the
module-level functions doing nothing until started, pickling."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import shmkit


@pytest.fixture
def traced(seg: shmkit.Segment) -> Iterator[shmkit.TraceBuffer]:
    buffer = shmkit.trace.start(seg, events=1024, names=64)
    yield buffer
    shmkit.trace.stop()


def _user(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] not in ("thread_name", "process_name")]


def test_spans_instants_and_counters_are_recorded_with_their_names(
    traced: shmkit.TraceBuffer,
) -> None:
    before = time.monotonic_ns()
    with shmkit.trace.span("centroid", frame=7):
        shmkit.trace.instant("flux-low")
        shmkit.trace.counter("flux", 2.5)
    after = time.monotonic_ns()
    events = _user(traced.records())
    assert [e["kind"] for e in events] == ["instant", "counter", "span"]
    span = events[2]
    assert (span["name"], span["arg"]) == ("centroid", 7)
    assert before <= span["ts_ns"] and span["ts_ns"] + span["duration_ns"] <= after
    assert events[1]["value"] == 2.5 and events[1]["name"] == "flux"
    assert all(e["pid"] == os.getpid() and e["tid"] == threading.get_native_id() for e in events)


def test_a_span_is_recorded_when_its_block_raises(traced: shmkit.TraceBuffer) -> None:
    with pytest.raises(KeyError):
        with shmkit.trace.span("failing"):
            raise KeyError("x")
    assert [e["name"] for e in _user(traced.records())] == ["failing"]


def test_threads_are_named_by_their_threading_names(traced: shmkit.TraceBuffer) -> None:
    def work() -> None:
        with shmkit.trace.span("work"):
            pass

    t = threading.Thread(target=work, name="centroider")
    t.start()
    t.join()
    names = [r for r in traced.records() if r["kind"] == "thread_name"]
    assert any(r["name"] == "centroider" for r in names), names


def test_decorated_functions_are_spans(traced: shmkit.TraceBuffer) -> None:
    @shmkit.trace.traced()
    def reconstruct(x: int) -> int:
        return x * 2

    assert reconstruct(4) == 8
    spans = [e for e in _user(traced.records()) if e["kind"] == "span"]
    assert [s["name"] for s in spans] == [reconstruct.__wrapped__.__qualname__]  # type: ignore[attr-defined]


def test_nothing_is_recorded_before_start_or_after_stop(seg: shmkit.Segment) -> None:
    shmkit.trace.stop()
    with shmkit.trace.span("ignored"):
        shmkit.trace.counter("ignored", 1.0)
    assert shmkit.trace.current() is None
    buffer = seg.trace_buffer("trace", 64, 8)
    assert buffer.recorded == 0


def _trace_from_child(segment: str, k: int, n: int) -> None:
    shmkit.trace.start(shmkit.Segment.open(segment), events=1024, names=64, process_name=f"child-{k}")
    for i in range(n):
        with shmkit.trace.span("step", frame=i):
            pass


def test_several_processes_trace_into_one_buffer(traced: shmkit.TraceBuffer, seg: shmkit.Segment) -> None:
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_trace_from_child, args=(seg.name, k, 100)) for k in range(2)]
    for c in children:
        c.start()
    for c in children:
        c.join(60)
        assert c.exitcode == 0
    records = traced.records()
    processes = {r["pid"]: r["name"] for r in records if r["kind"] == "process_name"}
    assert sorted(processes.values()) == ["child-0", "child-1"]
    for pid in processes:
        frames = [r["arg"] for r in records if r["pid"] == pid and r["name"] == "step"]
        assert frames == list(range(100))
    assert traced.dropped == 0


def test_a_buffer_pickles_by_name_and_size(traced: shmkit.TraceBuffer) -> None:
    again = pickle.loads(pickle.dumps(traced))
    again.instant("from-the-copy")
    assert any(r["name"] == "from-the-copy" for r in traced.records())
    assert again.events == 1024


def test_bad_names_are_value_errors(traced: shmkit.TraceBuffer) -> None:
    with pytest.raises(ValueError, match="56"):
        traced.instant("x" * 57)
    with pytest.raises(ValueError):
        traced.instant("")
