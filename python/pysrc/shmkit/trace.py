"""Tracing from Python into a segment's trace buffer, for ``shmkit trace`` to turn into a
timeline that Perfetto opens::

    import shmkit

    shmkit.trace.start(shmkit.Segment.open("lab"))   # the segment's buffer "trace"
    with shmkit.trace.span("centroid", frame=frame_id):
        ...
    shmkit.trace.counter("flux", total)

Until :func:`start` (and after :func:`stop`) every call here does nothing, so code can stay
instrumented. Each thread is named in the trace by its ``threading`` name.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from typing import ContextManager, ParamSpec, TypeVar

from ._shmkit import Segment, TraceBuffer

__all__ = ["counter", "current", "instant", "span", "start", "stop", "traced"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_buffer: TraceBuffer | None = None
_named = threading.local()


def start(
    segment: Segment,
    name: str = "trace",
    *,
    events: int = 65536,
    names: int = 512,
    process_name: str | None = None,
) -> TraceBuffer:
    """Traces into the segment's buffer ``name`` (created with ``events`` and ``names`` if
    it does not exist) from now on; ``process_name`` names this process in traces."""
    global _buffer
    buffer = segment.trace_buffer(name, events, names)
    if process_name is not None:
        buffer.name_process(process_name)
    _buffer = buffer
    return buffer


def stop() -> None:
    """Stops tracing: the functions here do nothing again."""
    global _buffer
    _buffer = None


def current() -> TraceBuffer | None:
    """The buffer traced into, if any."""
    return _buffer


def _fit(name: str) -> str:
    """``name`` cut to a trace name's 56 bytes of UTF-8, on a character boundary."""
    return name.encode()[:56].decode(errors="ignore") or "thread"


def _ready() -> TraceBuffer | None:
    buffer = _buffer
    if buffer is not None and getattr(_named, "buffer", None) is not buffer:
        buffer.name_thread(_fit(threading.current_thread().name))
        _named.buffer = buffer
    return buffer


def span(name: str, frame: int | None = None) -> ContextManager[object]:
    """A context manager timing its block as the span ``name`` (``frame``: an integer to
    attach, such as the frame id it worked on); recorded also when the block raises."""
    buffer = _ready()
    if buffer is None:
        return contextlib.nullcontext()
    return buffer.span(name, frame)


def instant(name: str, frame: int | None = None) -> None:
    """Records the instant ``name``, now."""
    buffer = _ready()
    if buffer is not None:
        buffer.instant(name, frame)


def counter(name: str, value: float) -> None:
    """Records the counter ``name``'s value, now."""
    buffer = _ready()
    if buffer is not None:
        buffer.counter(name, value)


def traced(name: str | None = None) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator: each call of the function is a span (named ``name``, or the function's
    qualified name)."""

    def wrap(function: Callable[_P, _R]) -> Callable[_P, _R]:
        label = _fit(name or function.__qualname__)

        @functools.wraps(function)
        def traced_call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with span(label):
                return function(*args, **kwargs)

        return traced_call

    return wrap
