"""One half of a pair: a camera publishing 64 x 64 frames (``examples/frames_writer.rs`` in
Python; either writer pairs with either reader). Usage: ``frames_writer.py [SEGMENT] [FRAMES]``."""

from __future__ import annotations

import argparse
import time

import numpy as np

import shmkit


def main(name: str, frames: int) -> None:
    seg = shmkit.Segment.open_or_create(name, 8 << 20)   # the first of the pair creates it
    writer = seg.frame_ring("camera", (64, 64), np.uint16, slots=8).writer()
    print(f"writer: publishing {frames} frames into {name!r}/camera at 500 Hz", flush=True)
    for n in range(frames):
        with writer.claim() as slot:                      # written in place, published on exit
            slot.array[:] = n % 65536
            slot.set_user(0, n)
        time.sleep(0.002)
    print("writer: done", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("segment", nargs="?", default="shmkit-example")
    parser.add_argument("frames", nargs="?", type=int, default=2000)
    args = parser.parse_args()
    main(args.segment, args.frames)
