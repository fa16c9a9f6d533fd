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
    published = refused = 0
    for v in range(2, 50):
        try:
            writer.write(np.full(64, float(v)))
            published += 1
        except RuntimeError:
            refused += 1  # the held slot and the newest one are both off limits
    assert published > 10, "the writer kept going round the free slots"
    assert np.array_equal(kept, expected), "a held frame changed under its view"
    del kept
    # The pin went with the last view: the writer gets every slot back.
    for v in range(3):
        writer.write(np.full(64, float(v)))


def test_views_are_the_slots_themselves_and_pin_them(seg: shmkit.Segment) -> None:
    slots = 3
    ring = seg.frame_ring("cam", (64,), "float64", slots=slots)
    reader, writer = ring.reader(), ring.writer()
    kept = []
    for v in range(1, slots):  # slots - 1 views, each kept after its with block
        writer.write(np.full(64, float(v)))
        with reader.next(5) as frame:
            kept.append(frame.array)
        del frame
    # One slot is left unheld; once it holds the newest frame, nothing may be overwritten:
    # a copy would leave every slot free and this write would succeed.
    writer.write(np.full(64, float(slots)))
    with pytest.raises(RuntimeError, match="held by readers"):
        writer.write(np.full(64, -1.0))
    assert [float(a[0]) for a in kept] == [float(v) for v in range(1, slots)]
    assert all(np.all(a == a[0]) for a in kept)
    held = {a.ctypes.data for a in kept}
    assert len(held) == slots - 1
    del kept  # the pins go with the last views
    seen = set()
    for v in range(2 * slots):
        writer.write(np.full(64, float(v)))
        seen.add(reader.next(5).array.ctypes.data)
    assert len(seen) == slots and held <= seen, "the kept views were slots, not copies"


def test_copy_is_private_and_a_wrong_dtype_or_size_is_refused(seg: shmkit.Segment) -> None:
    ring = seg.frame_ring("cam", (8,), "uint8")
    reader, writer = ring.reader(), ring.writer()
    writer.write(np.arange(8, dtype=np.uint8))
    c = reader.next(5).copy()
    c[0] = 99
    assert c.flags.writeable and c[0] == 99
    with pytest.raises(ValueError, match="uint8"):
        writer.write(np.zeros(8, dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(8,\); the array's shape is \(9,\)"):
        writer.write(np.zeros(9, dtype=np.uint8))
    with pytest.raises(ValueError, match="bytes"):
        writer.write_partial(np.zeros(9, dtype=np.uint8))
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


def test_a_claimed_slot_is_a_writable_view_published_in_place(seg: shmkit.Segment) -> None:
    ring = seg.frame_ring("cam", (4, 8), np.uint16)
    reader, writer = ring.reader("oldest"), ring.writer()
    with writer.claim() as slot:
        slot.array[:] = np.arange(32, dtype=np.uint16).reshape(4, 8)
        slot.array[0, 0] = 1000
        slot.set_user(2, 5)
    assert not slot.claimed
    frame = reader.next(5)
    assert frame.id == 1 and frame.user(2) == 5
    assert frame.array[0, 0] == 1000 and frame.array[3, 7] == 31
    # The writable array is the slot itself: writing through it is what readers then see.
    slot2 = writer.claim()
    a = slot2.array
    assert a.flags.writeable and a.dtype == np.uint16 and a.shape == (4, 8)
    a.fill(9)
    del a
    assert slot2.publish(user=[3]) == 2
    assert int(reader.next(5).array.sum()) == 9 * 32


def test_publishing_while_a_view_of_the_slot_is_alive_is_an_error_not_a_torn_frame(
    seg: shmkit.Segment,
) -> None:
    ring = seg.frame_ring("cam", (16,), np.float32, slots=3)
    reader, writer = ring.reader("oldest"), ring.writer()
    slot = writer.claim()
    a = slot.array
    part = a[4:8]  # a view of the view: also keeps the slot exported
    del a
    a_mv = memoryview(slot)
    with pytest.raises(BufferError, match="2 array"):
        slot.publish()
    with pytest.raises(BufferError):
        slot.abandon()
    assert slot.claimed
    with pytest.raises(shmkit.FrameTimeout):
        reader.next(0.01)  # nothing published
    with pytest.raises(RuntimeError, match="one frame at a time"):
        writer.claim()
    a_mv.release()
    del part
    assert slot.publish() == 1
    with pytest.raises(RuntimeError, match="already published"):
        slot.array
    # A block that ends with the array still bound raises instead of publishing.
    with pytest.raises(BufferError):
        with writer.claim() as s:
            kept = s.array
            kept[:] = 2.0
    assert ring.last_id == 1
    del kept
    # The slot was left claimed while `kept` lived; collected now, the writer is back.
    del s
    assert writer.write(np.zeros(16, np.float32)) == 2


def test_a_block_that_raises_abandons_the_claimed_slot(seg: shmkit.Segment) -> None:
    ring = seg.frame_ring("cam", (8,), np.uint8)
    writer = ring.writer()
    with pytest.raises(KeyError):
        with writer.claim() as slot:
            slot.array[:] = 1
            raise KeyError("camera glitch")
    assert not slot.claimed and ring.last_id == 0
    assert writer.write(np.ones(8, np.uint8)) == 1


def test_write_copies_any_array_layout_once_and_checks_dtype_and_size(seg: shmkit.Segment) -> None:
    ring = seg.frame_ring("cam", (4, 4), np.int32)
    reader, writer = ring.reader("oldest"), ring.writer()
    base = np.arange(16, dtype=np.int32).reshape(4, 4)
    writer.write(base.T)  # not C-contiguous: written in C order of the transposed view
    assert np.array_equal(reader.next(5).array, base.T)
    with pytest.raises(ValueError, match="int32"):
        writer.write(base.astype(np.int64))
    with pytest.raises(ValueError, match="bytes"):
        writer.write_partial(np.zeros(17, np.int32))
    assert writer.write(base) == 2  # the failed writes gave the slot and writer back


def test_an_array_of_another_shape_is_refused_and_a_partial_frame_is_explicit(
    seg: shmkit.Segment,
) -> None:
    ring = seg.frame_ring("cam", (64, 64), np.uint16)
    reader, writer = ring.reader("oldest"), ring.writer()
    small = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)
    with pytest.raises(ValueError, match=r"shape \(64, 64\); the array's shape is \(32, 32\)"):
        writer.write(small)
    with pytest.raises(ValueError, match=r"\(4096,\)"):
        writer.write(np.zeros(64 * 64, np.uint16))  # same size, another shape
    assert ring.last_id == 0, "nothing was published"
    assert writer.write_partial(small) == 1
    frame = reader.next(5)
    assert frame.array.size == 32 * 32 and np.array_equal(frame.array, small.ravel())


def test_a_declared_cadence_counts_exactly_the_frames_written_past_its_deadline(
    seg: shmkit.Segment,
) -> None:
    import time

    ring = seg.frame_ring("cadenced", (4,), "uint8", 4)
    late, stalls = seg.declare_cadence("cadenced", 0.005, 0.04)
    assert seg.declare_cadence("cadenced", 0.005, 0.04)[0].snapshot().count == 0
    with pytest.raises(shmkit.ShmkitError, match="40ms"):
        seg.declare_cadence("cadenced", 0.005, 0.05)
    with pytest.raises(shmkit.ShmkitError, match="deadline >= the period"):
        seg.declare_cadence("other", 0.005, 0.001)
    writer = ring.writer()
    writer.count_late(0.04, late)
    frame = np.zeros(4, dtype=np.uint8)
    for _ in range(3):
        writer.write(frame)
    time.sleep(0.12)  # the input: one interval well past the deadline
    writer.write(frame)
    assert late.snapshot().count == 1 and late.snapshot().max >= 0.12
    assert stalls.snapshot().count == 0
