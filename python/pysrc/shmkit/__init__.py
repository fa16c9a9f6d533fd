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

from importlib.metadata import version as _distribution_version
from typing import Callable

from . import errors, trace
from ._devices import (
    Device,
    DeviceCache,
    DeviceEnum,
    DeviceProxy,
    SimCamera,
    SimDm,
    current_cache,
    use_segment,
)
from ._dict import SharedDict
from ._testbed import (
    Experiment,
    ExperimentOutcome,
    InitialSafetyCheckFailed,
    SafetyTest,
    SafetyTrip,
    Testbed,
    TestbedReport,
    TestbedStopping,
)
from ._value import SharedValue
from ._process import ChildError, ChildExited, ChildKilled, ChildStillRunning, Process
from ._recording import FRAME_TABLE, Recorder, Recording, RingRecording, record
from ._shmkit import (
    DEFAULT_TIMEOUT,
    Barrier,
    Cause,
    CommandRing,
    CommandServer,
    Event,
    Frame,
    FrameReader,
    FrameRing,
    FrameWriter,
    Histogram,
    HistogramSnapshot,
    Mutex,
    Segment,
    TraceBuffer,
    WriteSlot,
)
from .errors import (
    BarrierTimeout,
    BrokenBarrierError,
    CallTimeout,
    CommandFailed,
    CorruptError,
    DeviceClosed,
    DeviceCrashed,
    DeviceError,
    DeviceFailSafe,
    DeviceFailed,
    DeviceOpenFailed,
    DeviceOwnerDied,
    DeviceTimeout,
    DictFullError,
    DictRepairedError,
    FrameOverrun,
    InconsistentValueError,
    InsecureSegmentWarning,
    FrameTimeout,
    LockTimeout,
    NoServerError,
    NotOwnerError,
    NotRecoverableError,
    ObjectNotFound,
    OwnerDiedError,
    PartyDiedError,
    PayloadError,
    ReplyTooLarge,
    RequestTooLarge,
    SegmentError,
    ServerDiedError,
    ShmkitError,
)

#: The installed distribution's version (``pyproject.toml``'s, as ``pip show shmkit`` says).
__version__: str = _distribution_version("shmkit")

__all__ = [
    "__version__",
    "DEFAULT_TIMEOUT",
    "Experiment",
    "ExperimentOutcome",
    "InitialSafetyCheckFailed",
    "SafetyTest",
    "SafetyTrip",
    "Testbed",
    "TestbedReport",
    "TestbedStopping",
    "Device",
    "DeviceCache",
    "DeviceEnum",
    "DeviceProxy",
    "SimCamera",
    "SimDm",
    "current_cache",
    "use_segment",
    "Barrier",
    "Cause",
    "BarrierTimeout",
    "BrokenBarrierError",
    "CallTimeout",
    "ChildError",
    "ChildExited",
    "ChildKilled",
    "ChildStillRunning",
    "CommandFailed",
    "CommandRing",
    "CommandServer",
    "CorruptError",
    "DeviceClosed",
    "DeviceCrashed",
    "DeviceError",
    "DeviceFailSafe",
    "DeviceFailed",
    "DeviceOpenFailed",
    "DeviceOwnerDied",
    "DeviceTimeout",
    "DictFullError",
    "DictRepairedError",
    "Event",
    "Histogram",
    "HistogramSnapshot",
    "Frame",
    "FrameOverrun",
    "FrameReader",
    "FrameRing",
    "FrameTimeout",
    "FrameWriter",
    "InconsistentValueError",
    "InsecureSegmentWarning",
    "LockTimeout",
    "Mutex",
    "NoServerError",
    "NotOwnerError",
    "NotRecoverableError",
    "ObjectNotFound",
    "OwnerDiedError",
    "PartyDiedError",
    "PayloadError",
    "ReplyTooLarge",
    "RequestTooLarge",
    "Process",
    "Recording",
    "Recorder",
    "record",
    "RingRecording",
    "FRAME_TABLE",
    "Segment",
    "SegmentError",
    "ServerDiedError",
    "SharedDict",
    "SharedValue",
    "ShmkitError",
    "TraceBuffer",
    "WriteSlot",
    "errors",
    "trace",
]


def _rebuild_mutex(segment: str, name: str, timeout: float | None) -> Mutex:
    """Unpickles a segment mutex: opens its segment and the mutex by name."""
    return Segment.open(segment).mutex(name, -1.0 if timeout is None else timeout)


def _rebuild_event(segment: str, name: str, wait: str = "spin_then_block") -> Event:
    """Unpickles a segment event with its handle's wait strategy."""
    return Segment.open(segment).event(name, wait)


def _rebuild_histogram(segment: str, name: str) -> Histogram:
    """Unpickles a segment histogram."""
    return Segment.open(segment).histogram(name)


def _rebuild_trace_buffer(segment: str, name: str, events: int, names: int) -> TraceBuffer:
    """Unpickles a segment trace buffer of its size."""
    return Segment.open(segment).trace_buffer(name, events, names)


def _rebuild_barrier(
    segment: str,
    name: str,
    parties: int,
    action: Callable[[], object] | None,
    timeout: float | None,
) -> Barrier:
    """Unpickles a segment barrier (with its action, which must itself be picklable)."""
    return Segment.open(segment).barrier(name, parties, action, timeout)


def _rebuild_dict(segment: str, name: str, pickle: bool = False) -> SharedDict:
    """Unpickles a segment dictionary (with its handle's codec)."""
    return Segment.open(segment).dict(name, pickle=pickle)


def _rebuild_frame_ring(segment: str, name: str) -> FrameRing:
    """Unpickles a frame ring (opened as its creator made it)."""
    return Segment.open(segment).frame_ring(name)


def _rebuild_command_ring(segment: str, name: str, wait: str) -> CommandRing:
    """Unpickles a command ring with its handle's wait strategy."""
    return Segment.open(segment).command_ring(name, wait=wait)
