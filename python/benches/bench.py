"""shmkit from Python beside the standard library's primitives, in the same run.

Run: ``python python/benches/bench.py`` (after ``pip install ./python``). Prints the median
of several repeats per case, in ns per operation, and the ratios the package promises.

- ``lock``: an uncontended acquire + release pair, as method calls and as a ``with`` block,
  for a segment ``shmkit.Mutex``, ``multiprocessing.RLock`` and ``threading.RLock``;
- ``event round trip``: two processes ping-pong through a pair of events (``shmkit`` segment
  events, ``multiprocessing.Event``) or a ``multiprocessing.Pipe``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import shmkit

REPEATS = 7


def per_op(run: Callable[[int], None], n: int) -> float:
    """Median over REPEATS of the ns per operation of ``run(n)``."""
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter_ns()
        run(n)
        samples.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(samples)


def lock_methods(lock: Any) -> Callable[[int], None]:
    acquire, release = lock.acquire, lock.release

    def run(n: int) -> None:
        for _ in range(n):
            acquire()
            release()

    return run


def lock_with(lock: Any) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            with lock:
                pass

    return run


def _echo_shmkit(seg_name: str, n: int) -> None:
    seg = shmkit.Segment.open(seg_name)
    ping, pong = seg.event("ping"), seg.event("pong")
    for _ in range(n):
        ping.wait()
        ping.clear()
        pong.set()


def _echo_mp(ping: Any, pong: Any, n: int) -> None:
    for _ in range(n):
        ping.wait()
        ping.clear()
        pong.set()


def _echo_pipe(conn: Any, n: int) -> None:
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def round_trips(ping: Any, pong: Any, n: int) -> None:
    for _ in range(n):
        ping.set()
        pong.wait()
        pong.clear()


def event_rtt(kind: str, n: int) -> float:
    ctx = mp.get_context("spawn")
    if kind == "pipe":
        here, there = ctx.Pipe()
        p = ctx.Process(target=_echo_pipe, args=(there, n + 1))
        p.start()
        here.send_bytes(b"x")
        here.recv_bytes()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            here.send_bytes(b"x")
            here.recv_bytes()
        took = (time.perf_counter_ns() - t0) / n
        p.join()
        return took
    ping: Any
    pong: Any
    if kind == "shmkit":
        name = f"shmkit-pybench-{os.getpid()}"
        seg = shmkit.Segment.create(name, 1 << 20)
        ping, pong = seg.event("ping"), seg.event("pong")
        p = ctx.Process(target=_echo_shmkit, args=(name, n + 1))
    else:
        ping, pong = ctx.Event(), ctx.Event()
        p = ctx.Process(target=_echo_mp, args=(ping, pong, n + 1))
    p.start()
    round_trips(ping, pong, 1)
    t0 = time.perf_counter_ns()
    round_trips(ping, pong, n)
    took = (time.perf_counter_ns() - t0) / n
    p.join()
    if kind == "shmkit":
        shmkit.Segment.unlink(name)
    return took


def main() -> None:
    name = f"shmkit-pybench-lock-{os.getpid()}"
    seg = shmkit.Segment.create(name, 1 << 20)
    try:
        locks: dict[str, Any] = {
            "shmkit.Mutex (segment)": seg.mutex("m"),
            "multiprocessing.RLock": mp.get_context("spawn").RLock(),
            "threading.RLock": threading.RLock(),
        }
        n = 200_000
        rows: dict[str, tuple[float, float]] = {
            label: (per_op(lock_methods(lock), n), per_op(lock_with(lock), n))
            for label, lock in locks.items()
        }
    finally:
        shmkit.Segment.unlink(name)
    print(f"python {sys.version.split()[0]}; ns per acquire+release (median of {REPEATS})")
    for label, (methods, with_block) in rows.items():
        print(f"  {label:28s} methods {methods:7.1f}   with {with_block:7.1f}")
    ours = rows["shmkit.Mutex (segment)"]
    for peer in ("multiprocessing.RLock", "threading.RLock"):
        theirs = rows[peer]
        print(
            f"  ratio to {peer:22s} methods {ours[0] / theirs[0]:.2f}   with {ours[1] / theirs[1]:.2f}"
        )
    trips = 2_000
    rtt = {kind: event_rtt(kind, trips) for kind in ("shmkit", "multiprocessing", "pipe")}
    print(f"ns per event round trip between two processes ({trips} trips)")
    for kind, ns in rtt.items():
        print(f"  {kind:28s} {ns:9.0f}")
    print(
        f"  ratio to multiprocessing.Event {rtt['shmkit'] / rtt['multiprocessing']:.2f}"
        f"   to Pipe {rtt['shmkit'] / rtt['pipe']:.2f}"
    )


if __name__ == "__main__":
    main()
