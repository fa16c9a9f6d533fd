"""Python devices on the core's device servers: served once, shared by processes, crashes,
safe closes, owner death, fail-safe, and the built-in simulated camera and mirror."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import shmkit


def _log(key: str, value: Any) -> None:
    """Records ``key`` in the test segment's "log" dictionary (from a device's server)."""
    shmkit.Segment.open(os.environ[shmkit._devices.SEGMENT_ENV]).dict("log", 64)[key] = value


class Counter(shmkit.Device):
    """A device whose state lives in its server: a count and who asked."""

    def __init__(self, start: int = 0) -> None:
        self.count = start

    def open(self) -> None:
        _log("opened", os.getpid())

    def close(self) -> None:
        _log("closed", self.count)

    def incr(self, by: int = 1) -> int:
        self.count += by
        return self.count

    def server_pid(self) -> int:
        return os.getpid()

    def fail(self, text: str) -> None:
        try:
            raise KeyError(text)
        except KeyError as e:
            raise ValueError(f"actuator failure: {text}") from e

    def echo(self, value: Any) -> Any:
        return value

    def nap(self, seconds: float) -> None:
        time.sleep(seconds)

    def trip(self) -> str:
        self.request_fail_safe("over-current")
        return "tripping"


class Devices(shmkit.DeviceEnum):
    COUNTER = (Counter, {"start": 10})


def _wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def cache(seg: shmkit.Segment) -> Any:
    cache = shmkit.use_segment(seg)
    seg.dict("log", 64)
    yield cache
    for name in ("COUNTER", "CAM", "DM"):
        try:
            cache.close(name, 5.0)
        except shmkit.ShmkitError:
            pass


def _bump_through_the_enum(n: int) -> None:
    pids = {Devices.COUNTER.server_pid()}
    for _ in range(n):
        Devices.COUNTER.incr()
    pids.add(Devices.COUNTER.server_pid())
    assert len(pids) == 1


def test_a_device_is_served_once_and_called_from_several_processes(cache: Any) -> None:
    assert Devices.COUNTER.incr(0) == 10  # opened on first use, with its configuration
    server = Devices.COUNTER.server_pid()
    assert server != os.getpid()
    children = [shmkit.Process(target=_bump_through_the_enum, args=(50,)) for _ in range(2)]
    for c in children:
        c.start()
    for c in children:
        c.join(60)
    assert Devices.COUNTER.incr(0) == 110, "every process reached the same device"
    assert Devices.COUNTER.server_pid() == server
    assert cache.status("COUNTER")["starts"] == 1
    # Arguments and results of any picklable type, arrays included.
    a = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(Devices.COUNTER.echo({"a": a, "t": (1, "x")})["a"], a)


def test_a_device_methods_exception_reaches_the_caller_with_its_cause(cache: Any) -> None:
    with pytest.raises(ValueError, match="actuator failure: stuck") as info:
        Devices.COUNTER.fail("stuck")
    assert isinstance(info.value.__cause__, KeyError)
    assert any("Raised in device 'COUNTER'" in n for n in info.value.__notes__)
    with pytest.raises(AttributeError):
        Devices.COUNTER.no_such_method()
    with pytest.raises(AttributeError, match="not a device command"):
        Devices.COUNTER.close()  # the safe state is the server's business, not a command
    assert Devices.COUNTER.incr() == 11, "a failed command leaves the device serving"


def test_a_crashed_server_is_reported_then_started_again(seg: shmkit.Segment, cache: Any) -> None:
    first = Devices.COUNTER.server_pid()
    os.kill(first, signal.SIGKILL)
    assert _wait_for(lambda: cache.status("COUNTER")["state"] == "crashed")
    with pytest.raises(shmkit.DeviceError):
        Devices.COUNTER.incr()
    # restart="never": it stays crashed until restarted explicitly.
    with pytest.raises(shmkit.DeviceCrashed):
        Devices.COUNTER.incr()
    again = cache.restart("COUNTER", Counter, {"start": 0})
    assert again.server_pid() != first and again.incr() == 1
    assert cache.status("COUNTER")["starts"] == 2


def test_restart_on_access_starts_a_crashed_server_on_the_next_use(seg: shmkit.Segment) -> None:
    cache = shmkit.DeviceCache(seg, restart="on_access")
    seg.dict("log", 64)
    try:
        first = cache.get("COUNTER", Counter).server_pid()
        os.kill(first, signal.SIGKILL)
        assert _wait_for(lambda: cache.status("COUNTER")["state"] == "crashed")
        with pytest.raises(shmkit.DeviceError):
            cache.get("COUNTER", Counter).incr()  # the call in flight is reported
        assert cache.get("COUNTER", Counter).server_pid() != first  # the next one restarts
    finally:
        cache.close("COUNTER")


def _hold_the_device_lock(seconds: float) -> None:
    with Devices.COUNTER:
        Devices.COUNTER.incr()
        time.sleep(seconds)


def test_a_safe_close_goes_through_while_another_process_holds_the_device(
    seg: shmkit.Segment, cache: Any
) -> None:
    Devices.COUNTER.incr()
    holder = shmkit.Process(target=_hold_the_device_lock, args=(30,))
    holder.start()
    mutex = seg.mutex("dev/COUNTER/lock")
    assert _wait_for(lambda: mutex.locked())
    started = time.monotonic()
    status = cache.close("COUNTER", 5.0)
    assert status["state"] == "closed" and time.monotonic() - started < 5
    assert seg.dict("log")["closed"] == 12, "close() ran in the server, with the device's state"
    holder.kill()
    with pytest.raises(shmkit.ChildKilled):
        holder.join(10)


def test_the_owner_dying_closes_the_device(seg: shmkit.Segment) -> None:
    seg.dict("log", 64)
    script = textwrap.dedent(
        """
        import sys, time, shmkit
        sys.path.insert(0, sys.argv[2])
        from test_devices import Counter
        cache = shmkit.DeviceCache(shmkit.Segment.open(sys.argv[1]))
        print(cache.get("COUNTER", Counter).server_pid(), flush=True)
        time.sleep(60)
        """
    )
    starter = subprocess.Popen(
        [sys.executable, "-c", script, seg.name, os.path.dirname(__file__)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None
    server = int(starter.stdout.readline())
    starter.kill()
    starter.wait()
    log = seg.dict("log")
    assert _wait_for(lambda: "closed" in log, 2.0), "the server closed the device within 2 s"
    assert _wait_for(lambda: not os.path.exists(f"/proc/{server}") or _zombie(server), 2.0)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_a_device_asking_for_its_fail_safe_state_is_closed_and_refuses_commands(
    seg: shmkit.Segment, cache: Any
) -> None:
    assert Devices.COUNTER.trip() == "tripping"
    assert seg.dict("log")["closed"] == 10, "closed before the caller heard back"
    with pytest.raises(shmkit.DeviceFailSafe):
        Devices.COUNTER.incr()
    assert cache.status("COUNTER")["state"] == "fail_safe"


def test_the_simulated_camera_and_mirror_from_python(seg: shmkit.Segment, cache: Any) -> None:
    dm = cache.get("DM", shmkit.SimDm, {"actuators": 4, "stroke": 1.0})
    cam = cache.get("CAM", shmkit.SimCamera, {"rate_hz": 500.0, "subapertures": 4, "dm": "DM",
                                               "dm_actuators": 4})
    frame_id, clipped, applied_ns = dm.set(np.full(16, 2.0, dtype=np.float32), tag=7)
    assert clipped == 16 and applied_ns > 0 and frame_id >= 1
    assert dm.get() == [1.0] * 16
    reader = cam.frames("frames")
    f = reader.next(5)
    assert f.array.dtype == np.uint16 and f.array.shape == (32, 32)
    frames, rate = cam.stats()
    assert frames >= 1 and rate == 500.0
    with cache.get("DM", shmkit.SimDm):
        dm.zero()
    assert dm.get() == [0.0] * 16


class Imager(shmkit.Device):
    """A Python camera: frames written into its own ring, read by clients without pickling."""

    frame_rings = {"frames": ((4, 6), "uint16", 4)}

    def __init__(self, level: int = 3) -> None:
        self.level = level

    def expose(self, n: int) -> int:
        last = 0
        for i in range(n):
            with self.frames["frames"].claim() as slot:
                slot.array[:] = self.level + i
                slot.set_user(0, i)
            last = i
        return last


def test_a_python_device_publishes_frames_that_clients_read_in_place(cache: Any) -> None:
    cam = cache.get("CAM", Imager, {"level": 5})
    reader = cam.frames("frames", "oldest")
    assert cam.expose(3) == 2
    got = [reader.next(5) for _ in range(3)]
    assert [int(f.array[0, 0]) for f in got] == [5, 6, 7]
    assert got[0].array.shape == (4, 6) and not got[0].array.flags.writeable


def _ctrl_c_ends(
    script: str, args: list[str], wait_until_asleep: Callable[[int], None]
) -> None:
    """Runs ``script`` in a child (it prints "ready", then blocks in a shmkit call and prints
    "interrupted" on KeyboardInterrupt), sends SIGINT once it sleeps, and checks the call
    ended with KeyboardInterrupt within 100 ms."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    wait_until_asleep(child.pid)  # inside the call
    os.kill(child.pid, signal.SIGINT)
    sent = time.monotonic()
    line = child.stdout.readline().strip()
    took = time.monotonic() - sent
    child.wait(10)
    assert line == "interrupted"
    assert took < 0.1, f"KeyboardInterrupt {took * 1000:.0f} ms after SIGINT"


def test_ctrl_c_interrupts_a_device_call_within_100ms(
    seg: shmkit.Segment, cache: Any, wait_until_asleep: Callable[[int], None]
) -> None:
    Devices.COUNTER.incr()  # started by this process, so the child only calls
    script = """
        import sys
        sys.path.insert(0, sys.argv[2])
        import shmkit
        from test_devices import Devices
        shmkit.use_segment(shmkit.Segment.open(sys.argv[1]))
        Devices.COUNTER.incr()
        print("ready", flush=True)
        try:
            Devices.COUNTER.nap(2)
            print("returned", flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    _ctrl_c_ends(script, [seg.name, os.path.dirname(__file__)], wait_until_asleep)


def test_ctrl_c_interrupts_a_close_waiting_for_a_stopped_server_within_100ms(
    seg: shmkit.Segment, cache: Any, wait_until_asleep: Callable[[int], None]
) -> None:
    Devices.COUNTER.incr()
    server = Devices.COUNTER.server_pid()
    os.kill(server, signal.SIGSTOP)  # it cannot close now: close waits for it
    script = """
        import sys
        import shmkit
        cache = shmkit.use_segment(shmkit.Segment.open(sys.argv[1]))
        print("ready", flush=True)
        try:
            cache.close("COUNTER", 60.0)
            print("returned", flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    try:
        _ctrl_c_ends(script, [seg.name], wait_until_asleep)
    finally:
        os.kill(server, signal.SIGCONT)
    # Asked to close before the interrupt, the resumed server closes on its own.
    assert _wait_for(lambda: cache.status("COUNTER")["state"] == "closed")


def test_the_simulated_camera_takes_the_physical_ao_configuration(cache: Any) -> None:
    import struct

    cam = cache.get(
        "CAM",
        shmkit.SimCamera,
        {
            "rate_hz": 500.0,
            "subapertures": 8,
            "dm_actuators": 9,
            "realtime": None,
            "ao": {"diameter": 8.0 / 3.0, "outer_scale": 10.0, "seed": 5,
                   "layers": [{"fraction": 1.0, "speed": 10.0, "direction_deg": 0.0}]},
        },
    )
    reader = cam.frames("frames", "oldest")
    # The physical sensor publishes its truth: residual wavefront (nm, user word 3) and
    # simulated time (user word 4), one period a frame.
    first = reader.next(5)
    residual_bits, t0 = first.user(3), first.user(4)
    del first
    t1 = reader.next(5).user(4)
    turbulent = struct.unpack("<d", struct.pack("<Q", residual_bits))[0]
    assert turbulent > 50.0, f"{turbulent} nm of turbulence"
    assert t1 - t0 == 2_000_000
    # A bench calibrates without turbulence, on a bright source: the residual of a flat
    # mirror is then nothing.
    cam.turbulence(False)
    cam.photons(1e5)
    latest = reader.last_id
    while True:
        frame = reader.next(5)
        if frame.id > latest:
            break
        del frame
    calm = struct.unpack("<d", struct.pack("<Q", frame.user(3)))[0]
    del frame
    assert calm < 1.0, f"{calm} nm without turbulence"
    with pytest.raises(ValueError, match='SimCamera.s config: unknown field .wind.'):
        cache.get("CAM2", shmkit.SimCamera, {"ao": {"wind": 3}})
    toy = cache.get("CAM3", shmkit.SimCamera, {"rate_hz": 100.0})
    with pytest.raises(shmkit.DeviceError, match="turbulence needs the AO mode"):
        toy.turbulence(True)


def test_a_simulated_devices_config_is_read_field_by_field_and_refuses_unknown_ones(
    cache: Any,
) -> None:
    # Parsed from the config types' own definitions: a misspelt field is named, a missing
    # one takes its default, a wrong type says which field.
    with pytest.raises(ValueError, match="SimDm's config: unknown field .actuator."):
        cache.get("DMX", shmkit.SimDm, {"actuator": 4})
    with pytest.raises(ValueError, match="SimCamera's config"):
        cache.get("CAMX", shmkit.SimCamera, {"rate_hz": "fast"})
    with pytest.raises(ValueError, match="missing field .speed."):
        cache.get("CAMY", shmkit.SimCamera, {"ao": {"layers": [{"fraction": 1.0}]}})
    dm = cache.get("DMY", shmkit.SimDm, {"actuators": 4})
    assert len(dm.get()) == 16


_STAGES = ("publish-to-held", "held-to-sent", "sent-to-applied", "publish-to-applied")


def _stage_maxima(seg: shmkit.Segment, device: str) -> dict[str, tuple[int, int]]:
    """Each stage histogram of ``device``: (count, max in ns)."""
    out = {}
    for stage in _STAGES:
        s = seg.histogram(f"dev/{device}/latency/{stage}").snapshot()
        out[stage] = (s.count, s.max_ns)
    return out


def test_a_caused_call_records_the_injected_instants_as_the_devices_stages(
    seg: shmkit.Segment, cache: Any
) -> None:
    dm = cache.get("DM", shmkit.SimDm, {"actuators": 4})
    dm.zero()
    assert all(count == 0 for count, _ in _stage_maxima(seg, "DM").values()), "no cause, no sample"
    before = time.monotonic_ns()
    cause = shmkit.Cause(frame_id=42, published_ns=before - 3_000_000, held_ns=before - 1_000_000)
    caused = dm.caused(cause)
    assert caused.client.cause == cause and dm.client.cause is None
    caused.set(np.zeros(16, dtype=np.float32))
    after = time.monotonic_ns()
    got = _stage_maxima(seg, "DM")
    assert all(count == 1 for count, _ in got.values()), got
    # The histograms' maxima are exact: the injected 2 ms, the others bounded by the call.
    assert got["publish-to-held"][1] == 2_000_000
    sent = got["held-to-sent"][1]
    assert 1_000_000 <= sent <= 1_000_000 + (after - before)
    applied = got["sent-to-applied"][1]
    assert applied <= after - before
    assert got["publish-to-applied"][1] == 3_000_000 + (sent - 1_000_000) + applied
    # The plain proxy carries nothing: another call adds no sample.
    dm.zero()
    assert _stage_maxima(seg, "DM")["publish-to-held"][0] == 1


def test_a_frame_read_is_the_cause_of_the_python_device_call_computed_from_it(
    seg: shmkit.Segment, cache: Any
) -> None:
    cam = cache.get("CAM", Imager, {"level": 1})
    reader = cam.frames("frames", "oldest")
    cam.expose(1)
    frame = reader.next(5)
    cause = frame.cause
    assert (cause.frame_id, cause.published_ns, cause.held_ns) == (
        frame.id, frame.ts_ns, frame.held_ns)
    assert frame.ts_ns <= frame.held_ns <= time.monotonic_ns()
    assert cam.caused(frame).expose(0) == 0  # a pickled call carries it as well
    got = _stage_maxima(seg, "CAM")
    assert all(count == 1 for count, _ in got.values()), got
    assert got["publish-to-held"][1] == frame.held_ns - frame.ts_ns


def test_a_cause_is_checked_compared_and_pickled() -> None:
    import pickle

    c = shmkit.Cause(7, 100, 250)
    assert (c.frame_id, c.published_ns, c.held_ns) == (7, 100, 250)
    assert pickle.loads(pickle.dumps(c)) == c and c != shmkit.Cause(7, 100, 251)
    assert repr(c) == "shmkit.Cause(frame_id=7, published_ns=100, held_ns=250)"
    now = shmkit.Cause(1, 0)
    assert 0 < now.held_ns <= time.monotonic_ns(), "held_ns defaults to now"
    with pytest.raises(ValueError, match="held after it is published"):
        shmkit.Cause(1, 200, 100)
    with pytest.raises(OverflowError):
        shmkit.Cause(-1, 0, 0)


def test_a_cause_that_is_neither_a_cause_nor_a_frame_is_a_type_error(cache: Any) -> None:
    dm = cache.get("DM", shmkit.SimDm, {"actuators": 4})
    with pytest.raises(TypeError, match="shmkit.Cause or a shmkit.Frame, not int"):
        dm.caused(42)
