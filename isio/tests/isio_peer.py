#!/usr/bin/env python3
"""An ImageStreamIO 2.00 reader and writer written only from the format's public definition
(milk-org/ImageStreamIO: ImageStruct.h and the region order of ImageStreamIO_image_sizing),
with nothing but the standard library: `struct` with native alignment computes the C
structure's padding on its own, `mmap` maps the file, `ctypes` calls glibc's semaphores.

It checks shmkit's streams against someone else's reading of the format (tests/isio.rs runs
it), so the layout is not checked only against itself.

    isio_peer.py read PATH COUNT    claim a semaphore, print "ready", read COUNT frames, print
                                    a JSON report
    isio_peer.py write PATH COUNT   create a 32 x 24 uint16 stream, print "created", wait for
                                    a line on stdin, write COUNT frames, each after a line on stdin (lockstep)
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any

# IMAGE_METADATA, field by field as ImageStruct.h declares it ('@': native sizes and C
# alignment; the zero-width `uint64_t : 0` fields fall where the next field is 8-aligned
# anyway). The trailing 64-byte CUDA handle makes 384 bytes.
METADATA = struct.Struct(
    "@32s80s"  # version, name
    "B3IQ"  # naxis, size[3], nelement
    "BQ"  # datatype, imagetype
    "qqqqqqqq"  # creationtime, lastaccesstime, atime, writetime (timespec each)
    "ii"  # creatorPID, ownerPID
    "BQ"  # shared, inode
    "bB"  # location, status
    "Q"  # flag
    "BHH"  # logflag, sem, NBproctrace
    "QQQ"  # cnt0, cnt1, cnt2
    "BH"  # write, NBkw
    "IIQ"  # CBsize, CBindex, CBcycle
    "Q64s"  # imdatamemsize, cudaMemHandle
)
FIELDS = (
    "version name naxis size0 size1 size2 nelement datatype imagetype "
    "ct_s ct_ns lat_s lat_ns atime_s atime_ns wt_s wt_ns creator owner shared inode "
    "location status flag logflag sem nbproctrace cnt0 cnt1 cnt2 write nbkw "
    "cbsize cbindex cbcycle imdatamemsize cuda"
).split()
assert METADATA.size == 384, METADATA.size

# IMAGE_KEYWORD: name[16], type, (align 8), value (16-byte union), cnt, comment[80].
KEYWORD = struct.Struct("@16sc7x16sQ80s")
assert KEYWORD.size == 128
SEM_T = 32  # sizeof(sem_t) on x86-64 glibc
PROC_TRACE = 64  # STREAM_PROC_TRACE
TYPESIZE = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 8, 8: 8, 9: 4, 10: 8, 11: 8, 12: 16, 13: 2}


def _codes() -> list[str]:
    """The format's codes, one per field ('32s' stays one code)."""
    codes: list[str] = []
    count = ""
    for ch in METADATA.format.lstrip("@"):
        if ch.isdigit():
            count += ch
        elif ch == "s":
            codes.append(count + "s")
            count = ""
        else:
            codes.extend([ch] * (int(count) if count else 1))
            count = ""
    return codes


CODES = _codes()
assert len(CODES) == len(FIELDS)


def offset_of(name: str) -> int:
    """Offset of a metadata field: pack a marker into it alone and find its first byte."""
    values: list[object] = [b"" if c.endswith("s") else 0 for c in CODES]
    i = FIELDS.index(name)
    values[i] = b"\x7f" if CODES[i].endswith("s") else 0x7F
    raw = METADATA.pack(*values)
    return next(j for j, b in enumerate(raw) if b)


def round8(n: int) -> int:
    return (n + 7) & ~7


def layout(md: Mapping[str, Any]) -> dict[str, int]:
    """Where each region starts, in the order ImageStreamIO_image_sizing lays them out."""
    at = round8(METADATA.size)
    out: dict[str, int] = {}
    for region, size in (
        ("data", md["imdatamemsize"]),
        ("keywords", md["nbkw"] * KEYWORD.size),
        ("sems", md["sem"] * SEM_T),
        ("semlog", SEM_T),
        ("readpid", md["sem"] * 4),
        ("writepid", md["sem"] * 4),
        ("semctrl", md["sem"] * 4),
        ("semstatus", md["sem"] * 4),
        ("proctrace", md["nbproctrace"] * PROC_TRACE),
    ):
        out[region] = at
        at += round8(size)
    assert md["cbsize"] == 0 and md["imagetype"] & 0xF000F != 0x20001, "no circular buffers here"
    out["total"] = at
    return out


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
LIBC.sem_timedwait.argtypes = [ctypes.c_void_p, ctypes.POINTER(Timespec)]
LIBC.sem_post.argtypes = [ctypes.c_void_p]
LIBC.sem_init.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint]
LIBC.sem_getvalue.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]


def address(mm: mmap.mmap, offset: int) -> int:
    buf = (ctypes.c_char * 1).from_buffer(mm, offset)
    addr = ctypes.addressof(buf)
    del buf
    return addr


def sem_timedwait(addr: int, seconds: float) -> bool:
    deadline = time.clock_gettime(time.CLOCK_REALTIME) + seconds
    ts = Timespec(int(deadline), int((deadline % 1) * 1e9))
    while True:
        if LIBC.sem_timedwait(ctypes.c_void_p(addr), ctypes.byref(ts)) == 0:
            return True
        err = ctypes.get_errno()
        if err == 4:  # EINTR
            continue
        return False


def pattern(seed: int, n: int) -> bytes:
    return struct.pack(f"<{n}H", *(((seed * 7919) + i * 31) & 0xFFFF for i in range(n)))


def keywords(mm: mmap.mmap, lay: dict[str, int], count: int) -> dict[str, tuple[bytes, bytes]]:
    out = {}
    for i in range(count):
        name, kind, value, _cnt, _comment = KEYWORD.unpack_from(mm, lay["keywords"] + i * 128)
        out[name.rstrip(b"\0").decode()] = (kind, value)
    return out


def read(path: str, count: int) -> int:
    fd = os.open(path, os.O_RDWR)
    size = os.fstat(fd).st_size
    mm = mmap.mmap(fd, size)
    md = dict(zip(FIELDS, METADATA.unpack_from(mm, 0)))
    problems: list[str] = []
    if md["version"].rstrip(b"\0") != b"2.00":
        problems.append(f"version {md['version']!r}")
    lay = layout(md)
    if lay["total"] != size:
        problems.append(f"file is {size} bytes, the header describes {lay['total']}")
    naxis = md["naxis"]
    shape = [md["size0"], md["size1"], md["size2"]][:naxis]
    n = 1
    for s in shape:
        n *= s
    if n != md["nelement"] or md["imdatamemsize"] != n * TYPESIZE[md["datatype"]]:
        problems.append("element count or data size inconsistent")
    if md["datatype"] != 3:
        problems.append(f"datatype {md['datatype']} (expected 3: uint16)")
    if md["inode"] != os.fstat(fd).st_ino:
        problems.append("inode field is not the file's")
    if md["shared"] != 1 or md["location"] != -1:
        problems.append("not a shared CPU stream")
    kws = keywords(mm, lay, md["nbkw"])
    for k in ("SHMKIT_ID", "SHMKIT_TS", "SHMKIT_U0"):
        if kws.get(k, (b"", b""))[0] != b"L":
            problems.append(f"keyword {k} missing")
    id_at = None
    for i in range(md["nbkw"]):
        if KEYWORD.unpack_from(mm, lay["keywords"] + i * 128)[0].rstrip(b"\0") == b"SHMKIT_ID":
            id_at = lay["keywords"] + i * 128 + 24
    # Claim a semaphore as ImageStreamIO_getsemwaitindex does: a free reader PID slot.
    index = -1
    for i in range(md["sem"]):
        (pid,) = struct.unpack_from("@i", mm, lay["readpid"] + 4 * i)
        if pid <= 0:
            struct.pack_into("@i", mm, lay["readpid"] + 4 * i, os.getpid())
            index = i
            break
    if index < 0:
        problems.append("no free semaphore")
        index = 0
    sem = address(mm, lay["sems"] + SEM_T * index)
    while LIBC.sem_trywait(ctypes.c_void_p(sem)) == 0:
        pass
    cnt0_at, write_at = offset_of("cnt0"), offset_of("write")
    atime_at = offset_of("atime_s")
    frames = bad = torn = 0
    gaps: list[tuple[int, int]] = []
    last_id = 0
    last_cnt0 = struct.unpack_from("@Q", mm, cnt0_at)[0]
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while frames < count and time.monotonic() < deadline:
        if not sem_timedwait(sem, 1.0):
            continue
        c1 = struct.unpack_from("@Q", mm, cnt0_at)[0]
        w1 = mm[write_at]
        data = bytes(mm[lay["data"] : lay["data"] + md["imdatamemsize"]])
        (frame_id,) = struct.unpack_from("@q", mm, id_at) if id_at is not None else (0,)
        atime = struct.unpack_from("@qq", mm, atime_at)
        c2 = struct.unpack_from("@Q", mm, cnt0_at)[0]
        w2 = mm[write_at]
        if c1 != c2 or w1 or w2:
            torn += 1
            continue
        if c1 == last_cnt0:
            continue
        if c1 != last_cnt0 + 1:
            gaps.append((last_cnt0, c1))
        last_cnt0 = c1
        frames += 1
        if data != pattern(frame_id, n) or frame_id <= last_id:
            bad += 1
        now = time.clock_gettime(time.CLOCK_TAI)
        if abs(atime[0] + atime[1] * 1e-9 - now) > 5.0:
            problems.append(f"atime {atime} is not CLOCK_TAI now ({now})")
        last_id = frame_id
    (writer_pid,) = struct.unpack_from("@i", mm, lay["writepid"] + 4 * index)
    report = {
        "frames": frames,
        "bad": bad,
        "torn": torn,
        "last_id": last_id,
        "shape": shape,
        "writer_pid": writer_pid,
        "creator_pid": md["creator"],
        "problems": problems,
        "gaps": gaps,
    }
    print(json.dumps(report), flush=True)
    mm.close()
    os.close(fd)
    return 1 if problems else 0


def write(path: str, count: int) -> int:
    sizes = (32, 24, 0)
    nsem, nkw, nproc = 10, 4, 10
    nelement = sizes[0] * sizes[1]
    md: dict[str, Any] = {f: 0 for f in FIELDS}
    md.update(
        version=b"", name=os.path.basename(path).split(".")[0].encode(), naxis=2,
        size0=sizes[0], size1=sizes[1], nelement=nelement, datatype=3, imagetype=2,
        creator=os.getpid(), shared=1, location=-1, sem=nsem, nbproctrace=nproc, nbkw=nkw,
        imdatamemsize=nelement * 2, cuda=b"",
    )
    lay = layout(md)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, lay["total"])
    md["inode"] = os.fstat(fd).st_ino
    mm = mmap.mmap(fd, lay["total"])
    METADATA.pack_into(mm, 0, *(md[f] for f in FIELDS))
    for i in range(nsem):
        LIBC.sem_init(ctypes.c_void_p(address(mm, lay["sems"] + SEM_T * i)), 1, 0)
        struct.pack_into("@i", mm, lay["readpid"] + 4 * i, -1)
        struct.pack_into("@i", mm, lay["writepid"] + 4 * i, -1)
    for i in range(nkw):
        KEYWORD.pack_into(mm, lay["keywords"] + 128 * i, b"", b"N", b"", 0, b"")
    mm[0:4] = b"2.00"  # last: the stream is ready
    print("created", flush=True)
    sys.stdin.readline()
    cnt0_at, write_at = offset_of("cnt0"), offset_of("write")
    atime_at, wt_at = offset_of("atime_s"), offset_of("wt_s")
    for k in range(1, count + 1):
        mm[write_at] = 1
        mm[lay["data"] : lay["data"] + nelement * 2] = pattern(k, nelement)
        now = time.clock_gettime_ns(time.CLOCK_TAI)
        struct.pack_into("@qq", mm, wt_at, now // 10**9, now % 10**9)
        struct.pack_into("@qq", mm, atime_at, now // 10**9, now % 10**9)
        struct.pack_into("@Q", mm, cnt0_at, k)
        mm[write_at] = 0
        for i in range(nsem):
            addr = address(mm, lay["sems"] + SEM_T * i)
            value = ctypes.c_int(0)
            LIBC.sem_getvalue(ctypes.c_void_p(addr), ctypes.byref(value))
            if value.value < 10:
                LIBC.sem_post(ctypes.c_void_p(addr))
                struct.pack_into("@i", mm, lay["writepid"] + 4 * i, os.getpid())
        # Lockstep: the next frame only once the test has imported this one (or closed our
        # stdin), so every frame must arrive and a missed or torn one is a failure, not a
        # scheduling accident.
        sys.stdin.readline()
    mm.close()
    os.close(fd)
    os.unlink(path)
    return 0


if __name__ == "__main__":
    mode, target, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.exit(read(target, frames) if mode == "read" else write(target, frames))
