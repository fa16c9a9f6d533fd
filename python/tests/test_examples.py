"""The examples in `python/examples/` run to the end."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
README = EXAMPLES.parent.parent / "README.md"


def readme_python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.S | re.M)


def test_the_readme_two_process_program_is_the_example_and_runs(tmp_path: pathlib.Path) -> None:
    blocks = [b for b in readme_python_blocks() if "shmkit.Process(target=camera" in b]
    assert len(blocks) == 1, "the README shows the two-process program once"
    assert blocks[0] == (EXAMPLES / "two_processes.py").read_text()
    # Run as extracted from the README, not from the examples folder.
    program = tmp_path / "from_readme.py"
    program.write_text(blocks[0])
    out = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "read 50 frames in place; the child published 50" in out.stdout


def test_every_readme_python_block_compiles() -> None:
    blocks = readme_python_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        compile(block, "README.md", "exec")


def test_the_ported_manager_style_experiment_runs_unchanged_but_for_its_imports() -> None:
    source = (EXAMPLES / "catkit_port.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("from ", "import "))]
    assert [line for line in imports if "shmkit" in line] == [
        line for line in imports if line.startswith("from shmkit.compat")
    ], "only catkit's imports were changed"
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "catkit_port.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "14 safe steps in lockstep before the trip" in out.stdout
    assert "the trip ended the run after " in out.stdout
    assert "the testbed stopped: the mirror's stroke 1.50 exceeds 1.0" in out.stdout
    assert "move_mirror: 'MoveMirror': Event monitor detected a SAFETY event" in out.stdout
    assert "take_images: " in out.stdout


def test_the_python_closed_loop_corrects_the_turbulence_with_no_torn_frame() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "closed_loop.py"), "--duration", "1.5", "--check"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 torn; statistics reader" in out.stdout
    m = re.search(r"open loop (\d+) nm \(Strehl ([\d.]+) at 1.65 µm\), closed loop ([\d.]+) nm "
                  r"\(Strehl ([\d.]+)\)", out.stdout)
    assert m is not None, out.stdout
    open_nm, strehl_open, closed_nm, strehl_closed = map(float, m.groups())
    # The small bench's turbulence is far outside Maréchal's range; the corrected loop is not.
    assert strehl_open < 0.1 and strehl_closed > 0.7, out.stdout
    assert closed_nm < 0.25 * open_nm, out.stdout
    assert "command sent -> mirror applied it" in out.stdout

# The example pairs, run as two terminals would run them: both halves as processes.


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _finished(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{proc.args!r}: {out}{err}"
    return out


def _segment(tag: str) -> str:
    return f"shmkit-test-pyexample-{tag}-{os.getpid()}"


def test_the_frame_reader_checks_frames_the_writer_publishes() -> None:
    seg = _segment("frames")
    reader = _start("frames_reader.py", seg, "300")      # first: it waits for the writer
    writer = _start("frames_writer.py", seg, "3000")
    try:
        assert "300 frames checked" in _finished(reader)
        _finished(writer)
    finally:
        _unlink(seg)


def test_the_command_client_gets_every_sum_from_the_server() -> None:
    seg = _segment("command")
    server = _start("command_server.py", seg, "300")
    try:
        assert "300 calls answered correctly" in _finished(_start("command_client.py", seg, "300"))
        assert "300 requests answered" in _finished(server)
    finally:
        _unlink(seg)


def test_named_objects_run_twice_count_together() -> None:
    seg = _segment("named")
    runs = [_start("named_objects.py", seg), _start("named_objects.py", seg)]
    try:
        for run in runs:
            assert "total 40000 (expected 40000)" in _finished(run)
    finally:
        _unlink(seg)


def test_a_killed_lock_holder_is_repaired_by_the_survivor() -> None:
    seg = _segment("lock")
    holder = _start("lock_holder.py", seg)
    try:
        assert holder.stdout is not None
        assert "kill me" in holder.stdout.readline()       # the holder holds the lock now
        survivor = _start("lock_survivor.py", seg)
        assert survivor.stdout is not None
        assert "waiting for the lock" in survivor.stdout.readline()
        holder.kill()                                       # SIGKILL: it dies holding it
        holder.wait(30)
        rest = _finished(survivor)
        assert "the mirror was in state 1" in rest and "consistent again" in rest, rest
    finally:
        holder.kill()
        _unlink(seg)


def _unlink(name: str) -> None:
    import shmkit

    try:
        shmkit.Segment.unlink(name)
    except shmkit.errors.SegmentError:
        pass
