"""`shmkit.Event` and `shmkit.Barrier` behave as `threading.Event` and `threading.Barrier`."""

from __future__ import annotations

import threading
import time

import pytest

import shmkit


@pytest.fixture(params=["local", "segment"])
def event(request: pytest.FixtureRequest, seg: shmkit.Segment) -> shmkit.Event:
    return shmkit.Event() if request.param == "local" else seg.event("e")


def test_event_wait_returns_the_flag_and_nonpositive_timeouts_poll(event: shmkit.Event) -> None:
    assert event.wait(0) is False
    assert event.wait(-1) is False
    start = time.monotonic()
    assert event.wait(0.05) is False
    assert time.monotonic() - start >= 0.05
    event.set()
    assert event.is_set() and event.wait() is True and event.wait(0) is True
    event.clear()
    assert not event.is_set()


def test_set_then_clear_at_once_wakes_every_waiter(event: shmkit.Event) -> None:
    results: list[bool] = []
    waiters = [threading.Thread(target=lambda: results.append(event.wait(10))) for _ in range(4)]
    for w in waiters:
        w.start()
    time.sleep(0.1)
    event.set()
    event.clear()
    for w in waiters:
        w.join()
    assert results == [True] * 4


def barrier_for(kind: str, seg: shmkit.Segment, parties: int, **kw: object) -> shmkit.Barrier:
    if kind == "local":
        return shmkit.Barrier(parties, **kw)  # type: ignore[arg-type]
    return seg.barrier(f"b{parties}", parties, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["local", "segment"])
def test_barrier_returns_distinct_indexes_and_runs_the_action_before_release(
    kind: str, seg: shmkit.Segment
) -> None:
    runs: list[int] = []
    released: list[int] = []
    lock = threading.Lock()

    def action() -> None:
        with lock:
            assert not released, "a party was released before the action"
            runs.append(1)

    b = barrier_for(kind, seg, 3, action=action)
    indexes: list[int] = []

    def party() -> None:
        i = b.wait(10)
        with lock:
            indexes.append(i)
            released.append(i)

    threads = [threading.Thread(target=party) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(indexes) == [0, 1, 2]
    assert runs == [1]
    assert (b.parties, b.n_waiting, b.broken) == (3, 0, False)


@pytest.mark.parametrize("kind", ["local", "segment"])
def test_an_action_that_raises_breaks_the_barrier_and_reaches_the_leader(
    kind: str, seg: shmkit.Segment
) -> None:
    class Calibration(Exception):
        pass

    def action() -> None:
        raise Calibration("lost")

    b = barrier_for(kind, seg, 2, action=action)
    outcome: list[BaseException] = []

    def party() -> None:
        try:
            b.wait(10)
        except BaseException as e:  # noqa: BLE001
            outcome.append(e)

    t = threading.Thread(target=party)
    t.start()
    while b.n_waiting == 0:
        time.sleep(0.001)
    with pytest.raises(Calibration):
        b.wait(10)
    t.join()
    assert isinstance(outcome[0], threading.BrokenBarrierError)
    assert b.broken
    b.reset()
    assert not b.broken


@pytest.mark.parametrize("kind", ["local", "segment"])
def test_a_timeout_breaks_the_barrier_with_a_broken_barrier_error(
    kind: str, seg: shmkit.Segment
) -> None:
    b = barrier_for(kind, seg, 2)
    with pytest.raises(threading.BrokenBarrierError) as info:
        b.wait(0.05)
    assert isinstance(info.value, shmkit.BarrierTimeout)
    assert b.broken
    with pytest.raises(shmkit.BrokenBarrierError):
        b.wait(1)
    b.reset()
    b.abort()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(1)


def test_barrier_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        shmkit.Barrier(0)


def test_the_wait_strategy_is_checked_and_every_strategy_waits_alike(seg: shmkit.Segment) -> None:
    with pytest.raises(ValueError, match="spin_then_block"):
        seg.event("e", wait="busy")
    for wait in ("spin_then_block", "block", "spin"):
        e = seg.event(f"e-{wait}", wait)
        threading.Timer(0.05, e.set).start()
        assert e.wait(10) is True
        assert shmkit.Event(wait).wait(0.01) is False
