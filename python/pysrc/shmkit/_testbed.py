"""The testbed from Python: experiments, safety tests and the testbed that runs them.

The policies are the Rust testbed's (`shmkit_testbed`), on the same named events
(``testbed/STOP``, ``testbed/FINISH``, ``testbed/SAFETY``):

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

import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from . import _devices
from ._process import ChildKilled, Process
from ._shmkit import Event, Segment
from .errors import SegmentError, ShmkitError

STOP, FINISH, SAFETY = "testbed/STOP", "testbed/FINISH", "testbed/SAFETY"

#: How long an orphaned experiment (its testbed died) gets to end on its own after STOP.
ORPHAN_GRACE = 0.5


class InitialSafetyCheckFailed(ShmkitError):
    """A safety test failed when the testbed started; nothing was started."""


class TestbedStopping(ShmkitError):
    """STOP is set (a trip, Ctrl+C, a failure with ``stop_all_on_exception``, teardown):
    no experiment may start."""


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


def _run_experiment(experiment: Experiment, segment: str, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seg = Segment.open(segment)
    _devices.use_segment(seg)
    stop = seg.event(STOP)
    threading.Thread(target=_watch_parent, args=(parent, stop), daemon=True).start()
    try:
        experiment.pre_experiment()
        experiment.experiment()
    finally:
        experiment.post_experiment()


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


@dataclass
class _Running:
    process: Process
    name: str
    stopping_since: float | None = None


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
        self.report = TestbedReport()
        self._running: list[_Running] = []
        self._lock = threading.RLock()
        self._shutdown = threading.Event()
        self._monitor: threading.Thread | None = None
        self._previous_sigint: Any = None
        self.segment: Segment | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Testbed:
        """Creates the segment (replacing a stale one), owns the devices, runs the initial
        safety check and starts the monitor."""
        self.segment = _create_replacing_stale(self.name, self.size)
        seg = self.segment
        self._stop, self._finish, self._safety = seg.event(STOP), seg.event(FINISH), seg.event(SAFETY)
        self.devices = _devices.use_segment(seg, self.restart)
        self.devices.own()
        for test in self.safety_tests:
            message = _failure(test)
            if message is not None:
                Segment.unlink(seg.name)
                raise InitialSafetyCheckFailed(f"initial safety check {test.label()!r} failed: {message}")
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        self._monitor = threading.Thread(target=self._monitor_loop, name="shmkit-safety", daemon=True)
        self._monitor.start()
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
        # A cooperative stop: the monitor and `run_forever` see STOP and tear down.
        self._finish.set()
        self._stop.set()

    def close(self) -> TestbedReport:
        """Tears everything down: FINISH and STOP, experiments stopped (killed past the
        timeout), the monitor joined, devices closed in reverse order, the segment unlinked."""
        if self._closed or self.segment is None:
            return self.report
        self._closed = True
        self._finish.set()
        self._stop_experiments()
        self._shutdown.set()
        if self._monitor is not None:
            self._monitor.join(5)
        self._close_devices()
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
        _devices.forget_segment(self.segment.name)
        try:
            Segment.unlink(self.segment.name)
        except SegmentError:
            pass
        return self.report

    # ------------------------------------------------------------------ experiments

    def start_experiment(self, experiment: Experiment) -> int:
        """Starts ``experiment`` in its own process; returns its pid."""
        assert self.segment is not None, "start the testbed first"
        if self._stop.is_set():
            raise TestbedStopping("the testbed is stopping; no experiment can start")
        name = experiment.name or type(experiment).__name__
        process = Process(
            target=_run_experiment, args=(experiment, self.segment.name, os.getpid()), name=name
        )
        process.start()
        with self._lock:
            self._running.append(_Running(process, name))
        assert process.pid is not None
        return process.pid

    def running_experiments(self) -> int:
        """Experiments still running."""
        with self._lock:
            return len(self._running)

    def wait_experiments(self, timeout: float | None = None) -> bool:
        """Waits until every experiment ended (or ``timeout`` passed); True if all ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running_experiments() > 0:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._reap()
            time.sleep(0.005)
        return True

    def run_forever(self) -> TestbedReport:
        """Runs until STOP (Ctrl+C, a trip, a failure with ``stop_all_on_exception``) or until
        every experiment ended, then tears down."""
        while not self._stop.is_set() and self.running_experiments() > 0:
            self._stop.wait(0.05)
        return self.close()

    def request_finish(self) -> None:
        """Sets FINISH: experiments that do not run forever should wrap up."""
        self._finish.set()

    def stopping(self) -> bool:
        """Is STOP set?"""
        return self._stop.is_set()

    def raise_failures(self) -> None:
        """Re-raises the first experiment's exception, if any failed."""
        for outcome in self.report.experiments:
            if outcome.error is not None:
                raise outcome.error

    # ------------------------------------------------------------------ the monitor

    def _monitor_loop(self) -> None:
        failures = [0] * len(self.safety_tests)
        next_check = time.monotonic() + self.safety_check_interval
        while not self._shutdown.wait(0.02):
            self._reap()
            if time.monotonic() < next_check or self._safety.is_set():
                continue
            next_check = time.monotonic() + self.safety_check_interval
            for i, test in enumerate(self.safety_tests):
                message = _failure(test)
                if message is None:
                    failures[i] = 0
                    continue
                failures[i] += 1
                if failures[i] > self.max_consecutive_failures:
                    self._trip(SafetyTrip(test.label(), message, failures[i]))
                    break

    def _trip(self, trip: SafetyTrip) -> None:
        self._safety.set()
        self._stop.set()
        with self._lock:
            if self.report.trip is None:
                self.report.trip = trip
        self._close_devices()
        self._stop_experiments()

    def _close_devices(self) -> None:
        for name in reversed(self.device_names):
            try:
                self.devices.close(name, self.device_close_timeout)
            except ShmkitError as exc:  # a never-started device closes quietly: not here
                self.report.device_failures.append((name, str(exc)))

    def _reap(self) -> None:
        stop = self._stop.is_set()
        ended: list[ExperimentOutcome] = []
        with self._lock:
            for r in list(self._running):
                if stop and r.stopping_since is None:
                    r.stopping_since = time.monotonic()
                killed = False
                if r.stopping_since is not None and time.monotonic() - r.stopping_since >= self.stop_timeout:
                    if r.process.is_alive():
                        r.process.kill()
                        killed = True
                if r.process.is_alive() and not killed:
                    continue
                error: BaseException | None = None
                try:
                    r.process.join(1.0 if killed else 0.0)
                except ChildKilled as exc:
                    error = exc
                except BaseException as exc:  # noqa: BLE001 - the experiment's own exception
                    error = exc
                self._running.remove(r)
                ended.append(ExperimentOutcome(r.name, r.process.pid, error, killed))
            self.report.experiments.extend(ended)
        if self.stop_all_on_exception and any(o.error is not None and not o.killed for o in ended):
            self._stop.set()

    def _stop_experiments(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + self.stop_timeout + 2.0
        while self.running_experiments() > 0 and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.002)


def _create_replacing_stale(name: str, size: int) -> Segment:
    try:
        existing = Segment.open(name)
    except SegmentError as exc:
        if "does not exist" not in str(exc):
            Segment.unlink(name)  # half-created by a dead creator, or unreadable: stale
    else:
        if existing.creator_alive:
            raise SegmentError(f"testbed {name!r} is running (pid {existing.creator_pid})")
        Segment.unlink(name)
    return Segment.create(name, size)
