"""A shared ``SharedSingletonDeviceCache``: the cache and its devices live in the process that
started the manager (catkit's server) and every process reaches them — ported from catkit
v1.3.0's ``test_shared_device_cache.py`` (its remote half). Where catkit asserts it got a
``BaseProxy``, these assert the calls ran in the manager's process; the starting process holds
the real objects (it *is* the server here, where catkit forks one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from catkit_instrument import SimNPointLC400

from shmkit.compat._server import ObjectProxy
from shmkit.compat.multiprocessing import Process, SharedMemoryManager, TimeoutError
from shmkit.compat.testbed.caching import DeviceCacheEnum, SharedSingletonDeviceCache

TIMEOUT = 2
# One port per test run, the same in the children this module spawns (they inherit it).
PORT = int(os.environ.setdefault("SHMKIT_TEST_DEVICE_SERVER_PORT", str(36007 + os.getpid() % 1000)))


# Module level, so that spawned children import the same definitions (as in catkit's test).
class RemoteDeviceCache(SharedSingletonDeviceCache):
    instance = None
    callbacks = {}
    aliases = {}
    address = ("127.0.0.1", PORT)
    timeout = TIMEOUT


SharedMemoryManager.register("RemoteDeviceCache", callable=RemoteDeviceCache, create_method=True)


class RemoteDevice(DeviceCacheEnum):
    DEV_A = ("description", "config_id", RemoteDeviceCache)


class RemoteDeviceB(DeviceCacheEnum):
    DEV_A = ("description", "config_id", RemoteDeviceCache)


class RemoteDeviceC(DeviceCacheEnum):
    DEV_B = ("B", "config_id_B", RemoteDeviceCache)
    DEV_C = ("C", "config_id_C", RemoteDeviceCache)
    DEV_D = ("D", "config_id_D", RemoteDeviceCache)


class Dev(SimNPointLC400):
    def getpid(self) -> int:
        return os.getpid()


@RemoteDevice.DEV_A.link(aliases=("a",))
def foo() -> Dev:
    return Dev(config_id="npoint_tiptilt_lc_400", com_id="dummy", timeout=TIMEOUT)


@RemoteDeviceC.DEV_B.link()
def foo_b() -> Dev:
    return Dev(config_id="npoint_tiptilt_lc_400", com_id="b", timeout=TIMEOUT)


@RemoteDeviceC.DEV_C.link()
def foo_c() -> Dev:
    return Dev(config_id="npoint_tiptilt_lc_400", com_id="c", timeout=TIMEOUT)


@RemoteDeviceC.DEV_D.link()
def foo_d() -> Dev:
    return Dev(config_id="npoint_tiptilt_lc_400", com_id="d", timeout=TIMEOUT)


@pytest.fixture()
def manager() -> Iterator[SharedMemoryManager]:
    with SharedMemoryManager(address=RemoteDeviceCache.address, timeout=TIMEOUT) as m:
        yield m
    for enum in (RemoteDevice, RemoteDeviceB, RemoteDeviceC):
        enum.reset()


def _pid_of_device_call(result: Any) -> None:
    result["pid"] = RemoteDeviceCache()[RemoteDevice.DEV_A].getpid()
    result["proxied"] = isinstance(RemoteDeviceCache()[RemoteDevice.DEV_A], ObjectProxy)
    result["cache proxied"] = isinstance(RemoteDeviceCache(), ObjectProxy)


def test_device_methods_run_in_the_managers_process(manager: SharedMemoryManager) -> None:
    result = manager.dict()
    p = Process(target=_pid_of_device_call, args=(result,))
    p.start()
    p.join()
    assert result["pid"] == manager.getpid() == os.getpid()
    assert result["proxied"] and result["cache proxied"]
    assert RemoteDeviceCache() is RemoteDeviceCache()
    assert manager.RemoteDeviceCache() is RemoteDeviceCache()  # type: ignore[attr-defined]


def _from_child(parent_pid: int) -> None:
    assert RemoteDeviceCache()[RemoteDevice.DEV_A].parent_attr == parent_pid
    RemoteDeviceCache()[RemoteDevice.DEV_A].child_attr = os.getpid()


def test_from_child_process(manager: SharedMemoryManager) -> None:
    RemoteDeviceCache()[RemoteDevice.DEV_A].parent_attr = os.getpid()
    child = Process(target=_from_child, args=(os.getpid(),))
    child.start()
    child.join()
    assert RemoteDevice.DEV_A.child_attr == child.pid


def _client_lock_timeout(parent_pid: int) -> None:
    with pytest.raises(TimeoutError, match="Failed to acquire lock"):
        assert RemoteDevice.DEV_A.acquire()
    with pytest.raises(TimeoutError, match="Failed to acquire lock"):
        assert RemoteDevice.DEV_A.parent_attr == parent_pid
    with pytest.raises(TimeoutError, match="Failed to acquire lock"):
        RemoteDevice.DEV_A.child_attr = os.getpid()


def _client_lock(parent_pid: int) -> None:
    with RemoteDevice.DEV_A as is_locked:
        assert is_locked
    assert RemoteDevice.DEV_A.parent_attr == parent_pid
    RemoteDevice.DEV_A.child_attr = os.getpid()


def test_enum_api_from_child_process(manager: SharedMemoryManager) -> None:
    RemoteDevice.DEV_A.parent_attr = os.getpid()

    client = Process(target=_client_lock_timeout, args=(os.getpid(),))
    with RemoteDevice.DEV_A as is_locked:
        assert is_locked
        client.start()
        client.join()

    client = Process(target=_client_lock, args=(os.getpid(),))
    client.start()
    client.join()
    assert RemoteDevice.DEV_A.child_attr == client.pid

    client = Process(target=_client_lock_timeout, args=(os.getpid(),))
    outer_lock = RemoteDevice.DEV_A.acquire(timeout=TIMEOUT)
    try:
        assert outer_lock
        client.start()
        client.join()
    finally:
        RemoteDevice.DEV_A.release()

    client = Process(target=_client_lock, args=(os.getpid(),))
    client.start()
    client.join()
    assert RemoteDevice.DEV_A.child_attr == client.pid


def test_enum_api_lock_all(manager: SharedMemoryManager) -> None:
    RemoteDevice.DEV_A.parent_attr = os.getpid()
    client = Process(target=_client_lock_timeout, args=(os.getpid(),))
    with RemoteDevice.lock_all() as all_locked:
        assert all_locked
        client.start()
        client.join()
    client = Process(target=_client_lock, args=(os.getpid(),))  # all were released
    client.start()
    client.join()


def test_enum_mutual_cache(manager: SharedMemoryManager) -> None:
    RemoteDevice.DEV_A.attr1 = 1234567
    assert RemoteDeviceB.DEV_A.attr1 == 1234567


def _cache_views(result: Any) -> None:
    cache = RemoteDeviceCache()
    RemoteDeviceC.open_all()
    result["keys"] = cache.keys()
    result["values proxied"] = all(isinstance(v, ObjectProxy) for v in cache.values())
    result["com ids"] = [v.com_id for _, v in cache.items()]
    length = len(cache)
    popped = cache.pop(RemoteDeviceC.DEV_C)
    result["popped proxied"] = isinstance(popped, ObjectProxy)
    result["length after pop"] = (length, len(cache))
    result["C in"] = RemoteDeviceC.DEV_C in cache
    result["B in"] = RemoteDeviceC.DEV_B in cache


def test_keys_values_items_and_pop_from_a_client(manager: SharedMemoryManager) -> None:
    result = manager.dict()
    child = Process(target=_cache_views, args=(result,))
    child.start()
    child.join()
    assert result["keys"] == [member.name for member in RemoteDeviceC]
    assert result["values proxied"] and result["popped proxied"]
    assert result["com ids"] == ["b", "c", "d"]
    assert result["length after pop"] == (3, 2)
    assert not result["C in"] and result["B in"]
    assert "DEV_C" not in RemoteDeviceCache()


def _link_unknown_to_the_server(result: Any) -> None:
    class Late(DeviceCacheEnum):
        LATE = ("linked only in this child", "late_config", RemoteDeviceCache)

    @Late.LATE.link()
    def late() -> Dev:
        return Dev(config_id="late", com_id="late", timeout=TIMEOUT)

    result["pid"] = Late.LATE.getpid()


def test_a_device_linked_only_in_a_client_is_opened_in_the_manager(manager: SharedMemoryManager) -> None:
    result = manager.dict()
    child = Process(target=_link_unknown_to_the_server, args=(result,))
    child.start()
    child.join()
    assert result["pid"] == os.getpid()
    assert "LATE" in RemoteDeviceCache()


class Counter:
    """An arbitrary class a manager hosts (catkit's ``register``)."""

    def __init__(self, start: int) -> None:
        self.count = start

    def add(self, n: int) -> int:
        self.count += n
        return self.count

    def getpid(self) -> int:
        return os.getpid()


SharedMemoryManager.register("Counter", callable=Counter)


def _add(counter: Any) -> None:
    counter.add(5)


def test_a_registered_class_lives_in_the_manager(manager: SharedMemoryManager) -> None:
    counter = manager.Counter(10)  # type: ignore[attr-defined]
    children = [Process(target=_add, args=(counter,)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    assert counter.add(0) == 25
    assert counter.count == 25
    assert counter.getpid() == os.getpid()


def _raise_in_device(result: Any) -> None:
    try:
        RemoteDevice.DEV_A.no_such_attribute  # noqa: B018 - the read is the test
    except AttributeError as error:
        result["error"] = str(error)


def test_a_servers_exception_is_raised_in_the_client(manager: SharedMemoryManager) -> None:
    result = manager.dict()
    child = Process(target=_raise_in_device, args=(result,))
    child.start()
    child.join()
    assert "no_such_attribute" in result["error"]


def test_a_client_of_a_manager_nobody_started_is_refused() -> None:
    class Orphan(SharedSingletonDeviceCache):
        instance = None
        callbacks = {}
        aliases = {}
        address = ("127.0.0.1", 1)

    with pytest.raises(ConnectionRefusedError):
        Orphan()


def _set_on(device: Any, cache: Any) -> None:
    device.set_by_child = os.getpid()
    cache["DEV_A"].cache_seen_by_child = True


def test_hosted_objects_reach_a_child_as_proxies_not_copies(manager: SharedMemoryManager) -> None:
    device = RemoteDevice.DEV_A()
    child = Process(target=_set_on, args=(device, RemoteDeviceCache()))
    child.start()
    child.join()
    assert device.set_by_child == child.pid
    assert device.cache_seen_by_child is True
