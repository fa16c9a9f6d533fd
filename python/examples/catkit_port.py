"""A catkit experiment pair ported to shmkit by changing its imports only.

The original imports were::

    from catkit.multiprocessing import EXCEPTION_SERVER_ADDRESS, MutexedNamespaceSingleton, SharedMemoryManager
    from catkit.testbed import DeviceCacheEnum, devices
    from catkit.testbed.experiment import Experiment, SafetyException, SafetyTest, Testbed

Everything below the imports is catkit code: devices linked into catkit's device cache and
reached through an enum, the simulator's state in a shared singleton namespace (the pattern
catkit's own simulators use), a barrier looked up by name keeping two experiments in step, a
mutexed dictionary of results, and a safety test on the mirror's stroke that trips mid-run:
both experiments' ``join()`` and the testbed's exit raise ``SafetyException``, as catkit's do.
Run: ``python python/examples/catkit_port.py``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from shmkit.compat.multiprocessing import EXCEPTION_SERVER_ADDRESS, MutexedNamespaceSingleton, SharedMemoryManager
from shmkit.compat.testbed import DeviceCacheEnum, devices
from shmkit.compat.testbed.experiment import Experiment, SafetyException, SafetyTest, Testbed

STEPS = 20
#: The mirror is pushed past its safe stroke at this step; the safety test trips.
UNSAFE_STEP = 14
#: Seconds per exposure.
EXPOSURE_S = 0.05

#: The simulated bench's state, shared by every process (catkit's ``SharedState`` pattern).
BenchState = MutexedNamespaceSingleton.factory(address=EXCEPTION_SERVER_ADDRESS, name="BenchState", timeout=5)


class SimMirror:
    """A simulated deformable mirror: its mean command is the bench's state."""

    def __init__(self, actuators: int) -> None:
        self.actuators = actuators
        self.instrument: Any = None

    def __enter__(self) -> SimMirror:
        self.instrument = np.zeros((self.actuators, self.actuators))
        return self

    def __exit__(self, *args: Any) -> None:
        self.instrument = None

    def apply(self, value: float) -> None:
        self.instrument[:] = value
        BenchState().dm_mean = float(value)


class SimCamera:
    """A simulated camera whose image brightens with the mirror's mean command."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.exposures = 0
        self.instrument: Any = None

    def __enter__(self) -> SimCamera:
        self.instrument = np.random.default_rng(0)
        return self

    def __exit__(self, *args: Any) -> None:
        self.instrument = None

    def take_exposure(self) -> Any:
        time.sleep(EXPOSURE_S)
        self.exposures += 1
        return self.instrument.normal(100.0 + 10.0 * BenchState().dm_mean, 1.0, self.shape)


class Devices(DeviceCacheEnum):
    DM = ("deformable mirror", "dm_config")
    CAMERA = ("science camera", "camera_config")


@devices.link(key=Devices.DM)
def dm() -> SimMirror:
    return SimMirror(actuators=12)


@devices.link(key=Devices.CAMERA)
def camera() -> SimCamera:
    return SimCamera(shape=(32, 32))


class MirrorStrokeTest(SafetyTest):
    def check(self) -> None:
        stroke = abs(getattr(BenchState(), "dm_mean", 0.0))
        if stroke > 1.0:
            raise SafetyException(f"the mirror's stroke {stroke:.2f} exceeds 1.0")


class MoveMirror(Experiment):
    name = "move_mirror"

    def experiment(self) -> None:
        manager = SharedMemoryManager(address=EXCEPTION_SERVER_ADDRESS)
        manager.connect()
        step = manager.get_barrier("step", 2)
        for i in range(STEPS):
            Devices.DM.apply(1.5 if i >= UNSAFE_STEP else i / STEPS)
            step.wait()  # the camera may image now
            step.wait()  # it has


class TakeImages(Experiment):
    name = "take_images"

    def experiment(self) -> None:
        manager = SharedMemoryManager(address=EXCEPTION_SERVER_ADDRESS)
        manager.connect()
        step = manager.get_barrier("step", 2)
        results = BenchState().results
        for i in range(STEPS):
            step.wait()
            with results:
                results[i] = float(Devices.CAMERA.take_exposure().mean())
            step.wait()


def main() -> None:
    outcome = "no safety trip"
    experiments = [MoveMirror(), TakeImages()]
    try:
        with Testbed(safety_tests=[MirrorStrokeTest], safety_check_interval=0.05):
            state = BenchState()
            state.dm_mean = 0.0
            state.results = SharedMemoryManager(address=EXCEPTION_SERVER_ADDRESS).MutexedDict(timeout=5)
            for experiment in experiments:
                experiment.start()
            for experiment in experiments:
                try:
                    experiment.join()
                except SafetyException as e:
                    print(f"{experiment.name}: {str(e).split(' (')[0]}")
                except threading.BrokenBarrierError:
                    # Its partner was interrupted at the barrier first.
                    print(f"{experiment.name}: the step barrier broke when the safety event stopped its partner")
            results = state.results
            brightness = [results[i] for i in sorted(results.keys())]
    except SafetyException as e:
        outcome = f"the testbed stopped: {e}"
    assert all(b2 > b1 for b1, b2 in zip(brightness, brightness[1:UNSAFE_STEP])), brightness
    # How many unsafe steps image before the 50 ms safety check sees the stroke is timing;
    # that the trip ends the run early, after every safe step, is not.
    assert UNSAFE_STEP <= len(brightness) < STEPS, brightness
    print(f"{UNSAFE_STEP} safe steps in lockstep before the trip; brightness {brightness[0]:.1f} -> "
          f"{brightness[UNSAFE_STEP - 1]:.1f}; the trip ended the run after {len(brightness)} of {STEPS} steps; "
          f"{outcome}")


if __name__ == "__main__":
    start = time.monotonic()
    main()
    print(f"done in {time.monotonic() - start:.1f} s")
