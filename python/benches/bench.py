"""shmkit from Python beside the standard library's primitives, in the same run.

Run: ``python python/benches/bench.py`` (after ``pip install ./python``). Prints the median
of several repeats per case, in ns per operation, and the ratios the package promises.

- ``lock``: an uncontended acquire + release pair, as method calls and as a ``with`` block,
  for a segment ``shmkit.Mutex``, ``multiprocessing.RLock`` and ``threading.RLock``;
- ``event round trip``: two processes ping-pong through a pair of events (``shmkit`` segment
  events waiting with the default "spin_then_block" and with "block", ``multiprocessing.Event``)
  or a ``multiprocessing.Pipe``;
- ``frame read``: the newest frame of a ring as an ``ndarray`` (64 B and 8 MiB, zero-copy),
  beside ``multiprocessing.shared_memory`` + ``np.copy`` of the same 8 MiB;
- ``call``: a command-ring call to a server process running a Python handler, beside a
  ``multiprocessing`` manager proxy call (the Python system's mechanism);
- ``compat``: catkit's API on shmkit (``shmkit.compat``) beside the plain shmkit call it
  wraps and a ``multiprocessing`` manager proxy (catkit's mechanism): a named lock's
  acquire + release, a shared dict's get, a device attribute read through an enum member.
"""

from __future__ import annotations

import os

# numpy's BLAS threads would compete with the measured processes for the 2 cores (nothing
# here uses BLAS): keep it to one, in this process and the spawned ones.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import multiprocessing as mp  # noqa: E402
from multiprocessing import shared_memory
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import shmkit

REPEATS = 11


def per_op(run: Callable[[int], None], n: int) -> float:
    """Median over REPEATS of the ns per operation of ``run(n)``."""
    return interleaved({"run": run}, n)["run"]


def interleaved(runs: dict[str, Callable[[int], None]], n: int) -> dict[str, float]:
    """Median over REPEATS of the ns per operation of each ``run(n)``, the cases taking
    turns within every repeat so that a slow spell of the machine hits them alike."""
    samples: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(REPEATS):
        for label, run in runs.items():
            t0 = time.perf_counter_ns()
            run(n)
            samples[label].append((time.perf_counter_ns() - t0) / n)
    return {label: statistics.median(v) for label, v in samples.items()}


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


def _echo_shmkit(seg_name: str, wait: str, n: int) -> None:
    seg = shmkit.Segment.open(seg_name)
    ping, pong = seg.event("ping", wait), seg.event("pong", wait)
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


BATCHES = 5


def event_rtt(kind: str, n: int) -> float:
    """Median over BATCHES batches of ``n`` round trips of the ns per round trip, with one
    echo process for all of them."""
    ctx = mp.get_context("spawn")
    total = BATCHES * n
    samples = []
    if kind == "pipe":
        here, there = ctx.Pipe()
        p = ctx.Process(target=_echo_pipe, args=(there, total + 1))
        p.start()
        here.send_bytes(b"x")
        here.recv_bytes()
        for _ in range(BATCHES):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                here.send_bytes(b"x")
                here.recv_bytes()
            samples.append((time.perf_counter_ns() - t0) / n)
        p.join()
        return statistics.median(samples)
    ping: Any
    pong: Any
    name = f"shmkit-pybench-{os.getpid()}"
    if kind.startswith("shmkit"):
        wait = kind.split()[1]
        seg = shmkit.Segment.create(name, 1 << 20)
        ping, pong = seg.event("ping", wait), seg.event("pong", wait)
        p = ctx.Process(target=_echo_shmkit, args=(name, wait, total + 1))
    else:
        ping, pong = ctx.Event(), ctx.Event()
        p = ctx.Process(target=_echo_mp, args=(ping, pong, total + 1))
    p.start()
    round_trips(ping, pong, 1)
    for _ in range(BATCHES):
        t0 = time.perf_counter_ns()
        round_trips(ping, pong, n)
        samples.append((time.perf_counter_ns() - t0) / n)
    p.join()
    if kind.startswith("shmkit"):
        shmkit.Segment.unlink(name)
    return statistics.median(samples)


def frame_read(seg: shmkit.Segment, nbytes: int) -> Callable[[int], None]:
    """Reading the newest frame of a ring of ``nbytes`` frames as an ndarray, ``k`` times."""
    ring = seg.frame_ring(f"f{nbytes}", (nbytes,), np.uint8, slots=2)
    reader = ring.reader()
    ring.writer().write(np.zeros(nbytes, dtype=np.uint8))

    def run(k: int) -> None:
        for _ in range(k):
            frame = reader.latest()
            assert frame is not None
            frame.array[0]

    return run


def shm_copy(nbytes: int, n: int) -> float:
    shm = shared_memory.SharedMemory(create=True, size=nbytes)
    try:
        view: np.ndarray = np.ndarray((nbytes,), dtype=np.uint8, buffer=shm.buf)

        def run(k: int) -> None:
            for _ in range(k):
                np.copy(view)[0]

        took = per_op(run, n)
        del view
        return took
    finally:
        shm.close()
        shm.unlink()


def _serve(seg_name: str, n: int) -> None:
    server = shmkit.Segment.open(seg_name).command_ring("cmd", wait="spin_then_block").server()
    server.serve_many(lambda request: request, n)


def call_rtt(n: int) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    name = f"shmkit-pybench-cmd-{os.getpid()}"
    seg = shmkit.Segment.create(name, 1 << 20)
    try:
        ring = seg.command_ring(
            "cmd", slots=4, max_request=64, max_reply=64, wait="spin_then_block"
        )
        p = ctx.Process(target=_serve, args=(name, n + 100))
        p.start()
        while True:
            try:
                ring.call(b"warm", 1.0)
                break
            except shmkit.NoServerError:
                time.sleep(0.01)
        t0 = time.perf_counter_ns()
        for _ in range(n):
            ring.call(b"ping", 10.0)
        ours = (time.perf_counter_ns() - t0) / n
        for _ in range(99):
            ring.call(b"drain", 10.0)
        p.join(30)
    finally:
        shmkit.Segment.unlink(name)
    with ctx.Manager() as manager:
        proxy = manager.dict({"k": 1})
        t0 = time.perf_counter_ns()
        for _ in range(n):
            proxy.get("k")
        theirs = (time.perf_counter_ns() - t0) / n
    return ours, theirs


class _Echo(shmkit.Device):
    """A Python device whose method returns its argument."""

    def echo(self, value: int) -> int:
        return value


#: One device call per this many µs in the paced comparison (a controller commanding once
#: per frame computes in between; a server that sleeps when idle must then be woken).
PERIOD_US = 200


def _paced(call: Callable[[], object], n: int, period_us: int) -> float:
    """Mean ns of ``call()`` made ``n`` times, one every ``period_us`` (busy-waiting between)."""
    period = period_us * 1000
    clock = time.perf_counter_ns
    total = 0
    for _ in range(n):
        t0 = clock()
        call()
        total += clock() - t0
        while clock() - t0 < period:
            pass
    return total / n


def device_calls(n: int) -> dict[str, float]:
    """ns per call: a Python device method (small arguments); the Rust simulated mirror's
    ``get()`` called from Python and the same call from Rust, both paced one per PERIOD_US."""
    name = f"shmkit-pybench-dev-{os.getpid()}"
    seg = shmkit.Segment.create(name, 1 << 24)
    cache = shmkit.DeviceCache(seg)
    try:
        echo = cache.get("ECHO", _Echo).echo
        dm = cache.get("DM", shmkit.SimDm, {"actuators": 12})
        dm_get = dm.get
        echo(0)
        dm_get()

        def python_device(k: int) -> None:
            for i in range(k):
                echo(i)

        got = interleaved({"python": python_device}, n)
        from_python, from_rust = [], []
        for _ in range(REPEATS):
            from_python.append(_paced(dm_get, n // 4, PERIOD_US))
            from_rust.append(dm.client._time_get_from_rust(n // 4, PERIOD_US))
        got["sim_from_python"] = statistics.median(from_python)
        got["sim_from_rust"] = statistics.median(from_rust)
        return got
    finally:
        for dev in ("ECHO", "DM"):
            cache.close(dev)
        shmkit.Segment.unlink(name)


def dict_values(n: int) -> dict[str, float]:
    """ns per set+get of a small value: a `SharedDict` with the safe codec, the same with
    full pickle (``pickle=True``), and a `multiprocessing` manager dict."""
    name = f"shmkit-pybench-dict-{os.getpid()}"
    seg = shmkit.Segment.create(name, 1 << 22)
    value = {"gain": 0.4, "modes": [1, 2, 3], "label": "loop"}
    try:
        safe, full = seg.dict("d", 64), seg.dict("d", pickle=True)
        with mp.get_context("spawn").Manager() as manager:
            proxy = manager.dict()

            def runner(d: Any) -> Callable[[int], None]:
                def run(k: int) -> None:
                    for _ in range(k):
                        d["k"] = value
                        d["k"]

                return run

            return interleaved(
                {"safe": runner(safe), "pickle": runner(full), "manager": runner(proxy)}, n
            )
    finally:
        shmkit.Segment.unlink(name)


def compat_overhead(n: int) -> dict[str, dict[str, float]]:
    """ns per operation of `shmkit.compat` (catkit's API), the plain shmkit operation under
    it, and a manager proxy doing the same, interleaved."""
    from shmkit.compat.multiprocessing import MutexedNamespace, SharedMemoryManager
    from shmkit.compat.testbed import caching

    address = ("127.0.0.1", 47000 + os.getpid() % 1000)

    class Devices(caching.DeviceCacheEnum):
        DM = ("mirror", "dm_config")

    class Instrument(MutexedNamespace):
        pass

    instrument = Instrument(timeout=5)
    instrument.gain = 0.4

    @caching.devices.link(key=Devices.DM)
    def dm() -> Any:
        return instrument

    with SharedMemoryManager(address=address) as compat, mp.get_context("spawn").Manager() as manager:
        lock = compat.get_lock("bench", timeout=5)
        plain_lock = lock.get_mutex()
        proxy_lock = manager.RLock()
        shared = compat.MutexedDict()
        shared["k"] = {"gain": 0.4}
        plain_dict = shared.data.dict  # the segment dictionary under it
        proxy_dict = manager.dict({"k": {"gain": 0.4}})
        proxy_ns = manager.Namespace()
        proxy_ns.gain = 0.4

        def with_lock(lk: Any) -> Callable[[int], None]:
            def run(k: int) -> None:
                for _ in range(k):
                    with lk:
                        pass

            return run

        def get(d: Any, key: Any) -> Callable[[int], None]:
            def run(k: int) -> None:
                for _ in range(k):
                    d[key]

            return run

        def attribute(obj: Any) -> Callable[[int], None]:
            def run(k: int) -> None:
                for _ in range(k):
                    obj.gain

            return run

        with caching.devices:
            Devices.DM()
            return {
                "lock": interleaved({"compat": with_lock(lock), "plain": with_lock(plain_lock),
                                     "manager": with_lock(proxy_lock)}, n),
                "dict get": interleaved({"compat": get(shared, "k"), "plain": get(plain_dict, "k"),
                                         "manager": get(proxy_dict, "k")}, n),
                "device attribute": interleaved({"compat": attribute(Devices.DM), "plain": attribute(instrument),
                                                 "manager": attribute(proxy_ns)}, n),
            }


def _hosted_reads(n: int, member: Any, namespace: Any, out: Any) -> None:
    """In a client process: ns per attribute read of a device the manager hosts (through its
    enum member) and of a manager namespace proxy, interleaved."""
    def reads(obj: Any) -> Callable[[int], None]:
        def run(k: int) -> None:
            for _ in range(k):
                obj.gain

        return run

    out.update(interleaved({"compat": reads(member), "manager": reads(namespace)}, n))


def hosted_device_attribute(n: int) -> dict[str, float]:
    """ns per device attribute read from another process: a device hosted by a compat
    manager (catkit's shared device cache) against a ``multiprocessing`` manager's proxy."""
    from shmkit.compat.multiprocessing import Process, SharedMemoryManager

    import bench_devices

    with SharedMemoryManager(address=bench_devices.ADDRESS) as compat, mp.get_context("spawn").Manager() as manager:
        bench_devices.Devices.DM.gain = 0.4  # opens the device here, in the manager's process
        namespace = manager.Namespace()
        namespace.gain = 0.4
        out = compat.dict()
        child = Process(target=_hosted_reads, args=(n, bench_devices.Devices.DM, namespace, out))
        child.start()
        child.join()
        result = {"compat": out["compat"], "manager": out["manager"]}
    bench_devices.Devices.reset()
    return result


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
        runs: dict[str, Callable[[int], None]] = {}
        for label, lock in locks.items():
            runs[label + " methods"] = lock_methods(lock)
            runs[label + " with"] = lock_with(lock)
        medians = interleaved(runs, n)
        rows = {
            label: (medians[label + " methods"], medians[label + " with"]) for label in locks
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
    kinds = ("shmkit spin_then_block", "shmkit block", "multiprocessing", "pipe")
    rtt = {kind: event_rtt(kind, trips) for kind in kinds}
    print(f"ns per event round trip between two processes (median of {BATCHES} x {trips} trips)")
    for kind, ns in rtt.items():
        print(f"  {kind:28s} {ns:9.0f}")
    for kind in kinds[:2]:
        print(
            f"  {kind}: ratio to multiprocessing.Event {rtt[kind] / rtt['multiprocessing']:.3g}"
            f"   to Pipe {rtt[kind] / rtt['pipe']:.3g}"
        )
    name = f"shmkit-pybench-frames-{os.getpid()}"
    seg2 = shmkit.Segment.create(name, 1 << 26)
    try:
        reads = interleaved({"small": frame_read(seg2, 64), "big": frame_read(seg2, 8 << 20)}, 20_000)
        small, big = reads["small"], reads["big"]
    finally:
        shmkit.Segment.unlink(name)
    copy = shm_copy(8 << 20, 200)
    print("ns per newest-frame read as an ndarray")
    print(f"  shmkit 64 B {small:9.0f}   shmkit 8 MiB {big:9.0f}   shared_memory + np.copy 8 MiB {copy:9.0f}")
    print(f"  ratio 8 MiB / 64 B {big / small:.2f}   8 MiB / shared_memory copy {big / copy:.3f}")
    call_ns, proxy_ns = call_rtt(5_000)
    print("ns per call to a server process")
    print(f"  shmkit command ring {call_ns:9.0f}   multiprocessing manager proxy {proxy_ns:9.0f}")
    print(f"  ratio {call_ns / proxy_ns:.2f}")
    dev = device_calls(2_000)
    print("ns per device call (median of interleaved repeats)")
    print(f"  Python device method {dev['python']:9.0f}   manager proxy call {proxy_ns:9.0f}"
          f"   ratio {dev['python'] / proxy_ns:.3f}")
    print(f"  sim mirror get(), one per {PERIOD_US} µs: from Python {dev['sim_from_python']:9.0f}   from Rust "
          f"{dev['sim_from_rust']:9.0f}   ratio {dev['sim_from_python'] / dev['sim_from_rust']:.2f}")
    values = dict_values(5_000)
    print("ns per SharedDict set+get of a small dict value (median of interleaved repeats)")
    print(f"  safe codec {values['safe']:9.0f}   full pickle {values['pickle']:9.0f}"
          f"   manager dict {values['manager']:9.0f}")
    print(f"  ratio safe / pickle {values['safe'] / values['pickle']:.2f}"
          f"   safe / manager {values['safe'] / values['manager']:.3f}")
    compat = compat_overhead(5_000)
    print("ns per operation through shmkit.compat (catkit's API), the plain shmkit call it wraps, "
          "and a manager proxy")
    for op, row in compat.items():
        print(f"  {op:17s} compat {row['compat']:9.0f}   plain {row['plain']:9.0f}   manager {row['manager']:9.0f}"
              f"   compat / plain {row['compat'] / row['plain']:.2f}   compat / manager {row['compat'] / row['manager']:.3f}")
    hosted = hosted_device_attribute(2_000)
    print("ns per attribute read of a device hosted by the manager, from another process")
    print(f"  compat proxy {hosted['compat']:9.0f}   manager proxy {hosted['manager']:9.0f}"
          f"   ratio {hosted['compat'] / hosted['manager']:.3f}")


if __name__ == "__main__":
    main()
