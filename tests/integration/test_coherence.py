#!/usr/bin/python3
"""Integration tests of close-to-open consistency between machines (option
`revalidate`, default 1 s, at most metadata_ttl), against a live S3 server.

Run as root inside scripts/with-server.sh:

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_coherence.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Delete]

A "machine" is a bucketfs daemon: every test mounts two (or more) on the
same bucket and prefix ("t" mapped to the test's own prefix in bfs-test),
each with its OWN fresh cache directory, so that they share nothing but S3.
Mount A writes; its change counts as published once close (or fsync) and
`bucketfs sync A` returned, which each test checks with boto3 (the object's
bytes) before it looks at mount B.  B's "knowledge" of a file dates from the
last time B asked S3 about it (an open, a lookup); the tests note that time
(after the call returned, so it is never early) and wait REVAL + MARGIN past
it before the open that must see A's change.

What is checked on B after the window: an overwrite of another length reads
back exactly (raw os.read without fstat, Python's open, cat; fstat's size),
a delete and a rename make the old name's open fail with ENOENT, a name B
looked up and found missing (after listing its directory) opens by name; and
within the window an open costs no request (and may show the old version),
with revalidate=0 every open asks; a reader holding the file open while A
replaces it reads the old bytes or fails with EIO, never A's bytes (not on
s3rver, which ignores If-Match: SERVER_LIMITS of test_mount.py).  The cost
of `cat` of 200 cached files is read from the mount's request counters (the
xattr user.bucketfs.stats of the mount root: "by_op" head, get, list...).

The Mount machinery, the boto3 client and the helpers are those of
test_mount.py and test_write.py (imported from this directory).  The binary
given with --bucketfs is copied at the start, so that a rebuild of build/
during the run cannot break later mounts.
"""
import concurrent.futures
import errno
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import (KiB, MiB, SERVER, MountError, md5hex, note,  # noqa: E402
                        read_all, server_can)
from test_write import WriteTestCase, write_file  # noqa: E402

REVAL = 1.0        # the default revalidate window, seconds
MARGIN = 0.3       # waited past a window on top of it


def read_raw(path, chunk=64 * KiB):
    """Reads a file with os.open/os.read only (no fstat: the kernel's idea
    of the size is what limits the reads)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while True:
            b = os.read(fd, chunk)
            if not b:
                return b"".join(parts)
            parts.append(b)
    finally:
        os.close(fd)


def read_with_fstat(path):
    """(bytes, st_size of fstat on the descriptor the bytes came from)."""
    with open(path, "rb") as f:
        data = f.read()
        return data, os.fstat(f.fileno()).st_size


def cat(*paths, timeout=60):
    r = subprocess.run(["cat", "--"] + list(paths), capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError("cat of %d file(s) exited %d: %s"
                             % (len(paths), r.returncode, r.stderr.decode(errors="replace")[:500]))
    return r.stdout


def ops_delta(s0, s1):
    """{op: count} of the requests between two stats, non-zero ones, plus
    "requests" (the total)."""
    d = {k: v - s0["by_op"].get(k, 0) for k, v in s1["by_op"].items()
         if v - s0["by_op"].get(k, 0)}
    d["requests"] = s1["requests"] - s0["requests"]
    return d


def wait_past(t_known, window=REVAL):
    """Sleeps until window + MARGIN after t_known (a monotonic time)."""
    left = t_known + window + MARGIN - time.monotonic()
    if left > 0:
        time.sleep(left)


def version_name(got, versions):
    """Which of {name: bytes} got is, or a description of what it is."""
    for name, v in versions.items():
        if got == v:
            return name
    return "neither version (%d bytes, md5 %s; %s)" % (len(got), md5hex(got), ", ".join(
        "%s is %d bytes" % (n, len(v)) for n, v in versions.items()))


class CoherenceTestCase(WriteTestCase):
    """Helpers: several mounts of one prefix, publishing on A."""

    def setUp(self):
        super().setUp()
        self.p = "tc-%s-%s/" % (self._testMethodName[5:][:40], uuid.uuid4().hex[:8])

    def sync(self, m, what=""):
        """`bucketfs sync MOUNTPOINT`: returns when m's closed files are in S3."""
        t0 = time.monotonic()
        r = subprocess.run([tm.BUCKETFS, "sync", m.mnt], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual((r.returncode, r.stderr), (0, ""),
                         "bucketfs sync %s%s" % (m.mnt, " (%s)" % what if what else ""))
        return time.monotonic() - t0

    def publish(self, a, rel, data, how="sync"):
        """Writes data to t/rel on mount A, then publishes it: close +
        `bucketfs sync` (how="sync") or write + fsync + close ("fsync");
        checks with boto3 that S3 holds exactly data."""
        p = a.path("t", rel)
        if how == "sync":
            write_file(p, data)
            self.sync(a, "after writing %s" % rel)
        else:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view[:MiB]):]
                os.fsync(fd)
            finally:
                os.close(fd)
        got = self.get(rel)
        if got != data:
            self.fail("mount A's %s of %s returned, but S3 holds %s, not the %d bytes written"
                      % ("close + bucketfs sync" if how == "sync" else "fsync", rel,
                         "%d bytes (md5 %s)" % (len(got), md5hex(got)), len(data)))
        return time.monotonic()


# ------------------------------------------------------------- overwrites
class OverwriteTest(CoherenceTestCase):

    def test_overwrite_other_length_seen_after_window(self):
        """A file B has read is overwritten on A, shorter (close + sync),
        then longer (fsync): B's open after the window returns A's bytes
        exactly, read without fstat (the kernel's size must be right),
        with Python's open (fstat size too) and with cat."""
        v1 = os.urandom(300 * KiB + 17)
        v2 = os.urandom(5 * KiB + 3)                 # shorter
        v3 = os.urandom(2 * MiB + 12345)             # longer than v1
        with self.mount() as a, self.mount() as b:
            self.publish(a, "f.bin", v1)
            pb = b.path("t", "f.bin")
            self.assertBytes(read_raw(pb), v1, "B's first read")
            known = time.monotonic()
            # B's cache holds v1 now, and its kernel v1's pages and size
            self.assertBytes(read_raw(pb), v1, "B's second read (cached)")
            self.publish(a, "f.bin", v2)
            wait_past(known)
            s0 = b.stats()
            got = read_raw(pb)
            known = time.monotonic()
            d = ops_delta(s0, b.stats())
            self.assertEqual(version_name(got, {"v1 (old)": v1, "v2 (A's)": v2}), "v2 (A's)",
                             "B's open + read (os.read, no fstat) %.1f s after B last asked, "
                             "after A's close + sync of a shorter version; requests %r"
                             % (REVAL + MARGIN, d))
            self.assertGreaterEqual(d.get("head", 0), 1, "B's open after the window must ask S3 "
                                    "(HEAD): %r" % d)
            data, size = read_with_fstat(pb)
            self.assertBytes(data, v2, "B's open() + read of the shorter version")
            self.assertEqual(size, len(v2), "fstat on B of the shorter version")
            note("shorter overwrite seen by B's first open after the window: requests %r", d)

            self.publish(a, "f.bin", v3, how="fsync")
            wait_past(known)
            got = read_raw(pb)
            known = time.monotonic()
            self.assertEqual(version_name(got, {"v2 (old)": v2, "v3 (A's)": v3}), "v3 (A's)",
                             "B's open + read (os.read, no fstat) after the window, after A's "
                             "write + fsync of a longer version")
            self.assertBytes(cat(pb), v3, "cat on B of the longer version")
            data, size = read_with_fstat(pb)
            self.assertBytes(data, v3, "B's open() + read of the longer version")
            self.assertEqual(size, len(v3), "fstat on B of the longer version")
            self.assertEqual(os.stat(pb).st_size, len(v3), "stat on B after an open that saw "
                             "the longer version")

    def test_overwrite_of_file_only_listed(self):
        """B has only listed the files (ls -l: the kernel holds their sizes,
        B's cache no data); A overwrites one longer and one shorter: B's
        opens after the window read A's bytes exactly, with fstat sizes."""
        v1 = {"grow.bin": os.urandom(3 * KiB), "shrink.bin": os.urandom(700 * KiB)}
        v2 = {"grow.bin": os.urandom(900 * KiB + 5), "shrink.bin": os.urandom(KiB + 1)}
        with self.mount() as a, self.mount() as b:
            for rel, data in v1.items():
                self.publish(a, rel, data)
            r = subprocess.run(["ls", "-ln", b.path("t")], capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
            known = time.monotonic()
            self.assertEqual(r.returncode, 0, r.stderr)
            sizes = {line.split()[-1]: int(line.split()[4]) for line in r.stdout.splitlines()
                     if not line.startswith("total")}
            self.assertEqual(sizes, {k: len(v) for k, v in v1.items()}, "ls -ln on B")
            for rel, data in v2.items():
                self.publish(a, rel, data)
            wait_past(known)
            for rel, data in v2.items():
                pb = b.path("t", rel)
                got = read_raw(pb)
                self.assertEqual(version_name(got, {"the old version": v1[rel],
                                                    "A's version": data}), "A's version",
                                 "B's first open + read (os.read, no fstat) of %s, listed before "
                                 "A overwrote it, after the window" % rel)
                got, size = read_with_fstat(pb)
                self.assertBytes(got, data, "B's open() + read of %s" % rel)
                self.assertEqual(size, len(data), "fstat on B of %s" % rel)

    def test_window_and_revalidate_0(self):
        """Right after A publishes a new version: mount B with revalidate=30s
        opens it without a request (a whole version, not a mix); mount C with
        revalidate=0 reads A's bytes at once, and every open of C costs
        exactly one HEAD and no GET while the file stays unchanged."""
        v1 = os.urandom(64 * KiB)
        v2 = os.urandom(40 * KiB + 1)
        with self.mount() as a, self.mount(opts={"revalidate": "30s"}) as b, \
                self.mount(opts={"revalidate": "0"}) as c:
            self.publish(a, "w.bin", v1)
            pb, pc = b.path("t", "w.bin"), c.path("t", "w.bin")
            self.assertBytes(read_raw(pb), v1, "B's first read")
            self.assertBytes(read_raw(pc), v1, "C's first read")
            self.publish(a, "w.bin", v2)
            s0 = b.stats()
            got_b = read_raw(pb)
            db = ops_delta(s0, b.stats())
            which = version_name(got_b, {"v1 (old)": v1, "v2 (A's)": v2})
            self.assertIn(which, ("v1 (old)", "v2 (A's)"), "B (revalidate=30s) within its window")
            self.assertEqual(db["requests"], 0, "B's open + read within its revalidate window "
                             "(30 s) of a file it has cached must send no request: %r" % db)
            s0 = c.stats()
            got_c = read_raw(pc)
            dc = ops_delta(s0, c.stats())
            self.assertEqual(version_name(got_c, {"v1 (old)": v1, "v2 (A's)": v2}), "v2 (A's)",
                             "C (revalidate=0) right after A's close + sync; requests %r" % dc)
            note("within the window: B (30 s) read %s with %r; C (0) read %s with %r",
                 which, db, "v2", dc)
            s0 = c.stats()
            n = 5
            for i in range(n):
                self.assertBytes(read_raw(pc), v2, "C's open %d of the unchanged file" % (i + 1))
            dc = ops_delta(s0, c.stats())
            self.assertEqual((dc.get("head", 0), dc.get("get", 0)), (n, 0),
                             "%d opens + reads on C (revalidate=0) of a cached, unchanged file: "
                             "expected %d HEADs (every open asks) and no GET; requests %r"
                             % (n, n, dc))


# ------------------------------------------------------- names, deletes
class NamesTest(CoherenceTestCase):

    def test_new_file_opens_by_name_after_window(self):
        """B lists the directory and looks up a name: missing.  A makes the
        file (close + sync): B opens it by name within the window after its
        lookup (~1 s after A's sync), in the mapping's top directory and in
        a subdirectory.  With metadata_ttl=1s, mount C's listing shows it
        after more than 1 s."""
        data = b"made on A\n" * 100
        sub = b"in a subdirectory\n"
        with self.mount() as a, self.mount() as b, \
                self.mount(opts={"metadata_ttl": "1s"}) as c:
            self.publish(a, "old.txt", b"old\n")
            os.mkdir(a.path("t", "d"))
            self.publish(a, "d/old.txt", b"old in d\n")
            for m in (b, c):
                self.assertEqual(sorted(os.listdir(m.path("t"))), ["d", "old.txt"],
                                 "listing before the new file")
                self.assertEqual(sorted(os.listdir(m.path("t", "d"))), ["old.txt"])
                for rel in ("new.txt", "d/new.txt"):
                    with self.assertRaises(FileNotFoundError, msg="%s before A made it" % rel):
                        os.stat(m.path("t", rel))
                    with self.assertRaises(FileNotFoundError, msg="%s before A made it" % rel):
                        open(m.path("t", rel), "rb").close()
            known = time.monotonic()
            self.publish(a, "new.txt", data)
            self.publish(a, "d/new.txt", sub)
            t_sync = time.monotonic()
            wait_past(known)
            s0 = b.stats()
            for rel, want in (("new.txt", data), ("d/new.txt", sub)):
                try:
                    got = read_all(b.path("t", rel))
                except FileNotFoundError:
                    self.fail("B cannot open %s by name %.1f s after its lookup found it missing "
                              "(%.1f s after A's close + sync): still ENOENT (a negative entry "
                              "kept past the revalidate window)"
                              % (rel, time.monotonic() - known, time.monotonic() - t_sync))
                self.assertBytes(got, want, "B's read of %s made on A" % rel)
            note("new files opened by name on B %.1f s after A's sync, %.1f s after B's lookup: "
                 "requests %r", time.monotonic() - t_sync, time.monotonic() - known,
                 ops_delta(s0, b.stats()))
            self.assertBytes(read_all(c.path("t", "new.txt")), data, "C's read of new.txt")
            wait_past(t_sync, 1.0)
            self.assertEqual(sorted(os.listdir(c.path("t"))), ["d", "new.txt", "old.txt"],
                             "C (metadata_ttl=1s) lists the directory more than 1 s after A's "
                             "sync")
            self.assertEqual(sorted(os.listdir(c.path("t", "d"))), ["new.txt", "old.txt"],
                             "C (metadata_ttl=1s) lists d more than 1 s after A's sync")

    def test_delete_and_rename_seen_after_window(self):
        """B has read two files; A deletes one and renames the other (then
        bucketfs sync): B's opens after the window fail with ENOENT for the
        deleted and the old name, and the new name reads the bytes.  A then
        makes the deleted name again: B's open after the window reads it."""
        gone, moved = os.urandom(10 * KiB), os.urandom(20 * KiB)
        with self.mount() as a, self.mount() as b:
            self.publish(a, "gone.bin", gone)
            self.publish(a, "moved.bin", moved)
            self.assertBytes(read_all(b.path("t", "gone.bin")), gone, "B's first read of gone")
            self.assertBytes(read_all(b.path("t", "moved.bin")), moved, "B's first read of moved")
            self.assertEqual(sorted(os.listdir(b.path("t"))), ["gone.bin", "moved.bin"])
            known = time.monotonic()
            os.unlink(a.path("t", "gone.bin"))
            os.rename(a.path("t", "moved.bin"), a.path("t", "renamed.bin"))
            self.sync(a, "after unlink and rename")
            self.assertEqual(self.rel_keys(), ["renamed.bin"], "S3 after A's unlink, rename, sync")
            wait_past(known)
            s0 = b.stats()
            for rel in ("gone.bin", "moved.bin"):
                try:
                    got = read_all(b.path("t", rel))
                except FileNotFoundError:
                    continue
                except OSError as e:
                    self.fail("B's open of %s (%s on A) after the window failed with %s, "
                              "expected ENOENT" % (rel, "deleted" if rel == "gone.bin" else
                                                   "renamed", e))
                self.fail("B's open of %s after the window succeeded (%s), but A %s it and "
                          "synced: expected ENOENT"
                          % (rel, version_name(got, {"the old bytes": gone if rel == "gone.bin"
                                                     else moved}),
                             "deleted" if rel == "gone.bin" else "renamed"))
            d = ops_delta(s0, b.stats())
            self.assertBytes(read_all(b.path("t", "renamed.bin")), moved,
                             "B's read of the new name after A's rename")
            known = time.monotonic()
            note("B after A's delete and rename: ENOENT for both old names (requests %r)", d)
            # the deleted name comes back on A with other bytes
            again = os.urandom(15 * KiB)
            self.publish(a, "gone.bin", again)
            wait_past(known)
            try:
                got = read_all(b.path("t", "gone.bin"))
            except FileNotFoundError:
                self.fail("A made gone.bin again (close + sync): B's open after the window "
                          "still fails with ENOENT")
            self.assertEqual(version_name(got, {"the deleted version": gone, "A's new one": again}),
                             "A's new one", "B's read of gone.bin, made again on A")


# ------------------------------------------------------------ open reader
class OpenReaderTest(CoherenceTestCase):
    SIZE = 32 * MiB

    def test_open_reader_keeps_one_version(self):
        """B holds a 32 MiB file open (read its first MiB) while A replaces it
        with other bytes of the same length (close + sync).  After the window,
        each 1 MiB read of B's old descriptor returns the old bytes or fails
        with EIO (blocks not cached: from 24 MiB on it must be EIO), never
        A's bytes or a mix; B's next open reads A's version."""
        if not server_can("if_match"):
            self.skipTest("%s ignores If-Match, so a replaced object cannot be detected" % SERVER)
        old, new = os.urandom(self.SIZE), os.urandom(self.SIZE)
        self.put("big.bin", old)
        with self.mount(opts={"block_size": "1M"}) as a, \
                self.mount(opts={"block_size": "1M"}) as b:
            pb = b.path("t", "big.bin")
            fd = os.open(pb, os.O_RDONLY)
            try:
                self.assertBytes(os.pread(fd, MiB, 0), old[:MiB], "B's first MiB")
                known = time.monotonic()
                self.publish(a, "big.bin", new)
                wait_past(known)
                # another open on B asks S3 (and drops the kernel's pages of
                # the inode): what B learns must not change what the old
                # descriptor reads
                os.close(os.open(pb, os.O_RDONLY))
                results = []
                for i in range(self.SIZE // MiB):
                    off = i * MiB
                    try:
                        got = os.pread(fd, MiB, off)
                    except OSError as e:
                        if e.errno != errno.EIO:
                            self.fail("read at %d MiB of the descriptor opened on the old "
                                      "version failed with %r, expected EIO" % (i, e))
                        results.append("EIO")
                        continue
                    if got == old[off:off + MiB]:
                        results.append("old")
                    elif got == new[off:off + MiB]:
                        results.append("NEW")
                    else:
                        results.append("MIXED(%d bytes)" % len(got))
                summary = " ".join("%d:%s" % (i, r) for i, r in enumerate(results))
                bad = [i for i, r in enumerate(results) if r not in ("old", "EIO")]
                self.assertEqual(bad, [], "reads of a descriptor opened before A replaced the "
                                 "object returned bytes that are not the old version at MiB %r "
                                 "(per MiB: %s)" % (bad, summary))
                late = [i for i, r in enumerate(results) if i >= 24 and r != "EIO"]
                self.assertEqual(late, [], "reads at MiB %r (never cached on B) succeeded with "
                                 "old bytes instead of failing with EIO (per MiB: %s)"
                                 % (late, summary))
                note("old descriptor after the replacement: %d MiB old, %d EIO (%s)",
                     results.count("old"), results.count("EIO"), summary)
            finally:
                os.close(fd)
            got_md5 = tm.file_md5(pb)
            self.assertEqual(got_md5, (md5hex(new), self.SIZE), "B's new open after the window "
                             "reads %s" % ("the OLD version" if got_md5[0] == md5hex(old)
                                           else "neither version"))


    def test_old_descriptor_and_new_open_on_one_mount(self):
        """B read a 4 MiB file whole (every block cached) through a descriptor
        it keeps open; A replaces the object (same length, close + sync).
        After the window B opens it again, and both descriptors read it
        MiB by MiB, one after the other, in both orders: every MiB of the new
        descriptor is A's (close-to-open), every MiB of the old one is the old
        version or EIO (not checked on s3rver, which ignores If-Match).  The
        two descriptors share the kernel's page cache of the inode."""
        size = 4 * MiB
        problems, seen = [], []
        for order in ("old", "new"), ("new", "old"):
            old, new = os.urandom(size), os.urandom(size)
            rel = "two-%s-first.bin" % order[0]
            self.put(rel, old)
            with self.mount() as a, self.mount() as b:
                pb = b.path("t", rel)
                fds = {"old": os.open(pb, os.O_RDONLY)}
                try:
                    self.assertBytes(os.pread(fds["old"], size + 1, 0), old,
                                     "B's read of the old version")
                    known = time.monotonic()
                    self.publish(a, rel, new)
                    wait_past(known)
                    fds["new"] = os.open(pb, os.O_RDONLY)
                    got = {}
                    for which in order:
                        got[which] = []
                        for i in range(size // MiB):
                            off = i * MiB
                            try:
                                g = os.pread(fds[which], MiB, off)
                            except OSError as e:
                                got[which].append("EIO" if e.errno == errno.EIO else str(e))
                                continue
                            got[which].append("old" if g == old[off:off + MiB] else
                                              "NEW" if g == new[off:off + MiB] else
                                              "MIXED(%d bytes)" % len(g))
                finally:
                    for fd in fds.values():
                        os.close(fd)
            what = "%s descriptor read first: old descriptor %s, new descriptor %s" % (
                order[0], " ".join(got["old"]), " ".join(got["new"]))
            seen.append(what)
            if any(r != "NEW" for r in got["new"]):
                problems.append("B's open after the window (A's close + sync returned) must read "
                                "A's version in every MiB; %s" % what)
            if server_can("if_match") and any(r not in ("old", "EIO") for r in got["old"]):
                problems.append("the descriptor opened before A replaced the object must read the "
                                "old version or fail with EIO in every MiB; %s" % what)
        note("per MiB: %s", "; ".join(seen))
        if problems:
            self.fail("\n  ".join(problems))


# ------------------------------------------------------------------- cost
class CostTest(CoherenceTestCase):
    N = 200

    def test_cat_of_cached_files_cost(self):
        """`cat` of 200 small files already cached on B: within the window
        (default 1 s) no request at all; after sleeping past it exactly one
        HEAD per open and no GET (the data is cached and unchanged)."""
        files = {"s/f%03d.txt" % i: b"%d,%s\n" % (i, os.urandom(40).hex().encode())
                 for i in range(self.N)}
        self.put_many(files)
        names = sorted(files)
        want = b"".join(files[n] for n in names)
        with self.mount() as b:
            paths = [b.path("t", n) for n in names]

            def fill():
                # in parallel, so that every file's knowledge is recent
                with concurrent.futures.ThreadPoolExecutor(16) as ex:
                    got = list(ex.map(read_all, paths))
                for n, g in zip(names, got):
                    self.assertBytes(g, files[n], "B's read of %s" % n)

            s0 = b.stats()
            t0 = time.monotonic()
            fill()
            filled = time.monotonic() - t0
            d_fill = ops_delta(s0, b.stats())
            self.assertGreaterEqual(d_fill.get("get", 0), 1, "the first reads on B: %r" % d_fill)
            for attempt in range(1, 5):
                s1 = b.stats()
                t1 = time.monotonic()
                out = cat(*paths)
                t_cat = time.monotonic() - t1
                d_in = ops_delta(s1, b.stats())
                span = time.monotonic() - t0
                if span < REVAL - 0.05:
                    break
                # too slow to be sure that every open fell within the window of
                # the read before it: once all is older than the window,
                # refresh every file (HEADs, cached data) and again
                note("attempt %d: reads + cat took %.2f s, more than the window: again", attempt,
                     span)
                wait_past(time.monotonic())
                t0 = time.monotonic()
                fill()
            else:
                self.fail("could not read %d cached files and cat them within %.1f s (last: "
                          "%.2f s)" % (self.N, REVAL, span))
            self.assertBytes(out, want, "cat of %d files within the window" % self.N)
            note("B: reads of %d files (parallel) %.2f s, requests %r", self.N, filled, d_fill)
            note("B: cat of %d cached files within the window (%.2f s after the reads began): "
                 "%.3f s, requests %r", self.N, span, t_cat, d_in)
            self.assertEqual(d_in["requests"], 0, "cat of %d files cached on B, within the "
                             "revalidate window of their last read, must send no request: %r"
                             % (self.N, d_in))
            wait_past(time.monotonic())
            s2 = b.stats()
            t2 = time.monotonic()
            out = cat(*paths)
            t_cat = time.monotonic() - t2
            d_out = ops_delta(s2, b.stats())
            self.assertBytes(out, want, "cat of %d files after the window" % self.N)
            note("B: cat of %d cached files after the window: %.3f s, requests %r", self.N,
                 t_cat, d_out)
            self.assertEqual(d_out.get("get", 0), 0, "cat of %d cached, unchanged files after "
                             "the window must not GET: %r" % (self.N, d_out))
            self.assertLessEqual(d_out.get("head", 0), self.N, "at most one HEAD per open: %r"
                                 % d_out)
            self.assertEqual(d_out.get("head", 0), self.N, "every open after the window asks "
                             "S3 (one HEAD each): %r" % d_out)
            self.assertEqual(d_out["requests"], d_out.get("head", 0),
                             "cat after the window: requests other than HEADs: %r" % d_out)


# ------------------------------------------------------------------ option
class OptionTest(CoherenceTestCase):

    def test_revalidate_bounds(self):
        """revalidate takes a duration from 0 to 1h: 1h and 500ms mount,
        2h, -1s and a word are refused with an error naming the option."""
        for value in ("1h", "500ms"):
            with self.mount(opts={"revalidate": value, "metadata_ttl": "2h"}) as m:
                self.assertEqual(os.listdir(m.path("t")), [], "revalidate=%s" % value)
        for value in ("2h", "-1s", "soon"):
            m = self.mount(opts={"revalidate": value})
            with self.assertRaises(MountError, msg="-o revalidate=%s must be refused" % value) \
                    as cm:
                with m:
                    pass
            self.assertIn("revalidate", str(cm.exception).split("stderr:", 1)[-1],
                          "the error for revalidate=%s names the option" % value)


def main():
    return tm.suite_main(__doc__, tools=("fusermount3", "cat"))


if __name__ == "__main__":
    sys.exit(main())
