"""The examples in `python/examples/` run to the end."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def test_two_processes_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "two_processes.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "parent read 50 frames in place; the child counted 50" in out.stdout


def test_the_ported_manager_style_experiment_runs_unchanged_but_for_its_imports() -> None:
    source = (EXAMPLES / "catkit_port.py").read_text()
    assert "from shmkit.compat import" in source
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "catkit_port.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "20 steps in lockstep" in out.stdout


def test_the_python_closed_loop_runs_short_with_no_torn_frame_and_converges() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "closed_loop.py"), "--duration", "1.5", "--rate", "500",
         "--subapertures", "8", "--actuators", "6", "--check"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 torn; statistics reader" in out.stdout
    assert "residual (RMS slope, px): open loop" in out.stdout
