"""The exceptions shmkit raises.

Each is a subclass of :class:`ShmkitError` *and* of the built-in or :mod:`threading`
exception a Python user already catches for the same situation, so code written against
:mod:`threading` keeps working: a broken barrier is a :class:`threading.BrokenBarrierError`,
a lock timeout a :class:`TimeoutError`, a release by a non-owner a :class:`RuntimeError`.
"""

from __future__ import annotations

import threading


class ShmkitError(Exception):
    """Base class of every shmkit exception."""


class LockTimeout(ShmkitError, TimeoutError):
    """A mutex was not acquired in time (raised by ``with mutex:``; ``acquire`` returns False).

    ``owner_pid`` / ``owner_tid`` name the holder at the deadline.
    """

    def __init__(self, message: str, owner_pid: int, owner_tid: int) -> None:
        super().__init__(message)
        self.owner_pid = owner_pid
        self.owner_tid = owner_tid


class OwnerDiedError(ShmkitError):
    """The previous holder of a mutex died holding it.

    The caller now holds the mutex, and it stays inconsistent: repair the data it protects,
    call ``mutex.make_consistent()``, then release it. Releasing it before that makes the
    mutex unrecoverable (as ``pthread_mutex_unlock`` does).
    """

    def __init__(self, message: str, previous_pid: int | None, previous_tid: int | None) -> None:
        super().__init__(message)
        self.previous_pid = previous_pid
        self.previous_tid = previous_tid


class InconsistentValueError(ShmkitError):
    """A holder of a shared value died mid-update and nobody has repaired it yet.

    Nothing was read or written, and the value's mutex is not held: acquire ``value.mutex``
    (which raises :class:`OwnerDiedError` holding it), ``set`` a good value, call
    ``make_consistent()`` and release.
    """

    def __init__(self, message: str, previous_pid: int | None, previous_tid: int | None) -> None:
        super().__init__(message)
        self.previous_pid = previous_pid
        self.previous_tid = previous_tid


class NotRecoverableError(ShmkitError):
    """A mutex whose dead holder's data was never declared consistent: recreate it."""


class NotOwnerError(ShmkitError, RuntimeError):
    """A mutex was released (or made consistent) by a thread that does not hold it."""


class BrokenBarrierError(ShmkitError, threading.BrokenBarrierError):
    """The barrier is broken (a party timed out, was interrupted or died, the action raised,
    or it was aborted or reset)."""


class BarrierTimeout(BrokenBarrierError, TimeoutError):
    """This party's wait timed out; the barrier is now broken for every party."""


class PartyDiedError(BrokenBarrierError):
    """A party died while waiting at the barrier; the barrier is now broken."""

    def __init__(self, message: str, tid: int) -> None:
        super().__init__(message)
        self.tid = tid


class SegmentError(ShmkitError, OSError):
    """A segment could not be created, opened or used (the message says why)."""


class ObjectNotFound(ShmkitError, KeyError):
    """No object of that name exists in the segment."""


class CorruptError(ShmkitError):
    """Shared bytes hold values no shmkit process writes."""


class FrameTimeout(ShmkitError, TimeoutError):
    """No new frame came before the timeout."""


class FrameOverrun(ShmkitError):
    """An oldest-first reader fell behind: ``missed`` frames were overwritten unread (it
    resumes at the oldest frame still held)."""

    def __init__(self, message: str, missed: int) -> None:
        super().__init__(message)
        self.missed = missed


class DictRepairedError(ShmkitError):
    """A holder died inside the dictionary; shmkit repaired it (``lost`` damaged records
    dropped, usually 0). The operation did not run: retry it."""

    def __init__(self, message: str, previous_pid: int | None, lost: int) -> None:
        super().__init__(message)
        self.previous_pid = previous_pid
        self.lost = lost


class DictFullError(ShmkitError):
    """The dictionary holds its maximum number of keys, or its data area is full."""


class CallTimeout(ShmkitError, TimeoutError):
    """A command call got no reply in time (it was withdrawn or abandoned; ``ran`` says
    whether it ran: "no" or "unknown")."""

    def __init__(self, message: str, ran: str) -> None:
        super().__init__(message)
        self.ran = ran


class ServerDiedError(ShmkitError):
    """The command server died before answering; ``ran`` is "no", "unknown" or "yes"."""

    def __init__(self, message: str, ran: str) -> None:
        super().__init__(message)
        self.ran = ran


class NoServerError(ShmkitError):
    """No server is attached to the command ring."""


class CommandFailed(ShmkitError):
    """The server's handler raised; the message is its exception's text."""


class DeviceError(ShmkitError):
    """A device could not be reached, started or used (the message says which and why)."""


class DeviceOpenFailed(DeviceError):
    """The device's ``open`` failed in its server (the message carries its traceback)."""


class DeviceCrashed(DeviceError):
    """The device's server died without closing it (restart it, or use ``restart="on_access"``)."""


class DeviceClosed(DeviceError):
    """The device is closed (or closing)."""


class DeviceFailSafe(DeviceError):
    """The device put itself in its fail-safe state and refuses commands until restarted."""


class DeviceTimeout(DeviceError, TimeoutError):
    """The device did not start, or did not answer, in time."""


class DeviceOwnerDied(DeviceError):
    """A client died holding the device's mutex; this call did not run (retry it: the device
    may be mid-sequence)."""


class DeviceFailed(DeviceError):
    """The device failed the command in its server (a Rust device's own error message)."""


class RequestTooLarge(DeviceError, ValueError):
    """The encoded call is larger than the device's message limit (64 KiB for Python
    devices): it was not sent. Send large arrays through the device's frame rings."""


class ReplyTooLarge(DeviceError):
    """The device ran the call, but its encoded reply is larger than the device's message
    limit: the reply was dropped. The call's effects happened; do not retry it blindly.
    Return large arrays through the device's frame rings."""


class PayloadError(ShmkitError, ValueError):
    """Bytes another process wrote (a dictionary value, a device request or reply) that
    shmkit's safe codec refuses to decode: they name a class or function outside its
    vocabulary, or they are not a valid encoding. Nothing the bytes name was run."""


class InitialSafetyCheckFailed(ShmkitError):
    """A safety test failed when the testbed started; nothing was started."""


class TestbedStopping(ShmkitError):
    """STOP is set (a trip, Ctrl+C, a failure with ``stop_all_on_exception``, teardown):
    no experiment may start."""


class InsecureSegmentWarning(UserWarning):
    """A segment was opened whose file other users may write (group- or world-writable): any
    of them can change every byte this process reads from it. Segments are private (0600)
    unless their creator passed another ``mode``; ``warnings.simplefilter("error",
    InsecureSegmentWarning)`` refuses such segments instead."""
