"""Two processes share a frame ring, an event, a robust lock, a dictionary and a value."""

from __future__ import annotations

import os
import time

import numpy as np

import shmkit


def camera(seg: shmkit.Segment, ready: shmkit.Event, lock: shmkit.Mutex,
           stats: shmkit.SharedDict) -> None:
    writer = seg.frame_ring("camera").writer()
    exposure = seg.value("exposure")                # a shared numpy float64
    assert ready.wait(30)
    for i in range(50):
        with writer.claim() as slot:                # published when the block ends
            slot.array[:] = i                       # written in place, no copy
            slot.set_user(0, i)
            slot.set_user(1, int(exposure.get() * 1e6))
        with lock:                                  # a robust RLock shared by both processes
            stats["published"] = stats.get("published", 0) + 1
        time.sleep(0.002)


def main() -> None:
    name = f"shmkit-example-{os.getpid()}"
    with shmkit.Segment.create(name, 1 << 24) as seg:
        try:
            ring = seg.frame_ring("camera", (48, 64), np.uint16, slots=8)
            ready, lock, stats = seg.event("ready"), seg.mutex("stats-lock"), seg.dict("stats", 16)
            seg.value("exposure", np.float64, init=0.002)
            reader = ring.reader("oldest")
            child = shmkit.Process(target=camera, args=(seg, ready, lock, stats))  # spawn
            child.start()
            ready.set()
            for n, frame in enumerate(reader, 1):
                image = frame.array                 # read-only view of the slot, no copy
                assert int(image[0, 0]) == frame.user(0) == n - 1
                assert frame.user(1) == 2000        # the exposure the parent set, in µs
                if n == 50:
                    break
            child.join(30)                          # re-raises the child's own exception
            with lock:
                print(f"read {n} frames in place; the child published {stats['published']}")
        finally:
            shmkit.Segment.unlink(name)


if __name__ == "__main__":                          # the spawned child imports this module
    main()
