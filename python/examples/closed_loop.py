"""The physical adaptive-optics bench of the Rust demo, its loop closed by a controller
written in Python and numpy.

Run: ``python python/examples/closed_loop.py`` (``--help`` for durations, rates, sizes).

A `shmkit.Testbed` starts the Rust `sim` devices, each in its own server process: a
Shack-Hartmann camera looking through frozen-flow von Kármán turbulence (photon and read
noise, the residual wavefront in user word 3 and the simulated time in user word 4 of every
frame) and the deformable mirror in front of it. Two experiments run in their own Python
processes. The controller calibrates without turbulence on a bright source (push-pull on
every actuator inside the pupil, truncated-SVD reconstructor), watches the open loop, then
on every frame reads the image in place (a read-only numpy view of the ring's slot, pinned
while it is used, no copy), centroids the valid sub-apertures, multiplies by the
reconstructor and runs a leaky integrator into the mirror. A statistics reader watches the
same frames. Both verify every frame's checksum.

The report is the Rust demo's core: rates and missed frames, the latency table
(p50/p99/p99.9/max of frame → controller, computation, command → mirror), torn frames, and
the residual wavefront open and closed loop with its Maréchal Strehl ratio. The default is
the Rust test suite's small bench (8 × 8 sub-apertures on a pupil with the default bench's
r0 / d, at 1 kHz), which a Python controller keeps up with on two cores.
"""

from __future__ import annotations

import argparse
import os

# A real-time loop on few cores: numpy's BLAS must not start threads of its own.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import math  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

import shmkit  # noqa: E402

#: The camera's bias, ADU (`shmkit_sim::ao::BIAS`).
BIAS = 100.0
#: Electrons above bias and background a pixel needs to count in a centre of gravity (four
#: read-noise σ), so the dark pixels of a sub-aperture do not pull its spot to the centre.
THRESHOLD = 2.0
#: The calibration source is this much brighter than the guide star.
CALIBRATION_FLUX = 300.0
#: Mirror modes with a singular value below this fraction of the largest are not corrected.
TRUNCATION = 4e-2
#: Closed-loop simulated seconds left out of the closed-loop residual (convergence).
SETTLE_S = 0.2
#: Keys of the results dictionary: 128 bytes of record space each, room for both reports.
RESULT_KEYS = 64


@dataclass
class Options:
    duration: float = 3.0
    open_loop: float = 0.3
    rate: float = 1000.0
    subapertures: int = 8
    pixels: int = 8
    gain: float = 0.5
    leak: float = 0.995
    stroke: float = 5.0
    poke_um: float = 0.25
    science_nm: float = 1650.0
    wait: str = "block"
    pin: bool = False
    photons: float = 500.0
    background: float = 0.2

    @property
    def actuators(self) -> int:
        return self.subapertures + 1

    @property
    def diameter(self) -> float:
        # A third of a metre per sub-aperture: the default bench's 8 m over 24.
        return self.subapertures / 3.0

    @property
    def obstruction(self) -> float:
        return 0.14


class Devices(shmkit.DeviceEnum):
    """The bench's two devices (their configurations come from the run's options)."""

    CAMERA = shmkit.SimCamera
    DM = shmkit.SimDm


def camera_config(o: Options) -> dict[str, Any]:
    ao = {
        "diameter": o.diameter,
        "obstruction": o.obstruction,
        "outer_scale": 10.0,
        "layers": [{"fraction": 1.0, "speed": 5.0, "direction_deg": 30.0}],
        "photons": o.photons,
        "background": o.background,
    }
    # 64 ms of frames at 1 kHz: a controller descheduled for a few ms catches up instead of
    # losing frames to an overrun.
    return {"subapertures": o.subapertures, "pixels": o.pixels, "rate_hz": o.rate,
            "slots": 64, "dm": "DM", "dm_actuators": o.actuators, "ao": ao}


def dm_config(o: Options) -> dict[str, Any]:
    return {"actuators": o.actuators, "stroke": o.stroke}


def active_actuators(o: Options) -> npt.NDArray[np.intp]:
    """The actuators within half a pitch of the clear aperture (the mirror's registration to
    the pupil, as the Rust bench's geometry defines it), as indices into the n × n command."""
    n, d, half = o.actuators, o.diameter / o.subapertures, o.diameter / 2.0
    k = np.arange(n * n)
    x, y = (k % n) * d - half, (k // n) * d - half
    r = np.hypot(x, y)
    inside: npt.NDArray[np.intp] = k[(r <= half + d / 2.0) & (r + d / 2.0 >= half * o.obstruction)]
    return inside


class Slopes:
    """Centre-of-gravity slopes of the valid sub-apertures (x of every one, then y), in
    pixels from each centre.

    One pass to float, one reordering copy into sub-aperture blocks, and a single matrix
    product with the weights ``[1, x, y]`` gives every sub-aperture's flux and moments.
    """

    def __init__(self, o: Options) -> None:
        self.subs, self.pix = o.subapertures, o.pixels
        y, x = np.mgrid[0:self.pix, 0:self.pix]
        self.weights = np.stack(
            [np.ones(self.pix * self.pix), x.ravel(), y.ravel()], axis=1
        ).astype(np.float32)
        self.centre = self.pix / 2.0 - 0.5
        self.floor = np.float32(BIAS + o.background + THRESHOLD)
        self.valid = np.arange(self.subs * self.subs)

    def moments(self, image: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        s, p = self.subs, self.pix
        v = image.astype(np.float32)  # the one read of the slot
        v -= self.floor
        np.maximum(v, 0.0, out=v)
        blocks = v.reshape(s, p, s, p).transpose(0, 2, 1, 3).reshape(s * s, p * p)
        return blocks @ self.weights

    def choose_valid(self, image: npt.NDArray[Any]) -> int:
        """Keeps the sub-apertures lit at least half as much as the brightest (on a
        calibration frame); returns how many."""
        flux = self.moments(image)[:, 0]
        self.valid = np.flatnonzero(flux >= 0.5 * flux.max())
        return len(self.valid)

    def __call__(self, image: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        m = self.moments(image)[self.valid]
        total = m[:, 0]
        lit = total > 0
        safe = np.where(lit, total, 1.0)
        mx = np.where(lit, m[:, 1] / safe - self.centre, 0.0)
        my = np.where(lit, m[:, 2] / safe - self.centre, 0.0)
        return np.concatenate([mx, my]).astype(np.float32)


def reconstructor(m: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float32], int]:
    """The truncated-SVD least-squares inverse of the interaction matrix `m` (slopes ×
    actuators) and how many modes it drops (those the sensor barely sees: inverting them
    amplifies noise)."""
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    kept = s > TRUNCATION * s.max()
    rec = (vt[kept].T / s[kept]) @ u[:, kept].T
    return rec.astype(np.float32), int((~kept).sum())


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    if not samples_ns:
        return {"p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0, "n": 0}
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "p999": float(np.percentile(a, 99.9)), "max": float(a.max()), "n": len(a)}


def residual_nm(frame: shmkit.Frame) -> float:
    """The camera's residual wavefront RMS for this frame, nm (user word 3, an f64's bits)."""
    value: float = struct.unpack("<d", struct.pack("<Q", frame.user(3)))[0]
    return value


def mean_rms(samples: list[tuple[float, float]], after: float, before: float) -> float:
    """The RMS of the residuals whose simulated time lies in ``(after, before]``."""
    v = [r * r for t, r in samples if after < t <= before]
    return math.sqrt(sum(v) / len(v)) if v else 0.0


def strehl(rms_nm: float, wavelength_nm: float) -> float:
    """Maréchal's approximation, ``exp(-(2π σ / λ)²)``."""
    return math.exp(-((2.0 * math.pi * rms_nm / wavelength_nm) ** 2))


@dataclass
class ControllerReport:
    valid: int = 0
    actuators: int = 0
    modes: int = 0
    calibration_s: float = 0.0
    frames: int = 0
    commands: int = 0
    telemetry_only: int = 0
    missed: int = 0
    loop_hz: float = 0.0
    frame_latency: dict[str, float] = field(default_factory=dict)
    compute: dict[str, float] = field(default_factory=dict)
    command_latency: dict[str, float] = field(default_factory=dict)
    verified: int = 0
    torn: int = 0
    t_close: float = 0.0
    t_end: float = 0.0
    #: Residual RMS open loop, and closed loop after the first `SETTLE_S`, nm.
    open_nm: float = 0.0
    closed_nm: float = 0.0
    #: (simulated time s, residual nm) over each half second from closing the loop.
    residual_series: list[tuple[float, float]] = field(default_factory=list)


class Controller(shmkit.Experiment):
    """Calibrate, watch the open loop, then close the loop on every frame."""

    name = "controller"
    run_forever = True

    def __init__(self, options: Options) -> None:
        self.o = options

    def experiment(self) -> None:
        o = self.o
        if o.pin:
            os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        cache = shmkit.current_cache()
        dm = cache.get("DM", shmkit.SimDm, dm_config(o))
        camera = cache.get("CAMERA", shmkit.SimCamera, camera_config(o))
        frames = camera.frames("frames", "oldest", o.wait)
        slopes = Slopes(o)
        n = o.actuators
        active = active_actuators(o)
        set_dm = dm.set
        report = ControllerReport(actuators=len(active))
        #: (simulated time s, residual nm) of every frame read after calibration.
        residual: list[tuple[float, float]] = []

        def fresh(shape_id: int) -> shmkit.Frame:
            """The next whole frame rendered with mirror shape `shape_id` or later."""
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                try:
                    frame = frames.next(1.0)
                except (shmkit.FrameOverrun, shmkit.FrameTimeout):
                    continue
                if frame.checksum() != frame.user(1):
                    report.torn += 1
                    continue
                report.verified += 1
                if frame.user(2) >= shape_id:
                    return frame
            raise RuntimeError("no frame from the camera within 5 s")

        # Calibration without turbulence, on a bright source: push-pull every actuator.
        camera.turbulence(False)
        camera.photons(o.photons * CALIBRATION_FLUX)
        started = time.monotonic()
        full = np.zeros(n * n, dtype=np.float32)
        report.valid = slopes.choose_valid(fresh(set_dm(full)[0]).array)
        columns = []
        for k in active:
            if self.should_stop():
                return
            full[k] = o.poke_um
            plus = slopes(fresh(set_dm(full)[0]).array)
            full[k] = -o.poke_um
            minus = slopes(fresh(set_dm(full)[0]).array)
            full[k] = 0.0
            columns.append((plus - minus) / (2 * o.poke_um))
        rec, dropped = reconstructor(np.stack(columns, axis=1).astype(np.float64))
        report.modes = len(active) - dropped
        report.calibration_s = time.monotonic() - started
        camera.photons(o.photons)

        # Open loop: turbulence on, mirror flat.
        camera.turbulence(True)
        frame = fresh(set_dm(full)[0])
        del frame
        opened = time.monotonic()
        while time.monotonic() - opened < o.open_loop and not self.should_stop():
            frame = fresh(0)
            report.t_close = frame.user(4) * 1e-9
            residual.append((report.t_close, residual_nm(frame)))
            del frame

        # Closed loop: a leaky integrator, c ← l c − g R s, clipped to the stroke.
        command = np.zeros(len(active), dtype=np.float32)
        frame_lat: list[int] = []
        compute: list[int] = []
        cmd_lat: list[int] = []
        start = time.monotonic()
        last_id = 0
        now_ns = time.monotonic_ns
        while not self.should_stop() and time.monotonic() - start < o.duration:
            try:
                frame = frames.next(1.0)
            except shmkit.FrameOverrun as e:
                report.missed += e.missed
                continue
            except shmkit.FrameTimeout:
                continue
            held = now_ns()
            if frame.checksum() != frame.user(1):
                report.torn += 1  # never used
                continue
            report.verified += 1
            frame_lat.append(held - frame.ts_ns)
            fid = frame.id
            if last_id and fid > last_id + 1:
                report.missed += fid - last_id - 1
            last_id = fid
            report.t_end = frame.user(4) * 1e-9
            residual.append((report.t_end, residual_nm(frame)))
            s = slopes(frame.array)  # the slot itself, read in place
            del frame  # unpinned: the camera may reuse the slot
            report.frames += 1
            if frames.last_id > fid:
                report.telemetry_only += 1  # a newer frame is waiting: never command from a backlog
                continue
            command = np.clip(o.leak * command - o.gain * (rec @ s), -o.stroke, o.stroke)
            full[active] = command
            sent = now_ns()
            compute.append(sent - held)
            _, _, applied = set_dm(full, fid)
            cmd_lat.append(applied - sent)
            report.commands += 1
        report.loop_hz = report.frames / max(time.monotonic() - start, 1e-9)
        report.frame_latency = percentiles(frame_lat)
        report.compute = percentiles(compute)
        report.command_latency = percentiles(cmd_lat)
        report.open_nm = mean_rms(residual, -math.inf, report.t_close)
        report.closed_nm = mean_rms(residual, report.t_close + SETTLE_S, report.t_end)
        t = report.t_close
        while t < report.t_end:
            report.residual_series.append((t, mean_rms(residual, t, t + 0.5)))
            t += 0.5
        cache.segment.dict("closed-loop/results", RESULT_KEYS)["controller"] = asdict(report)


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
        cache.segment.dict("closed-loop/results", RESULT_KEYS)["statistics"] = {
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
        results = tb.segment.dict("closed-loop/results", RESULT_KEYS)
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


def summary(o: Options, r: dict[str, Any]) -> dict[str, float]:
    """The residuals and Strehl ratios of a run."""
    c = r["controller"]
    open_nm, closed_nm = float(c["open_nm"]), float(c["closed_nm"])
    return {"open_nm": open_nm, "closed_nm": closed_nm,
            "strehl_open": strehl(open_nm, o.science_nm),
            "strehl_closed": strehl(closed_nm, o.science_nm)}


def print_report(o: Options, r: dict[str, Any]) -> None:
    c, st = r["controller"], r["statistics"]
    s = summary(o, r)

    def lat(label: str, p: dict[str, float]) -> None:
        print(f"  {label:<40} p50 {p['p50']:>7.1f} µs   p99 {p['p99']:>7.1f} µs   "
              f"p99.9 {p['p999']:>7.1f} µs   max {p['max']:>8.1f} µs   (n = {int(p['n'])})")

    print(f"closed loop (Python controller): {o.subapertures}×{o.subapertures} sub-apertures "
          f"of {o.pixels} px on a {o.diameter:.2f} m pupil ({c['valid']} valid), "
          f"{c['actuators']} active actuators, waits: {o.wait}")
    print(f"  camera rate {r['camera_hz']:>10.1f} Hz (asked {o.rate:.0f})")
    print(f"  loop rate   {c['loop_hz']:>10.1f} Hz: {c['frames']} frames read, {c['missed']} missed "
          f"by the controller; {c['commands']} mirror commands ({c['telemetry_only']} frames "
          f"arrived behind a newer one: telemetry only)")
    lat("frame publish -> controller holds it", c["frame_latency"])
    lat("control computation (frame -> command)", c["compute"])
    lat("command sent -> mirror applied it", c["command_latency"])
    print(f"  checksums: controller {c['verified']} verified, {c['torn']} torn; statistics reader "
          f"{st['verified']} verified, {st['torn']} torn (mean intensity {st['mean_intensity']:.1f})")
    print(f"  reconstructor: truncated SVD, {c['modes']} of {c['actuators']} mirror modes "
          f"corrected; calibration {c['calibration_s']:.1f} s")
    print(f"  residual: open loop {s['open_nm']:.0f} nm (Strehl {s['strehl_open']:.3f} at "
          f"{o.science_nm / 1000:.2f} µm), closed loop {s['closed_nm']:.1f} nm "
          f"(Strehl {s['strehl_closed']:.3f})")
    for t, v in c["residual_series"]:
        print(f"    t = {t:5.2f} s + 0.5 s: {v:7.1f} nm")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    d = Options()
    p.add_argument("--duration", type=float, default=d.duration, help="closed-loop seconds")
    p.add_argument("--open-loop", type=float, default=d.open_loop, help="open-loop seconds")
    p.add_argument("--rate", type=float, default=d.rate, help="camera frames per second")
    p.add_argument("--subapertures", type=int, default=d.subapertures)
    p.add_argument("--pixels", type=int, default=d.pixels)
    p.add_argument("--gain", type=float, default=d.gain)
    p.add_argument("--leak", type=float, default=d.leak)
    p.add_argument("--wait", choices=["spin_then_block", "block", "spin"], default=d.wait)
    p.add_argument("--pin", action="store_true",
                   help="the controller alone on the last CPU, everything else on CPU 0")
    p.add_argument("--check", action="store_true",
                   help="exit non-zero unless 0 torn and the closed loop reaches Strehl 0.5 "
                        "with a residual under half the open loop's")
    a = p.parse_args(argv)
    o = Options(duration=a.duration, open_loop=a.open_loop, rate=a.rate,
                subapertures=a.subapertures, pixels=a.pixels, gain=a.gain, leak=a.leak,
                wait=a.wait, pin=a.pin)
    r = run(o)
    print_report(o, r)
    if a.check:
        s = summary(o, r)
        torn = r["controller"]["torn"] + r["statistics"]["torn"]
        converged = s["closed_nm"] > 0 and s["closed_nm"] < 0.5 * s["open_nm"]
        corrected = s["strehl_closed"] >= 0.5
        if torn or not converged or not corrected:
            print(f"CHECK FAILED: torn {torn}, residual {s['open_nm']:.0f} -> "
                  f"{s['closed_nm']:.1f} nm, Strehl {s['strehl_closed']:.3f}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
