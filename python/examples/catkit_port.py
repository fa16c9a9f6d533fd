"""An experiment written for the manager-based Python testbed framework, ported to shmkit by
changing its imports only.

The original imports were::

    from catkit.multiprocessing import Process, SharedMemoryManager
    from catkit.testbed.caching import DeviceCacheEnum, MutexedDict
    from catkit.testbed.experiment import Experiment, SafetyTest, Testbed
    from catkit.interfaces import Instrument

Everything below the imports is in that framework's style: devices reached through an
enum, a barrier (looked up by name) keeping two experiments in step, a mutexed dictionary of
results, a wider critical section on the mirror, and a safety test. Run:
``python python/examples/catkit_port.py``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import numpy.typing as npt

from shmkit import Device as Instrument
from shmkit.compat import (
    DeviceCacheEnum,
    Experiment,
    MutexedDict,
    SafetyTest,
    SharedMemoryManager,
    Testbed,
)

STEPS = 20


class FakeCamera(Instrument):
    """A camera whose image brightens with the mirror's mean command."""

    def __init__(self, shape: tuple[int, int] = (32, 32)) -> None:
        self.shape = shape
        self.exposures = 0

    def open(self) -> None:
        self.rng = np.random.default_rng(0)

    def close(self) -> None:
        self.exposures = 0

    def take_image(self, mirror_mean: float) -> npt.NDArray[np.float64]:
        self.exposures += 1
        return self.rng.normal(100.0 + 10.0 * mirror_mean, 1.0, self.shape)


class FakeMirror(Instrument):
    def __init__(self, actuators: int = 12) -> None:
        self.shape = np.zeros((actuators, actuators))

    def open(self) -> None:
        self.shape[:] = 0.0

    def close(self) -> None:
        self.shape[:] = 0.0  # the safe state: flat

    def apply(self, value: float) -> float:
        self.shape[:] = value
        return float(self.shape.mean())

    def mean(self) -> float:
        return float(self.shape.mean())

    def max_stroke(self) -> float:
        return float(np.abs(self.shape).max())


class Devices(DeviceCacheEnum):
    CAMERA = (FakeCamera, {"shape": (32, 32)})
    DM = (FakeMirror, {"actuators": 12})


class MirrorStrokeTest(SafetyTest):
    name = "mirror stroke"

    def check(self) -> bool:
        return bool(Devices.DM.max_stroke() <= 1.0)


class MoveMirror(Experiment):
    name = "move_mirror"

    def experiment(self) -> None:
        step = SharedMemoryManager().get_barrier("step", 2)
        for i in range(STEPS):
            with Devices.DM:  # nobody images while the mirror moves
                Devices.DM.apply(i / STEPS)
            step.wait(30)  # the camera may image now
            step.wait(30)  # it has


class TakeImages(Experiment):
    name = "take_images"

    def experiment(self) -> None:
        step = SharedMemoryManager().get_barrier("step", 2)
        results = MutexedDict("results")
        for i in range(STEPS):
            step.wait(30)
            with Devices.DM:
                image = Devices.CAMERA.take_image(Devices.DM.mean())
            with results:
                results[str(i)] = float(image.mean())
            step.wait(30)


def main() -> None:
    name = f"catkit-port-{os.getpid()}"
    with Testbed(name, Devices, [MirrorStrokeTest()], safety_check_interval=0.2) as testbed:
        testbed.start_experiment(MoveMirror())
        testbed.start_experiment(TakeImages())
        assert testbed.wait_experiments(60), "the experiments did not finish"
        testbed.raise_failures()
        results = MutexedDict("results")
        brightness = [results[str(i)] for i in range(STEPS)]
    assert all(b2 > b1 for b1, b2 in zip(brightness, brightness[1:])), brightness
    print(f"{STEPS} steps in lockstep; brightness {brightness[0]:.1f} -> {brightness[-1]:.1f}")


if __name__ == "__main__":
    start = time.monotonic()
    main()
    print(f"done in {time.monotonic() - start:.1f} s")
