#!/usr/bin/python3
"""test_fullcache.py: a bucketfs mount whose cache directory is on a small,
full disk (issue 13, item 4 "Full cache disk and memory"; issue 17, item 7),
against a live S3 server.  Run as root (each test mounts its own tmpfs):

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_fullcache.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Write]

Every test mounts a fresh 64 MiB tmpfs under its temporary directory, puts
the cache directory of a fresh bucketfs mount on it ("t" mapped to the test's
own prefix in bfs-test, as in test_write.py), and unmounts the tmpfs in its
cleanup, after the bucketfs mount is gone.

What is checked:
  * reading an object bigger than the cache (200 MiB, cache_size=48M), or
    with the cache disk already full, gives the right bytes with one GET
    per 1 MiB block (counters from the mount root's xattr
    user.bucketfs.stats), and the daemon stays up;
  * a write bigger than the free space fails with ENOSPC (at write or
    close, never EIO); the staging space comes back; the file is empty when
    it was new, or holds what it held before (an object in S3, or a closed
    generation still waiting for its upload); ls, reads and new writes work;
    files closed before the failure are all in S3 after unmount (boto3);
    `bucketfs status` does not keep the failed file as open for writing;
  * a write that fits once the clean cached blocks are evicted succeeds.

Files closed before the failing write wait out upload_delay=10s, so that
they are still in staging (pending in the journal) while the disk fills
up; unmount waits for their uploads (and, as built, for the delay too).
"""
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import (BUCKET, KiB, MiB, alive, file_md5, md5hex, mounted,  # noqa: E402
                        note, read_all)
from test_write import WriteTestCase, ename, journal, pending_uploads, write_file  # noqa: E402

from boto3.s3.transfer import TransferConfig  # noqa: E402

DISK = "64m"            # the tmpfs that holds the cache directory
DISK_BYTES = 64 * MiB
WRITE_BYTES = 100 * MiB  # bigger than the whole disk
DELAY = "10s"           # upload_delay: closed files stay in staging meanwhile


def disk_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def staging_files(cache_dir):
    """{name: size} of the files in CACHE_DIR/staging."""
    d = os.path.join(cache_dir, "staging")
    out = {}
    for root, _dirs, files in os.walk(d):
        for n in files:
            p = os.path.join(root, n)
            try:
                out[os.path.relpath(p, d)] = os.lstat(p).st_size
            except FileNotFoundError:
                pass
    return out


def deleted_block_fds(pid):
    """How many descriptors of the daemon hold block files already unlinked."""
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if "/blocks/" in t and t.endswith(" (deleted)"):
                n += 1
    except OSError:
        pass
    return n


def thread_ticks(pid):
    """{tid: utime + stime clock ticks} of the daemon's threads."""
    out = {}
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[int(tid)] = int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
    except OSError:
        pass
    return out


def mib(n):
    return "%.1f MiB" % (n / MiB)


def write_until_error(path, total, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, chunk=MiB):
    """Writes total bytes to path in chunk-sized writes and closes it; the
    first failure ends the writing.  Returns a dict: written (bytes write()
    took), write_errno (None when every write succeeded), close_errno."""
    buf = bytes(range(256)) * (chunk // 256)
    fd = os.open(path, flags, 0o644)
    r = {"written": 0, "write_errno": None, "close_errno": None}
    try:
        while r["written"] < total:
            try:
                n = os.write(fd, buf[:min(chunk, total - r["written"])])
            except OSError as e:
                r["write_errno"] = e.errno
                break
            r["written"] += n
    finally:
        try:
            os.close(fd)
        except OSError as e:
            r["close_errno"] = e.errno
    return r


def bfs(*args, timeout=60):
    """Runs `bucketfs ARGS`; returns (exit status, stdout, stderr)."""
    r = subprocess.run([tm.BUCKETFS] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


class FullCacheTestCase(WriteTestCase):

    def setUp(self):
        super().setUp()
        self.p = "fc-" + self.p[3:]  # tw-NAME-ID/ -> fc-NAME-ID/

    # ---- the small disk
    def small_disk(self, size=DISK):
        """A fresh tmpfs of that size under the test's temporary directory,
        unmounted in the cleanup (registered before any bucketfs mount, so it
        runs after the mount's cleanup)."""
        d = os.path.join(self.tmp, "disk")
        os.mkdir(d)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size,
                            "bfs-fullcache", d], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
        if r.returncode != 0:
            self.fail("mount -t tmpfs -o size=%s on %s failed (%d): %s"
                      % (size, d, r.returncode, r.stderr.strip()))
        self.addCleanup(self.unmount_disk, d)
        return d

    def unmount_disk(self, d):
        for _ in range(50):
            if not mounted(d):
                return
            r = subprocess.run(["umount", d], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=30)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        subprocess.run(["umount", "-l", d], capture_output=True, stdin=subprocess.DEVNULL,
                       timeout=30)
        if mounted(d):
            print("\n*** tmpfs %s is STILL mounted" % d, file=sys.stderr)

    def disk_mount(self, disk, **opts):
        o = {"cache_dir": os.path.join(disk, "cache"), "block_size": "1M"}
        o.update(opts)
        return self.mount(opts=o, watchdog=150, exit_wait=60)

    def daemon_diag(self, m, disk):
        """What the daemon does (for a failure message): disk free, block
        files unlinked but still held open, threads burning CPU."""
        t0 = thread_ticks(m.pid)
        time.sleep(1)
        t1 = thread_ticks(m.pid)
        busy = sorted(((t1[t] - t0.get(t, 0), t) for t in t1), reverse=True)[:3]
        return ("cache disk %s free; daemon %d holds %d unlinked block files open; busiest "
                "threads over 1 s (ticks of %d/s): %s; staging %r"
                % (mib(disk_free(disk)), m.pid, deleted_block_fds(m.pid),
                   os.sysconf("SC_CLK_TCK"), ", ".join("tid %d: %d" % (t, n) for n, t in busy),
                   staging_files(m.cache_dir)))

    def bounded(self, m, disk, fn, what, timeout=30):
        """fn() in a thread: its result, or a failure (with what the daemon
        was doing, after which it is killed) when it takes over timeout s."""
        box = {}

        def run():
            try:
                box["r"] = fn()
            except BaseException as e:  # noqa: B036 (handed to the test thread)
                box["e"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            diag = self.daemon_diag(m, disk)
            if alive(m.pid):
                os.kill(m.pid, signal.SIGKILL)  # the blocked call fails (ENOTCONN)
            t.join(10)
            self.fail("%s: no answer after %d s (bucketfs hung; killed): %s"
                      % (what, timeout, diag))
        if "e" in box:
            raise box["e"]
        return box["r"]

    # ---- checks
    def status_json(self, m):
        rc, out, err = bfs("status", "--json", m.mnt)
        self.assertEqual(rc, 0, "bucketfs status --json failed (%d): %s" % (rc, err))
        return json.loads(out)

    def assertNotOpenInStatus(self, m, rel, timeout=10):
        """`bucketfs status` stops listing rel as open for writing (the
        release of the failed writer is asynchronous: give it timeout)."""
        path = "t/" + rel
        deadline = time.monotonic() + timeout
        while True:
            s = self.status_json(m)["uploads"]
            open_items = [i for i in s.get("items", []) if i.get("state") == "open"]
            bad = s.get("open", 0) != 0 or any(i.get("path") == path for i in open_items)
            if not bad:
                break
            if time.monotonic() > deadline:
                self.fail("bucketfs status still shows %s (or %d files) open for writing %d s "
                          "after its writer closed it: %r" % (path, s.get("open", 0), timeout, s))
            time.sleep(0.2)
        rc, out, err = bfs("status", m.mnt)
        self.assertEqual(rc, 0, "bucketfs status failed (%d): %s" % (rc, err))
        self.assertNotIn("open with writes not yet closed", out, "bucketfs status:\n" + out)
        self.assertNotIn("open for writing", out, "bucketfs status:\n" + out)
        return out

    def assertEnospc(self, r, what):
        """ENOSPC at a write or at close; never EIO, never success."""
        got = r["write_errno"] if r["write_errno"] is not None else r["close_errno"]
        self.assertEqual(got, errno.ENOSPC,
                         "%s: the writer got %s (write: %s after %s, close: %s), want ENOSPC"
                         % (what, ename(got), ename(r["write_errno"]), mib(r["written"]),
                            ename(r["close_errno"])))
        if r["write_errno"] is not None:
            self.assertIn(r["close_errno"], (None, errno.ENOSPC),
                          "%s: close after a write failed with ENOSPC said %s"
                          % (what, ename(r["close_errno"])))

    def wait_free(self, m, disk, want, what, timeout=15):
        """Waits until the disk has at least want bytes free again."""
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        while disk_free(disk) < want:
            if time.monotonic() > deadline:
                self.fail("%s: %s free on the cache disk %d s after the failed close, want at "
                          "least %s (the staging file is not freed); staging: %r"
                          % (what, mib(disk_free(disk)), timeout, mib(want),
                             staging_files(m.cache_dir)))
            time.sleep(0.1)
        return time.monotonic() - t0

    def wait_content(self, p, want, what, timeout=10):
        """The file at p reads as want (size and bytes) within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            st = os.stat(p)
            if st.st_size == len(want):
                got = read_all(p)
                if got == want:
                    return
            if time.monotonic() > deadline:
                got = read_all(p)
                self.assertEqual(st.st_size, len(want),
                                 "%s: st_size %d %d s after the failed close, want %d"
                                 % (what, st.st_size, timeout, len(want)))
                self.assertBytes(got, want, what)
                return
            time.sleep(0.2)

    def put_file(self, rel, path):
        self.s3.upload_file(path, BUCKET, self.p + rel, Config=TransferConfig(
            multipart_threshold=16 * MiB, multipart_chunksize=16 * MiB, max_concurrency=4))


# ------------------------------------------------------------------- reads
class FullCacheReadTest(FullCacheTestCase):

    def make_object(self, rel, size):
        """Uploads size random bytes (from a local file, not memory) as rel;
        returns their md5."""
        path = os.path.join(self.tmp, "src.bin")
        h = hashlib.md5()
        with open(path, "wb") as f:
            left = size
            while left:
                b = os.urandom(min(8 * MiB, left))
                h.update(b)
                f.write(b)
                left -= len(b)
        self.put_file(rel, path)
        os.unlink(path)
        return h.hexdigest()

    def check_streamed(self, m, rel, size, md5, s0, what):
        """One sequential read of rel: right bytes, one GET per block."""
        t = time.monotonic()
        self.assertEqual(file_md5(m.path("t", rel)), (md5, size), "%s: md5 and size" % what)
        secs = time.monotonic() - t
        s = m.stats()
        blocks = -(-size // MiB)
        gets = s["by_op"]["get"] - s0["by_op"]["get"]
        down = s["bytes_down"] - s0["bytes_down"]
        note("%s: %s in %.1fs, %d GETs for %d blocks, %s down, cache %r", what, mib(size), secs,
             gets, blocks, mib(down), s["cache"])
        self.assertLessEqual(gets, blocks + 4, "%s: GETs for %d blocks of 1 MiB (each block "
                             "should be fetched once): %r" % (what, blocks, s))
        self.assertLessEqual(down, size + 4 * MiB, "%s: bytes downloaded for %s: %r"
                             % (what, mib(size), s))
        self.assertTrue(alive(m.pid), "%s: the daemon died" % what)
        return s

    def test_read_object_bigger_than_cache(self):
        """A 200 MiB object read through a mount whose cache (cache_size=48M)
        is on a 64 MiB disk: the right bytes, one GET per 1 MiB block, the
        cache within its limit, the daemon up, other reads fine after."""
        size = 200 * MiB
        md5 = self.make_object("big.bin", size)
        small = os.urandom(300 * KiB)
        self.put("small.bin", small)
        disk = self.small_disk()
        with self.disk_mount(disk, cache_size="48M") as m:
            s0 = m.stats()
            s = self.check_streamed(m, "big.bin", size, md5, s0, "200 MiB object, 48M cache")
            self.assertLessEqual(s["cache"]["bytes"], 48 * MiB, "cache.bytes over the limit: %r"
                                 % s)
            self.assertGreater(s["cache"]["evictions"], 0, s)
            note("cache disk: %s free after the read", mib(disk_free(disk)))
            self.assertNames(os.listdir(m.path("t")), ["big.bin", "small.bin"], "ls t")
            self.assertBytes(read_all(m.path("t", "small.bin")), small, "small.bin after")
            # a write still works
            write_file(m.path("t", "after.txt"), b"after the big read\n")
            self.assertTrue(alive(m.pid), "the daemon died")
            m.unmount_wait()
        self.assertObject("after.txt", data=b"after the big read\n")

    def test_read_with_cache_disk_full(self):
        """The cache disk full of someone else's file (6 MiB left, below the
        48M cache_size): the blocks the cache cannot take are kept in memory,
        so a 64 MiB object still streams with one GET per block, twice, and
        the daemon stays up (cache.write_failures counts the blocks that did
        not fit)."""
        size = 64 * MiB
        md5 = self.make_object("big.bin", size)
        other = os.urandom(200 * KiB)
        self.put("other.bin", other)
        disk = self.small_disk()
        with self.disk_mount(disk, cache_size="48M") as m:
            os.listdir(m.path("t"))  # the listing's rows are in meta.db first
            filler = os.path.join(disk, "filler")
            with open(filler, "wb") as f:  # fill up to 6 MiB free
                chunk = b"\0" * MiB
                while disk_free(disk) > 7 * MiB:
                    f.write(chunk)
                    f.flush()
            free0 = disk_free(disk)
            note("disk: %s free after the filler", mib(free0))
            s0 = m.stats()
            s1 = self.check_streamed(m, "big.bin", size, md5, s0, "64 MiB, disk full")
            self.assertGreater(s1["cache"]["write_failures"], 0,
                               "no block failed to go into the full cache (was the disk "
                               "really full?): %r" % s1)
            self.check_streamed(m, "big.bin", size, md5, s1, "64 MiB again, disk full")
            self.assertBytes(read_all(m.path("t", "other.bin")), other, "other.bin after")
            self.assertNames(os.listdir(m.path("t")), ["big.bin", "other.bin"], "ls t")
            # the disk freed: the cache works again
            os.unlink(filler)
            s2 = m.stats()
            self.assertEqual(file_md5(m.path("t", "big.bin")), (md5, size), "after the filler")
            s3 = m.stats()
            self.assertLessEqual(s3["by_op"]["get"] - s2["by_op"]["get"], size // MiB + 4, s3)
            self.assertTrue(alive(m.pid), "the daemon died")


# ------------------------------------------------------------------ writes
class FullCacheWriteTest(FullCacheTestCase):
    """A write bigger than the free space of the cache disk."""

    CLOSED = {"a.txt": b"closed before the failure\n" * 10,
              "b.bin": os.urandom(MiB + 7), "c/d.bin": os.urandom(3 * MiB + 1)}

    def prepare(self, m, sub=""):
        """Files closed while there is room; they wait out upload_delay."""
        os.makedirs(m.path("t", sub, "c"))
        for rel, data in self.CLOSED.items():
            write_file(m.path("t", sub, rel), data)
        for rel, data in self.CLOSED.items():
            self.assertBytes(read_all(m.path("t", sub, rel)), data, sub + rel + " before")

    def fail_write(self, m, disk, rel, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
        """The failing write of WRITE_BYTES to rel: ENOSPC, and the staging
        space comes back.  Returns the writer's result."""
        free0 = disk_free(disk)
        t = time.monotonic()
        r = self.bounded(m, disk, lambda: write_until_error(m.path("t", rel), WRITE_BYTES,
                                                           flags=flags),
                         "write of %s to %s (%s free)" % (mib(WRITE_BYTES), rel, mib(free0)))
        secs = time.monotonic() - t
        free1 = disk_free(disk)
        self.assertEnospc(r, "write of %s to %s (%s free)" % (mib(WRITE_BYTES), rel, mib(free0)))
        back = self.wait_free(m, disk, free0 - 2 * MiB, rel)
        note("%s: %s written, write %s, close %s, %.1fs; disk free %s before, %s right after "
             "close, %s %.1fs later", rel, mib(r["written"]), ename(r["write_errno"]),
             ename(r["close_errno"]), secs, mib(free0), mib(free1), mib(disk_free(disk)), back)
        self.assertTrue(alive(m.pid), "the daemon died after the failed write")
        big = {n: sz for n, sz in staging_files(m.cache_dir).items() if sz > 8 * MiB}
        self.assertEqual(big, {}, "staging files of the failed write are left")
        self.assertGreaterEqual(pending_uploads(m.cache_dir), len(self.CLOSED),
                                "the files closed before still wait in the journal (so they "
                                "were in staging while the disk was full): %r"
                                % journal(m.cache_dir))
        return r

    def after_failure(self, m, disk, names):
        """ls, a read of another object, reads of the closed files and a new
        write work after the failure; status does not keep the file open."""
        self.assertNames(os.listdir(m.path("t")), names, "ls t after the failure")
        names = names + ["after.bin"]
        r = subprocess.run(["ls", "-lR", m.path("t")], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
        self.assertEqual(r.returncode, 0, "ls -lR after the failure: %s" % r.stderr)
        self.assertBytes(read_all(m.path("t", "other.bin")), self.other, "other.bin")
        for rel, data in self.CLOSED.items():
            self.assertBytes(read_all(m.path("t", rel)), data, rel + " after the failure")
        write_file(m.path("t", "after.bin"), self.after)
        self.assertBytes(read_all(m.path("t", "after.bin")), self.after, "after.bin")
        self.assertNames(os.listdir(m.path("t")), names, "ls t after a new write")
        self.assertTrue(alive(m.pid), "the daemon died")

    def after_unmount(self, m, disk):
        """Everything closed is in S3; nothing is left in the journal or in
        staging."""
        cache = m.cache_dir
        note("unmounted in %.1fs", m.unmount_wait())
        for rel, data in self.CLOSED.items():
            self.assertObject(rel, data=data, what="closed before the failure")
        self.assertObject("after.bin", data=self.after, what="written after the failure")
        self.assertObject("other.bin", data=self.other)
        self.assertEqual(journal(cache), [], "upload journal after unmount")
        self.assertEqual(staging_files(cache), {}, "staging after a clean unmount")

    def setUp(self):
        super().setUp()
        self.other = os.urandom(2 * MiB + 3)
        self.after = os.urandom(500 * KiB)
        self.put("other.bin", self.other)
        self.disk = self.small_disk()

    def test_new_file_bigger_than_free_space(self):
        """A new file of 100 MiB on a 64 MiB disk: ENOSPC; the file stays,
        empty, and is uploaded empty; the files closed before are kept."""
        disk = self.disk
        with self.disk_mount(disk, upload_delay=DELAY) as m:
            self.prepare(m)
            self.assertGreaterEqual(pending_uploads(m.cache_dir), len(self.CLOSED),
                                    "the closed files wait in the journal")
            self.fail_write(m, disk, "w.bin")
            self.wait_content(m.path("t", "w.bin"), b"", "w.bin (new) after the failure")
            self.assertNotOpenInStatus(m, "w.bin")
            self.after_failure(m, disk, ["a.txt", "b.bin", "c", "other.bin", "w.bin"])
            self.assertEqual(os.stat(m.path("t", "w.bin")).st_size, 0)
            self.after_unmount(m, disk)
        self.assertObject("w.bin", data=b"", what="the new file whose write failed")

    def test_dd_new_file_bigger_than_free_space(self):
        """dd bs=1M count=100 to a new file: dd says "No space left on
        device" (not "Input/output error"); the file is empty after."""
        disk = self.disk
        with self.disk_mount(disk, upload_delay=DELAY) as m:
            self.prepare(m)
            free0 = disk_free(disk)
            r = subprocess.run(["dd", "if=/dev/zero", "of=" + m.path("t", "dd.bin"), "bs=1M",
                                "count=100"], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=60)
            self.assertNotEqual(r.returncode, 0, "dd of 100 MiB on a 64 MiB disk succeeded: %s"
                                % r.stderr)
            self.assertIn("No space left on device", r.stderr, "dd's error")
            self.assertNotIn("Input/output error", r.stderr, "dd's error")
            self.wait_free(m, disk, free0 - 2 * MiB, "dd.bin")
            self.wait_content(m.path("t", "dd.bin"), b"", "dd.bin (new) after the failure")
            self.assertNotOpenInStatus(m, "dd.bin")
            self.after_failure(m, disk, ["a.txt", "b.bin", "c", "other.bin", "dd.bin"])
            self.after_unmount(m, disk)
        self.assertObject("dd.bin", data=b"", what="the new file whose write failed")

    def test_overwrite_of_object_bigger_than_free_space(self):
        """An object in S3 (read once, so its blocks are cached) rewritten
        with O_TRUNC and 100 MiB: ENOSPC; the mount shows the old bytes again
        and S3 still holds them after unmount."""
        old = os.urandom(3 * MiB + 5)
        self.put("old.bin", old)
        h0 = self.head("old.bin")
        disk = self.disk
        with self.disk_mount(disk, upload_delay=DELAY) as m:
            self.assertBytes(read_all(m.path("t", "old.bin")), old, "old.bin before")
            self.prepare(m)
            self.fail_write(m, disk, "old.bin")
            self.wait_content(m.path("t", "old.bin"), old, "old.bin after the failed overwrite")
            self.assertNotOpenInStatus(m, "old.bin")
            self.after_failure(m, disk, ["a.txt", "b.bin", "c", "other.bin", "old.bin"])
            self.assertBytes(read_all(m.path("t", "old.bin")), old, "old.bin, read again")
            self.after_unmount(m, disk)
        h1 = self.assertObject("old.bin", data=old, what="the object whose overwrite failed")
        if h1["LastModified"] != h0["LastModified"]:
            note("old.bin was PUT again (same bytes): LastModified %s -> %s",
                 h0["LastModified"], h1["LastModified"])

    def test_overwrite_in_place_bigger_than_free_space(self):
        """The same without O_TRUNC (O_WRONLY from offset 0): the old bytes
        come back."""
        old = os.urandom(2 * MiB + 11)
        self.put("old.bin", old)
        disk = self.disk
        with self.disk_mount(disk, upload_delay=DELAY) as m:
            self.prepare(m)
            self.fail_write(m, disk, "old.bin", flags=os.O_WRONLY)
            self.wait_content(m.path("t", "old.bin"), old, "old.bin after the failed overwrite")
            self.assertNotOpenInStatus(m, "old.bin")
            self.after_failure(m, disk, ["a.txt", "b.bin", "c", "other.bin", "old.bin"])
            self.after_unmount(m, disk)
        self.assertObject("old.bin", data=old, what="the object whose overwrite failed")

    def test_overwrite_of_pending_generation_bigger_than_free_space(self):
        """A file written through the mount and closed, its upload waiting
        (upload_delay), rewritten with 100 MiB: ENOSPC; the file goes back to
        the closed generation, which is what reaches S3."""
        gen = os.urandom(2 * MiB + 9)
        disk = self.disk
        with self.disk_mount(disk, upload_delay=DELAY) as m:
            self.prepare(m)
            write_file(m.path("t", "g.bin"), gen)
            rows = journal(m.cache_dir, "SELECT key FROM uploads")
            self.assertIn((self.p + "g.bin",), rows, "g.bin waits in the journal")
            self.assertIsNone(self.head("g.bin"), "g.bin must not be uploaded yet")
            self.fail_write(m, disk, "g.bin")
            self.wait_content(m.path("t", "g.bin"), gen, "g.bin after the failed overwrite")
            self.assertNotOpenInStatus(m, "g.bin")
            self.after_failure(m, disk, ["a.txt", "b.bin", "c", "other.bin", "g.bin"])
            self.after_unmount(m, disk)
        self.assertObject("g.bin", data=gen, what="the closed generation before the failure")

    def test_second_writer_keeps_file_open(self):
        """Two descriptors on a new file: the second writes 100 MiB and is
        closed, then the first (still open, so the last writer) is closed.
        ENOSPC at one of the writes or closes; then the file is empty and
        nothing stays open."""
        disk = self.disk
        with self.disk_mount(disk, upload_delay=DELAY) as m:
            self.prepare(m)
            p = m.path("t", "two.bin")
            fd1 = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                r = self.bounded(m, disk, lambda: write_until_error(p, WRITE_BYTES,
                                                                    flags=os.O_WRONLY),
                                 "write of %s to two.bin" % mib(WRITE_BYTES))
            finally:
                e1 = None
                try:
                    os.close(fd1)
                except OSError as e:
                    e1 = e.errno
            got = r["write_errno"] or r["close_errno"] or e1
            self.assertEqual(got, errno.ENOSPC, "writers of two.bin got: write %s, close %s, "
                             "close of the other descriptor %s" % (ename(r["write_errno"]),
                                                                    ename(r["close_errno"]),
                                                                    ename(e1)))
            self.assertIn(e1, (None, errno.ENOSPC), "the last close")
            note("two.bin: %s written, write %s, close %s; last close %s", mib(r["written"]),
                 ename(r["write_errno"]), ename(r["close_errno"]), ename(e1))
            self.wait_content(p, b"", "two.bin after the failure")
            self.assertNotOpenInStatus(m, "two.bin")
            self.after_failure(m, disk, ["a.txt", "b.bin", "c", "other.bin", "two.bin"])
            self.after_unmount(m, disk)
        self.assertObject("two.bin", data=b"", what="the new file whose write failed")

    def test_write_fits_after_evicting_clean_blocks(self):
        """40 MiB of clean cached blocks (the default 10G cache_size does not
        bound them on a 64 MiB disk, and their descriptors are kept open),
        3 small files closed, then a 30 MiB file: it fits once the clean
        blocks are evicted (and their kept descriptors closed), so it is
        written, read back and uploaded.  Whether the cache's own bookkeeping
        (meta.db, on the same disk) needs room at that moment varies from
        run to run, so this is done CYCLES times, each on a fresh mount and
        cache directory (BFS_FULLCACHE_CYCLES=N to change)."""
        cycles = int(os.environ.get("BFS_FULLCACHE_CYCLES", "6"))
        big = os.urandom(40 * MiB)
        self.put("cached.bin", big)
        disk = self.disk
        fits = {}
        for k in range(cycles):
            data = fits["fits%d.bin" % k] = os.urandom(30 * MiB)
            cache = os.path.join(disk, "cache%d" % k)
            with self.disk_mount(disk, cache_dir=cache) as m:
                what = "cycle %d: " % k
                self.assertEqual(file_md5(m.path("t", "cached.bin")), (md5hex(big), len(big)),
                                 what + "cached.bin")
                self.prepare(m, "s%d" % k)
                free0 = disk_free(disk)
                self.assertLess(free0, len(data), what + "the disk must be too full for the "
                                "file before eviction (%s free)" % mib(free0))
                s0 = m.stats()
                self.bounded(m, disk, lambda: write_file(m.path("t", "fits%d.bin" % k), data),
                             what + "write of 30 MiB with %s free, %d cached blocks held open"
                             % (mib(free0), s0["cache"]["blocks"]), timeout=20)
                s1 = m.stats()
                self.assertEqual(deleted_block_fds(m.pid), 0, what + "the daemon still holds "
                                 "evicted block files open (their space is not freed)")
                note("%sdisk free %s before, %s after; cache %r -> %r", what, mib(free0),
                     mib(disk_free(disk)), s0["cache"], s1["cache"])
                self.assertGreater(s1["cache"]["evictions"], s0["cache"]["evictions"], s1)
                self.assertEqual(file_md5(m.path("t", "fits%d.bin" % k)),
                                 (md5hex(data), len(data)), what + "read back")
                for rel, d in self.CLOSED.items():
                    self.assertBytes(read_all(m.path("t", "s%d" % k, rel)), d, what + rel)
                self.assertEqual(file_md5(m.path("t", "cached.bin")), (md5hex(big), len(big)),
                                 what + "the evicted object read again")
                self.assertTrue(alive(m.pid), what + "the daemon died")
                note("%sunmounted in %.1fs", what, m.unmount_wait())
            self.assertEqual(journal(cache), [], what + "upload journal after unmount")
            shutil.rmtree(cache)
        for rel, data in fits.items():
            self.assertObject(rel, md5=md5hex(data), size=len(data))
        for k in range(cycles):
            for rel, data in self.CLOSED.items():
                self.assertObject("s%d/%s" % (k, rel), data=data)


def main():
    return tm.suite_main(__doc__, tools=("fusermount3", "mount", "umount", "dd", "ls"),
                         root_because="test_fullcache.py mounts a tmpfs per test")


if __name__ == "__main__":
    sys.exit(main())
