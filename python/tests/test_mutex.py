"""`shmkit.Mutex` behaves as `threading.RLock`, locally and in a segment."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import shmkit


@contextmanager
def held_by_another_thread(m: shmkit.Mutex) -> Iterator[None]:
    """`m` held by a helper thread for the duration of the block."""
    held, done = threading.Event(), threading.Event()

    def holder() -> None:
        with m:
            held.set()
            done.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    try:
        yield
    finally:
        done.set()
        t.join()


@pytest.fixture(params=["local", "segment"])
def mutex(request: pytest.FixtureRequest, seg: shmkit.Segment) -> shmkit.Mutex:
    return shmkit.Mutex() if request.param == "local" else seg.mutex("m")


def test_reentrant_acquire_counts_levels_and_release_undoes_them(mutex: shmkit.Mutex) -> None:
    assert mutex.acquire() is True
    assert mutex.acquire(timeout=0) is True
    assert mutex._recursion_count() == 2
    assert mutex._is_owned()
    mutex.release()
    assert mutex._is_owned()
    mutex.release()
    assert not mutex._is_owned()
    assert not mutex.locked()


def test_release_of_an_unheld_mutex_is_a_runtime_error(mutex: shmkit.Mutex) -> None:
    with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
        mutex.release()


def test_release_by_another_thread_is_refused_and_names_the_holder(mutex: shmkit.Mutex) -> None:
    mutex.acquire()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            mutex.release()
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            errors.append(e)
        assert mutex._recursion_count() == 0

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], shmkit.NotOwnerError)
    assert isinstance(errors[0], RuntimeError)
    assert "held by pid" in str(errors[0])
    assert mutex._is_owned(), "the refused release changed nothing"
    mutex.release()


def test_argument_checks_match_threading(mutex: shmkit.Mutex) -> None:
    with pytest.raises(ValueError, match="can't specify a timeout for a non-blocking call"):
        mutex.acquire(False, 1.0)
    with pytest.raises(ValueError, match="timeout value must be positive"):
        mutex.acquire(timeout=-2)
    with pytest.raises(ValueError):
        mutex.acquire(timeout=float("nan"))
    with pytest.raises(OverflowError):
        mutex.acquire(timeout=float("inf"))
    assert mutex.acquire(False) is True
    mutex.release()


def test_a_timeout_returns_false_and_with_raises_lock_timeout(mutex: shmkit.Mutex) -> None:
    with held_by_another_thread(mutex):
        start = time.monotonic()
        assert mutex.acquire(timeout=0.05) is False
        assert 0.05 <= time.monotonic() - start < 0.5
        assert mutex.acquire(blocking=False) is False


def test_a_positional_non_blocking_try_answers_like_threading(mutex: shmkit.Mutex) -> None:
    # `acquire(False)` has a C fast path of its own: free, reentered and taken all answer.
    with held_by_another_thread(mutex):
        assert mutex.acquire(False) is False
    assert mutex.acquire(False) is True
    assert mutex.acquire(False) is True  # reentered
    assert mutex._recursion_count() == 2
    mutex.release()
    mutex.release()
    assert not mutex.locked()


def test_with_raises_lock_timeout_naming_the_holder(seg: shmkit.Segment) -> None:
    m = seg.mutex("short", timeout=0.05)
    with held_by_another_thread(m):
        with pytest.raises(shmkit.LockTimeout) as info:
            with m:
                pass
    assert isinstance(info.value, TimeoutError)
    assert info.value.owner_tid != 0


def test_release_save_and_acquire_restore_round_trip_the_depth(mutex: shmkit.Mutex) -> None:
    for _ in range(3):
        mutex.acquire()
    state = mutex._release_save()
    assert state[0] == 3
    assert not mutex.locked()
    mutex._acquire_restore(state)
    assert mutex._recursion_count() == 3
    for _ in range(3):
        mutex.release()
    assert not mutex.locked()


def test_threading_condition_works_on_a_shmkit_mutex(mutex: shmkit.Mutex) -> None:
    cond = threading.Condition(mutex)  # type: ignore[arg-type]
    items: list[int] = []

    def producer() -> None:
        time.sleep(0.05)
        with cond:
            items.append(1)
            cond.notify()

    t = threading.Thread(target=producer)
    t.start()
    with cond:
        assert cond.wait_for(lambda: items, timeout=10)
        assert mutex._recursion_count() == 1
    t.join()


def test_threads_incrementing_under_the_mutex_lose_no_update(mutex: shmkit.Mutex) -> None:
    total = [0]

    def work() -> None:
        for _ in range(2000):
            with mutex:
                total[0] += 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert total[0] == 8000


def test_a_blocked_acquire_lets_other_python_threads_run(mutex: shmkit.Mutex) -> None:
    stop = threading.Event()
    ticks = [0]

    def ticker() -> None:
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    with held_by_another_thread(mutex):
        tk = threading.Thread(target=ticker)
        tk.start()
        assert mutex.acquire(timeout=0.2) is False
        stop.set()
        tk.join()
    assert ticks[0] > 20, "the GIL was held while waiting"
