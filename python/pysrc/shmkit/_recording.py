"""Recordings from Python: `shmkit.record` starts one (the Rust recorder ``shmkit record`` uses),
`shmkit.Recording` opens a session directory with numpy.

Per ring, the frames of every file in order (memory-mapped where the stored layout is the
array's: floats and signed integers; unsigned integers are stored with FITS's ``BZERO``
offset and converted on reading), the ``FRAMES`` metadata table as a structured array, and
selection by time. The files are standard FITS (astropy reads them as well); this reader needs
only numpy and reads only what shmkit writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._shmkit import Segment, _Recorder

_BLOCK = 2880
_CARD = 80

#: The metadata table's columns, as a numpy structured dtype (native byte order).
FRAME_TABLE = np.dtype(
    [
        ("FRAMEID", "<i8"),
        ("TMONO", "<i8"),
        ("TUTC", "<f8"),
        ("DROPPED", "<i8"),
        ("LEN", "<i8"),
        ("USER0", "<u8"),
        ("USER1", "<u8"),
        ("USER2", "<u8"),
        ("USER3", "<u8"),
        ("USER4", "<u8"),
    ]
)
_STORED_TABLE = np.dtype([(n, ">i8" if n != "TUTC" else ">f8") for n in FRAME_TABLE.names or ()])

_STORED = {
    "uint8": ("u1", None),
    "uint16": (">i2", 1 << 15),
    "uint32": (">i4", 1 << 31),
    "int16": (">i2", None),
    "int32": (">i4", None),
    "float32": (">f4", None),
    "float64": (">f8", None),
}


def _header(data: bytes | np.memmap[Any, Any], at: int) -> tuple[dict[str, str], int]:
    cards: dict[str, str] = {}
    i = at
    while i + _CARD <= len(data):
        card = bytes(data[i : i + _CARD]).decode("ascii", "replace")
        i += _CARD
        key = card[:8].strip()
        if key == "END":
            length = i - at
            return cards, -(-length // _BLOCK) * _BLOCK
        if card[8:10] == "= ":
            value = card[10:].strip()
            if value.startswith("'"):
                value = value[1:].split("'", 1)[0].rstrip()
            else:
                value = value.split("/", 1)[0].strip()
            cards[key] = value
    raise ValueError("a FITS header without END")


@dataclass
class RecordedFile:
    """One FITS file of a ring: its path, header cards and where its parts are."""

    path: str
    cards: dict[str, str]
    frames: int
    data_offset: int
    table_offset: int


class RingRecording:
    """One ring of a session: its frames and their metadata across all its files."""

    def __init__(self, directory: str, entry: dict[str, Any]) -> None:
        self.name: str = entry["ring"]
        self.dtype = np.dtype(entry["dtype"])
        self.shape: tuple[int, ...] = tuple(entry["shape"])
        #: The manifest's counts for this ring.
        self.published: int | None = entry["published"]
        self.recorded: int = entry["recorded"]
        self.dropped: int = entry["dropped"]
        self.files: list[RecordedFile] = []
        stored, _ = _STORED[entry["dtype"]]
        frame_bytes = int(np.prod(self.shape)) * np.dtype(stored).itemsize
        for f in entry["files"]:
            path = os.path.join(directory, f["file"])
            with open(path, "rb") as fh:
                head = fh.read(64 * _BLOCK)
            cards, hlen = _header(head, 0)
            n = int(cards["NFRAMES"])
            table_at = hlen + -(-(n * frame_bytes) // _BLOCK) * _BLOCK
            self.files.append(RecordedFile(path, cards, n, hlen, table_at))

    def __len__(self) -> int:
        return sum(f.frames for f in self.files)

    def _file_frames(self, f: RecordedFile) -> npt.NDArray[Any]:
        stored, zero = _STORED[self.dtype.name]
        if f.frames == 0:
            return np.empty((0, *self.shape), dtype=self.dtype)
        raw: npt.NDArray[Any] = np.memmap(
            f.path, dtype=stored, mode="r", offset=f.data_offset, shape=(f.frames, *self.shape)
        )
        if zero is None:
            return raw  # memory-mapped: big-endian values numpy reads as they are
        # Stored signed with BZERO: flipping the top bit gives the unsigned value.
        unsigned = raw.view(stored.replace("i", "u"))
        out: npt.NDArray[Any] = (unsigned ^ np.array(zero, dtype=unsigned.dtype)).astype(self.dtype)
        return out

    def frames(self) -> npt.NDArray[Any]:
        """Every recorded frame in order, shape ``(n, *shape)``: memory-mapped when a
        single file holds them and the type allows, otherwise a copy."""
        parts = [self._file_frames(f) for f in self.files]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return np.empty((0, *self.shape), dtype=self.dtype)
        return np.concatenate(parts)

    def table(self) -> npt.NDArray[Any]:
        """The metadata of every recorded frame (see `FRAME_TABLE`)."""
        out = np.empty(len(self), dtype=FRAME_TABLE)
        at = 0
        for f in self.files:
            with open(f.path, "rb") as fh:
                fh.seek(f.table_offset)
                head = fh.read(8 * _BLOCK)
                _, tlen = _header(head, 0)
                fh.seek(f.table_offset + tlen)
                rows = np.frombuffer(fh.read(f.frames * _STORED_TABLE.itemsize), dtype=_STORED_TABLE)
            for name in FRAME_TABLE.names or ():
                column = rows[name]
                if name.startswith("USER"):
                    column = column.view(">u8") ^ np.uint64(1 << 63)  # TZERO = 2**63
                out[name][at : at + f.frames] = column
            at += f.frames
        return out

    def between(self, t0: float, t1: float) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """The frames published between UTC seconds ``t0`` (included) and ``t1`` (excluded),
        and their metadata rows."""
        table = self.table()
        keep = (table["TUTC"] >= t0) & (table["TUTC"] < t1)
        return self.frames()[keep], table[keep]


class Recording:
    """A session directory: ``Recording(path)[ring]`` is a `RingRecording`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        with open(os.path.join(self.path, "manifest.json")) as f:
            #: The session's manifest (files, counts, drops, start and end).
            self.manifest: dict[str, Any] = json.load(f)
        self.rings = {r["ring"]: RingRecording(self.path, r) for r in self.manifest["rings"]}

    @property
    def complete(self) -> bool:
        """Did the recorder stop normally (every count final)?"""
        return bool(self.manifest["complete"])

    def __getitem__(self, ring: str) -> RingRecording:
        return self.rings[ring]

    def __iter__(self) -> Any:
        return iter(self.rings)


class Recorder:
    """A recording started by `record`: `progress()` while it runs, `stop()` to end it (every
    file closed valid, the manifest complete); a context manager that stops on exit."""

    def __init__(self, inner: _Recorder, out: str) -> None:
        self._inner = inner
        self.out = out
        self.manifest: dict[str, Any] | None = None

    def progress(self) -> dict[str, tuple[int, int]]:
        """Each ring's ``(recorded, dropped)`` so far."""
        return {ring: (rec, drop) for ring, rec, drop in self._inner.progress()}

    def stop(self) -> Recording:
        """Stops and opens the session."""
        text = self._inner.stop()
        if text is not None:
            self.manifest = json.loads(text)
        return Recording(self.out)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def record(
    segment: Segment,
    rings: list[str] | str,
    out: str | os.PathLike[str],
    *,
    frames_per_file: int | None = None,
    bytes_per_file: int | None = None,
    seconds_per_file: float | None = None,
    idle: bool = False,
    cpu: int | None = None,
) -> Recorder:
    """Starts recording ``rings`` of ``segment`` into the directory ``out`` (as
    ``shmkit record`` does: FITS files, a manifest, every frame accounted for); frames
    published after this returns are recorded. The recorder's threads never take the GIL."""
    names = [rings] if isinstance(rings, str) else list(rings)
    path = os.fspath(out)
    inner = _Recorder(
        segment,
        names,
        path,
        frames_per_file=frames_per_file,
        bytes_per_file=bytes_per_file,
        seconds_per_file=seconds_per_file,
        idle=idle,
        cpu=cpu,
    )
    return Recorder(inner, path)
