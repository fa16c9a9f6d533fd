"""The codec for Python values that travel through segment bytes: dictionary values, device
requests, replies and configurations.

Segment bytes are untrusted (ARCHITECTURE.md, invariant 1), and ``pickle.loads`` of untrusted
bytes runs whatever code they name. This codec is pickle with a closed vocabulary: the
encoder refuses any object outside it (so a writer learns at once, not its readers), and the
decoder resolves only the globals listed here — plain containers and scalars, ``datetime``
values, ``Decimal``, ``Fraction``, ``UUID``, pure paths, and numpy arrays, scalars and dtypes
(through this module's own constructors, which check sizes and refuse object dtypes) — plus
the classes a caller names (``allow``: a device's declared ``message_types``). Anything else
is a :class:`~shmkit.errors.PayloadError`. A caller that trusts every writer of a
dictionary can ask for full pickle instead (``Segment.dict(name, pickle=True)``).

Exceptions are part of a device's failure reply only: with ``exceptions=True`` the built-in
exception classes and shmkit's own are allowed too.
"""

from __future__ import annotations

import builtins
import collections
import datetime
import decimal
import fractions
import io
import pathlib
import pickle
import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import errors
from .errors import PayloadError

#: Classes whose instances the codec encodes and decodes with their own pickle support.
_VALUE_CLASSES: tuple[type, ...] = (
    set,
    frozenset,
    complex,
    bytearray,
    range,
    slice,
    collections.OrderedDict,
    collections.deque,
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    decimal.Decimal,
    fractions.Fraction,
    uuid.UUID,
    uuid.SafeUUID,
    pathlib.PurePosixPath,
    pathlib.PosixPath,
)

#: Singletons pickled by name.
_NAMED: dict[tuple[str, str], object] = {
    ("builtins", "Ellipsis"): Ellipsis,
    ("builtins", "NotImplemented"): NotImplemented,
}


def _key(obj: Any) -> tuple[str, str]:
    return (obj.__module__, obj.__qualname__)


def _exception_classes() -> dict[tuple[str, str], type]:
    found: dict[tuple[str, str], type] = {}
    for module in (builtins, errors):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException):
                found[_key(value)] = value
    return found


_EXCEPTIONS = _exception_classes()


def _array(descr: Any, shape: Any, order: Any, data: Any) -> np.ndarray[Any, Any]:
    """Rebuilds an array from its ``.npy`` dtype description, shape, order and bytes,
    checking each (the bytes came from another process)."""
    dtype = _dtype(descr)
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise PayloadError(f"an array's shape must be a tuple of sizes, not {shape!r}")
    if order not in ("C", "F"):
        raise PayloadError(f"an array's order must be 'C' or 'F', not {order!r}")
    if not isinstance(data, (bytes, bytearray)):
        raise PayloadError(f"an array's data must be bytes, not {type(data).__name__}")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(data):
        raise PayloadError(
            f"an array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} "
            f"bytes, not {len(data)}"
        )
    buffer = data if isinstance(data, bytearray) else bytearray(data)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


def _scalar(descr: Any, data: Any) -> np.generic:
    """Rebuilds a numpy scalar from its dtype description and bytes."""
    dtype = _dtype(descr)
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise PayloadError(f"a {dtype} scalar needs {dtype.itemsize} bytes")
    value: np.generic = np.frombuffer(bytes(data), dtype=dtype)[0]
    return value


def _dtype(descr: Any) -> np.dtype[Any]:
    """A dtype from its ``.npy`` description; object dtypes (which hold references to Python
    objects, not values) are refused."""
    try:
        dtype: np.dtype[Any] = np.lib.format.descr_to_dtype(descr)
    except Exception as exc:  # noqa: BLE001 - numpy's own errors for hostile descriptions
        raise PayloadError(f"bad dtype description {descr!r}: {exc}") from None
    if dtype.hasobject:
        raise PayloadError(f"dtype {dtype} holds Python objects; the safe codec refuses it")
    return dtype


_CONSTRUCTORS: dict[tuple[str, str], object] = {
    (__name__, "_array"): _array,
    (__name__, "_scalar"): _scalar,
    (__name__, "_dtype"): _dtype,
}


def _globals(allow: Iterable[type], exceptions: bool) -> dict[tuple[str, str], object]:
    table: dict[tuple[str, str], object] = dict(_NAMED)
    table.update(_CONSTRUCTORS)
    for cls in _VALUE_CLASSES:
        table[_key(cls)] = cls
    for cls in allow:
        table[_key(cls)] = cls
    if exceptions:
        table.update(_EXCEPTIONS)
    return table


class _Pickler(pickle.Pickler):
    """Pickle with the codec's vocabulary: numpy values through this module's constructors,
    every other object's class checked against the table."""

    def __init__(self, file: io.BytesIO, table: dict[tuple[str, str], object]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._table = table

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is np.ndarray:
            if obj.dtype.hasobject:
                raise TypeError(
                    f"an array of dtype {obj.dtype} holds Python objects, which shmkit's safe "
                    "codec does not carry"
                )
            order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
            data = obj.tobytes(order=order)
            descr = np.lib.format.dtype_to_descr(obj.dtype)
            return (_array, (descr, obj.shape, order, data))
        if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
            return (_scalar, (np.lib.format.dtype_to_descr(obj.dtype), obj.tobytes()))
        if kind is np.dtype or isinstance(obj, np.dtype):
            if obj.hasobject:
                raise TypeError(f"dtype {obj} holds Python objects")
            return (_dtype, (np.lib.format.dtype_to_descr(obj),))
        if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
            key = _key_or_none(obj)
            if key is not None and self._table.get(key) is obj:
                return NotImplemented
            raise TypeError(f"{_describe(obj)} is not among the values shmkit's safe codec carries")
        if kind in (dict, list, tuple, set, frozenset, str, bytes, int, float, bool):
            return NotImplemented
        if self._table.get(_key(kind)) is kind:
            return NotImplemented
        raise TypeError(
            f"a value of type {kind.__module__}.{kind.__qualname__} is not among the values "
            "shmkit's safe codec carries (containers, scalars, numpy arrays, datetimes, and "
            "a device's declared message_types)"
        )


def _key_or_none(obj: Any) -> tuple[str, str] | None:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return (module, qualname)
    return None


def _describe(obj: Any) -> str:
    key = _key_or_none(obj)
    return f"{key[0]}.{key[1]}" if key else repr(obj)


class _Unpickler(pickle.Unpickler):
    """An unpickler that resolves only the table's globals and nothing by import."""

    def __init__(self, file: io.BytesIO, table: dict[tuple[str, str], object]) -> None:
        super().__init__(file)
        self._table = table

    def find_class(self, module: str, name: str) -> Any:
        found = self._table.get((module, name))
        if found is None:
            raise PayloadError(
                f"the payload names {module}.{name}, which shmkit's safe codec does not load"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise PayloadError("the payload holds a persistent reference")


def _encode(value: Any, table: dict[tuple[str, str], object]) -> bytes:
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, table).dump(value)
    except pickle.PicklingError as exc:
        raise TypeError(str(exc)) from None
    return buffer.getvalue()


def _decode(data: bytes, table: dict[tuple[str, str], object]) -> Any:
    try:
        return _Unpickler(io.BytesIO(data), table).load()
    except PayloadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of hostile bytes is the same error
        raise PayloadError(f"undecodable payload ({type(exc).__name__}: {exc})") from None


def dumps(value: Any, allow: Iterable[type] = (), exceptions: bool = False) -> bytes:
    """Encodes ``value``; a ``TypeError`` names the first object outside the vocabulary."""
    return _encode(value, _globals(allow, exceptions))


def loads(data: bytes, allow: Iterable[type] = (), exceptions: bool = False) -> Any:
    """Decodes bytes another process wrote: the value, or a
    :class:`~shmkit.errors.PayloadError` saying why not. Never runs code the bytes name."""
    return _decode(data, _globals(allow, exceptions))


class Codec:
    """A dictionary's or a device's codec: the safe one (with ``allow``), or full pickle."""

    def __init__(self, allow: Iterable[type] = (), full_pickle: bool = False) -> None:
        self.allow = tuple(allow)
        self.full_pickle = full_pickle
        self._table = _globals(self.allow, False)

    def dumps(self, value: Any) -> bytes:
        """Encodes ``value`` (see the module documentation)."""
        if self.full_pickle:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return _encode(value, self._table)

    def loads(self, data: bytes) -> Any:
        """Decodes ``data`` (see the module documentation)."""
        if not self.full_pickle:
            return _decode(data, self._table)
        try:
            return pickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - a trusted writer's bytes may still be torn
            raise PayloadError(f"undecodable payload ({type(exc).__name__}: {exc})") from None
