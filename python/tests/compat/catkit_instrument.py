"""A small stand-in for catkit's ``Instrument`` and its ``SimNPointLC400`` emulator, as the
ported tests use them: a connection opened on the first ``with`` and closed on the last
(nested ``with`` blocks keep it), a ``_forced_safe_close`` for the cache, and the mutex
every catkit instrument carries (``MutexedNamespace``)."""

from __future__ import annotations

import os
from typing import Any

from shmkit.compat.multiprocessing import MutexedNamespace


class SimNPointLC400(MutexedNamespace):
    def __init__(self, config_id: str, com_id: str, timeout: float | None = None, **kwargs: Any) -> None:
        self._context_counter = 0
        self.instrument: Any = None
        self.config_id = config_id
        self.com_id = com_id

    def __enter__(self) -> SimNPointLC400:  # type: ignore[override]
        if self._context_counter == 0 and not self.instrument:
            self.instrument = {"connection": self.com_id, "pid": os.getpid()}
        self._context_counter += 1
        return self

    def __exit__(self, *args: Any) -> None:
        self._context_counter -= 1
        if self._context_counter < 1:
            self.instrument = None

    def _forced_safe_close(self) -> None:
        self._context_counter = 0
        self.instrument = None

    def is_open(self) -> Any:
        return self.instrument

    def get_status(self) -> str:
        return "open" if self.instrument else "closed"
