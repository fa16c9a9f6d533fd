"""catkit's ``catkit.testbed.experiment`` on shmkit: ``Testbed``, ``Experiment``,
``SafetyTest`` and their exceptions, with catkit's signatures and behaviour.

``Testbed(safety_tests, output_path=None, suffix=None, safety_check_interval=60)`` starts the
exception manager (a segment), runs every safety test once — a failure raises the test's own
exception from ``start()``/``with`` — then monitors them in a child process; a failure there
sets the safety and stop events, and the monitor's exception is raised from the testbed's
``stop()`` (its ``with`` block's exit). ``Experiment.start()`` runs ``pre_experiment``,
``experiment`` and ``post_experiment`` in a child process, with a thread that interrupts it
on a stop event (or only a safety event, with ``run_forever``); ``join()`` raises what it
raised — ``SafetyException("… Event monitor detected a SAFETY event before experiment
completed …")`` when a safety test stopped it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from abc import ABC, abstractmethod
from typing import Any

from ..multiprocessing import DEFAULT_TIMEOUT, EXCEPTION_SERVER_ADDRESS, Process, SharedMemoryManager

__all__ = [
    "FINISH_EVENT",
    "SAFETY_BARRIER",
    "SAFETY_EVENT",
    "STOP_EVENT",
    "Experiment",
    "SafetyException",
    "SafetyTest",
    "StopException",
    "Testbed",
]

STOP_EVENT = "catkit_stop_event"
FINISH_EVENT = "catkit_soft_stop_event"
SAFETY_EVENT = "catkit_safety_event"
SAFETY_BARRIER = "catkit_safety_barrier"


class SafetyException(Exception):
    """A safety test failed."""


class StopException(Exception):
    """An experiment was stopped by the stop event."""


class SafetyTest(ABC):
    """A check the testbed runs before and while experiments run; ``check()`` raises (a
    ``SafetyException``) when unsafe. ``max_consecutive_failures`` failures in a row are
    tolerated (logged) before the next one raises."""

    def __init__(self, *args: Any, max_consecutive_failures: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name: str | None = None
        self.log = logging.getLogger()
        self.max_consecutive_failures = max_consecutive_failures
        self.consecutive_failure_counter = 0

    def do_check(self, force_raise: bool = False) -> None:
        try:
            self.check()
        except Exception as error:
            if force_raise:
                raise
            self.consecutive_failure_counter += 1
            if self.consecutive_failure_counter > self.max_consecutive_failures:
                raise
            self.log.warning(f"Safety test warning issued for {self.name}: {error}")
        else:
            self.consecutive_failure_counter = 0

    @abstractmethod
    def check(self) -> None:
        """Implement to conduct safety check and raise a SafetyException upon failure."""


class Testbed:
    """Owns the exception manager and runs the safety checks (see the module docs)."""

    STOP_EVENT = "stop the testbed running"

    def __init__(self, safety_tests: list[type[SafetyTest]], output_path: Any = None, suffix: str | None = None,
                 safety_check_interval: float = 60) -> None:
        self.log: logging.Logger | None = None
        self.output_path = output_path
        self.suffix = suffix
        self.init_path()
        self.init_log()
        self.safety_check_interval = safety_check_interval
        self.exception_manager = SharedMemoryManager(address=EXCEPTION_SERVER_ADDRESS, own=True)
        self.stop_event: Any = None
        self.finish_event: Any = None
        self.safety_event: Any = None
        self.barrier: Any = None
        self.safety_process: Process | None = None
        self.safety_tests = [test() for test in safety_tests]

    def start(self) -> Testbed:
        try:
            self._setup()
            assert self.stop_event is not None
            assert self.safety_event is not None
            self.check_safety(force_raise=True)
            self.safety_process = Process(target=self.safety_monitor, name="Safety Test Monitor",
                                          args=(self.barrier,))
            self.safety_process.start()
            self._log().info(f"Continuously monitoring safety tests... (on PID: {self.safety_process.pid})")
            self.barrier.wait()
            return self
        except Exception:
            try:
                try:
                    self._log().exception("The testbed encountered the following error(s):")
                finally:
                    self._teardown()
            finally:
                raise

    def stop(self) -> None:
        self._teardown()

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        try:
            self.stop()
        finally:
            if exc_type:
                self._log().exception("The testbed encountered the following error(s):")

    def _log(self) -> logging.Logger:
        return self.log or logging.getLogger()

    def _setup(self) -> None:
        """Starts the exception manager and makes the events and the monitor's barrier.
        Override to start other servers (and ``_teardown`` to stop them)."""
        self.exception_manager.start()
        self.stop_event = self.exception_manager.get_event(STOP_EVENT)
        self.finish_event = self.exception_manager.get_event(FINISH_EVENT)
        self.safety_event = self.exception_manager.get_event(SAFETY_EVENT)
        self.barrier = self.exception_manager.get_barrier(SAFETY_BARRIER, parties=2)

    def check_safety(self, *args: Any, **kwargs: Any) -> None:
        self._log().info("Running safety tests...")
        for safety_test in self.safety_tests:
            try:
                safety_test.do_check(*args, **kwargs)
            except Exception:
                # The safety event before the stop event: a waiter woken by the stop event
                # then sees why.
                self.safety_event.set()
                self.stop_event.set()
                raise
        self._log().info("All Safety tests passed!")

    def safety_monitor(self, barrier: Any) -> None:
        """Monitors the safety tests (in a child process)."""
        self.init_log()
        barrier.wait()
        while not self.stop_event.wait(self.safety_check_interval):
            self.check_safety()

    def _teardown(self) -> None:
        try:
            try:
                try:
                    if self.log:
                        self.log.info(" Cleaning up (teardown)...")
                finally:
                    if self.stop_event:
                        self.stop_event.set()
                        self.finish_event.set()
            finally:
                if self.safety_process:
                    self.safety_process.join(DEFAULT_TIMEOUT)
        finally:
            if self.exception_manager is not None:
                self.exception_manager.shutdown()

    def init_path(self) -> None:
        """Set up output (override)."""

    def init_log(self) -> None:
        """Initialise logging (override to add handlers)."""
        self.log = logging.getLogger()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["safety_process"] = None
        state["log"] = None
        return state


class Experiment:
    """catkit's ``Experiment``: subclasses implement ``experiment()`` (and optionally
    ``pre_experiment``/``post_experiment``); ``start()`` runs them in a child process and
    ``join()`` re-raises its failure (see the module docs)."""

    name: str | None = None
    log = logging.getLogger()

    def __init__(self, output_path: Any = None, suffix: str | None = None, stop_all_on_exception: bool = True,
                 run_forever: bool = False, disable_shared_memory: bool = False, daemon: bool | None = None) -> None:
        if self.name is None:
            self.name = self.__class__.__name__
        self.output_path = output_path
        self.suffix = suffix
        self.stop_all_on_exception = stop_all_on_exception
        self.run_forever = run_forever
        self.disable_shared_memory = disable_shared_memory
        self.daemon = daemon
        self.exception_manager = SharedMemoryManager(address=EXCEPTION_SERVER_ADDRESS, own=False)
        self.experiment_process: Process | None = None
        self.safety_event: Any = None
        self.stop_event: Any = None
        self.finish_event: Any = None
        self._event_monitor_barrier: Any = None
        self._kill_event_monitor_event: Any = None
        self.pre_experiment_return: Any = None
        self.experiment_return: Any = None
        self.post_experiment_return: Any = None
        self.init_path()
        self.init_log()

    def join(self, *args: Any, **kwargs: Any) -> None:
        if self.experiment_process:
            self.experiment_process.join(*args, **kwargs)

    def set_all_events(self) -> None:
        """Sets the stop and finish events (override to add your own; call this too)."""
        self.stop_event.set()
        self.finish_event.set()

    def start(self) -> None:
        """Starts the experiment in a child process and returns (``join()`` waits)."""
        self.exception_manager.connect()
        self.stop_event = self.exception_manager.get_event(STOP_EVENT)
        self.safety_event = self.exception_manager.get_event(SAFETY_EVENT)
        self.finish_event = self.exception_manager.get_event(FINISH_EVENT)
        try:
            if self.disable_shared_memory:
                self.log.info(f"Running experiment on parent process (PID: {os.getpid()})...")
                self.run_experiment()
            else:
                self.log.info("Creating separate process to run experiment...")
                self.experiment_process = Process(target=self.run_experiment, name=self.name, daemon=self.daemon)
                self.experiment_process.start()
                self.log.info(f"{self.name} process started on PID: {self.experiment_process.pid}")
        except Exception:
            if self.stop_all_on_exception:
                self.set_all_events()
            raise

    def __enter__(self) -> Experiment:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        if not self.daemon:
            self.join()

    def event_monitor(self) -> None:
        """Interrupts the experiment's main thread (``KeyboardInterrupt``) when the stop
        event is set — only the safety event with ``run_forever``."""
        try:
            self._event_monitor_barrier.wait()
            if self.run_forever:
                self.safety_event.wait()
            else:
                self.stop_event.wait()
        finally:
            if not self._kill_event_monitor_event.is_set():
                signal.raise_signal(signal.SIGINT)

    def run_experiment(self) -> None:
        """Runs ``pre_experiment``, ``experiment`` and ``post_experiment`` (in the child)."""
        from . import caching

        self.init_log()
        if not self.disable_shared_memory:
            self.exception_manager = SharedMemoryManager(address=EXCEPTION_SERVER_ADDRESS, own=False)
            self.exception_manager.connect()
            self.stop_event = self.exception_manager.get_event(STOP_EVENT)
            self.safety_event = self.exception_manager.get_event(SAFETY_EVENT)
            self.finish_event = self.exception_manager.get_event(FINISH_EVENT)
        self._event_monitor_barrier = threading.Barrier(parties=2, timeout=DEFAULT_TIMEOUT)
        self._kill_event_monitor_event = threading.Event()
        monitor = threading.Thread(target=self.event_monitor, daemon=True)
        monitor.start()
        try:
            try:
                self._event_monitor_barrier.wait()
                with caching.devices:
                    self.log.info(f"'{self.__class__.__name__}': Experiment.pre_experiment() running...")
                    self.pre_experiment_return = self.pre_experiment()
                    self.log.info(f"'{self.__class__.__name__}': Experiment.experiment() running...")
                    self.experiment_return = self.experiment()
                    self.log.info(f"'{self.__class__.__name__}': Experiment.post_experiment() running...")
                    self.post_experiment_return = self.post_experiment()
            except KeyboardInterrupt:
                if self.safety_event.is_set():
                    raise SafetyException(
                        f"'{self.__class__.__name__}': Event monitor detected a SAFETY event before experiment "
                        "completed (join root experiment and/or call teardown to retrieve safety exception)."
                    ) from None
                if self.stop_event.is_set():
                    raise StopException(
                        f"'{self.__class__.__name__}': Event monitor detected a STOP event before experiment "
                        "completed (join root experiment and/or call teardown to retrieve safety exception)."
                    ) from None
                raise
        except (Exception, KeyboardInterrupt):
            self.log.exception(f"'{self.__class__.__name__}': Exception caught during Experiment.run_experiment().")
            if self.stop_all_on_exception:
                # Silence the monitor first: setting the stop event must not interrupt this
                # thread before the exception reaches the parent.
                self._kill_event_monitor_event.set()
                self.set_all_events()
            raise
        finally:
            self._kill_event_monitor_event.set()

    def pre_experiment(self, *args: Any, **kwargs: Any) -> Any:
        """Called before ``experiment()`` (open devices, calibrate …)."""

    def experiment(self, *args: Any, **kwargs: Any) -> Any:
        """The experiment (implement this)."""

    def post_experiment(self, *args: Any, **kwargs: Any) -> Any:
        """Called after ``experiment()``."""

    def init_path(self) -> None:
        """Set up output (override)."""

    def init_log(self) -> None:
        """Initialise logging (override)."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["experiment_process"] = None
        state["_event_monitor_barrier"] = None
        state["_kill_event_monitor_event"] = None
        return state
