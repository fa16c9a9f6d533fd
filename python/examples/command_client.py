"""The other half of ``command_server.py``: calls it and checks every answer.
Usage: ``command_client.py [SEGMENT] [CALLS]``."""

from __future__ import annotations

import argparse
import struct
import time

import shmkit


def wait_for_ring(name: str, patience: float = 30.0) -> shmkit.CommandRing:
    deadline = time.monotonic() + patience
    while True:
        try:
            return shmkit.Segment.open(name).command_ring("adder-py")
        except shmkit.errors.SegmentError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main(name: str, calls: int) -> None:
    ring = wait_for_ring(name)
    start = time.monotonic()
    for i in range(calls):
        (total,) = struct.unpack("<q", ring.call(struct.pack("<qq", i, 2 * i), timeout=5))
        if total != 3 * i:
            raise RuntimeError(f"{i} + {2 * i} came back as {total}")
    each = (time.monotonic() - start) / max(calls, 1) * 1e6
    print(f"client: {calls} calls answered correctly, {each:.1f} µs per round trip")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("segment", nargs="?", default="shmkit-example")
    parser.add_argument("calls", nargs="?", type=int, default=1000)
    args = parser.parse_args()
    main(args.segment, args.calls)
