#!/usr/bin/env python3
"""A plain eclipse-zenoh subscriber that decodes frames a shmkit-zenoh bridge exports, from the
header documented in src/header.rs alone (no shmkit code): connects to ENDPOINT, takes COUNT
samples of KEY, checks each header and checksum, prints a JSON report.

    python_subscriber.py ENDPOINT KEY COUNT
"""

from __future__ import annotations

import json
import struct
import sys
import time
import zlib

import zenoh

HEADER = struct.Struct("<4sHBB4IQQ5QQQQQ")
assert HEADER.size == 112
ELEM = {1: ("B", 1), 2: ("H", 2), 3: ("I", 4), 4: ("h", 2), 5: ("i", 4), 6: ("f", 4), 7: ("d", 8)}


def main(endpoint: str, key: str, count: int) -> int:
    conf = zenoh.Config()
    conf.insert_json5("mode", '"peer"')
    conf.insert_json5("connect/endpoints", json.dumps([endpoint]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    frames: list[dict[str, object]] = []
    problems: list[str] = []
    with zenoh.open(conf) as session:
        sub = session.declare_subscriber(key)
        print("subscribed", flush=True)
        deadline = time.monotonic() + 20
        while len(frames) < count and time.monotonic() < deadline:
            # recv() has no timeout and would hang the suite if frames stopped coming.
            sample = sub.try_recv()
            if sample is None:
                time.sleep(0.001)
                continue
            attachment = sample.attachment
            if attachment is None:
                problems.append("no attachment")
                continue
            head = HEADER.unpack(attachment.to_bytes())
            magic, version, elem, ndims = head[0:4]
            shape = list(head[4 : 4 + ndims])
            frame_id, ts_ns = head[8], head[9]
            user = list(head[10:15])
            seq, skipped, checksum, length = head[15:19]
            payload = sample.payload.to_bytes()
            if magic != b"SHKZ" or version != 1:
                problems.append(f"header {magic!r} v{version}")
            if len(payload) != length or zlib.crc32(payload) != checksum:
                problems.append(f"frame {frame_id}: payload does not match its header")
            code, size = ELEM[elem]
            n = 1
            for d in shape:
                n *= d
            if n * size != len(payload):
                problems.append(f"frame {frame_id}: {len(payload)} bytes for shape {shape}")
            first = struct.unpack_from("<" + code, payload, 0)[0]
            frames.append({"id": frame_id, "seq": seq, "shape": shape, "user0": user[0], "first": first})
    print(json.dumps({"frames": frames, "problems": problems}), flush=True)
    return 1 if problems or len(frames) < count else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
