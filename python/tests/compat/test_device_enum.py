"""catkit's device enums and mutexed objects (``catkit.testbed.caching``,
``catkit.multiprocessing``), behaviours read from catkit v1.3.0 and its tests
(``test_shared_device_cache.py``, ``test_shared_state.py``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from catkit_instrument import SimNPointLC400

from shmkit import compat as catkit
from shmkit.compat.multiprocessing import TimeoutError
from shmkit.compat.testbed.caching import DeviceCacheEnum, MutexedDict

TIMEOUT = 0.5


def test_mutexed_instrument() -> None:
    held = threading.Event()

    def thread_func(dev: Any) -> None:
        mutex = dev.get_mutex()
        with mutex:
            dev.a = 3
            held.set()
            time.sleep(mutex.timeout * 2)

    dev = SimNPointLC400(config_id="npoint_tiptilt_lc_400", com_id="dummy", timeout=TIMEOUT)
    assert hasattr(dev, "_catkit_mutex")
    assert dev.get_mutex().timeout == TIMEOUT
    thread = threading.Thread(target=thread_func, args=(dev,))
    thread.start()
    assert held.wait(10)
    with pytest.raises(TimeoutError, match="Failed to acquire lock"):
        assert dev.a == 3
    thread.join()


def test_thread_safety_mutexed_cache_timeout() -> None:
    def client_func(cache: Any, barrier: Any) -> None:
        with cache:
            barrier.wait()
            cache["from child"] = 12345
            time.sleep(TIMEOUT * 2)

    cache = MutexedDict(timeout=TIMEOUT)
    barrier = threading.Barrier(parties=2)
    client = threading.Thread(target=client_func, args=(cache, barrier))
    client.start()
    barrier.wait()
    with pytest.raises(TimeoutError, match="Failed to acquire lock"):
        assert cache["from child"] == 12345
    client.join()


class Dev(DeviceCacheEnum):
    NPOINT = ("npoint for the enum tests", "npoint_config")
    OTHER = ("another device", "other_config")


class Alias(DeviceCacheEnum):
    NPOINT = ("the same device, another enum", "npoint_config")


@catkit.testbed.devices.link(key=Dev.NPOINT)
def npoint() -> SimNPointLC400:
    return SimNPointLC400(config_id="npoint_tiptilt_lc_400", com_id="dummy", timeout=TIMEOUT)


@catkit.testbed.devices.link(key=Dev.OTHER)
def other() -> SimNPointLC400:
    return SimNPointLC400(config_id="npoint_tiptilt_lc_400", com_id="other", timeout=TIMEOUT)


def test_members_are_found_by_config_id_description_or_another_enums_member() -> None:
    # Enum lookup by value goes through `_missing_` (mypy reads the call as `__init__`).
    assert Dev("npoint_config") is Dev.NPOINT  # type: ignore[call-arg]
    assert Dev("another device") is Dev.OTHER  # type: ignore[call-arg]
    assert Dev(Alias.NPOINT) is Dev.NPOINT  # type: ignore[call-arg]


def test_attributes_read_and_written_through_a_member_are_the_devices(derestricted_device_cache: None) -> None:
    assert Dev.NPOINT.com_id == "dummy", "the device's attribute, not a method stub"
    assert Dev.NPOINT.get_status() == "open"
    Dev.NPOINT.new_attr = 44
    assert catkit.testbed.devices[Dev.NPOINT].new_attr == 44
    assert "new_attr" not in Dev.NPOINT.__dict__
    assert Dev.NPOINT.is_open()


def test_a_members_own_names_shadow_its_devices_once_the_device_is_known(derestricted_device_cache: None) -> None:
    device = Dev.NPOINT()
    assert device.config_id == "npoint_tiptilt_lc_400"
    assert Dev.NPOINT.config_id == "npoint_config", "the member's config_id, not the device's"
    assert Dev.NPOINT.name == "NPOINT"
    assert Dev.NPOINT.description == "npoint for the enum tests"
    device.com_id = "changed on the device"
    assert Dev.NPOINT.com_id == "changed on the device", "read from the device every time"


def test_a_member_holds_its_devices_lock_and_lock_all_holds_every_one(derestricted_device_cache: None) -> None:
    assert Dev.NPOINT.acquire()
    Dev.NPOINT.release()
    with Dev.NPOINT as locked:
        assert locked
    taken = threading.Event()
    done = threading.Event()

    def holder() -> None:
        with Dev.lock_all() as all_locked:
            assert all_locked
            taken.set()
            done.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert taken.wait(10)
    with pytest.raises(TimeoutError, match="Failed to acquire lock"):
        Dev.OTHER.acquire()
    with pytest.raises(TimeoutError, match="Failed to acquire lock"):
        Dev.NPOINT.get_status()  # a call while another holds the device: its own timeout
    done.set()
    t.join()
    assert Dev.OTHER.acquire(timeout=1)
    Dev.OTHER.release()
