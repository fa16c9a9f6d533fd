"""catkit's ``catkit.multiprocessing`` behaviours (v1.3.0, read from its source) across
processes, on shmkit: each test names the behaviour catkit code relies on."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shmkit.compat.multiprocessing import (
    DEFAULT_TIMEOUT,
    Mutex,
    Process,
    SharedMemoryManager,
    TimeoutError,
)
from shmkit.compat.testbed.caching import MutexedDict

ADDRESS = ("127.0.0.1", 46000 + os.getpid() % 1000)


@pytest.fixture()
def manager() -> Iterator[SharedMemoryManager]:
    with SharedMemoryManager(address=ADDRESS, timeout=2) as m:
        yield m


def test_a_local_function_is_a_process_target(manager: SharedMemoryManager) -> None:
    results = manager.dict()
    factor = 7

    def local(x: int) -> None:  # a closure: plain pickle refuses it, catkit's dill does not
        results["product"] = x * factor

    p = Process(target=local, args=(6,))
    p.start()
    p.join()
    assert results["product"] == 42


class Boom(Exception):
    pass


def _raise() -> None:
    raise Boom("from the child")


def _exit(code: int) -> None:
    os._exit(code)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_join_raises_the_childs_own_exception() -> None:
    p = Process(target=_raise)
    p.start()
    with pytest.raises(Boom, match="from the child"):
        p.join()


def test_join_names_a_non_zero_exit_code_and_a_timeout_as_catkit_does() -> None:
    p = Process(target=_exit, args=(3,), name="exits")
    p.start()
    with pytest.raises(Exception, match=r"Child process \('exits' with pid: '\d+'\) exited with non-zero exitcode: '3'"):
        p.join()
    p = Process(target=_sleep, args=(5,), name="sleeps")
    p.start()
    with pytest.raises(TimeoutError, match=r"The process 'sleeps' on PID \d+ failed to join after 0.2 seconds"):
        p.join(0.2)
    p.kill()


def test_connect_is_refused_without_a_started_manager_and_works_from_a_child() -> None:
    address = ("127.0.0.1", ADDRESS[1] + 1)
    with pytest.raises(ConnectionRefusedError):
        SharedMemoryManager(address=address).connect()
    with SharedMemoryManager(address=address) as m:
        m.get_event("started").set()
        p = Process(target=_child_sets_event, args=(address,))
        p.start()
        p.join()
        assert m.get_event("child").is_set()
    with pytest.raises(ConnectionRefusedError):
        SharedMemoryManager(address=address).connect()


def _child_sets_event(address: tuple[str, int]) -> None:
    m = SharedMemoryManager(address=address)
    m.connect()
    assert m.get_event("started").is_set()
    m.get_event("child").set()


def _child_lock_timeout(address: tuple[str, int], out: Any) -> None:
    m = SharedMemoryManager(address=address)
    m.connect()
    out["timeout"] = m.get_lock("kept").timeout
    out["barrier"] = m.get_barrier("b", 5).parties


def test_a_named_lock_keeps_its_creators_timeout_and_a_barrier_its_parties(manager: SharedMemoryManager) -> None:
    lock = manager.get_lock("kept", timeout=5)
    assert lock.timeout == 5
    assert manager.get_barrier("b", 2).parties == 2
    out = manager.dict()
    p = Process(target=_child_lock_timeout, args=(ADDRESS, out))
    p.start()
    p.join()
    assert out["timeout"] == 5, "a child's get_lock gets the creator's timeout"
    assert out["barrier"] == 2, "barriers are keyed by name only"


def test_a_barrier_with_a_missing_party_breaks_after_the_default_timeout() -> None:
    assert SharedMemoryManager(address=ADDRESS).timeout == DEFAULT_TIMEOUT == 60
    with SharedMemoryManager(address=ADDRESS, timeout=0.3) as m:
        barrier = m.get_barrier("lonely", 2)
        assert barrier.timeout == 0.3
        start = time.monotonic()
        with pytest.raises(threading.BrokenBarrierError):
            barrier.wait()
        assert time.monotonic() - start < 5


def _hold(lock: Any, held: Any, release: Any) -> None:
    with lock:
        held.set()
        release.wait(30)


def test_a_held_lock_raises_timeout_error_with_catkits_message(manager: SharedMemoryManager) -> None:
    lock = manager.get_lock("held", timeout=0.3)
    held, release = manager.Event(), manager.Event()
    p = Process(target=_hold, args=(lock, held, release))
    p.start()
    assert held.wait(30)
    with pytest.raises(TimeoutError, match=r"Failed to acquire lock after 0.3s"):
        lock.acquire()
    with pytest.raises(multiprocessing.TimeoutError):
        lock.acquire(timeout=0.05)
    with pytest.raises(builtins_timeout()):
        lock.acquire(timeout=0.05)
    assert lock.acquire(timeout=0.05, raise_on_fail=False) is False
    release.set()
    p.join()
    with lock as locked:
        assert locked is True


def builtins_timeout() -> type[BaseException]:
    import builtins

    return builtins.TimeoutError


def test_mutex_wraps_a_lock_shares_it_and_compares_by_it() -> None:
    rlock = threading.RLock()
    a = Mutex(lock=rlock, timeout=3)
    b = Mutex(lock=a)
    assert a.get_mutex() is rlock and b.get_mutex() is rlock
    assert b.timeout == 3 and a == b and hash(a) == hash(b)
    assert a != Mutex()
    assert Mutex().timeout == 60
    with pytest.raises(TypeError):
        Mutex(lock=object())


def _hold_dict(d: Any, held: Any, release: Any) -> None:
    with d:
        d["from child"] = 1
        held.set()
        release.wait(30)


def test_a_shared_mutexed_dict_held_elsewhere_raises_after_its_timeout(manager: SharedMemoryManager) -> None:
    d = manager.MutexedDict(timeout=0.3)
    held, release = manager.Event(), manager.Event()
    p = Process(target=_hold_dict, args=(d, held, release))
    p.start()
    assert held.wait(30)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="Failed to acquire lock"):
        d["x"] = 1
    assert 0.25 < time.monotonic() - start < 5
    release.set()
    p.join()
    assert d["from child"] == 1


def test_unnamed_mutexed_dicts_are_distinct_and_take_any_keys(manager: SharedMemoryManager) -> None:
    a, b = MutexedDict(), MutexedDict()
    a[1] = "one"
    assert 1 not in b
    shared, other = manager.MutexedDict({(1, 2): "tuple"}), manager.MutexedDict()
    shared[3.5] = [1]
    assert shared[(1, 2)] == "tuple" and shared[3.5] == [1] and len(other) == 0
    assert sorted(shared.keys(), key=str) == [(1, 2), 3.5]
    assert isinstance(shared.items(), list)


def _insert(d: Any, keys: Any) -> None:
    for k in keys:
        d[k] = f"from child {k}"


def test_a_shared_dict_keeps_insertion_order_across_processes(manager: SharedMemoryManager) -> None:
    d = manager.dict()
    keys: list[Any] = ["zeta", 3, "alpha", (1, "t"), "mid", 2.5, "b", "\x02order", "\x01x"]
    for k in keys[:4]:
        d[k] = k
    child = Process(target=_insert, args=(d, keys[4:]))
    child.start()
    child.join()
    assert d.keys() == keys and list(d) == keys
    d["zeta"] = "updated"  # an update keeps its place
    del d[3]
    d[3] = "again"  # a deleted key comes back last
    expected = [k for k in keys if k != 3] + [3]
    assert d.keys() == expected
    assert [k for k, _ in d.items()] == expected and d.values()[0] == "updated"
    assert d.popitem() == (3, "again"), "LIFO, as a dict's popitem"
    assert len(d) == len(keys) - 1 and d["\x02order"] == "from child \x02order"


def _append(lst: Any, value: Any, ns: Any) -> None:
    lst.append(value)
    value_obj = ns
    value_obj.value += 1


def test_manager_value_list_and_namespace_are_shared_with_children(manager: SharedMemoryManager) -> None:
    lst, counter = manager.list([1]), manager.Value("i", 0)
    p = Process(target=_append, args=(lst, 2, counter))
    p.start()
    p.join()
    assert list(lst) == [1, 2] and counter.value == 1
    ns = manager.Namespace(a=1)
    ns.b = 2
    assert (ns.a, ns.b) == (1, 2)


def test_register_makes_a_create_method(manager: SharedMemoryManager) -> None:
    class Local(SharedMemoryManager):
        pass

    Local.register("MyDict", callable=MutexedDict)
    assert not hasattr(SharedMemoryManager, "MyDict"), "registration stays with the subclass"
    with Local(address=("127.0.0.1", ADDRESS[1] + 2)) as m:
        d = m.MyDict(timeout=1)  # type: ignore[attr-defined]
        d["k"] = 1
        assert d.shared and d["k"] == 1


def test_a_copy_of_a_started_manager_in_another_process_does_not_remove_its_segment(
    manager: SharedMemoryManager,
) -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(manager))
    copy.shutdown()
    del copy
    SharedMemoryManager(address=ADDRESS).connect()
