#!/usr/bin/env python3
"""Open a `shmkit view` URL in headless Chromium and report what the page shows.

Drives Debian's `chromium` and `chromium-driver` through plain WebDriver HTTP (no Python
packages needed): loads the page, waits for frames of the rings asked for, then samples the
page's own count of frames drawn per second for `--seconds`, prints one JSON line, and can
save a screenshot. Used to measure the viewer (frames/s in the page) and to take the README's
picture:

    scripts/view_probe.py URL --ring dev/Camera/frames --seconds 10 --screenshot docs/viewer.png
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Driver:
    """A chromedriver process and one headless Chromium session."""

    def __init__(self, width: int, height: int) -> None:
        driver = shutil.which("chromedriver")
        browser = shutil.which("chromium")
        if driver is None or browser is None:
            sys.exit("view_probe: needs chromium and chromedriver (apt-get install chromium chromium-driver)")
        self.port = free_port()
        self.profile = tempfile.TemporaryDirectory(prefix="shmkit-view-probe-")
        self.proc = subprocess.Popen(
            [driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--window-size={width},{height}", f"--user-data-dir={self.profile.name}",
        ]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": browser, "args": args},
        }}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["value"]

    def run(self, path: str, body: Any = None) -> Any:
        return self.call("POST" if body is not None else "GET", f"/session/{self.session}{path}", body)

    def script(self, js: str, *args: Any) -> Any:
        return self.run("/execute/sync", {"script": js, "args": list(args)})

    def close(self) -> None:
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()
            self.proc.wait()
            self.profile.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--ring", action="append", default=[], help="a ring to measure (repeatable)")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long to sample the page's rate")
    ap.add_argument("--screenshot", help="save a PNG of the page here")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1000)
    a = ap.parse_args()
    d = Driver(a.width, a.height)
    try:
        d.run("/url", {"url": a.url})
        deadline = time.monotonic() + 20
        while any(d.script("return window.shmkitView.frameId(arguments[0])", r) is None for r in a.ring):
            if time.monotonic() > deadline:
                sys.exit(f"view_probe: no frame shown within 20 s for {a.ring}")
            time.sleep(0.2)
        samples: dict[str, list[float]] = {r: [] for r in a.ring}
        end = time.monotonic() + a.seconds
        while time.monotonic() < end:
            time.sleep(1.0)
            for r in a.ring:
                samples[r].append(float(d.script("return window.shmkitView.shownFps(arguments[0])", r)))
        if a.screenshot:
            with open(a.screenshot, "wb") as f:
                f.write(base64.b64decode(d.run("/screenshot")))
        report = {
            r: {"fps_median": sorted(s)[len(s) // 2] if s else None, "fps_min": min(s, default=None)}
            for r, s in samples.items()
        }
        print(json.dumps(report))
    finally:
        d.close()


if __name__ == "__main__":
    main()
