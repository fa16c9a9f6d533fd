"""`SharedDict` as a `MutableMapping`, and command rings with a Python handler."""

from __future__ import annotations

import pickle
import threading

import pytest

import shmkit


def test_shared_dict_is_a_mutable_mapping_of_picklable_values(seg: shmkit.Segment) -> None:
    d = seg.dict("cfg", 64)
    d["exposure"] = 0.002
    d["roi"] = (0, 0, 128, 128)
    d["name"] = {"camera": "zwo"}
    assert d["exposure"] == 0.002 and d["roi"] == (0, 0, 128, 128)
    assert set(d) == {"exposure", "roi", "name"} and len(d) == 3
    assert "roi" in d and "gain" not in d and d.get("gain", 5) == 5
    del d["roi"]
    with pytest.raises(KeyError):
        d["roi"]
    with pytest.raises(KeyError):
        del d["roi"]
    d.update(a=1, b=2)
    assert dict(d.items()) == {"exposure": 0.002, "name": {"camera": "zwo"}, "a": 1, "b": 2}
    again = pickle.loads(pickle.dumps(d))
    assert again["a"] == 1
    assert seg.dict("cfg")["b"] == 2, "opened as it is"


def test_a_locked_section_makes_several_operations_atomic(seg: shmkit.Segment) -> None:
    d = seg.dict("accounts", 8)
    d["a"], d["b"] = 100, 0

    def transfer() -> None:
        for _ in range(200):
            with d.lock():
                d["a"] -= 1
                d["b"] += 1

    threads = [threading.Thread(target=transfer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (d["a"], d["b"]) == (100 - 600, 600)


def test_a_full_dict_is_a_typed_error(seg: shmkit.Segment) -> None:
    d = seg.dict("small", 2)
    d["x"], d["y"] = 1, 2
    with pytest.raises(shmkit.DictFullError):
        d["z"] = 3


def test_calls_reach_a_python_handler_and_its_exception_comes_back(seg: shmkit.Segment) -> None:
    ring = seg.command_ring("dm", slots=4, max_request=64, max_reply=64)
    with pytest.raises(shmkit.NoServerError):
        ring.call(b"x", 0.1)
    server = ring.server()
    served = threading.Event()

    def handler(request: bytes) -> bytes:
        if request == b"bad":
            raise ValueError("no such actuator")
        return request[::-1]

    def serve() -> None:
        for _ in range(2):
            assert server.serve(handler, 10)
        served.set()

    t = threading.Thread(target=serve)
    t.start()
    assert ring.call(b"abc", 10) == b"cba"
    with pytest.raises(shmkit.CommandFailed, match="no such actuator"):
        ring.call(b"bad", 10)
    t.join()
    assert served.is_set()
    assert server.serve(handler, 0.05) is False, "no request: False at the timeout"
    assert server.serve_many(handler, 3, 0.05) == 0
    with pytest.raises(shmkit.CallTimeout) as info:
        ring.call(b"nobody serves", 0.05)
    assert info.value.ran in ("no", "unknown")
    with pytest.raises(ValueError):
        ring.call(b"x" * 65, 1)
