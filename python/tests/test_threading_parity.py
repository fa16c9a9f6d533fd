"""shmkit's Mutex, Event and Barrier answer the same arguments the way `threading`'s do:
the same return values, or exceptions of the same type."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pytest

import shmkit

TIMEOUTS: list[Any] = [-1, 0, 0.01, -2, math.nan, math.inf, None]


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("returned", call())
    except Exception as e:  # noqa: BLE001 - compared by type
        return ("raised", type(e), str(e))


def family(o: Any) -> Any:
    """An outcome with our exception classes mapped to the `threading`/built-in class they
    subclass (e.g. NotOwnerError is a RuntimeError), messages dropped."""
    if o[0] == "raised":
        for base in (ValueError, OverflowError, RuntimeError, TypeError, threading.BrokenBarrierError):
            if issubclass(o[1], base):
                return ("raised", base)
        return ("raised", o[1])
    return o


def message(o: Any) -> str | None:
    return o[2] if o[0] == "raised" else None


@pytest.mark.parametrize("blocking", [True, False])
@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_mutex_acquire_arguments_match_rlock(blocking: bool, timeout: Any) -> None:
    if timeout is None:
        ours = outcome(lambda: shmkit.Mutex().acquire(blocking))
        theirs = outcome(lambda: threading.RLock().acquire(blocking))
    else:
        ours = outcome(lambda: shmkit.Mutex().acquire(blocking, timeout))
        theirs = outcome(lambda: threading.RLock().acquire(blocking, timeout))
    assert family(ours) == family(theirs)
    assert message(ours) == message(theirs), "the same words as CPython's"


@pytest.mark.parametrize("timeout", [0, -1, -5, 0.01, math.nan])
def test_event_wait_arguments_match_threading(timeout: Any) -> None:
    ours = outcome(lambda: shmkit.Event().wait(timeout))
    theirs = outcome(lambda: threading.Event().wait(timeout))
    assert family(ours) == family(theirs)


def test_release_unheld_matches_rlock() -> None:
    ours, theirs = outcome(shmkit.Mutex().release), outcome(threading.RLock().release)
    assert family(ours) == family(theirs) == ("raised", RuntimeError)
    assert str(message(ours)).startswith(str(message(theirs)))


@pytest.mark.parametrize("timeout", [0, -1, 0.01])
def test_a_lone_barrier_wait_with_a_timeout_breaks_as_threadings(timeout: float) -> None:
    ours = outcome(lambda: shmkit.Barrier(2).wait(timeout))
    theirs = outcome(lambda: threading.Barrier(2).wait(timeout))
    assert family(ours) == family(theirs)
