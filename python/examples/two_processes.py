"""Two processes sharing a mutex, an event, a dictionary, a numpy value and a frame ring.

The parent creates the segment and its objects and starts a camera-like child; the child
fills each frame in place in a claimed slot, stamps it with the exposure the parent set in a
shared value, and counts it in the dictionary under the mutex; the parent reads every frame
in place as a numpy array (no copy) and checks its contents.

Run: ``python python/examples/two_processes.py``
"""

from __future__ import annotations

import os
import time

import numpy as np

import shmkit

FRAMES = 50
SHAPE = (48, 64)


def camera(ring_seg: shmkit.Segment, ready: shmkit.Event, lock: shmkit.Mutex,
           stats: shmkit.SharedDict) -> None:
    """The child: waits for the parent's reader, then publishes FRAMES frames at 500 Hz (the
    writer never waits for readers: a reader slower than the camera skips or overruns)."""
    writer = ring_seg.frame_ring("camera").writer()
    exposure = ring_seg.value("exposure")  # dtype and shape as the parent created it
    assert ready.wait(30), "the parent never got ready"
    for i in range(FRAMES):
        with writer.claim() as slot:  # published when the block ends
            slot.array[:] = i  # written in place: the slot itself, no copy
            slot.set_user(0, i)
            slot.set_user(1, int(exposure.get() * 1e6))
        with lock:
            stats["published"] = stats.get("published", 0) + 1
        time.sleep(0.002)


def main() -> None:
    name = f"shmkit-example-{os.getpid()}"
    with shmkit.Segment.create(name, 1 << 24) as seg:
        try:
            ring = seg.frame_ring("camera", SHAPE, np.uint16, slots=8)
            ready, lock, stats = seg.event("ready"), seg.mutex("stats-lock"), seg.dict("stats", 16)
            seg.value("exposure", np.float64, init=0.002)  # seconds
            reader = ring.reader("oldest")
            child = shmkit.Process(target=camera, args=(seg, ready, lock, stats))
            child.start()
            ready.set()
            seen = 0
            for frame in reader:
                image = frame.array  # a read-only view of the slot itself
                assert image.shape == SHAPE and int(image[0, 0]) == frame.user(0) == seen
                assert frame.user(1) == 2000  # the exposure, in microseconds
                seen += 1
                if seen == FRAMES:
                    break
            child.join(30)
            with lock:
                published = stats["published"]
            print(f"parent read {seen} frames in place; the child counted {published}")
            assert published == FRAMES
        finally:
            shmkit.Segment.unlink(name)


if __name__ == "__main__":
    main()
