"""Across real processes: owner death, pickling to a child, and Ctrl+C in every wait."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest

import shmkit


def _child_increments(m: shmkit.Mutex, e: shmkit.Event, n: int) -> None:
    for _ in range(n):
        with m:
            pass
    e.set()


def test_segment_objects_pickle_by_name_into_a_spawned_child(seg: shmkit.Segment) -> None:
    m, e = seg.mutex("m"), seg.event("done")
    again = pickle.loads(pickle.dumps(m))
    assert again.owner is None
    assert repr(again).split(" at ")[0] == repr(m).split(" at ")[0]  # all but the address
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_child_increments, args=(m, e, 100))
    p.start()
    assert e.wait(30)
    p.join(30)
    assert p.exitcode == 0
    with pytest.raises(RuntimeError, match="cannot be pickled"):
        pickle.dumps(shmkit.Mutex())


def _run(code: str, seg: shmkit.Segment) -> subprocess.Popen[str]:
    script = textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", script, seg.name],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_an_owner_killed_holding_the_mutex_raises_owner_died_elsewhere(
    seg: shmkit.Segment,
) -> None:
    seg.mutex("m")
    child = _run(
        """
        import sys, time, shmkit
        m = shmkit.Segment.open(sys.argv[1]).mutex("m")
        m.acquire(); m.acquire()
        print("held", flush=True)
        time.sleep(60)
        """,
        seg,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    m = seg.mutex("m")
    with pytest.raises(shmkit.OwnerDiedError) as info:
        m.acquire(timeout=5)
    assert info.value.previous_pid == child.pid
    assert m._is_owned() and m._recursion_count() == 1, "held by the caller to repair"
    m.make_consistent()
    m.release()
    assert m.acquire(timeout=0) is True
    m.release()


BLOCKED_IN = {
    "mutex": "seg.mutex('held').acquire(timeout=-1)",
    "event": "seg.event('never').wait()",
    "barrier": "seg.barrier('alone', 2).wait()",
    "frame": "seg.frame_ring('cam', (8,), 'uint8').reader().next()",
    "call": "seg.command_ring('dm', 2, 64, 64).call(b'never answered')",
    "serve": "seg.command_ring('idle', 2, 64, 64).server().serve(lambda r: r)",
    "value": "seg.value('busy').get()",
    "dict_get": "seg.dict('busy_dict')['k']",
    "dict_set": "seg.dict('busy_dict')['k'] = 2",
    "dict_lock": "seg.dict('busy_dict').lock().__enter__()",
    "join": "p = shmkit.Process(target=time.sleep, args=(30,)); p.start(); spawned.append(p); "
    "print('started', flush=True); p.join()",
}


@pytest.mark.parametrize("call", sorted(BLOCKED_IN))
def test_ctrl_c_interrupts_a_blocked_call_within_100ms(
    call: str, seg: shmkit.Segment, wait_until_asleep: Callable[[int], None]
) -> None:
    held = seg.mutex("held")
    held.acquire()
    busy = seg.value("busy", "f8").mutex
    busy.acquire()
    busy_dict = seg._raw_dict("busy_dict", 8)
    busy_dict.set("k", b"")
    busy_dict.acquire()
    dm = seg.command_ring("dm", 2, 64, 64)
    _server = dm.server()  # attached, never serving: a call waits for its answer
    child = _run(
        f"""
        import sys, time, shmkit
        seg = shmkit.Segment.open(sys.argv[1])
        spawned = []
        print("ready", flush=True)
        if {call!r} != "join":
            print("started", flush=True)
        try:
            {BLOCKED_IN[call]}
            print("returned", flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        for p in spawned:
            p.kill()
        """,
        seg,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    assert child.stdout.readline().strip() == "started"
    wait_until_asleep(child.pid)  # inside the call, not before it
    os.kill(child.pid, signal.SIGINT)
    sent = time.monotonic()
    line = child.stdout.readline().strip()
    took = time.monotonic() - sent
    child.wait(10)
    held.release()
    busy.release()
    busy_dict.release()
    assert line == "interrupted"
    assert took < 0.1, f"KeyboardInterrupt {took * 1000:.0f} ms after SIGINT"


def test_the_package_says_its_version() -> None:
    import importlib.metadata
    import tomllib
    from pathlib import Path

    import shmkit

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["version"]
    assert shmkit.__version__ == declared == importlib.metadata.version("shmkit")
