"""Bytes another process wrote are never unpickled: dictionary values and device messages go
through the safe codec; hostile bytes are a typed error, never code run; a hostile request
never stops a device server or skips its safe close; device message limits."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import fractions
import os
import pathlib
import pickle
import uuid
import warnings
from typing import Any

import numpy as np
import pytest

import shmkit
from shmkit import _codec, _process


class _RunsCode:
    """Pickles to a call of ``os.system`` that would create ``path`` when unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


class _Exits:
    """Pickles to ``os._exit(3)``: what a hostile payload does to stop a server unclean."""

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (os._exit, (3,))


@dataclasses.dataclass
class Point:
    """A class a device declares in its ``message_types``."""

    x: float
    y: float


@dataclasses.dataclass
class Undeclared:
    """A class nobody declared."""

    x: int


def _values() -> dict[str, Any]:
    return {
        "none": None,
        "nested": {"a": [1, 2.5, "x", b"y", True], "t": (1, (2, 3)), "s": {1, 2}},
        "frozen": frozenset({"a"}),
        "complex": 1 + 2j,
        "bytearray": bytearray(b"ab"),
        "when": datetime.datetime(2026, 12, 5, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2026, 12, 5),
        "delta": datetime.timedelta(seconds=1.5),
        "decimal": decimal.Decimal("1.25"),
        "fraction": fractions.Fraction(1, 3),
        "uuid": uuid.UUID(int=12345),
        "path": pathlib.PurePosixPath("/tmp/x"),
        "range": range(3, 10, 2),
        "array": np.arange(12.0).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        "strided": np.arange(20)[::3],
        "structured": np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
        "datetime64": np.array(["2026-12-05"], dtype="datetime64[D]"),
        "scalar": np.float32(1.5),
        "bool": np.bool_(True),
        "dtype": np.dtype("<u2"),
        "empty": np.zeros((0, 4)),
    }


def test_the_safe_codec_carries_containers_scalars_arrays_and_datetimes(
    seg: shmkit.Segment,
) -> None:
    d = seg.dict("values", 64)
    for key, value in _values().items():
        d[key] = value
    for key, value in _values().items():
        got = d[key]
        if isinstance(value, np.ndarray):
            assert isinstance(got, np.ndarray) and got.dtype == value.dtype, key
            assert got.shape == value.shape and np.array_equal(got, value), key
            assert got.flags.writeable, key
        else:
            assert type(got) is type(value) and got == value, key
    assert d["fortran"].flags.f_contiguous


def test_a_value_outside_the_vocabulary_is_refused_when_written(seg: shmkit.Segment) -> None:
    d = seg.dict("values", 8)
    for bad in (Undeclared(1), os.system, np.array([object()], dtype=object), print):
        with pytest.raises(TypeError, match="safe codec"):
            d["bad"] = bad
    assert "bad" not in d
    # A handle that opts into full pickle stores it, and a safe handle refuses to read it.
    trusting = seg.dict("values", pickle=True)
    trusting["point"] = Undeclared(2)
    assert trusting["point"] == Undeclared(2)
    with pytest.raises(shmkit.PayloadError, match="Undeclared"):
        d["point"]
    # The opt-in belongs to the handle and travels with it to a child (by pickle), never
    # through the segment's bytes.
    assert pickle.loads(pickle.dumps(trusting)).full_pickle
    assert not pickle.loads(pickle.dumps(d)).full_pickle


@pytest.mark.parametrize("payload", ["system", "exit", "builtins_eval", "garbage", "truncated"])
def test_hostile_bytes_in_a_dictionary_are_a_payload_error_and_run_nothing(
    seg: shmkit.Segment, tmp_path: pathlib.Path, payload: str
) -> None:
    marker = tmp_path / "ran"
    data = {
        "system": pickle.dumps(_RunsCode(str(marker))),
        "exit": pickle.dumps(_Exits()),
        "builtins_eval": b"cbuiltins\neval\n(V__import__('os').system('touch " + str(marker).encode() + b"')\ntR.",
        "garbage": os.urandom(64),
        "truncated": pickle.dumps({"a": list(range(100))})[:-20],
    }[payload]
    seg._raw_dict("values", 8).set("hostile", data)
    d = seg.dict("values")
    with pytest.raises(shmkit.PayloadError):
        d["hostile"]
    assert not marker.exists(), "the payload ran"
    assert isinstance(shmkit.PayloadError("x"), ValueError)


def test_crafted_array_bytes_are_refused(seg: shmkit.Segment) -> None:
    raw = seg._raw_dict("values", 8)
    d = seg.dict("values")
    cases = {
        "object dtype": (_codec._array, ("|O", (2,), "C", b"\0" * 16)),
        "short data": (_codec._array, ("<f8", (1000, 1000), "C", b"\0" * 8)),
        "negative shape": (_codec._array, ("<f8", (-1,), "C", b"")),
        "bad order": (_codec._array, ("<f8", (1,), "X", b"\0" * 8)),
        "bad descr": (_codec._array, ("not a dtype", (1,), "C", b"\0" * 8)),
        "object scalar": (_codec._scalar, ("|O", b"\0" * 8)),
    }

    class Crafted:
        def __init__(self, reduced: tuple[Any, Any]) -> None:
            self.reduced = reduced

        def __reduce__(self) -> tuple[Any, Any]:
            return self.reduced

    for what, reduced in cases.items():
        raw.set(what, pickle.dumps(Crafted(reduced)))
        with pytest.raises(shmkit.PayloadError):
            d[what]


class Guarded(shmkit.Device):
    """A device that records its safe close and its calls in the test's dictionary."""

    message_types = (Point,)

    def open(self) -> None:
        self.calls = 0

    def close(self) -> None:
        _log("closed", True)

    def move(self, to: Point) -> Point:
        self.calls += 1
        return Point(to.x + 1, to.y)

    def count(self) -> int:
        return self.calls

    def blob(self, size: int) -> bytes:
        self.calls += 1
        return b"x" * size

    def take(self, data: bytes) -> int:
        self.calls += 1
        return len(data)


def _log(key: str, value: Any) -> None:
    shmkit.Segment.open(os.environ[shmkit._devices.SEGMENT_ENV]).dict("log", 64)[key] = value


@pytest.fixture
def guarded(seg: shmkit.Segment) -> Any:
    cache = shmkit.use_segment(seg)
    seg.dict("log", 64)
    yield cache.get("GUARDED", Guarded)
    try:
        cache.close("GUARDED", 5.0)
    except shmkit.ShmkitError:
        pass


def _raw_call(proxy: Any, request: bytes) -> BaseException:
    answer = proxy.client.call(request)
    ok, links = _codec.loads(answer)
    assert not ok
    return _process._rebuild(links, "device", shmkit._devices._exception_codec(()))


@pytest.mark.parametrize("payload", ["exit", "system", "garbage", "wrong shape"])
def test_a_hostile_request_is_an_error_reply_and_the_server_keeps_serving(
    seg: shmkit.Segment, guarded: Any, tmp_path: pathlib.Path, payload: str
) -> None:
    marker = tmp_path / "ran"
    request = {
        "exit": pickle.dumps(("count", (_Exits(),), {})),
        "system": pickle.dumps(("count", (_RunsCode(str(marker)),), {})),
        "garbage": os.urandom(100),
        "wrong shape": _codec.dumps(["count"]),
    }[payload]
    pid = guarded.status()["pid"]
    error = _raw_call(guarded, request)
    assert isinstance(error, shmkit.PayloadError), repr(error)
    assert not marker.exists()
    status = guarded.status()
    assert status["state"] == "running" and status["pid"] == pid
    assert guarded.move(Point(1.0, 2.0)) == Point(2.0, 2.0)
    # And its safe close still runs.
    shmkit._devices.current_cache().close("GUARDED", 5.0)
    assert seg.dict("log")["closed"] is True


def test_declared_message_types_travel_and_undeclared_ones_are_refused_before_sending(
    guarded: Any,
) -> None:
    assert guarded.move(Point(0.5, 1.0)) == Point(1.5, 1.0)
    with pytest.raises(TypeError, match="Undeclared"):
        guarded.move(Undeclared(1))
    assert guarded.count() == 1, "the refused call was not sent"


def test_device_messages_over_64_kib_are_refused_or_reported_as_ran(guarded: Any) -> None:
    assert guarded.take(b"y" * 60_000) == 60_000
    with pytest.raises(shmkit.RequestTooLarge, match="65536-byte message limit") as info:
        guarded.take(b"y" * 70_000)
    assert isinstance(info.value, ValueError)
    assert guarded.count() == 1, "an over-size request is not sent"
    with pytest.raises(shmkit.ReplyTooLarge, match="the command ran"):
        guarded.blob(70_000)
    assert guarded.count() == 2, "the method ran though its reply did not fit"
    assert guarded.blob(10) == b"x" * 10


def test_a_value_opened_by_name_checks_the_dtype_its_segment_claims(seg: shmkit.Segment) -> None:
    seg._raw_value("objects", ("numpy:('|O', (2,))", 8, b"\0" * 16))
    with pytest.raises(TypeError, match="holds Python objects"):
        seg.value("objects")
    seg._raw_value("short", ("numpy:('<f8', (3,))", 8, b"\0" * 16))
    with pytest.raises(shmkit.CorruptError, match="holds 16 bytes"):
        seg.value("short")
    seg._raw_value("fine", ("numpy:('<f8', (2,))", 8, b"\0" * 16))
    assert np.array_equal(seg.value("fine").get(), np.zeros(2))


def test_opening_a_segment_other_users_may_write_warns() -> None:
    name = f"shmkit-py-insecure-{os.getpid()}"
    old = os.umask(0)
    try:
        shmkit.Segment.create(name, 1 << 20, mode=0o666)
    finally:
        os.umask(old)
    try:
        with pytest.warns(shmkit.InsecureSegmentWarning, match="every other user"):
            shmkit.Segment.open(name)
        with pytest.warns(shmkit.InsecureSegmentWarning):
            shmkit.Segment.open_or_create(name, 1 << 20)
        with warnings.catch_warnings():
            warnings.simplefilter("error", shmkit.InsecureSegmentWarning)
            with pytest.raises(shmkit.InsecureSegmentWarning):
                shmkit.Segment.open(name)
    finally:
        shmkit.Segment.unlink(name)
    private = f"shmkit-py-private-{os.getpid()}"
    shmkit.Segment.create(private, 1 << 20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert shmkit.Segment.open(private).mode == 0o600
    finally:
        shmkit.Segment.unlink(private)
