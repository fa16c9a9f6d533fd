"""The other half of ``lock_holder.py``: gets the lock with the news that its holder died,
puts the mirror back in a safe state and makes the lock consistent.
Usage: ``lock_survivor.py [SEGMENT]``."""

from __future__ import annotations

import sys

import numpy as np

import shmkit

SAFE = 0


def main(name: str = "shmkit-example-lock-py") -> None:
    seg = shmkit.Segment.open_or_create(name, 1 << 20)
    lock, state = seg.mutex("mirror-lock"), seg.value("mirror-state", np.uint64, init=SAFE)
    if not seg.event("holder-ready").wait(60):
        raise SystemExit("no holder took the lock (start lock_holder.py first)")
    print("survivor: waiting for the lock (kill the holder)", flush=True)
    try:
        lock.acquire(timeout=600)
        raise SystemExit("the holder released it: nothing to repair")
    except shmkit.errors.OwnerDiedError as died:        # the lock is now ours, inconsistent
        print(f"survivor: {died}; the mirror was in state {int(state.get())}")
        state.set(SAFE)                                 # the repair
        lock.make_consistent()
        lock.release()
        print("survivor: mirror back to safe; the lock is consistent again")
    shmkit.Segment.unlink(name)


if __name__ == "__main__":
    main(*sys.argv[1:2])
