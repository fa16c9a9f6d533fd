"""The simulated adaptive-optics bench of the Rust demo, its loop closed by a controller
written in Python and numpy.

Run: ``python python/examples/closed_loop.py`` (``--help`` for durations, rates, sizes).

A `shmkit.Testbed` starts the simulated Shack-Hartmann camera and deformable mirror (the
Rust `sim` devices, each in its own server process) and two experiments in their own Python
processes: the controller calibrates (pushes and pulls every actuator), then on every frame
reads the image in place — a read-only numpy view of the ring's slot, pinned while it is
used, no copy — computes the slopes, multiplies by the reconstructor and integrates into the
mirror command; a statistics reader watches the same frames. Both verify every frame's
checksum. The report is the Rust demo's: rates, missed frames, both latencies
(p50/p99/p99.9/max), torn frames and the residual per second.
"""

from __future__ import annotations

import argparse
import os

# A real-time loop on few cores: numpy's BLAS must not start threads of its own.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

import shmkit  # noqa: E402


@dataclass
class Options:
    duration: float = 10.0
    rate: float = 1000.0
    subapertures: int = 16
    pixels: int = 8
    actuators: int = 12
    gain: float = 0.4
    wait: str = "spin_then_block"
    pin: bool = False


class Devices(shmkit.DeviceEnum):
    """Filled in by `main` with the run's sizes (an enum's members are fixed at class
    creation, so the configuration is looked up through the options instead)."""

    CAMERA = shmkit.SimCamera
    DM = shmkit.SimDm


def camera_config(o: Options) -> dict[str, Any]:
    return {"subapertures": o.subapertures, "pixels": o.pixels, "rate_hz": o.rate,
            "slots": 16, "dm": "DM", "dm_actuators": o.actuators}


def dm_config(o: Options) -> dict[str, Any]:
    return {"actuators": o.actuators, "stroke": 1.0}


class Slopes:
    """Centroid slopes (x for every sub-aperture, then y), in pixels from each centre.

    One pass to float, one reordering copy into sub-aperture blocks, and a single matrix
    product with the weights ``[1, x, y]`` gives every sub-aperture's flux and moments.
    """

    def __init__(self, subs: int, pix: int) -> None:
        self.subs, self.pix = subs, pix
        y, x = np.mgrid[0:pix, 0:pix]
        self.weights = np.stack(
            [np.ones(pix * pix), x.ravel(), y.ravel()], axis=1
        ).astype(np.float32)
        self.centre = pix / 2.0 - 0.5

    def __call__(self, image: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        s, p = self.subs, self.pix
        v = image.astype(np.float32)  # the one read of the slot
        v -= 100.0
        np.maximum(v, 0.0, out=v)
        blocks = v.reshape(s, p, s, p).transpose(0, 2, 1, 3).reshape(s * s, p * p)
        moments = blocks @ self.weights
        total = moments[:, 0]
        lit = total > 0
        safe = np.where(lit, total, 1.0)
        mx = np.where(lit, moments[:, 1] / safe - self.centre, 0.0)
        my = np.where(lit, moments[:, 2] / safe - self.centre, 0.0)
        return np.concatenate([mx, my]).astype(np.float32)


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    if not samples_ns:
        return {"p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0, "n": 0}
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "p999": float(np.percentile(a, 99.9)), "max": float(a.max()), "n": len(a)}


@dataclass
class ControllerReport:
    frames: int = 0
    commands: int = 0
    telemetry_only: int = 0
    missed: int = 0
    loop_hz: float = 0.0
    frame_latency: dict[str, float] = field(default_factory=dict)
    command_latency: dict[str, float] = field(default_factory=dict)
    verified: int = 0
    torn: int = 0
    residual_per_second: list[float] = field(default_factory=list)
    open_loop_residual: float = 0.0
    first_frames: list[tuple[int, float]] = field(default_factory=list)


def rms(v: npt.NDArray[np.float32]) -> float:
    return float(np.sqrt(np.mean(v.astype(np.float64) ** 2)))


class Controller(shmkit.Experiment):
    """Calibrate, then close the loop on every frame."""

    name = "controller"
    run_forever = True

    def __init__(self, options: Options) -> None:
        self.o = options

    def experiment(self) -> None:
        o = self.o
        if o.pin:
            os.sched_setaffinity(0, {max(os.sched_getaffinity(0) | set(range(os.cpu_count() or 1)))})
        cache = shmkit.current_cache()
        dm = cache.get("DM", shmkit.SimDm, dm_config(o))
        camera = cache.get("CAMERA", shmkit.SimCamera, camera_config(o))
        frames = camera.frames("frames", "oldest", o.wait)
        slopes = Slopes(o.subapertures, o.pixels)
        nact = o.actuators**2
        set_dm = dm.set

        def fresh(shape_id: int) -> npt.NDArray[np.float32]:
            """Slopes of the next frame rendered with mirror shape `shape_id` or later."""
            while True:
                try:
                    frame = frames.next(2.0)
                except shmkit.FrameOverrun:
                    continue
                if frame.user(2) >= shape_id:
                    return slopes(frame.array)

        # Calibration: push-pull every actuator.
        delta = 0.05
        poke = np.zeros(nact, dtype=np.float32)
        columns = []
        for k in range(nact):
            if self.should_stop():
                return
            poke[k] = delta
            plus = fresh(set_dm(poke)[0])
            poke[k] = -delta
            minus = fresh(set_dm(poke)[0])
            poke[k] = 0.0
            columns.append((plus - minus) / (2 * delta))
        m = np.stack(columns, axis=1).astype(np.float64)
        mtm = m.T @ m
        alpha = 1e-3 * np.trace(mtm) / nact
        rec = np.linalg.solve(mtm + alpha * np.eye(nact), m.T).astype(np.float32)
        command = np.zeros(nact, dtype=np.float32)
        report = ControllerReport(open_loop_residual=rms(fresh(set_dm(command)[0])))

        frame_lat: list[int] = []
        cmd_lat: list[int] = []
        start = time.monotonic()
        second_sum, second_n = 0.0, 0
        last_id = 0
        marks = {1, 2, 3, 5, 10, 20, 50, 100}
        now_ns = time.monotonic_ns
        while not self.should_stop() and time.monotonic() - start < o.duration:
            try:
                frame = frames.next(1.0)
            except shmkit.FrameOverrun as e:
                report.missed += e.missed
                continue
            except shmkit.FrameTimeout:
                continue
            frame_lat.append(now_ns() - frame.ts_ns)
            fid = frame.id
            if last_id and fid > last_id + 1:
                report.missed += fid - last_id - 1
            last_id = fid
            if frame.checksum() == frame.user(1):
                report.verified += 1
            else:
                report.torn += 1
            s = slopes(frame.array)  # the slot itself, read in place
            del frame  # unpinned: the camera may reuse the slot
            report.frames += 1
            if frames.last_id > fid:
                report.telemetry_only += 1  # a newer frame is waiting: never command from a backlog
                continue
            command = np.clip(command - o.gain * (rec @ s), -1.0, 1.0).astype(np.float32)
            sent = now_ns()
            _, _, applied = set_dm(command, fid)
            cmd_lat.append(applied - sent)
            report.commands += 1
            residual = rms(s)
            if report.commands in marks:
                report.first_frames.append((report.commands, residual))
            second_sum += residual
            second_n += 1
            if time.monotonic() - start >= len(report.residual_per_second) + 1:
                report.residual_per_second.append(second_sum / max(second_n, 1))
                second_sum, second_n = 0.0, 0
        if second_n:
            report.residual_per_second.append(second_sum / second_n)
        report.loop_hz = report.frames / max(time.monotonic() - start, 1e-9)
        report.frame_latency = percentiles(frame_lat)
        report.command_latency = percentiles(cmd_lat)
        cache.segment.dict("closed-loop/results", 8)["controller"] = asdict(report)


class Statistics(shmkit.Experiment):
    """A second reader of the same frames: checksums and mean intensity."""

    name = "statistics"
    run_forever = True

    def __init__(self, options: Options) -> None:
        self.o = options

    def experiment(self) -> None:
        cache = shmkit.current_cache()
        camera = cache.get("CAMERA", shmkit.SimCamera, camera_config(self.o))
        frames = camera.frames("frames", "newest", "block")  # a monitor: never spin
        n = verified = torn = 0
        total = 0.0
        while not self.should_stop():
            try:
                frame = frames.next(0.2)
            except shmkit.FrameTimeout:
                continue
            if frame.checksum() == frame.user(1):
                verified += 1
            else:
                torn += 1
            total += float(frame.array.mean())
            n += 1
        cache.segment.dict("closed-loop/results", 8)["statistics"] = {
            "frames": n, "verified": verified, "torn": torn, "mean_intensity": total / max(n, 1)}


def run(o: Options) -> dict[str, Any]:
    """Runs the bench; returns the experiments' reports and the camera's rate."""
    name = f"shmkit-pyloop-{os.getpid()}"
    if o.pin:
        # Everything but the controller on CPU 0 (the servers and the reader inherit it);
        # the controller moves itself to the last CPU.
        os.sched_setaffinity(0, {0})
    with shmkit.Testbed(name, Devices, stop_timeout=5.0) as tb:
        assert tb.segment is not None
        results = tb.segment.dict("closed-loop/results", 8)
        cache = shmkit.current_cache()
        cache.get("DM", shmkit.SimDm, dm_config(o))
        camera = cache.get("CAMERA", shmkit.SimCamera, camera_config(o))
        tb.start_experiment(Statistics(o))
        tb.start_experiment(Controller(o))
        frames0, _ = camera.stats()
        t0 = time.monotonic()
        while "controller" not in results and tb.running_experiments() == 2:
            time.sleep(0.05)
        frames1, _ = camera.stats()
        camera_hz = (frames1 - frames0) / max(time.monotonic() - t0, 1e-9)
        report = tb.close()
        for outcome in report.experiments:
            if outcome.error is not None:
                raise outcome.error
        return {"controller": results["controller"], "statistics": results["statistics"],
                "camera_hz": camera_hz}


def print_report(o: Options, r: dict[str, Any]) -> None:
    c, st = r["controller"], r["statistics"]

    def lat(label: str, p: dict[str, float]) -> None:
        print(f"  {label:<34} p50 {p['p50']:>7.1f} µs   p99 {p['p99']:>7.1f} µs   "
              f"p99.9 {p['p999']:>7.1f} µs   max {p['max']:>8.1f} µs   (n = {int(p['n'])})")

    print(f"closed loop (Python controller): {o.subapertures}×{o.subapertures} sub-apertures "
          f"of {o.pixels} px, {o.actuators}×{o.actuators} actuators, waits: {o.wait}")
    print(f"  camera rate {r['camera_hz']:>10.1f} Hz (asked {o.rate:.0f})")
    print(f"  loop rate   {c['loop_hz']:>10.1f} Hz: {c['frames']} frames read, {c['missed']} missed "
          f"by the controller; {c['commands']} mirror commands ({c['telemetry_only']} frames "
          f"arrived behind a newer one: telemetry only)")
    lat("frame publish -> controller holds it", c["frame_latency"])
    lat("command sent -> mirror applied it", c["command_latency"])
    print(f"  checksums: controller {c['verified']} verified, {c['torn']} torn; statistics reader "
          f"{st['verified']} verified, {st['torn']} torn (mean intensity {st['mean_intensity']:.1f})")
    print(f"  residual (RMS slope, px): open loop {c['open_loop_residual']:.4f}")
    for frame, v in c["first_frames"]:
        print(f"    after frame {frame:>4}: {v:.4f}")
    for i, v in enumerate(c["residual_per_second"]):
        print(f"    second {i + 1:>3}: {v:.4f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=10.0, help="closed-loop seconds")
    p.add_argument("--rate", type=float, default=1000.0, help="camera frames per second")
    p.add_argument("--subapertures", type=int, default=16)
    p.add_argument("--pixels", type=int, default=8)
    p.add_argument("--actuators", type=int, default=12)
    p.add_argument("--gain", type=float, default=0.4)
    p.add_argument("--wait", choices=["spin_then_block", "block", "spin"], default="spin_then_block")
    p.add_argument("--pin", action="store_true",
                   help="the controller alone on the last CPU, everything else on CPU 0")
    p.add_argument("--check", action="store_true",
                   help="exit non-zero unless 0 torn and the residual converged")
    a = p.parse_args(argv)
    o = Options(a.duration, a.rate, a.subapertures, a.pixels, a.actuators, a.gain, a.wait, a.pin)
    r = run(o)
    print_report(o, r)
    c = r["controller"]
    if a.check:
        converged = bool(c["residual_per_second"]) and (
            c["residual_per_second"][-1] < 0.5 * c["open_loop_residual"])
        torn = c["torn"] + r["statistics"]["torn"]
        if torn or not converged:
            print(f"CHECK FAILED: torn {torn}, converged {converged}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
