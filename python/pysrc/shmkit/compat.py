"""Drop-in names for code written against the manager-based Python testbed framework
(catkit's ``catkit.multiprocessing``, ``catkit.testbed.caching`` and
``catkit.testbed.experiment``), so that porting an experiment is a change of imports::

    # before                                              # after
    from catkit.multiprocessing import (                  from shmkit.compat import (
        Process, SharedMemoryManager)                         Process, SharedMemoryManager)
    from catkit.testbed.caching import (                  from shmkit.compat import (
        DeviceCacheEnum, MutexedDict)                         DeviceCacheEnum, MutexedDict)
    from catkit.testbed.experiment import (               from shmkit.compat import (
        Experiment, SafetyTest, Testbed)                      Experiment, SafetyTest, Testbed)

What the names mean here (the same contracts, on a shmkit segment instead of manager
servers; no server process to start, no proxies to pass around, no address to agree on):

- ``SharedMemoryManager()`` — a context manager over the testbed's segment (the one
  `use_segment` / a running `Testbed` set, created if none); ``get_lock(name)``,
  ``get_mutex(name)``, ``get_event(name)``, ``get_barrier(name, parties)`` look shared
  objects up by name from any process, as the manager's caches did.
- ``get_lock`` / ``get_event`` / ``get_barrier`` — the same, at module level.
- ``MutexedDict(name)`` — a shared dict whose every access is atomic and whose ``lock()``
  (or ``with d:``) makes a wider critical section.
- ``Mutex`` — a reentrant lock whose ``acquire()`` has a default timeout (60 s).
- ``Process`` — a child whose exception is re-raised by ``join()``.
- ``DeviceCacheEnum`` — the enum API over the device cache (``Devices.CAMERA.take_image()``,
  ``with Devices.DM:``).
- ``Experiment``, ``SafetyTest``, ``Testbed`` — as in `shmkit`; ``SafetyTest.check`` raising
  or returning False means unsafe.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import _devices
from ._dict import SharedDict
from ._devices import DeviceEnum as DeviceCacheEnum
from ._process import Process
from ._shmkit import Barrier, Event, Mutex, Segment
from ._testbed import Experiment, SafetyTest, Testbed

__all__ = [
    "DeviceCacheEnum",
    "Experiment",
    "Mutex",
    "MutexedDict",
    "Process",
    "SafetyTest",
    "SharedMemoryManager",
    "Testbed",
    "get_barrier",
    "get_event",
    "get_lock",
    "get_mutex",
]

#: Size of a segment this module creates when no testbed made one.
DEFAULT_SIZE = 64 << 20


def _segment() -> Segment:
    name = os.environ.get(_devices.SEGMENT_ENV)
    if name:
        return _devices.current_cache().segment
    name = f"shmkit-compat-{os.getuid()}"
    try:
        seg = Segment.open_or_create(name, DEFAULT_SIZE)
    except Exception:
        seg = Segment.open(name)
    _devices.use_segment(seg)
    return seg


class MutexedDict(SharedDict):
    """A shared dictionary (``str`` keys, picklable values): every access atomic; ``with d:``
    or ``with d.lock():`` for a wider critical section."""

    def __init__(self, name: str = "MutexedDict", max_entries: int = 1024) -> None:
        super().__init__(_segment()._raw_dict(name, max_entries))

    def __enter__(self) -> MutexedDict:
        self._raw.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._raw.release()


class SharedMemoryManager:
    """The manager of the old framework, as a handle on the testbed's segment: nothing to
    start or serve; ``with SharedMemoryManager() as manager:`` is accepted for old code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.segment = _segment()

    def start(self) -> None:
        """Nothing to start: the segment is already there."""

    def shutdown(self) -> None:
        """Nothing to stop: objects live as long as the segment."""

    def __enter__(self) -> SharedMemoryManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def get_lock(self, name: str, timeout: float | None = None) -> Mutex:
        """The shared reentrant mutex ``name``."""
        return self.segment.mutex(name, timeout)

    get_mutex = get_lock

    def get_event(self, name: str) -> Event:
        """The shared event ``name``."""
        return self.segment.event(name)

    def get_barrier(
        self,
        name: str,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> Barrier:
        """The shared barrier ``name`` for ``parties`` processes."""
        return self.segment.barrier(name, parties, action, timeout)


def get_lock(name: str, timeout: float | None = None) -> Mutex:
    """The shared reentrant mutex ``name`` (default acquire timeout 60 s)."""
    return SharedMemoryManager().get_lock(name, timeout)


get_mutex = get_lock


def get_event(name: str) -> Event:
    """The shared event ``name``."""
    return SharedMemoryManager().get_event(name)


def get_barrier(
    name: str,
    parties: int,
    action: Callable[[], object] | None = None,
    timeout: float | None = None,
) -> Barrier:
    """The shared barrier ``name`` for ``parties`` processes."""
    return SharedMemoryManager().get_barrier(name, parties, action, timeout)
