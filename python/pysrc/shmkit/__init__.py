"""shmkit for Python: robust process-shared locks, events and barriers with ``threading``'s
semantics, in a shared-memory segment every process opens by name.

>>> import shmkit
>>> with shmkit.Segment.open_or_create("lab") as seg:   # doctest: +SKIP
...     m = seg.mutex("dm")          # a threading.RLock shared by every process
...     with m:
...         ...

Blocking calls release the GIL and raise ``KeyboardInterrupt`` within 100 ms of Ctrl+C.
Segment objects pickle by (segment, name), so they can be passed to child processes.
"""

from __future__ import annotations

from typing import Callable

from . import errors
from ._shmkit import (
    DEFAULT_TIMEOUT,
    Barrier,
    Event,
    Frame,
    FrameReader,
    FrameRing,
    FrameWriter,
    Mutex,
    Segment,
)
from .errors import (
    BarrierTimeout,
    BrokenBarrierError,
    CorruptError,
    FrameOverrun,
    FrameTimeout,
    LockTimeout,
    NotOwnerError,
    NotRecoverableError,
    ObjectNotFound,
    OwnerDiedError,
    PartyDiedError,
    SegmentError,
    ShmkitError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Barrier",
    "BarrierTimeout",
    "BrokenBarrierError",
    "CorruptError",
    "Event",
    "Frame",
    "FrameOverrun",
    "FrameReader",
    "FrameRing",
    "FrameTimeout",
    "FrameWriter",
    "LockTimeout",
    "Mutex",
    "NotOwnerError",
    "NotRecoverableError",
    "ObjectNotFound",
    "OwnerDiedError",
    "PartyDiedError",
    "Segment",
    "SegmentError",
    "ShmkitError",
    "errors",
]


def _rebuild_mutex(segment: str, name: str, timeout: float | None) -> Mutex:
    """Unpickles a segment mutex: opens its segment and the mutex by name."""
    return Segment.open(segment).mutex(name, -1.0 if timeout is None else timeout)


def _rebuild_event(segment: str, name: str) -> Event:
    """Unpickles a segment event."""
    return Segment.open(segment).event(name)


def _rebuild_barrier(
    segment: str,
    name: str,
    parties: int,
    action: Callable[[], object] | None,
    timeout: float | None,
) -> Barrier:
    """Unpickles a segment barrier (with its action, which must itself be picklable)."""
    return Segment.open(segment).barrier(name, parties, action, timeout)
