"""Fixtures: a fresh segment per test, unlinked afterwards."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator

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


def _asleep(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 1 :].split()[0] == "S"


@pytest.fixture
def wait_until_asleep() -> Callable[[int], None]:
    """Waits (at most 20 s) until process `pid`'s main thread sleeps in a blocking call (state
    S), so that a signal sent next lands inside the call a test means, not before it."""

    def wait(pid: int) -> None:
        deadline = time.monotonic() + 20
        while not _asleep(pid):
            assert time.monotonic() < deadline, f"process {pid} never went to sleep"
            time.sleep(0.0005)

    return wait


# Where SHMKIT_REQUIRE_ALL=1 (CI, which runs as root with everything installed) a skipped test
# fails the run: a green CI has run every test, and elsewhere a skip is listed (pytest -rs).
_REQUIRE_ALL = os.environ.get("SHMKIT_REQUIRE_ALL") == "1"
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _REQUIRE_ALL and _skipped:
        print(f"\nSHMKIT_REQUIRE_ALL=1: {len(_skipped)} skipped test(s) fail the run: {_skipped}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture()
def derestricted_device_cache() -> Iterator[None]:
    """catkit's fixture (for the ported tests in ``compat/``): the device cache unlocked for
    the test, closed after it."""
    from shmkit.compat import testbed

    with testbed.devices:
        yield
