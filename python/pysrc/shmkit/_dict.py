"""`SharedDict`: a `MutableMapping` in a segment.

Values are encoded with shmkit's safe codec (`shmkit._codec`: containers, scalars, numpy
arrays and scalars, datetimes — bytes naming anything else are refused, never run); a handle
opened with ``pickle=True`` uses full pickle instead, for a dictionary whose every writer is
trusted. The choice belongs to each handle, never to the segment's bytes.

Every operation is atomic under the dictionary's robust mutex; ``with d.lock():`` makes
several of them one critical section (against other processes and threads). A holder that
died inside is repaired by shmkit itself (the dictionary keeps every committed value); the
first operation after that raises :class:`~shmkit.errors.DictRepairedError` once — it did not
run; retry it.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from ._codec import Codec
from ._shmkit import RawDict


class SharedDict(MutableMapping[str, Any]):
    """A dictionary of ``str`` keys and values shared through a segment (see the module
    documentation for which values)."""

    def __init__(self, raw: RawDict, pickle: bool = False) -> None:
        self._raw = raw
        self._codec = Codec(full_pickle=pickle)

    def __getitem__(self, key: str) -> Any:
        data = self._raw.get(key)
        if data is None:
            raise KeyError(key)
        return self._codec.loads(data)

    def __setitem__(self, key: str, value: Any) -> None:
        self._raw.set(key, self._codec.dumps(value))

    def __delitem__(self, key: str) -> None:
        if not self._raw.delete(key):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw.keys())

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._raw.get(key) is not None

    @contextmanager
    def lock(self) -> Iterator[SharedDict]:
        """Holds the dictionary's lock for a multi-operation critical section."""
        self._raw.acquire()
        try:
            yield self
        finally:
            self._raw.release()

    @property
    def max_entries(self) -> int:
        """The most keys the dictionary can hold."""
        return self._raw.max_entries

    @property
    def full_pickle(self) -> bool:
        """Whether this handle uses full pickle (``pickle=True``) instead of the safe codec."""
        return self._codec.full_pickle

    def __reduce__(self) -> tuple[Any, tuple[str, str, bool]]:
        from . import _rebuild_dict

        segment, name = self._raw.origin
        return (_rebuild_dict, (segment, name, self._codec.full_pickle))

    def __repr__(self) -> str:
        segment, name = self._raw.origin
        return f"<shmkit.SharedDict {name!r} in {segment!r}, {len(self)} keys>"
