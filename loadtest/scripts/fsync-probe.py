#!/usr/bin/env python3
"""What one small durable write costs on this machine's file system, by how
the file was laid out beforehand (docs/PERFORMANCE.md, "preallocated
segments"). Each mode writes COUNT records of SIZE bytes one after another,
each followed by fdatasync, the way the log's writer commits a group of one:

  append      O_APPEND onto an empty file (the log before its segments were
              preallocated): every fdatasync must also write the inode,
              since the size changed
  keep-size   fallocate(FALLOC_FL_KEEP_SIZE) first, then append: the blocks
              exist, the size still changes
  fallocate   fallocate() to the full length first (unwritten extents, the
              size already final), then positioned writes (the log now)
  zeros       the full length written with zeros and fsynced first, then
              positioned writes (no metadata left to change)

Prints, per mode, the mean and p50/p99 time of one write + fdatasync and
the voluntary context switches per record (each a sleep waiting for I/O).

usage: loadtest/scripts/fsync-probe.py DIR [COUNT [SIZE]]
  DIR must be on the file system under test (say the data directory's)
"""
import ctypes
import os
import sys
import time

FALLOC_FL_KEEP_SIZE = 1


def switches():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def probe(directory, mode, count, size):
    path = os.path.join(directory, f"fsync-probe-{os.getpid()}-{mode}")
    length = count * size + 4096
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | (os.O_APPEND if mode in ("append", "keep-size") else 0)
    fd = os.open(path, flags, 0o600)
    try:
        if mode == "keep-size":
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, ctypes.c_long(0), ctypes.c_long(length)) != 0:
                raise OSError(ctypes.get_errno(), "fallocate(KEEP_SIZE)")
        elif mode == "fallocate":
            os.posix_fallocate(fd, 0, length)
        elif mode == "zeros":
            os.pwrite(fd, b"\0" * length, 0)
        os.fsync(fd)
        record = b"x" * size
        latencies = []
        before = switches()
        started = time.perf_counter()
        for index in range(count):
            t0 = time.perf_counter()
            if mode in ("append", "keep-size"):
                os.write(fd, record)
            else:
                os.pwrite(fd, record, index * size)
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        per_record = (switches() - before) / count
    finally:
        os.close(fd)
        os.remove(path)
    latencies.sort()
    p50 = latencies[count // 2] * 1e6
    p99 = latencies[count * 99 // 100] * 1e6
    print(
        f"{mode:10} mean {elapsed / count * 1e6:6.0f} us  p50 {p50:6.0f} us  p99 {p99:6.0f} us  "
        f"{per_record:.2f} voluntary switches per record"
    )


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    directory = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    print(f"{count} records of {size} bytes in {directory}, each written and fdatasynced")
    for _ in range(2):
        for mode in ("append", "keep-size", "fallocate", "zeros"):
            probe(directory, mode, count, size)


if __name__ == "__main__":
    main()
