"""One half of a pair (``examples/lock_holder.rs`` in Python): takes the mirror's lock, marks
it "moving" and never lets go — kill it (Ctrl+C or ``kill -9``); ``lock_survivor.py`` repairs.
Usage: ``lock_holder.py [SEGMENT]``."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

import shmkit

MOVING = 1


def main(name: str = "shmkit-example-lock-py") -> None:
    seg = shmkit.Segment.open_or_create(name, 1 << 20)
    lock, state = seg.mutex("mirror-lock"), seg.value("mirror-state", np.uint64, init=0)
    try:
        lock.acquire()
    except shmkit.errors.OwnerDiedError:
        lock.make_consistent()                # a previous holder died; this run starts afresh
    state.set(MOVING)                         # half-way through a move...
    seg.event("holder-ready").set()
    print(f"holder {os.getpid()}: mirror state is 'moving' and locked; kill me", flush=True)
    threading.Event().wait()                  # ...and never finishing it


if __name__ == "__main__":
    main(*sys.argv[1:2])
