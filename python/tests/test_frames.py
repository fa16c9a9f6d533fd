"""Frame rings from Python: zero-copy read-only numpy views that pin their slot."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import shmkit


def test_a_frame_is_a_read_only_view_with_the_rings_dtype_and_shape(seg: shmkit.Segment) -> None:
    ring = seg.frame_ring("cam", (4, 8), np.uint16)
    assert (ring.shape, ring.dtype, ring.slots) == ([4, 8], "uint16", 4)
    reader = ring.reader()
    writer = ring.writer()
    data = np.arange(32, dtype=np.uint16).reshape(4, 8)
    assert writer.write(data, user=[7]) == 1
    frame = reader.next(5)
    a = frame.array
    assert a.dtype == np.uint16 and a.shape == (4, 8)
    assert np.array_equal(a, data)
    assert frame.id == 1 and frame.user(0) == 7 and frame.ts_ns > 0
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a.setflags(write=True)
    with pytest.raises(ValueError):
        a[0, 0] = 1
    assert np.shares_memory(a, frame.array) or a.ctypes.data == frame.array.ctypes.data


def test_a_view_kept_after_its_with_block_never_changes_while_the_writer_laps(
    seg: shmkit.Segment,
) -> None:
    ring = seg.frame_ring("cam", (64,), "float64", slots=3)
    reader, writer = ring.reader(), ring.writer()
    writer.write(np.full(64, 1.0))
    with reader.next(5) as frame:
        kept = frame.array
    del frame
    expected = kept.copy()
    published = 0
    for v in range(2, 50):
        try:
            writer.write(np.full(64, float(v)))
            published += 1
        except RuntimeError:
            pass  # every other slot held: the writer is told, never overwrites
    assert published > 10, "the writer kept going round the free slots"
    assert np.array_equal(kept, expected), "a held frame changed under its view"
    del kept
    # The pin went with the last view: the writer gets every slot back.
    for v in range(3):
        writer.write(np.full(64, float(v)))


def test_copy_is_private_and_a_wrong_dtype_or_size_is_refused(seg: shmkit.Segment) -> None:
    ring = seg.frame_ring("cam", (8,), "uint8")
    reader, writer = ring.reader(), ring.writer()
    writer.write(np.arange(8, dtype=np.uint8))
    c = reader.next(5).copy()
    c[0] = 99
    assert c.flags.writeable and c[0] == 99
    with pytest.raises(ValueError, match="uint8"):
        writer.write(np.zeros(8, dtype=np.float32))
    with pytest.raises(ValueError, match="bytes"):
        writer.write(np.zeros(9, dtype=np.uint8))
    with pytest.raises(ValueError):
        seg.frame_ring("bad", (8,), "complex128")


def test_next_times_out_and_the_reader_iterates(seg: shmkit.Segment) -> None:
    ring = seg.frame_ring("cam", (4,), "int32")
    reader = ring.reader("oldest")
    with pytest.raises(shmkit.FrameTimeout):
        reader.next(0.05)
    writer = ring.writer()

    def publish() -> None:
        for i in range(3):
            writer.write(np.full(4, i, dtype=np.int32))

    t = threading.Thread(target=publish)
    t.start()
    got = []
    for frame in reader:
        got.append(int(frame.array[0]))
        if len(got) == 3:
            break
    t.join()
    assert got == [0, 1, 2]
    assert seg.frame_ring("cam").shape == [4], "opened as it is, without a spec"
