"""The Python testbed: experiments in their own processes, safety tests, trips, teardown."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

import shmkit

_names = itertools.count()


@pytest.fixture
def bench_name() -> Iterator[str]:
    name = f"shmkit-tb-{os.getpid()}-{next(_names)}"
    yield name
    try:
        shmkit.Segment.unlink(name)
    except shmkit.SegmentError:
        pass


def _log(key: str, value: Any) -> None:
    shmkit.current_cache().segment.dict("log", 64)[key] = value


class Shutter(shmkit.Device):
    def open(self) -> None:
        _log("shutter", "open")

    def close(self) -> None:
        _log("shutter", "closed")
        _log("shutter_closed_at", time.monotonic())

    def ping(self) -> str:
        return "pong"


class Bench(shmkit.DeviceEnum):
    SHUTTER = Shutter  # a bare class: its default configuration


class Loop(shmkit.Experiment):
    """Runs until told to stop, counting iterations; records how it ended."""

    run_forever = True

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def pre_experiment(self) -> None:
        Bench.SHUTTER.ping()

    def experiment(self) -> None:
        n = 0
        while not self.should_stop():
            n += 1
            time.sleep(0.005)
        _log(f"{self.tag}_stopped_at", time.monotonic())
        _log(f"{self.tag}_safety", self.safety_tripped())

    def post_experiment(self) -> None:
        _log(f"{self.tag}_post", True)


class Stubborn(shmkit.Experiment):
    """Ignores STOP: the testbed must kill it."""

    def experiment(self) -> None:
        time.sleep(60)


class Fails(shmkit.Experiment):
    def experiment(self) -> None:
        try:
            raise OSError("camera unplugged")
        except OSError as e:
            raise RuntimeError("exposure failed") from e


class Finite(shmkit.Experiment):
    def experiment(self) -> None:
        while not self.finish_requested():
            time.sleep(0.005)
        _log("finite", "finished")


class Flag(shmkit.SafetyTest):
    """Fails while the testbed's "unsafe" value is non-zero."""

    def __init__(self) -> None:
        self.checks = 0

    def check(self) -> bool:
        self.checks += 1
        seg = shmkit.current_cache().segment
        return int(seg.value("unsafe", "i4").get()) == 0


def _log_of(tb: shmkit.Testbed) -> Any:
    assert tb.segment is not None
    return tb.segment.dict("log", 64)


def test_a_safety_trip_closes_devices_at_once_and_stops_experiments_within_1s(bench_name: str) -> None:
    with shmkit.Testbed(bench_name, Bench, [Flag()], safety_check_interval=0.05) as tb:
        assert tb.segment is not None
        unsafe = tb.segment.value("unsafe", "i4")
        log = _log_of(tb)
        tb.start_experiment(Loop("a"))
        tb.start_experiment(Loop("b"))
        deadline = time.monotonic() + 20
        while log.get("shutter") != "open" and time.monotonic() < deadline:
            time.sleep(0.01)
        tripped_at = time.monotonic()
        unsafe.set(1)
        assert tb.wait_experiments(5)
        assert time.monotonic() - tripped_at < 1.5
        assert tb.report.trip is not None and tb.report.trip.test == "Flag"
        assert log["shutter"] == "closed"
        # The devices are closed at once on a trip, not after the experiments: within one
        # check interval (50 ms) and the close call, asserted with a 250 ms margin. (The
        # experiments see SAFETY at the same moment, so they may stop before or after.)
        closed_after = log["shutter_closed_at"] - tripped_at
        print(f"shutter closed {closed_after:.3f} s after the unsafe condition")
        assert closed_after < 0.05 + 0.25, closed_after
        for tag in ("a", "b"):
            assert log[f"{tag}_safety"] is True and log[f"{tag}_post"] is True
            assert log[f"{tag}_stopped_at"] - tripped_at < 1.0
        assert all(o.error is None and not o.killed for o in tb.report.experiments)


def test_consecutive_failures_are_tolerated_up_to_the_limit(bench_name: str) -> None:
    flag = Flag()
    with shmkit.Testbed(bench_name, (), [flag], safety_check_interval=0.02,
                        max_consecutive_failures=3) as tb:
        assert tb.segment is not None
        unsafe = tb.segment.value("unsafe", "i4")
        unsafe.set(1)
        time.sleep(0.05)  # two or three failing checks
        unsafe.set(0)
        time.sleep(0.1)
        assert not tb.stopping(), "fewer than 4 failures in a row: no trip"
        unsafe.set(1)
        deadline = time.monotonic() + 5
        while not tb.stopping() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tb.report.trip is not None and tb.report.trip.consecutive == 4


def test_an_initial_safety_check_that_fails_starts_nothing(bench_name: str) -> None:
    class Never(shmkit.SafetyTest):
        def check(self) -> None:
            raise ValueError("interlock open")

    with pytest.raises(shmkit.InitialSafetyCheckFailed, match="interlock open"):
        shmkit.Testbed(bench_name, (), [Never()]).start()
    with pytest.raises(shmkit.SegmentError):
        shmkit.Segment.open(bench_name)


def test_a_failing_experiment_reaches_the_testbed_and_stops_the_others(bench_name: str) -> None:
    with shmkit.Testbed(bench_name, stop_timeout=2.0) as tb:
        tb.start_experiment(Loop("other"))
        tb.start_experiment(Fails())
        assert tb.wait_experiments(20)
        failed = [o for o in tb.report.experiments if o.error is not None]
        assert len(failed) == 1 and failed[0].name == "Fails"
        assert isinstance(failed[0].error, RuntimeError)
        assert isinstance(failed[0].error.__cause__, OSError)
        with pytest.raises(RuntimeError, match="exposure failed"):
            tb.raise_failures()
        with pytest.raises(shmkit.TestbedStopping):
            tb.start_experiment(Loop("late"))


def test_without_stop_all_on_exception_the_others_keep_running(bench_name: str) -> None:
    with shmkit.Testbed(bench_name, stop_all_on_exception=False) as tb:
        tb.start_experiment(Loop("survivor"))
        tb.start_experiment(Fails())
        deadline = time.monotonic() + 20
        while not tb.report.experiments and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert not tb.stopping() and tb.running_experiments() == 1


def test_an_experiment_ignoring_stop_is_killed_past_the_timeout(bench_name: str) -> None:
    with shmkit.Testbed(bench_name, stop_timeout=0.3) as tb:
        tb.start_experiment(Stubborn())
        time.sleep(1.0)
        started = time.monotonic()
        report = tb.close()
        assert time.monotonic() - started < 3
        assert len(report.experiments) == 1 and report.experiments[0].killed


def test_finish_wraps_up_finite_experiments_and_run_forever_returns(bench_name: str) -> None:
    with shmkit.Testbed(bench_name) as tb:
        log = _log_of(tb)
        tb.start_experiment(Finite())
        time.sleep(0.5)
        tb.request_finish()
        report = tb.run_forever()  # returns once every experiment ended
        assert [o.error for o in report.experiments] == [None]


RUNNER = textwrap.dedent(
    """
    import sys, time, shmkit
    sys.path.insert(0, sys.argv[2])
    from test_testbed import Bench, Loop
    tb = shmkit.Testbed(sys.argv[1], Bench).start()
    tb.start_experiment(Loop("x"))
    tb.segment.dict("log", 64)
    while tb.segment.dict("log").get("shutter") != "open":
        time.sleep(0.01)
    print(tb.devices.status("SHUTTER")["pid"], flush=True)
    report = tb.run_forever()
    print("report", len(report.experiments), report.experiments[0].error, flush=True)
    """
)


def _testbed_process(name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, name, os.path.dirname(__file__)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def _experiment_pids(testbed_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(testbed_pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_a_killed_testbed_leaves_no_server_or_experiment_behind(bench_name: str) -> None:
    tb = _testbed_process(bench_name)
    assert tb.stdout is not None
    server = int(tb.stdout.readline())
    children = [p for p in _experiment_pids(tb.pid) if p != server]
    assert children, "the experiment runs"
    tb.kill()
    tb.wait()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and not all(_gone(p) for p in [server, *children]):
        time.sleep(0.02)
    assert all(_gone(p) for p in [server, *children]), "everything gone within 1 s"


def test_ctrl_c_tears_the_testbed_down_cleanly(bench_name: str) -> None:
    tb = _testbed_process(bench_name)
    assert tb.stdout is not None
    tb.stdout.readline()
    os.kill(tb.pid, signal.SIGINT)
    line = tb.stdout.readline()
    assert tb.wait(10) == 0
    assert line.strip() == "report 1 None", "the experiment stopped cooperatively"
    with pytest.raises(shmkit.SegmentError):
        shmkit.Segment.open(bench_name)
