"""`threading`'s documented behaviours, run against `threading.RLock` / `Event` / `Barrier`
and against shmkit's local and segment-backed objects side by side: every test passes for
all three, so a `threading` user cannot tell them apart except by their reach."""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import shmkit

KINDS = ["threading", "local", "segment"]


@pytest.fixture(params=KINDS)
def make(request: pytest.FixtureRequest, seg: shmkit.Segment) -> Iterator[dict[str, Any]]:
    kind = request.param
    names = iter(range(1_000_000))
    if kind == "threading":
        yield {
            "lock": threading.RLock,
            "event": threading.Event,
            "barrier": lambda n, action=None, timeout=None: threading.Barrier(n, action, timeout),
        }
    elif kind == "local":
        yield {
            "lock": shmkit.Mutex,
            "event": shmkit.Event,
            "barrier": lambda n, action=None, timeout=None: shmkit.Barrier(n, action, timeout),
        }
    else:
        yield {
            "lock": lambda: seg.mutex(f"m{next(names)}"),
            "event": lambda: seg.event(f"e{next(names)}"),
            "barrier": lambda n, action=None, timeout=None: seg.barrier(
                f"b{next(names)}", n, action, timeout
            ),
        }


def _in_thread(fn: Callable[[], Any]) -> Any:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(_outcome(fn)))
    t.start()
    t.join(30)
    assert not t.is_alive()
    result = out[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        return exc


# ------------------------------------------------------------------ RLock


def test_rlock_is_reentrant_and_released_as_often_as_acquired(make: dict[str, Any]) -> None:
    lock = make["lock"]()
    assert lock.acquire() is True
    assert lock.acquire() is True
    assert _in_thread(lambda: lock.acquire(blocking=False)) is False
    lock.release()
    assert _in_thread(lambda: lock.acquire(timeout=0.05)) is False
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def test_rlock_release_by_another_thread_is_a_runtime_error(make: dict[str, Any]) -> None:
    lock = make["lock"]()
    with lock:
        with pytest.raises(RuntimeError):
            _in_thread(lock.release)
    assert _in_thread(lambda: lock.acquire(blocking=False) and (lock.release() or True))


def test_rlock_timeouts_are_validated_as_threadings(make: dict[str, Any]) -> None:
    lock = make["lock"]()
    with pytest.raises(ValueError, match="timeout value must be positive"):
        lock.acquire(timeout=-2)
    with pytest.raises(ValueError, match="can't specify a timeout for a non-blocking call"):
        lock.acquire(False, 1)
    with pytest.raises(OverflowError):
        lock.acquire(timeout=threading.TIMEOUT_MAX + 1)
    with pytest.raises(ValueError):
        lock.acquire(timeout=float("nan"))
    assert lock.acquire(timeout=-1) is True  # -1: wait forever
    assert lock.acquire(True, threading.TIMEOUT_MAX) is True
    lock.release()
    lock.release()


def test_rlock_repr_has_threadings_shape(make: dict[str, Any]) -> None:
    lock = make["lock"]()
    assert re.match(r"<unlocked \S+ object owner=0 count=0.* at 0x[0-9a-f]+>$", repr(lock))
    with lock, lock:
        expected = rf"<locked \S+ object owner={threading.get_ident()} count=2.* at 0x[0-9a-f]+>$"
        assert re.match(expected, repr(lock)), repr(lock)


# ------------------------------------------------------------------ Event


def test_event_set_wait_clear(make: dict[str, Any]) -> None:
    event = make["event"]()
    assert event.is_set() is False
    assert event.wait(0.01) is False
    assert event.wait(-1) is False  # not positive: a poll
    waiter = threading.Thread(target=event.wait)
    waiter.start()
    event.set()
    waiter.join(30)
    assert not waiter.is_alive()
    assert event.is_set() is True and event.wait() is True and event.wait(0) is True
    event.clear()
    assert event.is_set() is False and event.wait(0) is False
    with pytest.raises(OverflowError):
        event.wait(threading.TIMEOUT_MAX + 1)


def test_event_repr_has_threadings_shape(make: dict[str, Any]) -> None:
    event = make["event"]()
    assert re.match(r"<\S+\.Event.* at 0x[0-9a-f]+: unset>$", repr(event)), repr(event)
    event.set()
    assert repr(event).endswith(": set>")


# ------------------------------------------------------------------ Barrier


def test_barrier_hands_out_every_index_once_and_runs_its_action_once(
    make: dict[str, Any],
) -> None:
    ran: list[int] = []
    barrier = make["barrier"](3, lambda: ran.append(1))
    assert (barrier.parties, barrier.n_waiting, barrier.broken) == (3, 0, False)
    indices: list[int] = []
    threads = [threading.Thread(target=lambda: indices.append(barrier.wait(30))) for _ in range(2)]
    for t in threads:
        t.start()
    indices.append(barrier.wait(30))
    for t in threads:
        t.join(30)
    assert sorted(indices) == [0, 1, 2] and ran == [1]


def test_barrier_timeout_breaks_it_until_reset(make: dict[str, Any]) -> None:
    barrier = make["barrier"](2)
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0.05)
    assert barrier.broken
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(1)
    barrier.reset()
    assert not barrier.broken
    with pytest.raises(OverflowError):
        barrier.wait(threading.TIMEOUT_MAX + 1)


def test_barrier_abort_releases_a_waiter_with_broken_barrier_error(make: dict[str, Any]) -> None:
    barrier = make["barrier"](2)
    outcome: list[BaseException | int] = []
    t = threading.Thread(target=lambda: outcome.append(_outcome(lambda: barrier.wait(30))))
    t.start()
    while barrier.n_waiting == 0:
        threading.Event().wait(0.001)
    assert re.search(r"waiters=1/2>$", repr(barrier)), repr(barrier)
    barrier.abort()
    t.join(30)
    assert isinstance(outcome[0], threading.BrokenBarrierError)
    assert repr(barrier).endswith(": broken>")


def test_barrier_repr_has_threadings_shape(make: dict[str, Any]) -> None:
    barrier = make["barrier"](3)
    assert re.match(r"<\S+\.Barrier.* at 0x[0-9a-f]+: waiters=0/3>$", repr(barrier)), repr(barrier)


# ------------------------------------------------------------------ all


def test_weak_references_work(make: dict[str, Any]) -> None:
    for obj in (make["lock"](), make["event"](), make["barrier"](2)):
        ref = weakref.ref(obj)
        assert ref() is obj
