"""`SharedValue`: a numpy scalar or array of a fixed dtype and shape in a segment.

Every ``get`` and ``set`` is atomic under the value's robust mutex (a copy out or in: no view
of the shared bytes ever escapes, so nothing can read a half-written value). ``with
value.update() as a:`` is a read-modify-write: ``a`` is a private copy, written back when the
block ends normally and dropped if it raises. ``with value.mutex:`` makes several calls one
critical section.

A holder that died mid-update leaves the value inconsistent: ``get``, ``set`` and ``update``
raise :class:`~shmkit.errors.InconsistentValueError` until someone repairs it::

    try:
        v.mutex.acquire()
    except shmkit.OwnerDiedError:
        v.set(known_good)            # allowed: this thread holds the mutex
        v.mutex.make_consistent()
    v.mutex.release()

The dtype and shape are recorded in the segment (as the value's type name), so another
process can open the value by name alone, and a process asking for another dtype or shape
gets an error naming both.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ._shmkit import Mutex, RawValue
from .errors import CorruptError

if TYPE_CHECKING:
    from ._shmkit import Segment

_PREFIX = "numpy:"


def _descr(dtype: np.dtype[Any]) -> Any:
    # The dtype's complete, portable description (byte order, fields, padding).
    return dtype.str if dtype.fields is None else dtype.descr


def _type_name(dtype: np.dtype[Any], shape: tuple[int, ...]) -> str:
    return _PREFIX + repr((_descr(dtype), shape))


def _parse_type_name(name: str) -> tuple[np.dtype[Any], tuple[int, ...]] | None:
    if not name.startswith(_PREFIX):
        return None
    try:
        descr, shape = ast.literal_eval(name[len(_PREFIX) :])
        return np.dtype(descr), tuple(int(n) for n in shape)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        # Truncated (longer than the 40 bytes a segment keeps) or not written by us.
        return None


def _check_dtype(dtype: np.dtype[Any]) -> None:
    if dtype.hasobject:
        raise TypeError(
            f"dtype {dtype} holds Python objects, which cannot live in shared memory; "
            "use a numeric or structured dtype"
        )


class SharedValue:
    """A numpy value of fixed dtype and shape shared through a segment (see the module)."""

    def __init__(self, raw: RawValue, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        self._raw = raw
        self._dtype = dtype
        self._shape = shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """The value's dtype."""
        return self._dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """The value's shape (``()`` for a scalar)."""
        return self._shape

    @property
    def nbytes(self) -> int:
        """The value's size in bytes."""
        return len(self._raw)

    @property
    def mutex(self) -> Mutex:
        """The value's robust mutex (a ``threading.RLock``): hold it to make several calls one
        critical section, or to repair the value after a holder died."""
        return self._raw.mutex

    def _decode(self, data: bytes) -> npt.NDArray[Any]:
        return np.frombuffer(data, dtype=self._dtype).reshape(self._shape).copy()

    def get(self) -> Any:
        """A private copy: a numpy scalar for shape ``()``, else an array."""
        array = self._decode(self._raw.read())
        return array[()] if self._shape == () else array

    def set(self, value: Any) -> None:
        """Replaces the value (anything numpy converts and broadcasts to the dtype and shape)."""
        self._raw.write(self._encode(value))

    def _encode(self, value: Any) -> bytes:
        array = np.broadcast_to(np.asarray(value, dtype=self._dtype), self._shape)
        return np.ascontiguousarray(array).tobytes()

    @contextmanager
    def update(self) -> Iterator[npt.NDArray[Any]]:
        """A read-modify-write under the mutex: yields a private writable copy (a 0-d array
        for a scalar), written back if the block ends normally, discarded if it raises."""
        mutex = self._raw.mutex
        with mutex:
            array = self._decode(self._raw.read())
            yield array
            self._raw.write(self._encode(array))

    def __reduce__(self) -> tuple[Any, tuple[str, str, Any, tuple[int, ...]]]:
        segment, name = self._raw.origin
        return (_rebuild_value, (segment, name, _descr(self._dtype), self._shape))

    def __repr__(self) -> str:
        segment, name = self._raw.origin
        return f"<shmkit.SharedValue {name!r} in {segment!r}, {self._dtype} {self._shape}>"


def _open_value(
    segment: Segment,
    name: str,
    dtype: npt.DTypeLike | None,
    shape: int | tuple[int, ...] | None,
    init: Any,
) -> SharedValue:
    """`Segment.value`'s body (see its docstring)."""
    if dtype is None:
        if shape is not None or init is not None:
            raise TypeError("shape and init need a dtype")
        raw = segment._raw_value(name)
        parsed = _parse_type_name(raw.type_name)
        if parsed is None:
            raise TypeError(
                f"{name!r} was not created as a numpy value shmkit can describe "
                f"(its type is {raw.type_name!r}): give its dtype and shape"
            )
        # The description is segment bytes: checked as a creator's dtype is, and against the
        # block's size, before a byte is interpreted with it.
        found, claimed = parsed
        _check_dtype(found)
        if any(n < 0 for n in claimed) or found.itemsize * math.prod(claimed) != len(raw):
            raise CorruptError(
                f"{name!r} claims dtype {found} and shape {claimed} ("
                f"{found.itemsize * math.prod(claimed)} bytes) but holds {len(raw)} bytes"
            )
        return SharedValue(raw, found, claimed)
    dt = np.dtype(dtype)
    _check_dtype(dt)
    dims: tuple[int, ...] = () if shape is None else (shape,) if isinstance(shape, int) else tuple(shape)
    if any(n < 0 for n in dims):
        raise ValueError(f"negative dimension in shape {dims}")
    start = np.zeros(dims, dtype=dt) if init is None else np.broadcast_to(np.asarray(init, dtype=dt), dims)
    data = np.ascontiguousarray(start).tobytes()
    assert len(data) == dt.itemsize * math.prod(dims)
    raw = segment._raw_value(name, (_type_name(dt, dims), dt.alignment, data))
    return SharedValue(raw, dt, dims)


def _rebuild_value(segment: str, name: str, descr: Any, shape: tuple[int, ...]) -> SharedValue:
    """Unpickles a shared value: opened with its dtype and shape, so the segment's own
    fingerprint check refuses a value that has another type now."""
    from ._shmkit import Segment

    return _open_value(Segment.open(segment), name, np.dtype(descr), shape, None)
