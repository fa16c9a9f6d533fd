"""One half of a pair: a server adding two numbers for its clients over a command ring
(requests and replies as little-endian int64s). Usage: ``command_server.py [SEGMENT] [REQUESTS]``."""

from __future__ import annotations

import argparse
import struct

import shmkit


def add(request: bytes) -> bytes:
    a, b = struct.unpack("<qq", request)
    return struct.pack("<q", a + b)


def main(name: str, requests: int) -> None:
    seg = shmkit.Segment.open_or_create(name, 8 << 20)
    server = seg.command_ring("adder-py", slots=4, max_request=64, max_reply=64).server()
    print(f"server: adding numbers for clients of {name!r}/adder-py", flush=True)
    served = server.serve_many(add, requests, timeout=30)   # the GIL is free between requests
    print(f"server: {served} requests answered")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("segment", nargs="?", default="shmkit-example")
    parser.add_argument("requests", nargs="?", type=int, default=1000)
    args = parser.parse_args()
    main(args.segment, args.requests)
