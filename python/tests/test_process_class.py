"""`shmkit.Process`: exceptions come back on join, signals are named, timeouts said."""

from __future__ import annotations

import ctypes
import os
import signal
import time

import pytest

import shmkit


class Custom(Exception):
    pass


def raise_chained() -> None:
    try:
        raise KeyError("inner cause")
    except KeyError as e:
        raise Custom("outer failure") from e


def unpicklable() -> None:
    class Local(Exception):
        pass

    raise Local("cannot travel as itself")


def segfault() -> None:
    ctypes.string_at(0)


def sleep_long() -> None:
    time.sleep(30)


def uses_the_mutex(m: shmkit.Mutex, d: shmkit.SharedDict) -> None:
    with m:
        d["child"] = os.getpid()


def exits_three() -> None:
    raise SystemExit(3)


def test_a_chained_exception_is_re_raised_with_its_cause_and_child_traceback() -> None:
    p = shmkit.Process(target=raise_chained)
    p.start()
    with pytest.raises(Custom, match="outer failure") as info:
        p.join(30)
    cause = info.value.__cause__
    assert isinstance(cause, KeyError) and "inner cause" in str(cause)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "Raised in the child process" in notes and "raise_chained" in notes


def test_an_exception_that_cannot_be_rebuilt_is_wrapped_with_its_type_name() -> None:
    p = shmkit.Process(target=unpicklable)
    p.start()
    with pytest.raises(shmkit.ChildError) as info:
        p.join(30)
    assert "Local" in info.value.type_name and "cannot travel" in str(info.value)


def test_a_segfaulting_child_names_its_signal() -> None:
    p = shmkit.Process(target=segfault)
    p.start()
    with pytest.raises(shmkit.ChildKilled) as info:
        p.join(30)
    assert info.value.signal_name == "SIGSEGV" and info.value.signal_number == signal.SIGSEGV


def test_join_says_when_the_child_still_runs_and_a_kill_is_named() -> None:
    p = shmkit.Process(target=sleep_long)
    p.start()
    start = time.monotonic()
    with pytest.raises(shmkit.ChildStillRunning):
        p.join(0.2)
    assert time.monotonic() - start >= 0.2
    p.kill()
    with pytest.raises(shmkit.ChildKilled, match="SIGKILL"):
        p.join(30)


def test_segment_objects_reach_the_child_and_a_clean_exit_joins_quietly(
    seg: shmkit.Segment,
) -> None:
    m, d = seg.mutex("m"), seg.dict("d", 8)
    p = shmkit.Process(target=uses_the_mutex, args=(m, d))
    p.start()
    p.join(30)
    assert d["child"] == p.pid
    q = shmkit.Process(target=exits_three)
    q.start()
    with pytest.raises(shmkit.ChildExited) as info:
        q.join(30)
    assert info.value.code == 3
