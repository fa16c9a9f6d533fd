"""The other half of ``frames_writer``: reads the newest frames in place and checks each one.
Usage: ``frames_reader.py [SEGMENT] [FRAMES]``."""

from __future__ import annotations

import argparse
import time

import shmkit


def wait_for_ring(name: str, patience: float = 30.0) -> shmkit.FrameRing:
    """The writer may start second: wait for its segment and ring to appear."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return shmkit.Segment.open(name).frame_ring("camera")
        except shmkit.errors.SegmentError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main(name: str, frames: int) -> None:
    reader = wait_for_ring(name).reader("newest")         # a slow reader skips, never blocks
    start, last, skipped = time.monotonic(), None, 0
    for _ in range(frames):
        with reader.next(timeout=5) as frame:              # the slot itself, no copy
            n = frame.user(0)
            if (frame.array != n % 65536).any():
                raise RuntimeError(f"frame {frame.id} is not all {n}")
            skipped += 0 if last is None else frame.id - last - 1
            last = frame.id
    rate = frames / (time.monotonic() - start)
    print(f"reader: {frames} frames checked ({rate:.0f}/s), {skipped} skipped as newest-only")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("segment", nargs="?", default="shmkit-example")
    parser.add_argument("frames", nargs="?", type=int, default=500)
    args = parser.parse_args()
    main(args.segment, args.frames)
