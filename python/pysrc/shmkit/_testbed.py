"""The testbed from Python: experiments, safety tests and the testbed that runs them.

This is the Pythonic surface of the Rust testbed (`shmkit_testbed`, through ``_Testbed``),
which hosts Python experiments the way the Rust device server hosts Python devices: its
monitor thread calls the safety tests, trips, reaps and kills; each experiment is a Python
interpreter the testbed's spawn starts, running the pickled experiment (`_hosted`). An
experiment's exception comes back as itself, pickled into a file in a directory private to
this user (the channel multiprocessing's pipe was), never through segment bytes. The
policies, on the named events ``testbed/STOP``, ``testbed/FINISH``, ``testbed/SAFETY``:

- starting replaces a stale segment of the same name (its creator dead; a live one is
  refused), makes this process every device's owner, and runs every safety test once — a
  failure there starts nothing;
- a monitor thread runs the safety tests every ``safety_check_interval`` seconds; more than
  ``max_consecutive_failures`` consecutive failures of one test trip the testbed: SAFETY and
  STOP are set, the devices are closed to their safe state first (the hazard goes first),
  then experiments are stopped — cooperatively, killed only past ``stop_timeout``;
- an experiment that fails sets STOP when ``stop_all_on_exception``; its exception (type,
  message, traceback, cause chain) is in the report and re-raised by `Testbed.raise_failures`;
- Ctrl+C in the testbed's process becomes a cooperative stop (experiments ignore SIGINT:
  a terminal's Ctrl+C reaches the whole process group, and the testbed decides how they stop);
- a testbed that is killed leaves nothing running: device servers close their devices when
  their owner dies, experiments notice within 50 ms and exit within ``ORPHAN_GRACE``.
"""

from __future__ import annotations

import multiprocessing.spawn
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from . import _devices
from ._process import ChildError, ChildExited, ChildKilled, _chain, _rebuild
from ._shmkit import Event, Segment, _Testbed
from .errors import InitialSafetyCheckFailed, ShmkitError, TestbedStopping

__all__ = ["InitialSafetyCheckFailed", "TestbedStopping"]  # re-exported: they live in errors

STOP, FINISH, SAFETY = "testbed/STOP", "testbed/FINISH", "testbed/SAFETY"

#: How long an orphaned experiment (its testbed died) gets to end on its own after STOP.
ORPHAN_GRACE = 0.5


class Experiment:
    """An experiment or control loop, run in its own process by `Testbed.start_experiment`.

    Override `experiment` (and optionally `pre_experiment` / `post_experiment`, which runs
    whatever happened before it). Loops poll `should_stop()`; finite experiments may also
    honour `finish_requested()`. The object is pickled into its process, so its attributes
    are its parameters.
    """

    #: A run-forever experiment ignores FINISH and ends only on STOP.
    run_forever: bool = False
    #: The process's name (default: the class name).
    name: str | None = None

    _events: tuple[Event, Event, Event] | None = None

    def pre_experiment(self) -> None:
        """Set-up, in the experiment's process."""

    def experiment(self) -> None:
        """The experiment itself."""
        raise NotImplementedError(f"{type(self).__name__}.experiment")

    def post_experiment(self) -> None:
        """Tear-down; runs even when an earlier stage raised."""

    def _attached(self) -> tuple[Event, Event, Event]:
        if self._events is None:
            seg = _devices.current_cache().segment
            self._events = (seg.event(STOP), seg.event(FINISH), seg.event(SAFETY))
        return self._events

    def should_stop(self) -> bool:
        """Is STOP set (or, for an experiment that does not run forever, FINISH)?"""
        stop, finish, _ = self._attached()
        return stop.is_set() or (not self.run_forever and finish.is_set())

    def finish_requested(self) -> bool:
        """Has the testbed asked experiments to wrap up (FINISH)?"""
        return self._attached()[1].is_set()

    def safety_tripped(self) -> bool:
        """Did a safety test trip the testbed?"""
        return self._attached()[2].is_set()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_events", None)  # handles of this process; the child attaches its own
        return state


def _watch_parent(parent: int, stop: Event) -> None:
    """In an experiment: when the testbed dies, STOP, then exit after `ORPHAN_GRACE`."""
    while os.getppid() == parent:
        time.sleep(0.05)
    stop.set()
    time.sleep(ORPHAN_GRACE)
    os._exit(70)


def _hosted(payload: bytes, segment: str) -> None:
    """An experiment's process (started by the Rust testbed, ``payload`` from its private
    environment): runs the experiment, and on an exception leaves its pickled chain where
    the testbed looks for it before raising it on to the Rust side."""
    preparation, experiment_bytes, failures = pickle.loads(payload)
    # As multiprocessing's spawn does: the parent's sys.path and main module, so an
    # experiment class defined in a script or a test module is found here.
    multiprocessing.spawn.prepare(preparation)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seg = Segment.open(segment)
    _devices.use_segment(seg)
    threading.Thread(target=_watch_parent, args=(os.getppid(), seg.event(STOP)), daemon=True).start()
    try:
        experiment: Experiment = pickle.loads(experiment_bytes)
        try:
            experiment.pre_experiment()
            experiment.experiment()
        finally:
            experiment.post_experiment()
    except BaseException as exc:
        with open(os.path.join(failures, str(os.getpid())), "wb") as f:
            pickle.dump(_chain(exc), f)
        raise


class SafetyTest:
    """A check the testbed runs every ``safety_check_interval``: `check` raises (or returns
    False) when the testbed is unsafe. It runs in the testbed's process and may use devices."""

    #: Its name in reports (default: the class name).
    name: str | None = None

    def check(self) -> bool | None:
        """Raises, or returns False, when unsafe."""
        raise NotImplementedError(f"{type(self).__name__}.check")

    def label(self) -> str:
        """The test's name."""
        return self.name or type(self).__name__


@dataclass
class SafetyTrip:
    """Which test tripped the testbed, why, and after how many consecutive failures."""

    test: str
    message: str
    consecutive: int


@dataclass
class ExperimentOutcome:
    """How an experiment ended: ``error`` is its exception (None: it succeeded)."""

    name: str
    pid: int | None
    error: BaseException | None
    killed: bool


@dataclass
class TestbedReport:
    """What the testbed saw: every experiment's outcome, the trip, device close failures."""

    experiments: list[ExperimentOutcome] = field(default_factory=list)
    trip: SafetyTrip | None = None
    device_failures: list[tuple[str, str]] = field(default_factory=list)


def _failure(test: SafetyTest) -> str | None:
    try:
        ok = test.check()
    except Exception as exc:  # noqa: BLE001 - any exception is the test's verdict
        return f"{type(exc).__name__}: {exc}"
    return "check() returned False" if ok is False else None


class Testbed:
    """One segment, its devices, safety tests and experiments, started and torn down as a
    whole (a context manager; see the module documentation for the policies)."""

    def __init__(
        self,
        name: str,
        devices: Iterable[str] | type[_devices.DeviceEnum] = (),
        safety_tests: Iterable[SafetyTest] = (),
        *,
        size: int = 64 << 20,
        safety_check_interval: float = 60.0,
        max_consecutive_failures: int = 0,
        stop_all_on_exception: bool = True,
        stop_timeout: float = 1.0,
        device_close_timeout: float = 5.0,
        restart: str = "never",
    ) -> None:
        self.name = name
        if isinstance(devices, type):
            self.device_names = [member.name for member in devices]
        else:
            self.device_names = list(devices)
        self.safety_tests = list(safety_tests)
        self.size = size
        self.safety_check_interval = safety_check_interval
        self.max_consecutive_failures = max_consecutive_failures
        self.stop_all_on_exception = stop_all_on_exception
        self.stop_timeout = stop_timeout
        self.device_close_timeout = device_close_timeout
        self.restart = restart
        self._report = TestbedReport()
        self._lock = threading.Lock()
        self._previous_sigint: Any = None
        self._tb: _Testbed | None = None
        self._failures: str | None = None
        self.segment: Segment | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Testbed:
        """Creates the segment (replacing a stale one), owns the devices, runs the initial
        safety check and starts the monitor."""
        self._failures = tempfile.mkdtemp(prefix="shmkit-testbed-")  # mode 0700
        tests = [(test.label(), test) for test in self.safety_tests]
        # The initial safety check runs inside `_Testbed`, as soon as the segment exists:
        # naming it now lets a test's `current_cache()` find it then.
        os.environ[_devices.SEGMENT_ENV] = self.name
        try:
            self._tb = _Testbed(
                self.name,
                self.size,
                self.device_names,
                tests,
                sys.executable,
                ["-c", "from shmkit._devices import _serve; _serve()"],
                safety_check_interval=self.safety_check_interval,
                max_consecutive_failures=self.max_consecutive_failures,
                stop_all_on_exception=self.stop_all_on_exception,
                stop_timeout=self.stop_timeout,
                device_close_timeout=self.device_close_timeout,
            )
        except BaseException:
            shutil.rmtree(self._failures, ignore_errors=True)
            _devices.forget_segment(self.name)
            raise
        self.segment = Segment.open(self.name)
        self.devices = _devices.use_segment(self.segment, self.restart)
        self.devices.own()
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _on_sigint(self, signum: int, frame: Any) -> None:
        # A cooperative stop: the monitor stops the experiments, `run_forever` tears down.
        if self._tb is not None:
            self._tb.request_stop()

    def _running(self) -> _Testbed:
        if self._tb is None:
            raise ShmkitError("start the testbed first")
        return self._tb

    @property
    def report(self) -> TestbedReport:
        """What the testbed saw so far: experiments that ended, the trip, device failures."""
        if self._tb is not None and not self._closed:
            self._collect(self._tb.take_ended())
            trip = self._tb.trip()
            if trip is not None and self._report.trip is None:
                self._report.trip = SafetyTrip(*trip)
        return self._report

    def _collect(self, ended: list[Any]) -> None:
        with self._lock:
            for name, pid, failure, killed in ended:
                self._report.experiments.append(
                    ExperimentOutcome(name, pid, self._error(pid, failure), killed)
                )

    def _error(self, pid: int, failure: Any) -> BaseException | None:
        if failure is None:
            return None
        kind, message, signal_number, signal_name, code = failure
        assert self._failures is not None
        path = os.path.join(self._failures, str(pid))
        if os.path.exists(path):
            with open(path, "rb") as f:
                links = pickle.load(f)  # written by our own child into our private directory
            os.unlink(path)
            return _rebuild(links, f"experiment (pid {pid})")
        if kind == "signaled":
            return ChildKilled(message, signal_number, signal_name)
        if kind == "exited":
            return ChildExited(message, code)
        return ChildError(message, "unknown", "")

    def close(self) -> TestbedReport:
        """Tears everything down: FINISH and STOP, experiments stopped (killed past the
        timeout), the monitor joined, devices closed in reverse order, the segment unlinked."""
        if self._closed or self._tb is None:
            return self._report
        report = self.report
        self._closed = True
        ended, device_failures = self._tb.close()
        self._collect(ended)
        report.device_failures.extend(device_failures)
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
        if self.segment is not None:
            _devices.forget_segment(self.segment.name)
        if self._failures is not None:
            shutil.rmtree(self._failures, ignore_errors=True)
        return report

    # ------------------------------------------------------------------ experiments

    def start_experiment(self, experiment: Experiment) -> int:
        """Starts ``experiment`` in its own process; returns its pid."""
        tb = self._running()
        name = experiment.name or type(experiment).__name__
        preparation = multiprocessing.spawn.get_preparation_data(name)
        preparation.pop("authkey", None)  # not picklable, and the experiment needs none
        payload = pickle.dumps((preparation, pickle.dumps(experiment), self._failures))
        return tb.start_experiment(name, payload, experiment.run_forever)

    def running_experiments(self) -> int:
        """Experiments still running."""
        return self._running().running_experiments()

    def wait_experiments(self, timeout: float | None = None) -> bool:
        """Waits until every experiment ended (or ``timeout`` passed); True if all ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running_experiments() > 0:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def run_forever(self) -> TestbedReport:
        """Runs until STOP (Ctrl+C, a trip, a failure with ``stop_all_on_exception``) or until
        every experiment ended, then tears down."""
        while not self.stopping() and self.running_experiments() > 0:
            time.sleep(0.02)
        return self.close()

    def request_finish(self) -> None:
        """Sets FINISH: experiments that do not run forever should wrap up."""
        self._running().request_finish()

    def stopping(self) -> bool:
        """Is STOP set?"""
        return self._running().stopping()

    def raise_failures(self) -> None:
        """Re-raises the first experiment's exception, if any failed."""
        for outcome in self.report.experiments:
            if outcome.error is not None:
                raise outcome.error
