"""`SharedDict`: a `MutableMapping` in a segment, values pickled.

Every operation is atomic under the dictionary's robust mutex; ``with d.lock():`` makes
several of them one critical section (against other processes and threads). A holder that
died inside is repaired by shmkit itself (the dictionary keeps every committed value); the
first operation after that raises :class:`~shmkit.errors.DictRepairedError` once — it did not
run; retry it.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from ._shmkit import RawDict


class SharedDict(MutableMapping[str, Any]):
    """A dictionary of ``str`` keys and picklable values shared through a segment."""

    def __init__(self, raw: RawDict) -> None:
        self._raw = raw

    def __getitem__(self, key: str) -> Any:
        data = self._raw.get(key)
        if data is None:
            raise KeyError(key)
        return pickle.loads(data)

    def __setitem__(self, key: str, value: Any) -> None:
        self._raw.set(key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

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

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        from . import _rebuild_dict

        return (_rebuild_dict, self._raw.origin)

    def __repr__(self) -> str:
        segment, name = self._raw.origin
        return f"<shmkit.SharedDict {name!r} in {segment!r}, {len(self)} keys>"
