#!/usr/bin/env python3
"""A `shmkit view` client that is not a browser: it takes the frames of some rings over the
viewer's WebSocket (as a page would, at up to --fps per ring) and counts them, drawing nothing.

Measures what the viewer itself costs the loop, apart from a browser's rendering (which, on a
machine with few CPUs, competes with the loop's processes). Standard library only:

    scripts/view_client.py URL --ring dev/Camera/frames --seconds 20
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import time


class Socket:
    """A client WebSocket on a plain connection (RFC 6455, just what the viewer sends)."""

    def __init__(self, url: str) -> None:
        hostport, query = url.removeprefix("http://").split("/", 1)
        host, port = hostport.rsplit(":", 1)
        token = query.split("token=", 1)[1]
        self.sock = socket.create_connection((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
                f"Cookie: shmkit_view_{port}={token}\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise SystemExit(f"view_client: not upgraded: {head.decode(errors='replace')}")

    def _more(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            self._more()

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        if len(payload) < 126:
            head = bytes([0x81, 0x80 | len(payload)])
        else:
            head = bytes([0x81, 0xFE]) + struct.pack(">H", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def receive(self) -> tuple[int, bytes]:
        """The next message: its opcode and payload."""
        self._need(2)
        first, length, at = self.buf[0], self.buf[1] & 0x7F, 2
        if length == 126:
            self._need(4)
            length, at = struct.unpack(">H", self.buf[2:4])[0], 4
        elif length == 127:
            self._need(10)
            length, at = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(at + length)
        payload = self.buf[at : at + length]
        self.buf = self.buf[at + length :]
        return first & 0x0F, payload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--ring", action="append", default=[], help="a ring to take (repeatable)")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    a = ap.parse_args()
    ws = Socket(a.url)
    ws.send_text(json.dumps({"subscribe": a.ring, "fps": a.fps}))
    counts: dict[str, int] = {r: 0 for r in a.ring}
    first: float | None = None
    end = time.monotonic() + a.seconds
    try:
        while time.monotonic() < end:
            opcode, payload = ws.receive()
            if opcode == 2 and payload[:4] == b"SKF1":
                name_len = struct.unpack("<H", payload[4:6])[0]
                name = payload[56 : 56 + name_len].decode()
                counts[name] = counts.get(name, 0) + 1
                first = time.monotonic() if first is None else first
    except EOFError:
        pass
    span = time.monotonic() - first if first is not None else 0.0
    print(json.dumps({r: (n / span if span > 0 else 0.0) for r, n in counts.items()}))


if __name__ == "__main__":
    main()
