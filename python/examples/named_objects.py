"""One program run twice (``examples/named_objects.rs`` in Python): the first run creates the
named objects, the second finds them; they meet at a barrier, count together under a robust
lock, and compare the total. Usage: ``named_objects.py [SEGMENT]`` in two terminals."""

from __future__ import annotations

import os
import sys

import numpy as np

import shmkit

PER_PROCESS = 20_000


def main(name: str = "shmkit-example-named-py") -> None:
    seg = shmkit.Segment.open_or_create(name, 1 << 20)     # whoever comes first creates
    meet = seg.barrier("meet", 2, timeout=60)
    lock = seg.mutex("count-lock")
    count = seg.value("count", np.uint64, init=0)
    who = seg.dict("who", 8)
    print(f"{os.getpid()}: objects found by name in {name!r}; waiting for the other process", flush=True)
    arrival = meet.wait()
    who[f"arrival {arrival}"] = os.getpid()
    for _ in range(PER_PROCESS):
        with lock:                                          # read-modify-write across calls
            count.set(count.get() + 1)
    meet.wait()
    total = int(count.get())
    print(f"{os.getpid()}: total {total} (expected {2 * PER_PROCESS}); arrivals {sorted(who)}")
    if arrival == 0:
        shmkit.Segment.unlink(name)                         # the other keeps its mapping
    if total != 2 * PER_PROCESS:
        raise SystemExit("lost updates")


if __name__ == "__main__":
    main(*sys.argv[1:2])
