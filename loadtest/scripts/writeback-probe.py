#!/usr/bin/env python3
"""What a large file written beside the log does to the log's fdatasyncs
(docs/PERFORMANCE.md): a thread commits 128 KiB positioned writes to a
preallocated file, each followed by fdatasync (the log's writer under
batch load), while the main thread writes a file of BYTES (a checkpoint
over a million accounts is about 230 MB) in 4 MiB writes, in one of two
ways:

  whole   every write into the page cache, then one fsync (how checkpoints
          are written)
  steps   after each write, sync_file_range(WRITE) of it and a wait for the
          one before (WAIT_BEFORE | WRITE | WAIT_AFTER): at most two writes'
          pages dirty at a time (RocksDB's bytes_per_sync, roughly)

Prints, per mode, how long the large file took and the log's fdatasyncs
during it: how many, p50, p99 and the longest, and the p50 before it.

usage: loadtest/scripts/writeback-probe.py DIR [MODE... [BYTES]]
  DIR must be on the file system under test (the data directory's);
  MODE defaults to "whole steps whole steps" (alternating runs)
"""
import ctypes
import os
import sys
import threading
import time

SYNC_FILE_RANGE_WAIT_BEFORE = 1
SYNC_FILE_RANGE_WRITE = 2
SYNC_FILE_RANGE_WAIT_AFTER = 4
STEP = 4 << 20
LOG_WRITE = 128 << 10
LOG_BYTES = 1 << 30

libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]


def write_large(directory, mode, size):
    path = os.path.join(directory, "writeback-probe-large.tmp")
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
    step = os.urandom(STEP)
    started = time.perf_counter()
    offset, before = 0, None
    while offset < size:
        os.write(fd, step)
        if mode == "steps":
            libc.sync_file_range(fd, offset, STEP, SYNC_FILE_RANGE_WRITE)
            if before is not None:
                flags = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER
                libc.sync_file_range(fd, before, STEP, flags)
            before = offset
        offset += STEP
    os.fsync(fd)
    took = time.perf_counter() - started
    os.close(fd)
    os.unlink(path)
    return took


def probe(directory, mode, size):
    path = os.path.join(directory, "writeback-probe-log.tmp")
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR, 0o644)
    os.posix_fallocate(fd, 0, LOG_BYTES)
    os.fsync(fd)
    latencies, stop = [], threading.Event()

    def commit():
        record, offset = b"x" * LOG_WRITE, 0
        while not stop.is_set():
            started = time.perf_counter()
            os.pwrite(fd, record, offset)
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - started)
            offset = (offset + LOG_WRITE) % LOG_BYTES

    committer = threading.Thread(target=commit)
    committer.start()
    time.sleep(1.0)
    first = len(latencies)
    took = write_large(directory, mode, size)
    last = len(latencies)
    stop.set()
    committer.join()
    os.close(fd)
    os.unlink(path)
    before = sorted(latencies[:first])
    during = sorted(latencies[first:last]) or [0.0]
    ms = lambda seconds: seconds * 1e3
    print(
        f"{mode}: {size / 1e6:.0f} MB in {took:.2f} s; log fdatasyncs meanwhile {last - first}, "
        f"p50 {ms(during[len(during) // 2]):.2f} ms, p99 {ms(during[int(len(during) * 0.99)]):.2f} ms, "
        f"longest {ms(during[-1]):.1f} ms (p50 before {ms(before[len(before) // 2]):.2f} ms)"
    )


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    directory = sys.argv[1]
    modes = [arg for arg in sys.argv[2:] if arg in ("whole", "steps")] or ["whole", "steps", "whole", "steps"]
    sizes = [int(arg) for arg in sys.argv[2:] if arg.isdigit()]
    size = sizes[0] if sizes else 230 * 1000 * 1000
    for mode in modes:
        probe(directory, mode, size)


if __name__ == "__main__":
    main()
