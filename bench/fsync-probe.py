#!/usr/bin/env python3
"""How long a durable 200-byte append takes on this disk, by method, and
how far concurrent syncs of one file overlap.

The durable default needs a sync for each grant and each finish, so this
cost bounds its drain rate (docs/storage.md, README "The durable
default"). Usage: bench/fsync-probe.py [DIR] (default: the working
directory; not tmpfs, where a sync costs nothing).

1. one writer, 3,000 appends, each followed by a sync, into a file that is
   plain (grows), preallocated (fallocate), or pre-zeroed, of 200 bytes
   (one record) and of 4 KiB (a batch under load: every sync then lands in
   a new page, where a preallocated extent must first be converted); then
   writes with RWF_DSYNC into a pre-zeroed file, buffered and O_DIRECT;
2. T threads, each appending under a lock and then calling fdatasync on
   its own: syncs completed per second against T.
"""
import mmap
import os
import sys
import threading
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "."
SIZE = 64 << 20
REC = b"x" * 200


def fresh(name, prep):
    path = os.path.join(DIR, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if prep == "preallocated":
        os.posix_fallocate(fd, 0, SIZE)
    elif prep == "pre-zeroed":
        for _ in range(SIZE >> 20):
            os.write(fd, b"\0" * (1 << 20))
    os.fsync(fd)
    return path, fd


def per_write(path, fd, write, n=3000):
    """Mean seconds of write(fd, i) over n calls; then closes and deletes."""
    t = time.perf_counter()
    for i in range(n):
        write(fd, i)
    dt = (time.perf_counter() - t) / n
    os.close(fd)
    os.unlink(path)
    return dt


def append_sync(prep, rec=REC):
    path, fd = fresh("fsync-probe.a", prep)

    def write(fd, i):
        os.pwrite(fd, rec, i * len(rec))
        os.fdatasync(fd)

    return per_write(path, fd, write)


def dsync_write(direct):
    path, fd = fresh("fsync-probe.d", "pre-zeroed")
    os.close(fd)
    fd = os.open(path, os.O_RDWR | (os.O_DIRECT if direct else 0))
    buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT needs
    buf.write(b"y" * 4096)
    return per_write(path, fd, lambda fd, i: os.pwritev(fd, [buf], i * 4096, os.RWF_DSYNC))


def concurrent_syncs(threads, n=1500):
    path, fd = fresh("fsync-probe.c", "preallocated")
    end = [0]
    lock = threading.Lock()

    def work():
        for _ in range(n):
            with lock:
                os.pwrite(fd, REC, end[0])
                end[0] += len(REC)
            os.fdatasync(fd)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    t = time.perf_counter()
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    rate = threads * n / (time.perf_counter() - t)
    os.close(fd)
    os.unlink(path)
    return rate


for rec in [REC, b"x" * 4096]:
    for prep in ["plain", "preallocated", "pre-zeroed"]:
        print(f"{len(rec):4} B append + fdatasync, {prep:12}: {append_sync(prep, rec) * 1e6:6.1f} µs")
for direct in [False, True]:
    label = "O_DIRECT" if direct else "buffered"
    print(f"pwritev RWF_DSYNC, {label:12}: {dsync_write(direct) * 1e6:6.1f} µs")
for t in [1, 2, 4, 8]:
    print(f"{t} thread(s) appending and syncing: {concurrent_syncs(t):7.0f} syncs/s")
