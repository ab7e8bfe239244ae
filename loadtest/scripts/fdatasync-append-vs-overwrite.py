#!/usr/bin/env python3
"""fdatasync latency when each write extends the file (as the WAL's segments
do today) against overwriting a file zeroed beforehand (as preallocated
segments would): docs/PERFORMANCE.md, 2026-12-05 night.

Usage: python3 loadtest/scripts/fdatasync-append-vs-overwrite.py [DIR] [WRITES]
DIR must be on the disk the data directory uses (default: /tmp).
"""
import os
import sys
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
writes = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
frame = b"x" * 1500  # about a group of ten transfer records


def run(prezeroed):
    path = os.path.join(directory, "fdatasync-test")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        if prezeroed:
            os.write(fd, b"\0" * (writes * len(frame) + 4096))
            os.fsync(fd)
            os.lseek(fd, 0, 0)
        latencies = []
        for _ in range(writes):
            os.write(fd, frame)
            started = time.perf_counter()
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()
    return {p: round(latencies[int(len(latencies) * p / 100)] * 1e3, 3) for p in (50, 90, 99)}


for _ in range(2):
    print("append   ms p50/p90/p99:", run(prezeroed=False))
    print("prezeroed ms p50/p90/p99:", run(prezeroed=True))
