#!/usr/bin/python3
"""bench-blockstore.py: where should block payloads live, SQLite blobs or files?

Writes and reads back N blocks of SIZE bytes both ways on the local disk
(what the block cache does) and prints MB/s for each, as a ratio. The
decision for bucketfs (files, see src/store/blocks.c) rests on this figure.

    /usr/bin/python3 scripts/bench-blockstore.py [N=256] [SIZE=1048576] [DIR=/tmp]
"""
import os, random, sqlite3, sys, tempfile, time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
size = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
base = sys.argv[3] if len(sys.argv) > 3 else "/tmp"
data = os.urandom(size)
order = list(range(n))
random.seed(1)
random.shuffle(order)

def timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t

with tempfile.TemporaryDirectory(dir=base) as d:
    db = sqlite3.connect(os.path.join(d, "b.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE b(k INTEGER PRIMARY KEY, v BLOB)")
    def sql_write():
        for i in range(n):
            db.execute("INSERT INTO b VALUES(?, ?)", (i, data))
    def sql_read():
        for i in order:
            assert len(db.execute("SELECT v FROM b WHERE k=?", (i,)).fetchone()[0]) == size
    os.mkdir(os.path.join(d, "f"))
    def file_write():
        for i in range(n):
            p = os.path.join(d, "f", str(i))
            with open(p + ".tmp", "wb") as f:
                f.write(data)
            os.rename(p + ".tmp", p)
            db.execute("INSERT INTO b VALUES(?, NULL)", (n + i,))  # the index row
    def file_read():
        for i in order:
            db.execute("SELECT k FROM b WHERE k=?", (n + i,)).fetchone()
            with open(os.path.join(d, "f", str(i)), "rb") as f:
                assert len(f.read()) == size
    mb = n * size / 1e6
    r = {}
    for name, fn in (("sqlite write", sql_write), ("sqlite read", sql_read),
                     ("files write", file_write), ("files read", file_read)):
        r[name] = mb / timed(fn)
        print(f"{name:13s} {r[name]:8.0f} MB/s")
    print(f"files/sqlite: write {r['files write']/r['sqlite write']:.2f}x, "
          f"read {r['files read']/r['sqlite read']:.2f}x  ({n} blocks of {size} bytes)")
