"""`SharedValue`: numpy values with a dtype and shape, atomic under their robust mutex."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import shmkit


def test_a_scalar_value_reads_as_a_numpy_scalar_and_is_set_by_conversion(
    seg: shmkit.Segment,
) -> None:
    v = seg.value("gain", np.float64, init=0.5)
    got = v.get()
    assert isinstance(got, np.float64) and got == 0.5
    v.set(3)
    assert v.get() == 3.0
    assert (v.dtype, v.shape, v.nbytes) == (np.dtype(np.float64), (), 8)


def test_an_array_value_copies_in_and_out_and_broadcasts(seg: shmkit.Segment) -> None:
    v = seg.value("offsets", "<i4", (2, 3))
    assert v.get().tolist() == [[0, 0, 0], [0, 0, 0]]
    v.set([1, 2, 3])  # broadcast over the rows
    out = v.get()
    out[0, 0] = 99  # a private copy: the shared value is unchanged
    assert v.get().tolist() == [[1, 2, 3], [1, 2, 3]]
    with pytest.raises(ValueError):
        v.set([1, 2])


def test_update_writes_back_on_success_and_discards_on_an_exception(seg: shmkit.Segment) -> None:
    v = seg.value("n", np.int64, init=1)
    with v.update() as a:
        a += 41
    assert v.get() == 42
    with pytest.raises(ZeroDivisionError):
        with v.update() as a:
            a += 1
            1 / 0
    assert v.get() == 42
    assert not v.mutex._is_owned(), "update released the mutex"


def test_a_value_reopens_by_name_with_its_dtype_and_refuses_another(seg: shmkit.Segment) -> None:
    seg.value("img", np.uint16, (4, 5), init=7)
    again = seg.value("img")
    assert (again.dtype, again.shape) == (np.dtype(np.uint16), (4, 5))
    assert int(again.get().sum()) == 7 * 20
    with pytest.raises(shmkit.SegmentError, match="does not match"):
        seg.value("img", np.float32, (4, 5))
    with pytest.raises(shmkit.SegmentError, match="does not match"):
        seg.value("img", np.uint16, (5, 4))
    with pytest.raises(TypeError, match="Python objects"):
        seg.value("objects", object, 3)
    with pytest.raises(shmkit.ObjectNotFound):
        seg.value("absent")


def test_a_structured_dtype_round_trips_and_pickles(seg: shmkit.Segment) -> None:
    dt = np.dtype([("exposure", "<f8"), ("gain", "<u2"), ("frame", "<u8")])
    v = seg.value("camera_settings", dt, init=(0.001, 4, 0))
    v.set((0.002, 8, 12))
    again = pickle.loads(pickle.dumps(v))
    got = again.get()
    assert (float(got["exposure"]), int(got["gain"]), int(got["frame"])) == (0.002, 8, 12)


def test_the_mutex_makes_several_calls_one_critical_section(seg: shmkit.Segment) -> None:
    v = seg.value("count", np.int64)
    n = 2000

    def bump() -> None:
        for _ in range(n):
            with v.mutex:  # get and set inside the holder's section do not lock again
                v.set(v.get() + 1)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert v.get() == 4 * n
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(v.mutex)


def _bump_in_child(v: shmkit.SharedValue, n: int) -> None:
    for _ in range(n):
        with v.update() as a:
            a += 1


def test_processes_increment_one_value_without_losing_an_update(seg: shmkit.Segment) -> None:
    v = seg.value("count", np.int64)
    ctx = mp.get_context("spawn")
    children = [ctx.Process(target=_bump_in_child, args=(v, 500)) for _ in range(2)]
    for c in children:
        c.start()
    _bump_in_child(v, 500)
    for c in children:
        c.join(60)
        assert c.exitcode == 0
    assert v.get() == 1500


def test_a_holder_killed_mid_update_leaves_the_value_inconsistent_until_repaired(
    seg: shmkit.Segment,
) -> None:
    v = seg.value("pos", np.float64, 3, init=1.0)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, shmkit\n"
            "v = shmkit.Segment.open(sys.argv[1]).value('pos')\n"
            "with v.update() as a:\n"
            "    print('inside', flush=True)\n"
            "    time.sleep(60)\n",
            seg.name,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "inside"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    for _ in range(2):  # reported every time until someone repairs it
        with pytest.raises(shmkit.InconsistentValueError) as info:
            v.get()
        assert info.value.previous_pid == child.pid
    with pytest.raises(shmkit.InconsistentValueError):
        v.set(0.0)
    with pytest.raises(shmkit.OwnerDiedError):
        v.mutex.acquire()
    v.set([4.0, 5.0, 6.0])  # the repair, inside this thread's hold
    v.mutex.make_consistent()
    v.mutex.release()
    assert v.get().tolist() == [4.0, 5.0, 6.0]


def test_a_get_waiting_for_the_mutex_lets_other_threads_run(seg: shmkit.Segment) -> None:
    v = seg.value("x", np.int32)
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with v.mutex:
            v.set(5)
            holding.set()
            release.wait(10)  # needs the GIL while the main thread waits in get()

    t = threading.Thread(target=holder)
    t.start()
    assert holding.wait(10)
    threading.Timer(0.2, release.set).start()
    assert v.get() == 5
    t.join()
