"""`shmkit record` sessions read back by astropy (the FITS standard as astropy reads it) and by
`shmkit.Recording`: data equal to what was published, the metadata table's columns as
documented, exact roll-over boundaries, and every frame accounted for."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shmkit

fits: Any = pytest.importorskip("astropy.io.fits", reason="astropy is not installed")

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (6, 10)


def _cli() -> str:
    # The debug build first: `cargo test --workspace` (the README's test command) has just
    # built it, while a release build may be older than the source.
    override = os.environ.get("SHMKIT_CLI")
    if override:
        return override
    for profile in ("debug", "release"):
        exe = ROOT / "target" / profile / "shmkit"
        if exe.exists():
            return str(exe)
    pytest.skip("the shmkit CLI is not built (cargo build -p shmkit-cli)")


@pytest.fixture
def seg() -> Iterator[shmkit.Segment]:
    name = f"shmkit-pyrec-{os.getpid()}"
    try:
        shmkit.Segment.unlink(name)
    except shmkit.SegmentError:
        pass
    s = shmkit.Segment.create(name, 8 << 20)
    yield s
    shmkit.Segment.unlink(name)


def _pattern(i: int) -> np.ndarray[Any, np.dtype[np.uint16]]:
    base = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint16).reshape(SHAPE)
    return (base * 7 + i * 31 + 0x8001).astype(np.uint16)


def _record(seg: shmkit.Segment, out: Path, n: int, *extra: str) -> str:
    """Records ring "cam" while `n` frames (ids 1..n) are published; returns the summary."""
    ring = seg.frame_ring("cam", SHAPE, np.uint16, slots=64)
    proc = subprocess.Popen(
        [_cli(), "record", seg.name, "cam", "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "recording" in proc.stderr.readline(), "the recorder started"
    writer = ring.writer()
    for i in range(1, n + 1):
        writer.write(_pattern(i), user=[i, 0, 0, 0, (1 << 64) - i])
        time.sleep(0.0005)
    proc.send_signal(signal.SIGINT)
    out_text, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out_text
    return out_text


def test_a_recording_opens_in_astropy_with_the_published_frames_and_metadata(
    seg: shmkit.Segment, tmp_path: Path
) -> None:
    summary = _record(seg, tmp_path / "s", 120)
    assert "cam: published 120, recorded 120, dropped 0, in 1 file(s)" in summary
    files = sorted((tmp_path / "s").glob("*.fits"))
    assert [f.name for f in files] == ["cam-0000.fits"]
    with fits.open(files[0]) as hdul:
        cube = hdul[0].data
        assert cube.dtype == np.uint16 and cube.shape == (120, *SHAPE)
        for i in range(120):
            np.testing.assert_array_equal(cube[i], _pattern(i + 1))
        h = hdul[0].header
        assert (h["RING"], h["SEGMENT"], h["DTYPE"], h["NFRAMES"]) == ("cam", seg.name, "uint16", 120)
        assert (h["FIRSTID"], h["LASTID"], h["NDROPPED"]) == (1, 120, 0)
        table = hdul["FRAMES"].data
        assert list(table.columns.names) == [
            "FRAMEID", "TMONO", "TUTC", "DROPPED", "LEN", "USER0", "USER1", "USER2", "USER3", "USER4",
        ]
        np.testing.assert_array_equal(table["FRAMEID"], np.arange(1, 121))
        np.testing.assert_array_equal(table["USER0"], np.arange(1, 121))
        assert table["USER4"].dtype == np.uint64
        assert int(table["USER4"][0]) == (1 << 64) - 1
        assert (table["DROPPED"] == 0).all() and (table["LEN"] == 120).all()
        assert (np.diff(table["TMONO"]) > 0).all()
        assert abs(float(table["TUTC"][0]) - time.time()) < 60
    rec = shmkit.Recording(tmp_path / "s")
    assert rec.complete
    cam = rec["cam"]
    assert (cam.published, cam.recorded, cam.dropped) == (120, 120, 0)
    np.testing.assert_array_equal(cam.frames(), cube)
    t = cam.table()
    np.testing.assert_array_equal(t["FRAMEID"], np.arange(1, 121))
    assert int(t["USER4"][5]) == (1 << 64) - 6
    frames, rows = cam.between(float(t["TUTC"][10]), float(t["TUTC"][20]))
    assert list(rows["FRAMEID"]) == list(range(11, 21)) and len(frames) == 10


def test_files_roll_over_at_exactly_the_frame_limit_and_each_opens(
    seg: shmkit.Segment, tmp_path: Path
) -> None:
    _record(seg, tmp_path / "r", 100, "--frames-per-file", "30")
    files = sorted((tmp_path / "r").glob("*.fits"))
    counts = []
    for f in files:
        with fits.open(f) as hdul:
            counts.append(hdul[0].data.shape[0])
            ids = hdul["FRAMES"].data["FRAMEID"]
            np.testing.assert_array_equal(hdul[0].data[0], _pattern(int(ids[0])))
    assert counts == [30, 30, 30, 10]
    assert len(shmkit.Recording(tmp_path / "r")["cam"].frames()) == 100


def test_shmkit_replay_publishes_the_session_again_with_its_user_words(
    seg: shmkit.Segment, tmp_path: Path
) -> None:
    _record(seg, tmp_path / "p", 50)
    target = f"{seg.name}-replay"
    try:
        shmkit.Segment.unlink(target)
    except shmkit.SegmentError:
        pass
    into = shmkit.Segment.create(target, 8 << 20)
    try:
        # The ring exists first, so a reader started now misses nothing.
        reader = into.frame_ring("cam", SHAPE, np.uint16, slots=64).reader(mode="oldest")
        out = subprocess.run(
            [_cli(), "replay", str(tmp_path / "p"), "--into", target, "--speed", "4"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert f"cam: published 50 frame(s) into {target}" in out.stdout
        for i in range(1, 51):
            with reader.next(5) as frame:
                np.testing.assert_array_equal(frame.array, _pattern(i))
                assert (frame.id, frame.user(0), frame.user(4)) == (i, i, (1 << 64) - i)
    finally:
        shmkit.Segment.unlink(target)


def test_a_recording_started_and_stopped_from_python_holds_every_frame(
    seg: shmkit.Segment, tmp_path: Path
) -> None:
    ring = seg.frame_ring("cam", SHAPE, np.uint16, slots=64)
    writer = ring.writer()
    with shmkit.record(seg, "cam", tmp_path / "py", frames_per_file=25) as rec:
        for i in range(1, 61):
            writer.write(_pattern(i), user=[i])
            time.sleep(0.0005)
        deadline = time.monotonic() + 10
        while rec.progress()["cam"][0] < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rec.progress()["cam"] == (60, 0)
    assert rec.manifest is not None and rec.manifest["complete"]
    cam = shmkit.Recording(tmp_path / "py")["cam"]
    assert (cam.published, cam.recorded, cam.dropped) == (60, 60, 0)
    assert [f.frames for f in cam.files] == [25, 25, 10]
    np.testing.assert_array_equal(cam.frames()[59], _pattern(60))
    with pytest.raises(OSError, match="already holds a recording"):
        shmkit.record(seg, "cam", tmp_path / "py")
