"""The wheel installs and works where there is no Rust toolchain.

`./scripts/test-all` builds the wheel (`maturin build --release`), checks it with auditwheel,
and names it in `SHMKIT_WHEEL`; this test installs it into a fresh virtual environment whose
`PATH` holds no `cargo` or `rustc` and uses it there. Without `SHMKIT_WHEEL` it is skipped,
visibly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

WHEEL = os.environ.get("SHMKIT_WHEEL", "")

needs_wheel = pytest.mark.skipif(
    not WHEEL, reason="SHMKIT_WHEEL names no wheel (./scripts/test-all builds one)"
)

USE = """
import os, numpy, shmkit
name = f"shmkit-wheel-{os.getpid()}"
seg = shmkit.Segment.create(name, 1 << 22)
try:
    lock = seg.mutex("m")
    with lock:
        pass
    ring = seg.frame_ring("f", (8, 8), numpy.uint16, slots=4)
    writer = ring.writer()
    reader = ring.reader()
    slot = writer.claim()
    slot.array[:] = 7
    slot.publish()
    frame = reader.next(timeout=1.0)
    assert int(frame.array.sum()) == 7 * 64, frame.array
    print("ok", shmkit.__file__)
finally:
    shmkit.Segment.unlink(name)
"""


@needs_wheel
def test_the_wheel_installs_and_runs_without_a_rust_toolchain(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Only the new environment and the system's directories: no ~/.cargo/bin.
    path = os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    for tool in ("cargo", "rustc"):
        assert shutil.which(tool, path=path) is None, f"{tool} is on the fresh PATH"
    env = {"PATH": path, "HOME": str(tmp_path), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", WHEEL], check=True, env=env)
    out = subprocess.run(
        [python, "-c", USE], check=True, env=env, capture_output=True, text=True
    ).stdout
    assert out.startswith("ok "), out
    # Imported from the environment's own site-packages, not from this checkout.
    assert str(venv) in out, out


@needs_wheel
def test_the_wheel_carries_complete_metadata() -> None:
    with zipfile.ZipFile(WHEEL) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(wheel.read(name).decode())
        files = wheel.namelist()
    assert meta["Name"] == "shmkit"
    assert meta["Version"]
    assert meta["Requires-Python"] == ">=3.11"
    assert any(r.startswith("numpy") for r in meta.get_all("Requires-Dist") or [])
    assert "MIT" in (meta["License"] or meta["License-Expression"] or "")
    classifiers = meta.get_all("Classifier") or []
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert any(c.startswith("License ::") for c in classifiers)
    urls = meta.get_all("Project-URL") or []
    assert any(u.startswith("Repository") for u in urls), urls
    description = meta.get_payload()
    assert meta["Summary"] and isinstance(description, str) and description.strip(), "summary"
    assert "shmkit/py.typed" in files and "shmkit/_shmkit.pyi" in files
    assert any(n.startswith("shmkit/_shmkit") and n.endswith(".so") for n in files)
