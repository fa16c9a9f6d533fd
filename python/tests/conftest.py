"""Fixtures: a fresh segment per test, unlinked afterwards."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

import shmkit

_counter = itertools.count()


@pytest.fixture
def seg() -> Iterator[shmkit.Segment]:
    name = f"shmkit-py-{os.getpid()}-{next(_counter)}"
    segment = shmkit.Segment.create(name, 1 << 22)
    try:
        yield segment
    finally:
        shmkit.Segment.unlink(name)
