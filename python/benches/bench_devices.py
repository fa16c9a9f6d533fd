"""The device cache `bench.hosted_device_attribute` reads from: module level, so that the
child process it spawns finds the same definitions (as catkit code keeps its devices)."""

from __future__ import annotations

import os

from shmkit.compat.multiprocessing import MutexedNamespace
from shmkit.compat.testbed.caching import DeviceCacheEnum, SharedSingletonDeviceCache

# One port per run, the same in the child (which inherits the environment).
ADDRESS = ("127.0.0.1", int(os.environ.setdefault("SHMKIT_BENCH_DEVICE_PORT", str(48000 + os.getpid() % 1000))))

Cache = SharedSingletonDeviceCache.factory(address=ADDRESS, name="BenchCache", timeout=5)


class Instrument(MutexedNamespace):
    """A device with catkit's per-call lock, opened and closed by ``with`` as catkit's
    ``Instrument`` is."""

    def __enter__(self) -> Instrument:  # type: ignore[override]
        self.is_open = True
        return self

    def __exit__(self, *args: object) -> None:
        self.is_open = False


class Devices(DeviceCacheEnum):
    DM = ("mirror", "dm_config", Cache)


@Devices.DM.link()
def dm() -> Instrument:
    return Instrument(timeout=5)
