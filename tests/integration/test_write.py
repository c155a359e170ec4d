#!/usr/bin/python3
"""Integration tests of the bucketfs mount (write side) against a live S3 server.

Run inside scripts/with-server.sh, which provides the server and the
AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / TEST_SERVER
environment:

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_write.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Rename]

The Mount machinery, the boto3 client and the comparison helpers are those of
test_mount.py (imported from the same directory): every test mounts bucketfs
on a fresh mountpoint with a fresh cache directory (unless it tests crash
recovery, which reuses one), maps "t" to its own random key prefix in bucket
bfs-test, always unmounts, and a watchdog kills a hung daemon.

Writes are uploaded in the background after close.  A test that checks what
reached S3 unmounts first and waits for the daemon PROCESS to exit (the
daemon drains its upload journal before it exits), or waits until the
journal (the uploads table of CACHE_DIR/meta.db) is empty, and then reads the
objects back with boto3: bodies, sizes, x-amz-meta-{mode,uid,gid,mtime} and
Content-Type.  Reading through the mount right after a write checks that
readers see written data before it is uploaded.

The randomized tests print their seed; BFS_SEED=N replays a sequence (the
operations, not their timing against the background uploads).  The binary
given with --bucketfs is copied to a temporary directory at the start, so
that a rebuild of build/ during the run cannot break later mounts.
Server differences are in WRITE_LIMITS (see tests/integration/README.md).
"""
import contextlib
import errno
import hashlib
import os
import random
import signal
import sqlite3
import stat
import struct
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import (BUCKET, KiB, MiB, GiB, SERVER, Mount, MountError,  # noqa: E402
                        MountTestCase, alive, file_md5, md5hex, mounted, note, read_all)

from botocore.exceptions import ClientError  # noqa: E402

# What the servers used here do not do (tests/integration/README.md).
WRITE_LIMITS = {
    "s3rver": {
        # ListMultipartUploads answers 501 and AbortMultipartUpload 405, so
        # whether an interrupted multipart upload leaked cannot be checked
        "list_multipart": False,
        # while CompleteMultipartUpload assembles the object, LIST already
        # shows it, with its final ETag and the size assembled so far
        # (measured: 1.2 MiB ... 24 MiB of a 24 MiB object, all with the
        # final ETag), so a listing in that window caches a wrong size
        "atomic_complete": False,
    },
    "rgw": {},
}


def server_can(what):
    return WRITE_LIMITS.get(SERVER, {}).get(what, True)


S_IFLNK_0777 = stat.S_IFLNK | 0o777   # 41471, the s3fs symlink mode


# ------------------------------------------------------------- journal
def journal(cache_dir, sql="SELECT ino, key, gen, size, state, upload_id, attempts, error "
                           "FROM uploads ORDER BY ino", args=()):
    """Rows of a query on CACHE_DIR/meta.db (the upload journal), read with a
    short-lived read-only connection so that the daemon is not disturbed."""
    path = os.path.join(cache_dir, "meta.db")
    deadline = time.monotonic() + 10
    while True:
        try:
            con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
            try:
                return con.execute(sql, args).fetchall()
            finally:
                con.close()
        except sqlite3.OperationalError as e:
            if time.monotonic() > deadline:
                raise AssertionError("cannot read the upload journal %s: %s" % (path, e))
            time.sleep(0.05)


def pending_uploads(cache_dir):
    return journal(cache_dir, "SELECT count(*) FROM uploads")[0][0]


# --------------------------------------------------------------- mount
class WMount(Mount):
    """A Mount whose unmount waits (exit_wait seconds) for the daemon to drain
    its upload journal and exit, and that can be killed with SIGKILL."""

    def __init__(self, *a, exit_wait=180, **kw):
        super().__init__(*a, **kw)
        self.exit_wait = exit_wait
        self.killed = False

    def unmount(self, timeout=60):
        problems = []
        if mounted(self.mnt):
            r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=timeout)
            if r.returncode != 0:
                problems.append("fusermount3 -u failed (%d): %s" % (r.returncode, r.stderr.strip()))
        if self.pid and not problems:
            deadline = time.monotonic() + self.exit_wait
            while alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(self.pid):
                try:
                    rows = journal(self.cache_dir)
                except AssertionError as e:
                    rows = str(e)
                problems.append("daemon %d still running %d s after fusermount3 -u; journal: %r"
                                % (self.pid, self.exit_wait, rows[:10]))
        return problems

    def unmount_wait(self):
        """Unmounts and waits until the daemon process has exited: everything
        written is in S3 then.  Returns the seconds it took."""
        t0 = time.monotonic()
        problems = self.unmount()
        if problems:
            raise MountError("unmounting %s: %s" % (self.mnt, "; ".join(problems)))
        return time.monotonic() - t0

    def wait_uploads(self, timeout=120):
        """Waits (mounted) until the upload journal is empty; returns seconds."""
        t0 = time.monotonic()
        while pending_uploads(self.cache_dir) and time.monotonic() - t0 < timeout:
            time.sleep(0.05)
        rows = journal(self.cache_dir)
        if rows:
            raise AssertionError("uploads still pending %d s after close: %r" % (timeout, rows[:10]))
        return time.monotonic() - t0

    def kill9(self):
        """SIGKILL the daemon, wait for it to die, detach the dead mount."""
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if alive(self.pid):
            raise AssertionError("daemon %d survived SIGKILL" % self.pid)
        self.killed = True
        if self.timer:
            self.timer.cancel()
        r = subprocess.run(["fusermount3", "-u", "-z", self.mnt], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
        if mounted(self.mnt):
            raise AssertionError("fusermount3 -u -z %s after kill -9 failed: %s"
                                 % (self.mnt, r.stderr.strip()))


def write_file(path, data, mode=0o644, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, chunk=MiB):
    fd = os.open(path, flags, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view[:chunk])
            view = view[n:]
    finally:
        os.close(fd)


def errno_of(fn, *args, **kw):
    """The errno that fn(*args) fails with, or None when it succeeds."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return None


def ename(e):
    return "success" if e is None else errno.errorcode.get(e, str(e))


def snapshot(root):
    """{relative path: ("d",) | ("f", size, md5) | ("l", target) | ("other", fmt)}"""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("d",)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                data = read_all(p)
                if len(data) != st.st_size:
                    out[rel] = ("f", "st_size %d but %d bytes read" % (st.st_size, len(data)),
                                md5hex(data))
                else:
                    out[rel] = ("f", len(data), md5hex(data))
            else:
                out[rel] = ("other", oct(stat.S_IFMT(st.st_mode)))
    return out


def snapshot_diff(got, want):
    lines = []
    for k in sorted(set(got) | set(want)):
        if got.get(k) != want.get(k):
            lines.append("  %s: mount %r, expected %r" % (k, got.get(k, "MISSING"),
                                                           want.get(k, "MISSING")))
    return "\n".join(lines)


class WriteTestCase(MountTestCase):

    def setUp(self):
        super().setUp()
        self.p = "tw-%s-%s/" % (self._testMethodName[5:][:40], uuid.uuid4().hex[:8])

    def mount(self, maps="default", **kw):
        if maps == "default":
            maps = [("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))]
        m = WMount(maps=maps, **kw)
        self.addCleanup(m.cleanup)
        return m

    # ---- server side
    def head(self, rel):
        try:
            return self.s3.head_object(Bucket=BUCKET, Key=self.p + rel)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def get(self, rel):
        return self.s3.get_object(Bucket=BUCKET, Key=self.p + rel)["Body"].read()

    def s3_md5(self, rel):
        h, n = hashlib.md5(), 0
        for b in self.s3.get_object(Bucket=BUCKET, Key=self.p + rel)["Body"].iter_chunks(MiB):
            h.update(b)
            n += len(b)
        return h.hexdigest(), n

    def rel_keys(self):
        return sorted(k[len(self.p):] for k in self.s3_keys())

    def assertObject(self, rel, data=None, md5=None, size=None, mode=None, uid=None, gid=None,
                     mtime=None, ctype=None, what=""):
        """The object self.p + rel exists in S3 with that content and metadata."""
        what = "S3 object %s%s" % (rel, " (%s)" % what if what else "")
        h = self.head(rel)
        self.assertIsNotNone(h, "%s does not exist; keys under the prefix: %r"
                             % (what, self.rel_keys()[:40]))
        meta = h.get("Metadata", {})
        if data is not None:
            self.assertEqual(h["ContentLength"], len(data), "%s: ContentLength" % what)
            self.assertBytes(self.get(rel), data, what)
        if md5 is not None:
            self.assertEqual(self.s3_md5(rel), (md5, size), "%s: md5 and size" % what)
        elif size is not None:
            self.assertEqual(h["ContentLength"], size, "%s: ContentLength" % what)
        for name, want in (("mode", mode), ("uid", uid), ("gid", gid)):
            if want is not None:
                self.assertEqual(meta.get(name), str(want),
                                 "%s: x-amz-meta-%s (want %s%s); metadata %r"
                                 % (what, name, want, " = 0%o" % want if name == "mode" else "",
                                    meta))
        if mtime is not None:
            self.assertIn("mtime", meta, "%s: no x-amz-meta-mtime; metadata %r" % (what, meta))
            self.assertAlmostEqual(float(meta["mtime"]), mtime, delta=0.002,
                                   msg="%s: x-amz-meta-mtime %s, want %.9f"
                                   % (what, meta["mtime"], mtime))
        if ctype is not None:
            self.assertEqual(h.get("ContentType"), ctype, "%s: Content-Type" % what)
        return h

    def assertNoObject(self, rel, what=""):
        h = self.head(rel)
        if h is not None:
            self.fail("S3 object %s must not exist%s, but it does (%d bytes, metadata %r)"
                      % (rel, " (%s)" % what if what else "", h["ContentLength"],
                         h.get("Metadata")))

    def assertErrno(self, want, fn, *args, what=None):
        got = errno_of(fn, *args)
        wants = want if isinstance(want, tuple) else (want,)
        self.assertIn(got, wants, "%s: got %s, want %s"
                      % (what or "%s%r" % (fn.__name__, args), ename(got),
                         " or ".join(ename(w) for w in wants)))

    def settle_before_listing(self, m):
        """On a server whose LIST shows half-assembled multipart objects,
        waits until no upload is pending before a listing (see WRITE_LIMITS)."""
        if not server_can("atomic_complete"):
            m.wait_uploads()

    def wait_until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > deadline:
                self.fail("%s: not true after %ds" % (what, timeout))
            time.sleep(0.1)


# ----------------------------------------------------------------- files
class FileWriteTest(WriteTestCase):

    def test_read_back_after_upload_costs_no_download(self):
        """A file read back after its upload (a pipeline writing a result and
        loading it again) is served from the block cache the upload filled."""
        # small files and a file of exactly one block: their staging files
        # become cache blocks (moved, not copied); the larger ones are copied
        files = {"result.csv": os.urandom(5 * MiB + 123), "model.pkl": os.urandom(40 * MiB),
                 "small.json": os.urandom(16 * KiB), "one.bin": os.urandom(MiB)}
        cache = os.path.join(self.tmp, "cache")
        with self.mount(opts={"cache_dir": cache}) as m:
            for name, data in files.items():
                write_file(m.path("t", name), data)
            m.wait_uploads()
            deadline = time.monotonic() + 10  # the staging copy goes when idle
            while os.listdir(os.path.join(cache, "staging")) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(os.listdir(os.path.join(cache, "staging")), [])
            before = m.stats()["by_op"]["get"]
            for name, data in files.items():
                self.assertBytes(read_all(m.path("t", name)), data, name)
            s = m.stats()
            self.assertEqual(s["by_op"]["get"] - before, 0,
                             "GETs to read back files just uploaded: %r" % s)
            # written again after the move: the new version is a copy, the
            # cached block of the old one keeps its bytes
            with open(m.path("t", "small.json"), "r+b") as f:
                f.seek(100)
                f.write(b"changed")
            files["small.json"] = files["small.json"][:100] + b"changed" + files["small.json"][107:]
            self.assertBytes(read_all(m.path("t", "small.json")), files["small.json"], "rewritten")
            m.unmount_wait()
        with self.mount(opts={"cache_dir": cache}) as m:  # and after a remount
            for name, data in files.items():
                self.assertBytes(read_all(m.path("t", name)), data, name + " after remount")
            s = m.stats()
            self.assertEqual(s["by_op"]["get"], 0, "GETs after remount: %r" % s)
        for name, data in files.items():
            self.assertObject(name, data=data)

    def test_chmod_while_open_keeps_committed_bytes(self):
        """A file closed (committed, upload pending), opened for writing,
        chmod-ed and written: the pending upload sends what was closed, not
        the bytes written since (they go in the next upload)."""
        a, b = os.urandom(300 * KiB), os.urandom(1000)
        with self.mount(opts={"upload_delay": "1s"}) as m:
            p = m.path("t", "f.bin")
            write_file(p, a)
            fd = os.open(p, os.O_WRONLY)
            try:
                os.fchmod(fd, 0o600)
                os.pwrite(fd, b, 0)
                self.wait_until(lambda: self.head("f.bin") is not None, 20, "first upload")
                self.assertBytes(self.get("f.bin"), a, "the upload of what was closed")
            finally:
                os.close(fd)
            m.unmount_wait()
        self.assertObject("f.bin", data=b + a[len(b):], mode=stat.S_IFREG | 0o600)

    def test_rewrite_after_chmod_generation_keeps_bytes(self):
        """Issue 13, item 2 (found by random operations on RGW): a file
        rewritten, chmod-ed while committed (a metadata-only generation, a
        hard link to the committed bytes), reopened and written, rewritten,
        all uploaded, then rewritten and reopened again.  The new write
        incarnation numbers its generations from 1 again; the old build
        reused the staging names left by the first one, so its O_TRUNC of
        generation 2 truncated generation 1 (the hard link) while it was
        being copied: EIO at the second write and an upload that failed
        forever with BodyReadFailed.  The staging files of every generation
        must be gone after a clean unmount."""
        rnd = random.Random(1302)
        data = [rnd.randbytes(n) for n in (4762, 2510, 3937, 2718, 1366)]
        patch3, patch5 = rnd.randbytes(1597), rnd.randbytes(129)
        cache = os.path.join(self.tmp, "cache")
        with self.mount(opts={"cache_dir": cache, "upload_delay": "200ms"}, exit_wait=30) as m:
            p = m.path("t", "f0")

            def pwrite(off, b):
                fd = os.open(p, os.O_WRONLY)
                try:
                    os.pwrite(fd, b, off)
                finally:
                    os.close(fd)

            def uploaded():  # the upload finished and the write file was dropped
                m.wait_uploads(timeout=20)
                time.sleep(0.1)

            steps = [
                ("create 0600", lambda: write_file(p, data[0], mode=0o600)),
                ("0.21 s: upload_delay over", lambda: time.sleep(0.21)),
                ("O_TRUNC rewrite", lambda: write_file(p, data[1])),
                ("upload ended", uploaded),
                ("O_TRUNC rewrite (a new write incarnation)", lambda: write_file(p, data[2])),
                ("chmod 0644 (metadata-only generation)", lambda: os.chmod(p, 0o644)),
                ("reopen O_WRONLY, pwrite at 91, close", lambda: pwrite(91, patch3)),
                ("10 ms", lambda: time.sleep(0.01)),
                ("O_TRUNC rewrite", lambda: write_file(p, data[3])),
                ("uploads ended", uploaded),
                ("O_TRUNC rewrite (the next write incarnation)", lambda: write_file(p, data[4])),
                ("reopen O_WRONLY, pwrite at 43, close", lambda: pwrite(43, patch5)),
            ]
            done = []
            for what, fn in steps:
                try:
                    fn()
                except OSError as e:
                    self.fail("step %d (%s) failed: %r; steps done before: %s; journal: %r"
                              % (len(done) + 1, what, e, "; ".join(done) or "none",
                                 journal(m.cache_dir)))
                done.append(what)
            want = data[4][:43] + patch5 + data[4][43 + len(patch5):]
            self.assertBytes(read_all(p), want, "f0 through the mount")
            st = os.stat(p)
            self.assertEqual((oct(st.st_mode), st.st_size), (oct(stat.S_IFREG | 0o644), len(want)),
                             "f0: mode and size through the mount")
            m.unmount_wait()
        self.assertObject("f0", data=want, mode=stat.S_IFREG | 0o644)
        self.assertEqual(self.rel_keys(), ["f0"])
        self.assertEqual(journal(cache), [], "journal after the daemon exited")
        self.assertEqual(sorted(os.listdir(os.path.join(cache, "staging"))), [],
                         "staging files left after a clean unmount")

    def test_new_files(self):
        """New files of several sizes and types: mode, uid, gid, mtime and
        Content-Type in S3; readers see the data before it is uploaded."""
        files = {
            "plain.bin": (os.urandom(100000), "application/octet-stream"),
            "table.csv": (b"a,b\n1,2\n3,4\n", "text/csv"),
            "doc.json": (b'{"k": [1, 2, 3]}\n', "application/json"),
            "data.parquet": (os.urandom(3 * MiB + 1), "application/vnd.apache.parquet"),
            "noext": (b"no extension\n", "application/octet-stream"),
            "empty.bin": (b"", "application/octet-stream"),
            "big.bin": (os.urandom(20 * MiB + 3), "application/octet-stream"),  # multipart
            "sub/nested.csv": (b"x,y\n", "text/csv"),
        }
        # conflicts=overwrite: the 20 MiB file in parts whatever the server (see
        # test_kill9_during_multipart)
        with self.mount(opts={"conflicts": "overwrite"}) as m:
            os.mkdir(m.path("t", "sub"))
            for rel, (data, _ct) in files.items():
                p = m.path("t", *rel.split("/"))
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
                half = len(data) // 2
                if half:
                    os.write(fd, data[:half])
                # a reader of a file still open for writing (so certainly not
                # uploaded yet) sees what was written so far
                self.assertEqual(os.stat(p).st_size, half, "%s: st_size while writing" % rel)
                self.assertBytes(read_all(p), data[:half], "%s read while still open" % rel)
                view = memoryview(data)[half:]
                while view:
                    view = view[os.write(fd, view[:MiB]):]
                os.close(fd)
                st = os.stat(p)
                self.assertEqual((st.st_size, oct(st.st_mode), st.st_uid, st.st_gid),
                                 (len(data), oct(stat.S_IFREG | 0o640), os.getuid(), os.getgid()),
                                 "%s: stat after close" % rel)
                self.assertLess(abs(st.st_mtime - time.time()), 5, "%s: mtime" % rel)
            mtimes = {}
            for rel, (data, _ct) in files.items():
                p = m.path("t", *rel.split("/"))
                self.assertBytes(read_all(p), data, "%s read back through the mount" % rel)
                mtimes[rel] = os.stat(p).st_mtime_ns / 1e9
            self.settle_before_listing(m)
            self.assertNames(os.listdir(m.path("t")), [r for r in files if "/" not in r] + ["sub"])
            os.listdir(m.path("t", "sub"))
            for rel, (data, _ct) in files.items():  # attributes survive a listing (LIST
                st = os.stat(m.path("t", *rel.split("/")))  # carries no metadata)
                got = (oct(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns / 1e9)
                want = (oct(stat.S_IFREG | 0o640), os.getuid(), os.getgid(), len(data),
                        mtimes[rel])
                if got != want:
                    listed = [(o["Key"][len(self.p):], o["Size"], o["ETag"]) for o in
                              self.s3.list_objects_v2(Bucket=BUCKET, Prefix=self.p + rel)
                              .get("Contents", [])]
                    self.fail("%s: stat after listing the directory: got %r, want %r (the file "
                              "was written on this mount); S3 lists now: %r; journal: %r; "
                              "user.s3.etag: %r" % (rel, got, want, listed, journal(m.cache_dir),
                                                    os.getxattr(m.path("t", rel),
                                                                "user.s3.etag")))
            m.wait_uploads()
            s = m.stats()
            self.assertEqual(s["by_op"]["mpu_create"], 1,
                             "only big.bin (20 MiB) is above the 16 MiB PUT limit: %r" % s["by_op"])
            self.assertGreaterEqual(s["by_op"]["mpu_part"], 3, "20 MiB in 8 MiB parts: %r"
                                    % s["by_op"])
            m.unmount_wait()
        for rel, (data, ct) in files.items():
            with self.subTest(object=rel):
                self.assertObject(rel, data=data, mode=stat.S_IFREG | 0o640, uid=os.getuid(),
                                  gid=os.getgid(), mtime=mtimes[rel], ctype=ct)
        self.assertObject("sub/", size=0, mode=stat.S_IFDIR | 0o755)
        # a new mount with an empty cache sees the same files and attributes
        with self.mount() as m:
            for rel, (data, _ct) in files.items():
                p = m.path("t", *rel.split("/"))
                st = os.stat(p)
                self.assertEqual((oct(st.st_mode), st.st_uid, st.st_gid, st.st_size),
                                 (oct(stat.S_IFREG | 0o640), os.getuid(), os.getgid(), len(data)),
                                 "%s after remount" % rel)
                self.assertAlmostEqual(st.st_mtime_ns / 1e9, mtimes[rel], delta=0.002,
                                       msg="%s: mtime after remount" % rel)
                self.assertEqual(file_md5(p), (md5hex(data), len(data)), rel)

    def test_overwrite_existing(self):
        """O_TRUNC, append and a write in the middle of existing objects."""
        trunc, app, mid = os.urandom(MiB), os.urandom(100000), os.urandom(20 * MiB)
        self.put("trunc.csv", trunc)
        self.put("app.log", app)
        self.put("mid.bin", mid, Metadata={"mode": str(stat.S_IFREG | 0o600), "uid": "1234",
                                           "gid": "2345", "mtime": "1600000000"})
        new_trunc = b"new,content\n"
        tail = os.urandom(5000)
        patches = [(0, b"HEAD"), (10 * MiB + 5, os.urandom(1000)), (8 * MiB - 3, b"straddle"),
                   (len(mid) - 3, b"past the end")]
        want_mid = bytearray(mid)
        for off, b in patches:
            want_mid[off:off + len(b)] = b
        want_mid = bytes(want_mid)
        with self.mount() as m:
            with open(m.path("t", "trunc.csv"), "wb") as f:
                f.write(new_trunc)
            with open(m.path("t", "app.log"), "ab") as f:
                f.write(tail)
            with open(m.path("t", "mid.bin"), "r+b") as f:
                for off, b in patches:
                    f.seek(off)
                    f.write(b)
            t_close = time.time()
            self.assertBytes(read_all(m.path("t", "trunc.csv")), new_trunc, "O_TRUNC rewrite")
            self.assertBytes(read_all(m.path("t", "app.log")), app + tail, "append")
            self.assertEqual(os.stat(m.path("t", "mid.bin")).st_size, len(want_mid))
            self.assertBytes(read_all(m.path("t", "mid.bin")), want_mid, "middle overwrite")
            st = os.stat(m.path("t", "mid.bin"))
            self.assertEqual((oct(st.st_mode), st.st_uid, st.st_gid),
                             (oct(stat.S_IFREG | 0o600), 1234, 2345),
                             "writing keeps the object's mode and owner")
            m.unmount_wait()
        self.assertObject("trunc.csv", data=new_trunc, ctype="text/csv")
        self.assertObject("app.log", data=app + tail)
        self.assertObject("mid.bin", md5=md5hex(want_mid), size=len(want_mid),
                          mode=stat.S_IFREG | 0o600, uid=1234, gid=2345)
        mt = float(self.head("mid.bin")["Metadata"].get("mtime", "0"))
        self.assertLess(abs(mt - t_close), 10, "mid.bin: x-amz-meta-mtime %s must be the time of "
                        "the write (%.0f)" % (mt, t_close))

    def test_truncate(self):
        shrink, grow, fsh, zero = (os.urandom(5 * MiB), os.urandom(1000), os.urandom(3 * MiB),
                                   os.urandom(4000))
        self.put("shrink.bin", shrink)
        self.put("grow.bin", grow)
        self.put("fshrink.bin", fsh)
        self.put("zero.bin", zero)
        want = {
            "shrink.bin": shrink[:1000],
            "grow.bin": grow + bytes(3 * MiB - 1000),
            "fshrink.bin": fsh[:10] + bytes(10) + b"after the hole",
            "zero.bin": b"",
            "new.bin": b"abc" + bytes(1 * MiB - 3),
        }
        with self.mount() as m:
            os.truncate(m.path("t", "shrink.bin"), 1000)
            self.assertEqual(os.stat(m.path("t", "shrink.bin")).st_size, 1000)
            os.truncate(m.path("t", "grow.bin"), 3 * MiB)
            self.assertEqual(os.stat(m.path("t", "grow.bin")).st_size, 3 * MiB)
            with open(m.path("t", "fshrink.bin"), "r+b") as f:
                f.truncate(10)
                self.assertEqual(os.fstat(f.fileno()).st_size, 10)
                f.seek(20)
                f.write(b"after the hole")
            os.truncate(m.path("t", "zero.bin"), 0)
            with open(m.path("t", "new.bin"), "wb") as f:
                f.write(b"abcdef")
                f.flush()
                os.ftruncate(f.fileno(), 3)
                os.ftruncate(f.fileno(), MiB)
            for rel, data in want.items():
                self.assertBytes(read_all(m.path("t", rel)), data, "%s through the mount" % rel)
            m.unmount_wait()
        for rel, data in want.items():
            with self.subTest(object=rel):
                self.assertObject(rel, data=data)

    def test_sparse_write(self):
        existing = os.urandom(1000)
        self.put("beyond.bin", existing)
        with self.mount() as m:
            p = m.path("t", "sparse.bin")
            open(p, "wb").close()
            fd = os.open(p, os.O_WRONLY)
            self.assertEqual(os.pwrite(fd, b"X" * 100, 10 * MiB), 100)
            os.close(fd)
            want = bytes(10 * MiB) + b"X" * 100
            self.assertEqual(os.stat(p).st_size, len(want))
            self.assertEqual(file_md5(p), (md5hex(want), len(want)), "sparse file through the mount")
            with open(p, "rb") as f:
                f.seek(5 * MiB)
                self.assertEqual(f.read(10), bytes(10), "the hole reads as zeros")
            # a write far beyond the end of an existing object
            fd = os.open(m.path("t", "beyond.bin"), os.O_WRONLY)
            os.pwrite(fd, b"far", 4 * MiB)
            os.close(fd)
            want_b = existing + bytes(4 * MiB - 1000) + b"far"
            self.assertBytes(read_all(m.path("t", "beyond.bin")), want_b, "beyond.bin")
            m.unmount_wait()
        self.assertObject("sparse.bin", md5=md5hex(want), size=len(want))
        self.assertObject("beyond.bin", data=want_b)

    def test_two_handles(self):
        with self.mount() as m:
            p = m.path("t", "two.bin")
            fd1 = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
            fd2 = os.open(p, os.O_RDWR)
            fd3 = os.open(p, os.O_RDONLY)
            try:
                os.pwrite(fd1, b"A" * 100, 0)
                os.pwrite(fd2, b"B" * 100, 50)
                self.assertBytes(os.pread(fd3, 1000, 0), b"A" * 50 + b"B" * 100,
                                 "a third descriptor reads what both wrote")
                self.assertBytes(os.pread(fd2, 1000, 0), b"A" * 50 + b"B" * 100,
                                 "the second writer reads the first one's bytes")
                os.close(fd1)
                fd1 = None
                os.pwrite(fd2, b"C" * 10, 200)
                time.sleep(1.0)
                self.assertNoObject("two.bin", "a writer is still open: only the close of the "
                                    "last writer uploads")
                os.close(fd2)
                fd2 = None
                want = b"A" * 50 + b"B" * 100 + bytes(50) + b"C" * 10
                self.assertBytes(os.pread(fd3, 1000, 0), want, "after both closed")
            finally:
                for fd in (fd1, fd2, fd3):
                    if fd is not None:
                        os.close(fd)
            # two handles in one process through Python file objects
            q = m.path("t", "interleaved.bin")
            with open(q, "wb", buffering=0) as a, open(q, "r+b", buffering=0) as b:
                for i in range(20):
                    (a if i % 2 == 0 else b).seek(i * 1000)
                    (a if i % 2 == 0 else b).write(bytes([65 + i]) * 1000)
            want_q = b"".join(bytes([65 + i]) * 1000 for i in range(20))
            self.assertBytes(read_all(q), want_q, "interleaved.bin")
            m.unmount_wait()
        self.assertObject("two.bin", data=want)
        self.assertObject("interleaved.bin", data=want_q)

    def test_appends_to_many_files(self):
        """Many small O_APPEND open/write/close cycles over 16 files, as a log
        writer does: no append may be lost, on the mount or in S3."""
        seed = int(os.environ.get("BFS_SEED") or random.randrange(1 << 31))
        rnd = random.Random(seed)
        note("seed %d (BFS_SEED=%d replays)", seed, seed)
        names = [d + f for d in ("", "d1/", "d1/d2/", "e/") for f in ("a.log", "b.csv", "c", "d")]
        want = {n: b"" for n in names}
        with self.mount() as m:
            for d in ("d1", "d1/d2", "e"):
                os.mkdir(m.path("t", d))
            for i in range(600):
                n = rnd.choice(names)
                data = rnd.randbytes(rnd.choice([rnd.randrange(1, 100), rnd.randrange(1, 8192),
                                                 rnd.randrange(1, 64 * KiB)]))
                fd = os.open(m.path("t", n), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, data)
                    size = os.fstat(fd).st_size
                finally:
                    os.close(fd)
                want[n] += data
                if size != len(want[n]):
                    try:
                        got = read_all(m.path("t", n))
                        now = "the file now has %d bytes%s" % (
                            len(got), " = its size BEFORE the append: the append was lost"
                            if got == want[n][:-len(data)] else "")
                    except OSError as e:
                        now = "reading the file now fails: %r" % e
                    self.fail("append %d (%d bytes) to %s [seed %d, BFS_SEED=%d replays]: fstat "
                              "st_size %d after the write, want %d; %s"
                              % (i, len(data), n, seed, seed, size, len(want[n]), now))
            for n in names:
                self.assertEqual(file_md5(m.path("t", n)), (md5hex(want[n]), len(want[n])),
                                 "%s through the mount [seed %d]" % (n, seed))
            m.unmount_wait()
        for n in names:
            with self.subTest(object=n):
                self.assertObject(n, md5=md5hex(want[n]), size=len(want[n]))

    def test_fsync(self):
        """fsync on a descriptor still open for writing returns once the data
        written so far is in S3."""
        big, small = os.urandom(20 * MiB + 1), b'{"small": true}\n'
        with self.mount() as m:
            for rel, data in (("fs.bin", big), ("fs-small.json", small)):
                with open(m.path("t", rel), "wb") as f:
                    f.write(data)
                    f.flush()
                    t0 = time.monotonic()
                    os.fsync(f.fileno())
                    dt = time.monotonic() - t0
                    note("fsync of %d bytes: %.2fs", len(data), dt)
                    self.assertObject(rel, md5=md5hex(data), size=len(data),
                                      what="right after fsync returned, writer still open")
                    f.write(b"more")
                with open(m.path("t", rel), "rb") as f:
                    self.assertBytes(f.read(), data + b"more", rel)
            m.unmount_wait()
        self.assertObject("fs.bin", md5=md5hex(big + b"more"), size=len(big) + 4)
        self.assertObject("fs-small.json", data=small + b"more", ctype="application/json")

    def test_fsync_after_close(self):
        """`sync FILE` (open + fsync) after close waits for that file's upload."""
        data = os.urandom(30 * MiB)
        with self.mount() as m:
            p = m.path("t", "later.bin")
            write_file(p, data)
            pending = pending_uploads(m.cache_dir)
            t0 = time.monotonic()
            r = subprocess.run(["sync", p], capture_output=True, text=True, timeout=120)
            dt = time.monotonic() - t0
            self.assertEqual(r.returncode, 0, "sync %s: %s" % (p, r.stderr))
            h = self.head("later.bin")
            self.assertIsNotNone(h, "`sync FILE` returned after %.2fs (%d upload(s) were pending "
                                 "at its start) but the object is not in S3: fsync on a descriptor "
                                 "opened after close must wait for the pending upload"
                                 % (dt, pending))
            self.assertObject("later.bin", md5=md5hex(data), size=len(data))
            m.unmount_wait()

    def test_sync_upload_option(self):
        big, small = os.urandom(20 * MiB + 7), b"a,b\n"
        with self.mount(opts={"sync_upload": None}) as m:
            for rel, data in (("s.bin", big), ("s.csv", small)):
                t0 = time.monotonic()
                write_file(m.path("t", rel), data)
                note("sync_upload: close of %d bytes returned after %.2fs",
                     len(data), time.monotonic() - t0)
                self.assertObject(rel, md5=md5hex(data), size=len(data),
                                  what="right after close with -o sync_upload")
                self.assertEqual(pending_uploads(m.cache_dir), 0, "journal after close")
            m.unmount_wait()
        self.assertObject("s.csv", data=small, ctype="text/csv")

    def test_upload_delay_and_fsync_skips_it(self):
        """A closed file goes up after upload_delay; fsync does not wait for it."""
        with self.mount(opts={"upload_delay": "3s"}) as m:
            t0 = time.monotonic()
            write_file(m.path("t", "late.csv"), b"a,b\n")
            time.sleep(1)
            self.assertNoObject("late.csv", "1 s after close with upload_delay=3s")
            fd = os.open(m.path("t", "now.csv"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.write(fd, b"x,y\n")
                t1 = time.monotonic()
                os.fsync(fd)
                dt = time.monotonic() - t1
            finally:
                os.close(fd)
            self.assertObject("now.csv", data=b"x,y\n", what="right after fsync")
            self.assertLess(dt, 2.5, "fsync waited for upload_delay")
            self.wait_until(lambda: self.head("late.csv") is not None, 30, "late.csv in S3")
            self.assertGreater(time.monotonic() - t0, 2.5, "uploaded before upload_delay")
            m.unmount_wait()
        self.assertObject("late.csv", data=b"a,b\n")

    def test_sigterm_waits_for_uploads(self):
        files = {"f%02d.bin" % i: os.urandom(MiB + i) for i in range(20)}
        files["large.bin"] = os.urandom(60 * MiB)  # last: still uploading at the SIGTERM
        with self.mount() as m:
            for rel, data in files.items():
                write_file(m.path("t", rel), data)
            pending = pending_uploads(m.cache_dir)
            self.assertGreater(pending, 0, "precondition: uploads pending at the SIGTERM")
            os.kill(m.pid, signal.SIGTERM)
            t0 = time.monotonic()
            while alive(m.pid) and time.monotonic() - t0 < 180:
                time.sleep(0.05)
            self.assertFalse(alive(m.pid), "daemon still running 180 s after SIGTERM")
            note("SIGTERM with %d upload(s) pending: daemon exited after %.1fs",
                 pending, time.monotonic() - t0)
            self.assertFalse(mounted(m.mnt), "still mounted after the daemon exited")
        for rel, data in files.items():
            with self.subTest(object=rel):
                self.assertObject(rel, md5=md5hex(data), size=len(data))


# ------------------------------------------------------------- namespace
class NamespaceTest(WriteTestCase):

    def test_mkdir_rmdir(self):
        self.put("imp/x", b"implicit")
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            os.mkdir(t("d"), 0o750)
            st = os.stat(t("d"))
            self.assertEqual(oct(st.st_mode), oct(stat.S_IFDIR | 0o750))
            self.assertEqual(os.listdir(t("d")), [])
            os.makedirs(t("p", "q", "r"))
            os.mkdir(t("full"))
            write_file(t("full", "f.txt"), b"inside\n")
            os.mkdir(t("gone"))
            self.assertErrno(errno.EEXIST, os.mkdir, t("d"))
            self.assertErrno(errno.ENOTEMPTY, os.rmdir, t("full"), what="rmdir of a dir holding a "
                             "pending file")
            self.assertErrno(errno.ENOTEMPTY, os.rmdir, t("p"), what="rmdir of a dir holding a dir")
            self.assertErrno(errno.ENOTEMPTY, os.rmdir, t("imp"), what="rmdir of an implicit dir "
                             "holding an object")
            self.assertErrno(errno.ENOTDIR, os.rmdir, t("full", "f.txt"))
            self.assertErrno(errno.ENOENT, os.rmdir, t("nope"))
            os.rmdir(t("gone"))
            self.assertFalse(os.path.exists(t("gone")))
            self.assertNames(os.listdir(t()), ["d", "p", "full", "imp"])
            m.unmount_wait()
        for d in ("d/", "p/", "p/q/", "p/q/r/", "full/"):
            self.assertObject(d, size=0, mode=stat.S_IFDIR | (0o750 if d == "d/" else 0o755))
        self.assertObject("full/f.txt", data=b"inside\n")
        self.assertNoObject("gone/", "mkdir then rmdir")
        with self.mount() as m:  # a new mount: everything is in S3 now
            t = lambda *a: m.path("t", *a)  # noqa: E731
            self.assertEqual(oct(os.stat(t("d")).st_mode), oct(stat.S_IFDIR | 0o750),
                             "mode of a marker directory after remount, looked up by name")
            self.assertNames(os.listdir(t()), ["d", "p", "full", "imp"])
            self.assertEqual(oct(os.stat(t("d")).st_mode), oct(stat.S_IFDIR | 0o750),
                             "mode of a marker directory after remount, after listing its parent")
            self.assertEqual(os.listdir(t("p", "q", "r")), [])
            self.assertErrno(errno.ENOTEMPTY, os.rmdir, t("full"), what="rmdir of a dir holding "
                             "an uploaded file")
            self.assertErrno(errno.ENOTEMPTY, os.rmdir, t("p", "q"))
            os.rmdir(t("p", "q", "r"))
            os.rmdir(t("d"))
            os.unlink(t("full", "f.txt"))
            os.rmdir(t("full"))
            self.assertNames(os.listdir(t()), ["p", "imp"])
            self.assertNames(os.listdir(t("p")), ["q"])
            m.unmount_wait()
        self.assertEqual(self.rel_keys(), ["imp/x", "p/", "p/q/"])

    def test_unlink(self):
        self.put("up.bin", b"uploaded")
        self.put("again.bin", b"first version")
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            os.unlink(t("up.bin"))
            self.assertFalse(os.path.exists(t("up.bin")))
            self.assertErrno(errno.ENOENT, os.unlink, t("up.bin"))
            self.wait_until(lambda: self.head("up.bin") is None, 10,
                            "unlink of an uploaded object deletes it")
            # never uploaded: unlinked right after close (large and small)
            write_file(t("pending.bin"), os.urandom(30 * MiB))
            write_file(t("pending.csv"), b"a,b\n")
            os.unlink(t("pending.bin"))
            os.unlink(t("pending.csv"))
            # unlinked while still open for writing, written on, then closed
            fd = os.open(t("open.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, os.urandom(MiB))
            os.unlink(t("open.bin"))
            self.assertFalse(os.path.exists(t("open.bin")))
            os.write(fd, b"written after unlink")
            os.close(fd)
            # unlink, then the same name written again
            os.unlink(t("again.bin"))
            write_file(t("again.bin"), b"second version")
            self.assertEqual(read_all(t("again.bin")), b"second version")
            listed = os.listdir(t())
            if listed != ["again.bin"]:
                self.fail("listing after unlink + rewrite of again.bin: %r, want ['again.bin']; "
                          "stat(again.bin): %s; S3 keys now: %r; journal: %r"
                          % (listed, errno_of(os.stat, t("again.bin")) or "ok",
                             self.rel_keys(), journal(m.cache_dir)))
            m.unmount_wait()
        for rel in ("up.bin", "pending.bin", "pending.csv", "open.bin"):
            self.assertNoObject(rel, "unlinked")
        self.assertObject("again.bin", data=b"second version")
        self.assertEqual(self.rel_keys(), ["again.bin"])

    def test_fill_does_not_block_other_files(self):
        """Opening a large existing object for writing copies it into staging
        first; other files are created and written meanwhile, not after."""
        big = os.urandom(128 * MiB)
        self.put("big.bin", big)
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            done = {}

            def open_big():
                fd = os.open(t("big.bin"), os.O_WRONLY)  # no O_TRUNC: filled from S3
                done["big"] = time.monotonic()
                os.pwrite(fd, b"HEAD", 0)
                os.close(fd)

            th = threading.Thread(target=open_big)
            t0 = time.monotonic()
            th.start()
            time.sleep(0.1)  # the fill has begun (it takes ~0.6 s on s3rver)
            write_file(t("small.csv"), b"a,b\n1,2\n")
            done["small"] = time.monotonic()
            th.join(120)
            self.assertFalse(th.is_alive())
            note("fill of 128 MiB took %.2fs; a new file meanwhile %.2fs",
                 done["big"] - t0, done["small"] - t0)
            self.assertLess(done["small"], done["big"],
                            "the small file waited for the big file's fill")
            m.unmount_wait()
        self.assertObject("small.csv", data=b"a,b\n1,2\n")
        self.assertObject("big.bin", data=b"HEAD" + big[4:])

    def test_inode_numbers_not_reused(self):
        """unlink + create of the newest name gets a new inode number: the
        old one may still be held by the kernel, an open descriptor or a
        queued upload (a reused number once let a stale upload of the
        unlinked file delete the new object)."""
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            seen = set()
            for i in range(5):
                write_file(t("again.csv"), b"version %d\n" % i)
                ino = os.stat(t("again.csv")).st_ino
                self.assertNotIn(ino, seen, "inode %d came back after unlink (round %d)" % (ino, i))
                seen.add(ino)
                if i < 4:
                    os.unlink(t("again.csv"))
            # rename over the newest name, then recreate the old name
            write_file(t("src.csv"), b"renamed\n")
            src_ino = os.stat(t("src.csv")).st_ino
            os.rename(t("src.csv"), t("again.csv"))
            self.assertEqual(os.stat(t("again.csv")).st_ino, src_ino)
            write_file(t("src.csv"), b"new src\n")
            self.assertNotIn(os.stat(t("src.csv")).st_ino, seen | {src_ino})
            m.unmount_wait()
        self.assertObject("again.csv", data=b"renamed\n")
        self.assertObject("src.csv", data=b"new src\n")

    def test_unlink_during_upload_then_recreate(self):
        """A file unlinked while its (multipart) upload is under way, then
        written again under the same name: the new file must reach S3."""
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("cycle.bin"), os.urandom(20 * MiB))
            os.unlink(t("cycle.bin"))
            write_file(t("cycle.bin"), b"final")
            self.assertEqual(read_all(t("cycle.bin")), b"final")
            write_file(t("small.csv"), b"x" * 1000)  # the same with a PUT
            os.unlink(t("small.csv"))
            write_file(t("small.csv"), b"y,z\n")
            m.unmount_wait()
        self.assertObject("cycle.bin", data=b"final")
        self.assertObject("small.csv", data=b"y,z\n")
        self.assertEqual(self.rel_keys(), ["cycle.bin", "small.csv"])

    def check_links(self, t, links, how):
        for rel, target in links.items():
            with self.subTest(link=rel, how=how):
                p = t(*rel.split("/"))
                st = os.lstat(p)
                self.assertTrue(stat.S_ISLNK(st.st_mode), "lstat(%s) %s: mode %o is not a "
                                "symlink" % (rel, how, st.st_mode))
                self.assertEqual(os.readlink(p), target, how)
                self.assertEqual(st.st_size, len(target), how)
        with self.subTest(how=how):
            self.assertEqual(read_all(t("link")), b"the target\n", "open follows the link, "
                             + how)
            self.assertEqual(read_all(t("sub", "up")), b"the target\n", how)

    def test_symlink(self):
        links = {"link": "target.txt", "sub/abs": "/etc/hostname",
                 "sub/up": "../target.txt", "dangling": "no/such/file"}
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("target.txt"), b"the target\n")
            os.mkdir(t("sub"))
            for rel, target in links.items():
                os.symlink(target, t(*rel.split("/")))
            self.check_links(t, links, "right after symlink")
            os.listdir(t())
            os.listdir(t("sub"))
            self.check_links(t, links, "after listing (same mount)")
            m.unmount_wait()
        for rel, target in links.items():
            with self.subTest(object=rel):
                self.assertObject(rel, data=target.encode(), mode=S_IFLNK_0777)
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            self.check_links(t, links, "after remount, by name")
            os.listdir(t())
            os.listdir(t("sub"))
            self.check_links(t, links, "after remount, after listing")

    def test_mkfifo(self):
        with self.mount() as m:
            p = m.path("t", "fifo")
            try:
                os.mkfifo(p, 0o644)
            except OSError as e:
                st = None
                with contextlib.suppress(OSError):
                    st = os.lstat(p)
                h = self.head("fifo")
                self.fail("os.mkfifo(%s, 0o644) failed: %r; lstat afterwards: %s; S3 object "
                          "left behind: %s" % (p, e, "mode %o" % st.st_mode if st else "none",
                                               "%d bytes, metadata %r" % (h["ContentLength"],
                                                                          h["Metadata"])
                                               if h else "none"))
            st = os.lstat(p)
            self.assertTrue(stat.S_ISFIFO(st.st_mode), "lstat mode %o is not a FIFO" % st.st_mode)
            os.listdir(m.path("t"))
            st = os.lstat(p)
            self.assertTrue(stat.S_ISFIFO(st.st_mode), "after listing: mode %o is not a FIFO"
                            % st.st_mode)
            m.unmount_wait()
        self.assertObject("fifo", data=b"", mode=stat.S_IFIFO | 0o644)
        with self.mount() as m:
            st = os.lstat(m.path("t", "fifo"))
            self.assertTrue(stat.S_ISFIFO(st.st_mode), "after remount: mode %o" % st.st_mode)

    def test_rename_while_local(self):
        """A file renamed before its upload: the old key never appears."""
        a, b = os.urandom(3 * MiB), os.urandom(5 * MiB)
        seen = set()
        stop = threading.Event()

        def watch():  # a second boto3 client: clients are not thread-safe
            s3 = tm.s3client()
            while not stop.is_set():
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                         Prefix=self.p):
                    seen.update(o["Key"][len(self.p):] for o in page.get("Contents", []))
                time.sleep(0.05)
            with contextlib.suppress(Exception):
                s3.close()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        self.addCleanup(stop.set)
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            os.mkdir(t("dir"))
            # renamed while still open for writing: certainly only local
            f = open(t("open-old.bin"), "wb")
            f.write(a[:MiB])
            f.flush()
            s0 = m.stats()["by_op"]
            os.rename(t("open-old.bin"), t("dir", "open-new.bin"))
            s1 = m.stats()["by_op"]
            f.write(a[MiB:])
            f.close()
            self.assertEqual((s1["copy"] - s0["copy"], s1["delete"] - s0["delete"]), (0, 0),
                             "renaming a file that is only local must not send CopyObject or "
                             "DeleteObject: %r -> %r" % (s0, s1))
            # renamed right after close (pending), and again
            write_file(t("closed-old.bin"), b)
            os.rename(t("closed-old.bin"), t("closed-mid.bin"))
            os.rename(t("closed-mid.bin"), t("dir", "closed-new.bin"))
            self.assertFalse(os.path.exists(t("open-old.bin")))
            self.assertFalse(os.path.exists(t("closed-old.bin")))
            self.assertBytes(read_all(t("dir", "open-new.bin")), a, "open-new.bin")
            self.assertBytes(read_all(t("dir", "closed-new.bin")), b, "closed-new.bin")
            m.unmount_wait()
        time.sleep(0.2)
        stop.set()
        watcher.join(10)
        self.assertNotIn("open-old.bin", seen, "the old name of a file renamed while open for "
                         "writing appeared in S3")
        self.assertObject("dir/open-new.bin", data=a)
        self.assertObject("dir/closed-new.bin", data=b)
        self.assertEqual(self.rel_keys(), ["dir/", "dir/closed-new.bin", "dir/open-new.bin"])
        note("old names seen in S3 during the run: %s",
             sorted(seen & {"closed-old.bin", "closed-mid.bin"}) or "none")

    def test_rename_uploaded(self):
        data = os.urandom(2 * MiB)
        meta = {"mode": str(stat.S_IFREG | 0o600), "uid": "1234", "gid": "2345",
                "mtime": "1600000000.5"}
        self.put("src.csv", data, Metadata=meta, ContentType="text/csv")
        mine = os.urandom(300000)
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            st0 = os.stat(t("src.csv"))
            os.mkdir(t("moved"))
            os.rename(t("src.csv"), t("moved", "dst.csv"))
            self.assertFalse(os.path.exists(t("src.csv")))
            st1 = os.stat(t("moved", "dst.csv"))
            self.assertEqual((st1.st_mode, st1.st_uid, st1.st_gid, st1.st_mtime_ns, st1.st_size),
                             (st0.st_mode, st0.st_uid, st0.st_gid, st0.st_mtime_ns, st0.st_size),
                             "attributes after rename")
            self.assertBytes(read_all(t("moved", "dst.csv")), data)
            # a file written through the mount, uploaded (fsync), then renamed
            with open(t("mine.json"), "wb") as f:
                f.write(mine)
                f.flush()
                os.fsync(f.fileno())
            mine_meta = self.head("mine.json")["Metadata"]
            os.rename(t("mine.json"), t("mine2.json"))
            self.assertBytes(read_all(t("mine2.json")), mine)
            m.unmount_wait()
        self.assertNoObject("src.csv", "renamed away")
        self.assertNoObject("mine.json", "renamed away")
        self.assertObject("moved/dst.csv", data=data, mode=stat.S_IFREG | 0o600, uid=1234,
                          gid=2345, mtime=1600000000.5, ctype="text/csv")
        h = self.assertObject("mine2.json", data=mine)
        self.assertEqual(h["Metadata"], mine_meta, "metadata kept by the rename")
        self.assertEqual(self.rel_keys(), ["mine2.json", "moved/", "moved/dst.csv"])
        with self.mount() as m:
            st = os.stat(m.path("t", "moved", "dst.csv"))
            self.assertEqual((oct(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns),
                             (oct(stat.S_IFREG | 0o600), 1234, 2345, 1600000000500000000))

    def test_rename_over_existing(self):
        a, b, c = os.urandom(1000), os.urandom(2000), os.urandom(3000)
        self.put("a.bin", a)
        self.put("b.bin", b)
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            os.rename(t("a.bin"), t("b.bin"))  # uploaded over uploaded
            self.assertBytes(read_all(t("b.bin")), a, "b.bin after a.bin replaced it")
            self.assertFalse(os.path.exists(t("a.bin")))
            self.assertNames(os.listdir(t()), ["b.bin"])
            write_file(t("c.bin"), c)  # pending over uploaded
            os.rename(t("c.bin"), t("b.bin"))
            self.assertBytes(read_all(t("b.bin")), c, "b.bin after c.bin replaced it")
            # pending (small) over a file whose multipart upload is under way
            big = os.urandom(20 * MiB)
            write_file(t("big.json"), big)
            write_file(t("small.json"), b'{"replaces": "big"}')
            os.rename(t("small.json"), t("big.json"))
            self.assertBytes(read_all(t("big.json")), b'{"replaces": "big"}',
                             "big.json after small.json replaced it")
            write_file(t("d.bin"), b"dddd")  # pending over pending
            write_file(t("e.bin"), b"eeee")
            os.rename(t("d.bin"), t("e.bin"))
            self.assertEqual(read_all(t("e.bin")), b"dddd")
            self.assertNames(os.listdir(t()), ["b.bin", "e.bin", "big.json"])
            m.unmount_wait()
        self.assertObject("b.bin", data=c)
        self.assertObject("e.bin", data=b"dddd")
        self.assertObject("big.json", data=b'{"replaces": "big"}', ctype="application/json")
        self.assertEqual(self.rel_keys(), ["b.bin", "big.json", "e.bin"])
        # pending over uploaded, then on again before its upload: the replaced
        # file's object must go with the name (random ops on RGW, seed 999901788)
        with self.mount(opts={"upload_delay": "5s"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("f.bin"), b"ffff")
            os.rename(t("f.bin"), t("b.bin"))
            os.rename(t("b.bin"), t("g.bin"))
            self.assertFalse(os.path.exists(t("b.bin")))
            m.unmount_wait()
        self.assertObject("g.bin", data=b"ffff")
        self.assertNoObject("b.bin", "replaced by a pending file that was then renamed away")
        self.assertEqual(self.rel_keys(), ["big.json", "e.bin", "g.bin"])

    def test_rename_directory(self):
        rnd = random.Random(7)
        files = {}
        for i in range(40):
            d = rnd.choice(["", "a/", "a/b/", "a/b/c/", "x/y/", "x/"])
            files["src/%sf%02d.dat" % (d, i)] = os.urandom(rnd.randrange(0, 200000))
        meta = {"mode": str(stat.S_IFREG | 0o640), "uid": "11", "gid": "22", "mtime": "1500000000"}
        self.put_many(files)
        for rel in list(files)[:5]:
            self.put(rel, files[rel], Metadata=meta)
        self.put_many({"src/": b"", "src/a/": b""})
        # neighbours that share the name as a prefix must not move
        self.put_many({"src.txt": b"neighbour", "src2/keep": b"keep", "srcx": b"x"})
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            for i in range(10):  # written through the mount (some still pending)
                rel = "src/%smine%d.bin" % (["", "a/b/", "x/y/"][i % 3], i)
                data = os.urandom(100000 + i)
                write_file(t(*rel.split("/")), data)
                files[rel] = data
            os.mkdir(t("src", "empty"))
            before = snapshot(t("src"))
            t0 = time.monotonic()
            os.rename(t("src"), t("dst"))
            note("rename of a directory of %d files: %.2fs", len(files), time.monotonic() - t0)
            self.assertFalse(os.path.exists(t("src")))
            self.assertEqual(snapshot_diff(snapshot(t("dst")), before), "",
                             "the renamed tree through the mount")
            self.assertNames(os.listdir(t()), ["dst", "src.txt", "src2", "srcx"])
            m.unmount_wait()
        keys = self.rel_keys()
        self.assertEqual([k for k in keys if k.startswith("src/")], [], "keys left under src/")
        want = sorted(["dst/" + k[4:] for k in files] + ["dst/", "dst/a/", "dst/empty/",
                                                        "src.txt", "src2/keep", "srcx"])
        self.assertEqual(keys, want)
        for rel, data in files.items():
            with self.subTest(object=rel):
                self.assertObject("dst/" + rel[4:], data=data,
                                  **({"mode": stat.S_IFREG | 0o640, "uid": 11, "gid": 22,
                                      "mtime": 1500000000.0} if rel in list(files)[:5] else {}))
        with self.mount() as m:
            self.assertEqual(snapshot_diff(snapshot(m.path("t", "dst")), before), "",
                             "the renamed tree after remount")

    def test_setattr_persisted(self):
        data = b"c1,c2\n" * 1000
        self.put("f.csv", data, ContentType="text/csv",
                 Metadata={"mode": str(stat.S_IFREG | 0o644), "uid": "0", "gid": "0",
                           "mtime": "1500000000"})
        etag = self.head("f.csv")["ETag"]
        pend = os.urandom(5 * MiB)
        can_chown = os.geteuid() == 0
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            p = t("f.csv")
            os.chmod(p, 0o600)
            if can_chown:
                os.chown(p, 1234, 2345)
            os.utime(p, ns=(1600000000250000000, 1600000000250000000))
            for how in ("right after", "after listing"):
                if how == "after listing":
                    os.listdir(t())
                st = os.stat(p)
                self.assertEqual((oct(st.st_mode), st.st_mtime_ns),
                                 (oct(stat.S_IFREG | 0o600), 1600000000250000000), how)
                if can_chown:
                    self.assertEqual((st.st_uid, st.st_gid), (1234, 2345), how)
            # on a file whose upload is pending: rides on the upload
            write_file(t("pend.bin"), pend)
            os.chmod(t("pend.bin"), 0o751)
            os.utime(t("pend.bin"), (1400000000, 1400000000))
            # on a directory marker
            os.mkdir(t("d"))
            m.wait_uploads()
            os.chmod(t("d"), 0o700)
            os.utime(t("d"), (1300000000, 1300000000))
            self.assertEqual(oct(os.stat(t("d")).st_mode), oct(stat.S_IFDIR | 0o700))
            m.unmount_wait()
        h = self.assertObject("f.csv", data=data, mode=stat.S_IFREG | 0o600,
                              uid=1234 if can_chown else None, gid=2345 if can_chown else None,
                              mtime=1600000000.25, ctype="text/csv")
        self.assertEqual(h["ETag"], etag, "the content must not change")
        self.assertObject("pend.bin", md5=md5hex(pend), size=len(pend),
                          mode=stat.S_IFREG | 0o751, mtime=1400000000.0)
        self.assertObject("d/", size=0, mode=stat.S_IFDIR | 0o700, mtime=1300000000.0)
        with self.mount() as m:
            st = os.stat(m.path("t", "pend.bin"))
            self.assertEqual((oct(st.st_mode), st.st_mtime), (oct(stat.S_IFREG | 0o751),
                                                              1400000000.0))
            st = os.stat(m.path("t", "d"))
            self.assertEqual((oct(st.st_mode), st.st_mtime), (oct(stat.S_IFDIR | 0o700),
                                                              1300000000.0))
            st = os.stat(m.path("t", "f.csv"))
            if can_chown:
                self.assertEqual((st.st_uid, st.st_gid), (1234, 2345))
            self.assertEqual(oct(st.st_mode), oct(stat.S_IFREG | 0o600), "after remount")
            self.assertEqual(st.st_mtime_ns, 1600000000250000000,
                             "st_mtime_ns after remount, from x-amz-meta-mtime %s: the "
                             "nanoseconds set with utimensat must survive (%+d ns)"
                             % (self.head("f.csv")["Metadata"].get("mtime"),
                                st.st_mtime_ns - 1600000000250000000))

    def test_link_eperm(self):
        self.put("up.bin", b"x")
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("local.bin"), b"y")
            self.assertErrno(errno.EPERM, os.link, t("up.bin"), t("hard1"))
            self.assertErrno(errno.EPERM, os.link, t("local.bin"), t("hard2"))
            self.assertNames(os.listdir(t()), ["up.bin", "local.bin"])
            m.unmount_wait()
        self.assertEqual(self.rel_keys(), ["local.bin", "up.bin"])

    def test_root_and_mapping_refusals(self):
        self.put("f.bin", b"file")
        with self.mount(maps=[("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/"))),
                              ("u", "s3://%s/%sother" % (BUCKET, self.p))]) as m:
            root, t = m.mnt, m.path("t")
            cases = [
                ("create a file in the root", errno.EPERM,
                 lambda: os.close(os.open(m.path("new"), os.O_WRONLY | os.O_CREAT, 0o644))),
                ("mkdir in the root", errno.EPERM, lambda: os.mkdir(m.path("newdir"))),
                ("symlink in the root", errno.EPERM, lambda: os.symlink("t", m.path("ln"))),
                ("mkfifo in the root", errno.EPERM, lambda: os.mkfifo(m.path("fifo"))),
                ("rename a mapping dir", (errno.EPERM, errno.EBUSY),
                 lambda: os.rename(t, m.path("renamed"))),
                ("rename a mapping dir over another", (errno.EPERM, errno.EBUSY),
                 lambda: os.rename(t, m.path("u"))),
                ("rename a file into the root", errno.EPERM,
                 lambda: os.rename(m.path("t", "f.bin"), m.path("f.bin"))),
                ("rmdir a mapping dir", (errno.EBUSY, errno.EPERM), lambda: os.rmdir(t)),
                ("rmdir an empty mapping dir", (errno.EBUSY, errno.EPERM),
                 lambda: os.rmdir(m.path("u"))),
            ]
            for what, want, fn in cases:
                with self.subTest(what=what):
                    self.assertErrno(want, fn, what=what)
            self.assertNames(os.listdir(root), ["t", "u"])
            # chmod, chown, utime on a mapping dir succeed and are seen
            os.chmod(t, 0o750)
            os.utime(t, (1500000000, 1500000000))
            if os.geteuid() == 0:
                os.chown(t, 4321, 5432)
            st = os.stat(t)
            self.assertEqual((oct(st.st_mode), st.st_mtime),
                             (oct(stat.S_IFDIR | 0o750), 1500000000.0))
            if os.geteuid() == 0:
                self.assertEqual((st.st_uid, st.st_gid), (4321, 5432))
            self.assertEqual(read_all(m.path("t", "f.bin")), b"file")
            m.unmount_wait()
        self.assertEqual(self.rel_keys(), ["f.bin"])

    def test_read_only_mount(self):
        self.put("f.csv", b"a,b\n")
        self.put("d/x", b"x")
        self.put("e/", b"")
        with self.mount(opts={"ro": None}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            cases = [
                ("open O_WRONLY", lambda: os.close(os.open(t("f.csv"), os.O_WRONLY))),
                ("open O_RDWR", lambda: os.close(os.open(t("f.csv"), os.O_RDWR))),
                ("open O_TRUNC", lambda: os.close(os.open(t("f.csv"), os.O_WRONLY | os.O_TRUNC))),
                ("create", lambda: os.close(os.open(t("new"), os.O_WRONLY | os.O_CREAT, 0o644))),
                ("truncate", lambda: os.truncate(t("f.csv"), 0)),
                ("mkdir", lambda: os.mkdir(t("nd"))),
                ("rmdir", lambda: os.rmdir(t("e"))),
                ("unlink", lambda: os.unlink(t("f.csv"))),
                ("rename", lambda: os.rename(t("f.csv"), t("g.csv"))),
                ("chmod", lambda: os.chmod(t("f.csv"), 0o600)),
                ("utime", lambda: os.utime(t("f.csv"), (1, 1))),
                ("symlink", lambda: os.symlink("f.csv", t("ln"))),
                ("mkfifo", lambda: os.mkfifo(t("fifo"))),
            ]
            for what, fn in cases:
                with self.subTest(what=what):
                    self.assertErrno(errno.EROFS, fn, what=what)
            self.assertEqual(read_all(t("f.csv")), b"a,b\n", "reading works")
            self.assertNames(os.listdir(t()), ["f.csv", "d", "e"])
            m.unmount_wait()
        self.assertEqual(self.rel_keys(), ["d/x", "e/", "f.csv"])
        self.assertEqual(self.get("f.csv"), b"a,b\n")

    def test_statfs(self):
        with self.mount() as m:
            for p in (m.mnt, m.path("t")):
                r = subprocess.run(["df", "-P", p], capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 0, "df %s: %s" % (p, r.stderr))
                self.assertIn(m.mnt, r.stdout, "df output: %s" % r.stdout)
                vfs = os.statvfs(p)
                self.assertGreater(vfs.f_bsize, 0)
                self.assertGreater(vfs.f_blocks, 0)
                self.assertGreater(vfs.f_bavail, 0, "df must not show a full filesystem")
                self.assertGreaterEqual(vfs.f_namemax, 255)
            note("df: %s", r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------- tree copy
class TreeCopyTest(WriteTestCase):

    def make_tree(self, root, n=500, seed=1234):
        """n regular files (most small, a few up to 20 MiB, some empty) in
        nested dirs with varied modes and past mtimes, plus two symlinks."""
        rnd = random.Random(seed)
        dirs = ["", "a", "a/b", "a/b/c", "a/b/c/d", "e", "e/f", "g h", "g h/ü", "deep/1/2/3/4"]
        for d in dirs[1:]:
            os.makedirs(os.path.join(root, d), exist_ok=True)
        big = {7: 20 * MiB, 77: 12 * MiB, 177: 6 * MiB}
        modes = [0o644, 0o644, 0o644, 0o600, 0o755, 0o640]
        total = 0
        for i in range(n):
            if i in big:
                size = big[i]
            elif i % 100 == 5:
                size = 0
            elif i % 33 == 0:
                size = rnd.randrange(100 * KiB, 2 * MiB)
            else:
                size = int(rnd.expovariate(1 / 8000))
            ext = rnd.choice([".csv", ".json", ".bin", ".parquet", ""])
            p = os.path.join(root, rnd.choice(dirs), "file-%03d%s" % (i, ext))
            with open(p, "wb") as f:
                f.write(rnd.randbytes(size))
            os.chmod(p, rnd.choice(modes))
            mt = 1500000000 + i * 1000 + 0.5
            os.utime(p, (mt, mt))
            total += size
        top = sorted(n for n in os.listdir(root) if n.startswith("file-"))
        os.symlink(top[0], os.path.join(root, "link-rel"))
        os.symlink("../../e", os.path.join(root, "a", "b", "link-up"))
        os.chmod(os.path.join(root, "e", "f"), 0o750)
        os.chmod(os.path.join(root, "g h"), 0o700)
        return total

    def test_rsync_uploads_each_file_once(self):
        """rsync writes a temporary name, closes, sets the times and renames:
        within upload_delay that is one upload under the final key, no copy,
        and no temporary key ever reaches S3."""
        src = os.path.join(self.tmp, "src")
        os.mkdir(src)
        total = self.make_tree(src, n=60, seed=77)
        for link in ("link-rel", "a/b/link-up"):  # rsync may lutimes them: a copy each
            os.unlink(os.path.join(src, link))
        nfiles = sum(1 for v in snapshot(src).values() if v[0] == "f")
        with self.mount(opts={"upload_delay": "2s"}) as m:
            before = m.stats()
            r = subprocess.run(["rsync", "-a", src + "/", m.path("t", "rs") + "/"],
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, "rsync -a: %s" % r.stderr[-3000:])
            m.wait_uploads()
            after = m.stats()
            m.unmount_wait()
        ops = {k: after["by_op"][k] - before["by_op"].get(k, 0) for k in after["by_op"]}
        up = after["bytes_up"] - before["bytes_up"]
        note("rsync -a of %d files, %.1f MiB: %d bytes up, requests %r", nfiles, total / MiB,
             up, {k: v for k, v in ops.items() if v})
        self.assertEqual(ops.get("copy", 0), 0, "server-side copies for a rename: %r" % ops)
        self.assertLess(up, total * 1.02 + 64 * KiB,
                        "bytes uploaded for %d bytes of files: each sent more than once?" % total)
        keys = [o["Key"] for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=self.p + "rs/") for o in page.get("Contents", [])]
        tmp = [k for k in keys if os.path.basename(k).startswith(".")]
        self.assertEqual(tmp, [], "rsync's temporary names in S3")
        for rel, v in snapshot(src).items():
            if v[0] == "f":
                with open(os.path.join(src, rel), "rb") as f:
                    self.assertObject("rs/" + rel, md5=md5hex(f.read()), size=v[1])

    @staticmethod
    def attr_mismatches(src, copy, srcsnap):
        """What differs between the entries of src and of its rsync -a copy:
        type, permission bits (not of symlinks), file mtime (within 1 s)."""
        bad = []
        for rel, v in sorted(srcsnap.items()):
            s, g = os.lstat(os.path.join(src, rel)), os.lstat(os.path.join(copy, rel))
            if stat.S_IFMT(s.st_mode) != stat.S_IFMT(g.st_mode):
                bad.append("%s: type %o, want %o" % (rel, g.st_mode, s.st_mode))
                continue
            if v[0] != "l" and stat.S_IMODE(s.st_mode) != stat.S_IMODE(g.st_mode):
                bad.append("%s: mode %o, want %o" % (rel, stat.S_IMODE(g.st_mode),
                                                     stat.S_IMODE(s.st_mode)))
            if v[0] == "f" and abs(s.st_mtime - g.st_mtime) > 1:
                bad.append("%s: mtime %.3f, want %.3f" % (rel, g.st_mtime, s.st_mtime))
        return bad

    def test_cp_r_and_rsync(self):
        src = os.path.join(self.tmp, "src")
        os.mkdir(src)
        total = self.make_tree(src)
        srcsnap = snapshot(src)
        nfiles = sum(1 for v in srcsnap.values() if v[0] == "f")
        self.assertEqual(nfiles, 500)
        problems = []

        def check_attrs(m, when):
            bad = self.attr_mismatches(src, m.path("t", "rs"), srcsnap)
            if bad:
                problems.append("rsync -a copy, %s: %d of %d entries differ:\n  %s"
                                % (when, len(bad), len(srcsnap), "\n  ".join(bad[:30])))

        with self.mount(watchdog=900, exit_wait=600) as m:
            t0 = time.monotonic()
            r = subprocess.run(["cp", "-r", src, m.path("t", "cp")], capture_output=True,
                               text=True, timeout=600)
            self.assertEqual(r.returncode, 0, "cp -r: %s" % r.stderr[-3000:])
            t1 = time.monotonic()
            r = subprocess.run(["rsync", "-a", src + "/", m.path("t", "rs") + "/"],
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, "rsync -a: %s" % r.stderr[-3000:])
            t2 = time.monotonic()
            self.settle_before_listing(m)
            for d in ("cp", "rs"):
                r = subprocess.run(["diff", "-r", src, m.path("t", d)], capture_output=True,
                                   text=True, timeout=600)
                self.assertEqual(r.returncode, 0, "diff -r through the same mount (%s): %s%s"
                                 % (d, r.stdout[-3000:], r.stderr[-2000:]))
            # bucketfs wrote these itself: it knows every attribute, listed or not
            check_attrs(m, "on the mount that wrote it (after diff -r listed it)")
            pending = pending_uploads(m.cache_dir)
            t3 = time.monotonic()
            drain = m.unmount_wait()
        note("%d files, %.1f MiB: cp -r %.1fs, rsync -a %.1fs, diff (local) %.1fs, unmount with "
             "%d upload(s) pending %.1fs", nfiles, total / MiB, t1 - t0, t2 - t1, t3 - t2,
             pending, drain)
        # keys and sizes in S3
        keys = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=self.p):
            for o in page.get("Contents", []):
                keys[o["Key"][len(self.p):]] = o["Size"]
        for top in ("cp", "rs"):
            want = {"%s/%s" % (top, rel): v for rel, v in srcsnap.items() if v[0] != "d"}
            got = {k: s for k, s in keys.items() if k.startswith(top + "/") and not k.endswith("/")}
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            wrong = sorted(k for k in set(want) & set(got) if want[k][0] == "f"
                           and got[k] != want[k][1])
            if missing or extra or wrong:
                problems.append("%s: keys in S3: %d missing %r, %d extra %r, %d with the wrong "
                                "size %r" % (top, len(missing), missing[:10], len(extra),
                                             extra[:10], len(wrong), wrong[:10]))
        t4 = time.monotonic()
        # list_meta=small: listings HEAD objects under 4 KiB, so that diff -r
        # sees the two symlinks as symlinks (by default a listing on a fresh
        # mount shows them as regular files until looked up by name, see
        # src/fs/dir.c; that default is reported by the third mount below)
        with self.mount(watchdog=900, opts={"list_meta": "small"}) as m:
            # by name first (lookups, no listing): attributes from the objects' metadata
            check_attrs(m, "after remount with an empty cache, looked up by name")
            for d in ("cp", "rs"):
                r = subprocess.run(["diff", "-r", src, m.path("t", d)], capture_output=True,
                                   text=True, timeout=600)
                if r.returncode != 0:
                    problems.append("diff -r %s %s after remount with an empty cache: %s%s"
                                    % (src, d, r.stdout[-3000:], r.stderr[-2000:]))
                diff = snapshot_diff(snapshot(m.path("t", d)), srcsnap)
                if diff:
                    problems.append("%s tree after remount:\n%s" % (d, diff[:4000]))
            t5 = time.monotonic()
        note("remount with an empty cache: diff -r of both copies %.1fs", t5 - t4)
        with self.mount(watchdog=900) as m:
            # default options, listed first: LIST carries no metadata; this is
            # reported, not required (SPEC: ls -l needs no request per entry)
            for _ in os.walk(m.path("t", "rs")):
                pass
            bad = self.attr_mismatches(src, m.path("t", "rs"), srcsnap)
            note("fresh mount with default options, attributes after listing first: %d of %d "
                 "entries of the rsync copy differ from the source, %d symlink(s) shown as "
                 "another type%s", len({b.split(":")[0] for b in bad}), len(srcsnap),
                 sum(1 for b in bad if ": type " in b),
                 (" (e.g. %s)" % "; ".join(bad[:3])) if bad else "")
        if problems:
            self.fail("\n".join(problems))


# ------------------------------------------------------------ random ops
class RandomOpsTest(WriteTestCase):
    FILES = [d + f for d in ("", "d1/", "d1/d2/", "e/") for f in ("a", "b.csv", "c.json", "big")]
    DIRS = ["d1", "d1/d2", "e"]
    NOPS = 2000

    def draw(self, rnd, local):
        """One operation with all its random parameters, drawn from the state
        of the local tree (so that both trees get the same operation)."""
        def size(rel):
            try:
                return os.path.getsize(os.path.join(local, rel))
            except OSError:
                return 0

        def data():
            n = rnd.choice([rnd.randrange(1, 100), rnd.randrange(1, 8192),
                            rnd.randrange(1, 8192), rnd.randrange(1, 300 * KiB)])
            return rnd.randbytes(n)

        f = rnd.choice(self.FILES)
        kind = rnd.choices(["write", "append", "truncate", "rename", "unlink", "create", "read",
                            "mkdir", "rmdir", "stat"],
                           weights=[20, 12, 8, 10, 6, 10, 15, 4, 3, 5])[0]
        if kind == "write":
            cur = size(f)
            off = min(rnd.choice([rnd.randrange(0, cur + 1), cur, cur + rnd.randrange(1, 100000),
                                  rnd.randrange(0, cur + 1)]), MiB)
            return ("write", f, off, data())
        if kind in ("append", "create"):
            return (kind, f, data())
        if kind == "truncate":
            cur = size(f)
            return ("truncate", f, min(rnd.choice([0, rnd.randrange(0, cur + 1),
                                                   cur + rnd.randrange(0, 200000)]), MiB))
        if kind == "rename":
            return ("rename", f, rnd.choice(self.FILES))
        if kind in ("mkdir", "rmdir"):
            return (kind, rnd.choice(self.DIRS))
        return (kind, f)

    @staticmethod
    def apply(root, op):
        """Runs op under root: ("ok", result) or ("err", errno name)."""
        p = lambda rel: os.path.join(root, rel)  # noqa: E731
        try:
            kind = op[0]
            if kind == "write":
                fd = os.open(p(op[1]), os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    n = os.pwrite(fd, op[3], op[2])
                finally:
                    os.close(fd)
                return ("ok", n)
            if kind == "append":
                fd = os.open(p(op[1]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    n = os.write(fd, op[2])
                    size = os.fstat(fd).st_size
                finally:
                    os.close(fd)
                return ("ok", (n, size))
            if kind == "create":
                fd = os.open(p(op[1]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    n = os.write(fd, op[2])
                finally:
                    os.close(fd)
                return ("ok", n)
            if kind == "truncate":
                os.truncate(p(op[1]), op[2])
                return ("ok", None)
            if kind == "rename":
                os.rename(p(op[1]), p(op[2]))
                return ("ok", None)
            if kind == "unlink":
                os.unlink(p(op[1]))
                return ("ok", None)
            if kind == "read":
                with open(p(op[1]), "rb") as f:
                    b = f.read()
                return ("ok", (len(b), md5hex(b)))
            if kind == "stat":
                st = os.stat(p(op[1]))
                return ("ok", (stat.S_IFMT(st.st_mode), st.st_size))
            if kind == "mkdir":
                os.mkdir(p(op[1]))
                return ("ok", None)
            if kind == "rmdir":
                os.rmdir(p(op[1]))
                return ("ok", None)
            raise ValueError(kind)
        except OSError as e:
            return ("err", errno.errorcode.get(e.errno, e.errno))

    @staticmethod
    def describe(mnt, local, op):
        """The files an operation names, on both sides, for a failure message."""
        out = []
        for rel in op[1:3]:
            if not isinstance(rel, str):
                continue
            sides = []
            for root in (mnt, local):
                try:
                    b = read_all(os.path.join(root, rel))
                    sides.append(b)
                except OSError as e:
                    sides.append(e)
            a, b = sides
            if isinstance(a, bytes) and isinstance(b, bytes):
                n = min(len(a), len(b))
                i = next((i for i in range(n) if a[i] != b[i]), n)
                out.append("  %s now: mount %d bytes (md5 %s), local %d bytes (md5 %s)%s"
                           % (rel, len(a), md5hex(a), len(b), md5hex(b),
                              "" if a == b else "; first difference at offset %d" % i))
            else:
                out.append("  %s now: mount %r, local %r" % (
                    rel, a if not isinstance(a, bytes) else "%d bytes" % len(a),
                    b if not isinstance(b, bytes) else "%d bytes" % len(b)))
        return "\n".join(out)

    @staticmethod
    def show(op):
        return "(%s)" % ", ".join("<%d bytes>" % len(x) if isinstance(x, bytes) else repr(x)
                                  for x in op)

    def test_random_operations(self):
        seed = int(os.environ.get("BFS_SEED") or random.randrange(1 << 31))
        rnd = random.Random(seed)
        local = os.path.join(self.tmp, "local")
        os.mkdir(local)
        history = []

        def ctx():
            return "\n[seed %d: replay with BFS_SEED=%d]\nlast operations:\n  %s" % (
                seed, seed, "\n  ".join("%4d %s -> %s" % h for h in history[-25:]))

        with self.mount(watchdog=900, exit_wait=600) as m:
            mnt = m.path("t")
            for d in ("d1",):
                os.mkdir(os.path.join(local, d))
                os.mkdir(os.path.join(mnt, d))
            t0 = time.monotonic()
            for i in range(1, self.NOPS + 1):
                op = self.draw(rnd, local)
                want = self.apply(local, op)
                got = self.apply(mnt, op)
                history.append((i, self.show(op), want))
                if got != want:
                    self.fail("operation %d %s: mount gave %r, local dir gave %r\n%s%s"
                              % (i, self.show(op), got, want,
                                 self.describe(mnt, local, op), ctx()))
                if i % 100 == 0:
                    diff = snapshot_diff(snapshot(mnt), snapshot(local))
                    if diff:
                        self.fail("trees differ after operation %d:\n%s%s" % (i, diff, ctx()))
            t1 = time.monotonic()
            want = snapshot(local)
            drain = m.unmount_wait()
        note("%d random operations (seed %d) in %.1fs; unmount waited %.1fs",
             self.NOPS, seed, t1 - t0, drain)
        # what S3 holds: the files, and a marker per directory
        want_keys = sorted([k for k, v in want.items() if v[0] == "f"] +
                           [k + "/" for k, v in want.items() if v[0] == "d"])
        self.assertEqual(self.rel_keys(), want_keys, "keys in S3 after unmount" + ctx())
        with self.mount() as m:
            diff = snapshot_diff(snapshot(m.path("t")), want)
            self.assertEqual(diff, "", "tree after remount with an empty cache" + ctx())


# ----------------------------------------------------------------- crash
class CrashTest(WriteTestCase):

    def test_kill9_after_last_close_of_two_writers(self):
        """Two writer handles on one file: once the second close returned,
        the data is journaled (a kill -9 right after loses nothing), though
        the kernel releases the handles only after close has returned."""
        cache = os.path.join(self.tmp, "cache")
        lost = []
        for i in range(5):
            a, b = os.urandom(300 * KiB + i), os.urandom(200 * KiB)
            with self.mount(opts={"cache_dir": cache, "upload_delay": "30s"}) as m:
                p = m.path("t", "two%d.bin" % i)
                fa = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
                fb = os.open(p, os.O_WRONLY)
                os.pwrite(fa, a, 0)
                os.pwrite(fb, b, len(a))
                os.close(fa)
                os.close(fb)
                m.kill9()  # at once: the uploads wait upload_delay
            with self.mount(opts={"cache_dir": cache}) as m:
                try:
                    got = file_md5(m.path("t", "two%d.bin" % i))
                except OSError as e:
                    got = repr(e)
                if got != (md5hex(a + b), len(a + b)):
                    lost.append("try %d: got %r, expected %d bytes" % (i, got, len(a + b)))
                m.unmount_wait()
        self.assertEqual(lost, [], "data of a closed file lost by a kill -9 after the close")

    def test_kill9_resumes_pending_uploads(self):
        cache = os.path.join(self.tmp, "cache")
        files = {"f%02d.bin" % i: os.urandom(4 * MiB + i) for i in range(40)}
        files["small.csv"] = b"last,one\n"
        # objects that exist in S3 and are replaced through the mount last
        # (so that their uploads are the likeliest to be pending)
        old = {"old%d.bin" % i: os.urandom(3 * MiB + 100 * i) for i in range(4)}
        self.put_many(old)
        for rel in old:
            files[rel] = os.urandom(2 * MiB + 7 * len(rel))
        with self.mount(opts={"cache_dir": cache}) as m:
            for rel, data in files.items():
                write_file(m.path("t", rel), data)
            m.kill9()
        rows = journal(cache)
        self.assertGreater(len(rows), 0, "precondition: no upload was pending when the daemon "
                           "was killed (they finished too fast); use more or larger files")
        note("kill -9 with %d of %d uploads pending", len(rows), len(files))
        pending = [k[len(self.p):] for _ino, k, *_rest in rows]
        at_kill = {}  # what was where when the daemon died, for the failure messages
        for ino, k, gen, size, *_rest in rows:
            st_path = os.path.join(cache, "staging", "%d-%d" % (ino, gen))
            h = self.head(k[len(self.p):])
            at_kill[k[len(self.p):]] = "journal size %d, staging file %s, S3 object %s" % (
                size, os.path.getsize(st_path) if os.path.exists(st_path) else "missing",
                "%d bytes" % h["ContentLength"] if h else "absent")
        with self.mount(opts={"cache_dir": cache}, exit_wait=300) as m:
            # the pending files first, by name, at once (before the resumed
            # uploads can finish): they are still there, from staging
            problems = []
            for rel in pending + [r for r in files if r not in pending]:
                try:
                    got = file_md5(m.path("t", rel))
                except OSError as e:
                    got = repr(e)
                if got != (md5hex(files[rel]), len(files[rel])):
                    if rel in old and got == (md5hex(old[rel]), len(old[rel])):
                        got = "the OLD object from S3 instead of the pending new data"
                    problems.append("%s (%d bytes)%s: got %s" % (
                        rel, len(files[rel]),
                        " (pending at the kill: %s)" % at_kill[rel] if rel in pending else "", got))
            listed = os.listdir(m.path("t"))
            t = m.unmount_wait()
        note("second mount: unmount waited %.1fs", t)
        # what S3 holds is checked first, then what the restarted mount showed
        for rel, data in files.items():
            with self.subTest(object=rel):
                self.assertObject(rel, md5=md5hex(data), size=len(data))
        self.assertEqual(sorted(files), self.rel_keys())
        self.assertEqual(journal(cache), [], "journal after the second mount exited")
        self.assertEqual(problems, [], "reading by name on the mount after the restart")
        self.assertNames(listed, files, "listing on the mount after the restart")

    def test_small_files_come_back_from_the_journal(self):
        """A small file's bytes are committed inside its journal row and its
        staging file is never fsynced: after a crash that lost or mangled
        those staging files (a power cut may), the next mount rewrites them
        from the journal and uploads the right bytes."""
        cache = os.path.join(self.tmp, "cache")
        inline_max = 64 * KiB
        files = {"s%02d.json" % i: os.urandom(100 * i + 1) for i in range(20)}
        files["empty.csv"] = b""
        files["edge.bin"] = os.urandom(inline_max)          # the largest kept in the row
        files["big.bin"] = os.urandom(inline_max + 1)       # fsynced, pointed at
        with self.mount(opts={"cache_dir": cache, "upload_delay": "1h"}) as m:
            for rel, data in files.items():
                write_file(m.path("t", rel), b"first version " + data)
            for rel, data in files.items():  # a second generation of each
                write_file(m.path("t", rel), data)
            m.kill9()
        rows = journal(cache, "SELECT u.key, u.gen, s.gen, length(s.data) FROM uploads u"
                       " LEFT JOIN staged s ON s.ino = u.ino ORDER BY u.key")
        kept = {k[len(self.p):]: (gen, sgen, n) for k, gen, sgen, n in rows}
        self.assertEqual(sorted(kept), sorted(files), "journal rows after kill -9")
        for rel, data in files.items():
            gen, sgen, n = kept[rel]
            if len(data) <= inline_max:
                self.assertEqual((sgen, n), (gen, len(data)), "%s: bytes in the journal" % rel)
            else:
                self.assertIsNone(sgen, "%s: a large file's bytes are not in the journal" % rel)
        # what a power cut may leave of files that were never fsynced
        mangled = 0
        for ino, gen, size in journal(cache, "SELECT ino, gen, size FROM uploads"):
            if size > inline_max:
                continue
            path = os.path.join(cache, "staging", "%d-%d" % (ino, gen))
            if mangled % 3 == 0:
                os.unlink(path)
            elif mangled % 3 == 1:
                os.truncate(path, 0)
            else:
                with open(path, "r+b") as f:
                    f.write(b"\0" * 7)
            mangled += 1
        self.assertEqual(mangled, len(files) - 1)
        with self.mount(opts={"cache_dir": cache}, exit_wait=120) as m:
            problems = []
            for rel, data in files.items():
                got = file_md5(m.path("t", rel))
                if got != (md5hex(data), len(data)):
                    problems.append("%s: got %s, want %s" % (rel, got, (md5hex(data), len(data))))
            m.unmount_wait()
        for rel, data in files.items():
            with self.subTest(object=rel):
                self.assertObject(rel, md5=md5hex(data), size=len(data))
        self.assertEqual(problems, [], "reading the files on the mount after the restart")
        self.assertEqual(journal(cache), [], "journal after the second mount exited")
        self.assertEqual(journal(cache, "SELECT ino, gen FROM staged"), [],
                         "bytes left in the journal after their uploads")

    def test_kill9_during_multipart(self):
        cache = os.path.join(self.tmp, "cache")
        size = 200 * MiB
        key = self.p + "huge.bin"
        h = hashlib.md5()
        # conflicts=overwrite: multipart whatever the server (on one that
        # ignores conditions on CompleteMultipartUpload, Ceph RGW 16, a
        # conditional upload goes as one PUT)
        with self.mount(opts={"cache_dir": cache, "conflicts": "overwrite"}) as m:
            fd = os.open(m.path("t", "huge.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
            for i in range(size // MiB):
                b = os.urandom(MiB)
                h.update(b)
                view = memoryview(b)
                while view:
                    view = view[os.write(fd, view):]
            os.close(fd)
            want = h.hexdigest()
            t0 = time.monotonic()
            row = None
            while time.monotonic() - t0 < 60:
                rows = journal(cache, "SELECT upload_id FROM uploads WHERE key = ?", (key,))
                if not rows:
                    self.fail("precondition: the upload finished before its UploadId was seen "
                              "in the journal (%.1fs)" % (time.monotonic() - t0))
                if rows[0][0]:
                    row = rows[0]
                    break
                time.sleep(0.01)
            self.assertIsNotNone(row, "no UploadId in the journal 60 s after close")
            time.sleep(0.3)  # let a few parts go
            m.kill9()
        upload_id = row[0]
        rows = journal(cache, "SELECT upload_id FROM uploads WHERE key = ?", (key,))
        self.assertEqual(len(rows), 1, "precondition: the upload was still pending when killed")
        self.assertIsNone(self.head("huge.bin"), "precondition: the object is not complete")
        if server_can("list_multipart"):
            ups = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads", [])
            note("after kill -9: multipart uploads open for the key: %s",
                 [u["UploadId"] for u in ups])
        with self.mount(opts={"cache_dir": cache}, exit_wait=300) as m:
            try:
                got = file_md5(m.path("t", "huge.bin"))
            except OSError as e:
                got = repr(e)
            listed = os.listdir(m.path("t"))
            t = m.unmount_wait()
        note("restart resumed the 200 MiB upload (first UploadId %s): unmount waited %.1fs",
             upload_id, t)
        # what S3 holds is checked first, then what the restarted mount showed
        self.assertObject("huge.bin", md5=want, size=size)
        self.assertEqual(journal(cache), [], "journal after the second mount exited")
        if server_can("list_multipart"):
            ups = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads", [])
            self.assertEqual([u["UploadId"] for u in ups], [],
                             "multipart uploads left open (leaked) for %s; the interrupted one "
                             "was %s" % (key, upload_id))
        else:
            note("%s cannot list multipart uploads: leak check skipped", SERVER)
        self.assertEqual(got, (want, size), "huge.bin read by name right after the restart, "
                         "while its upload was pending")
        self.assertEqual(listed, ["huge.bin"], "listing after the restart")


class ServerCopyTest(WriteTestCase):
    """cp (coreutils 9: copy_file_range) of a file that is in S3 to another
    name of the same bucket is one CopyObject made before cp returns: no
    data is uploaded, the copy is in S3 at once, and a kill -9 right after
    loses nothing (issue 15.3). What cannot be copied in S3 (the source not
    uploaded yet) is copied by the kernel through read and write."""

    def proxy(self):
        from test_s3_faults import Proxy
        p = Proxy("", args=("--log-headers", "x-amz-copy-source,content-length,range"))
        self.addCleanup(p.close)
        return p

    def requests(self, proxy, since, rel):
        """(method, headers line) of the requests for rel since line since."""
        key = "/" + self.p + rel
        return [ln for ln in proxy.lines()[since:]
                if ln.startswith("HEADERS ") and (ln.split(" ")[2].split("?")[0]).endswith(key)]

    def cp(self, *args):
        r = subprocess.run(["cp", *args], capture_output=True, text=True, timeout=120)
        self.assertEqual((r.returncode, r.stderr), (0, ""), "cp %s" % " ".join(args))

    def test_cp_of_uploaded_file_is_a_server_copy(self):
        data = os.urandom(3 * MiB + 5)
        self.put("model.bin", data)
        proxy = self.proxy()
        with self.mount(opts={"endpoint": proxy.url, "upload_delay": "1h"}) as m:
            mark = len(proxy.lines())
            self.cp(m.path("t", "model.bin"), m.path("t", "model-v2.bin"))
            # in S3 before any upload could have run (upload_delay 1h)
            self.assertObject("model-v2.bin", data=data, mode=0o100644)
            dst = self.requests(proxy, mark, "model-v2.bin")
            copies = [ln for ln in dst if "x-amz-copy-source=" in ln]
            self.assertEqual(len(copies), 1, "one CopyObject to the new name: %r" % dst)
            self.assertEqual([ln for ln in dst if ln.startswith("HEADERS PUT") and
                              "x-amz-copy-source=" not in ln], [],
                             "no upload of the data: %r" % dst)
            gets = [ln for ln in self.requests(proxy, mark, "model.bin")
                    if ln.startswith("HEADERS GET")]
            self.assertLessEqual(len(gets), 1, "the source is not read (but for the open's "
                                 "check of its first block): %r" % gets)
            self.assertEqual(read_all(m.path("t", "model-v2.bin")), data, "the copy on the mount")
            self.assertEqual(os.stat(m.path("t", "model-v2.bin")).st_size, len(data))
            self.assertEqual(journal(m.cache_dir), [], "nothing journaled for the copy")
            m.kill9()
        self.assertObject("model-v2.bin", data=data)
        with self.mount() as m:  # after the kill: a fresh mount shows it
            self.assertEqual(read_all(m.path("t", "model-v2.bin")), data)

    def test_cp_over_pending_file_and_append(self):
        """cp over a file whose own upload is pending replaces it (the
        pending upload is cancelled, not sent after the copy); an append
        through a new descriptor after the copy reads the copied object
        back and sends both."""
        data = os.urandom(2 * MiB)
        self.put("src.csv", data)
        with self.mount(opts={"upload_delay": "3s"}) as m:
            write_file(m.path("t", "dst.csv"), b"old pending content\n")
            self.cp(m.path("t", "src.csv"), m.path("t", "dst.csv"))
            self.assertObject("dst.csv", data=data)
            with open(m.path("t", "dst.csv"), "ab") as f:
                f.write(b"one more row\n")
            m.wait_uploads()
            self.assertEqual(read_all(m.path("t", "dst.csv")), data + b"one more row\n")
        self.assertObject("dst.csv", data=data + b"one more row\n")

    def test_cp_of_pending_file_copies_bytes(self):
        """A source whose data is not in S3 yet is copied through the kernel
        (no CopyObject), and both files end up in S3."""
        data = os.urandom(MiB + 17)
        proxy = self.proxy()
        with self.mount(opts={"endpoint": proxy.url, "upload_delay": "2s"}) as m:
            write_file(m.path("t", "fresh.bin"), data)
            mark = len(proxy.lines())
            self.cp(m.path("t", "fresh.bin"), m.path("t", "fresh-copy.bin"))
            self.assertEqual(read_all(m.path("t", "fresh-copy.bin")), data)
            m.wait_uploads()
            copies = [ln for ln in self.requests(proxy, mark, "fresh-copy.bin")
                      if "x-amz-copy-source=" in ln]
            self.assertEqual(copies, [], "no CopyObject of a source not in S3")
        self.assertObject("fresh.bin", data=data)
        self.assertObject("fresh-copy.bin", data=data)


class UploadedWriterAttrTest(WriteTestCase):
    """chmod and utime of a file whose data is all in S3 but which still has
    a writer (an fd open, fsync'd) rewrite the object's metadata with a
    copy onto itself; they do not upload the 3 MiB again (issue 17.8: a new
    generation was committed, so kill -9 then a restart sent it all)."""

    def test_chmod_of_uploaded_open_file_is_a_metadata_copy(self):
        from test_s3_faults import Proxy
        proxy = Proxy("", args=("--log-headers", "x-amz-copy-source,content-length"))
        self.addCleanup(proxy.close)
        data = os.urandom(3 * MiB)
        with self.mount(opts={"endpoint": proxy.url}) as m:
            path = m.path("t", "model.bin")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)  # in S3 now
                before = len(proxy.lines())
                os.chmod(path, 0o600)
                os.utime(path, (1700000000, 1700000000))
                after = proxy.lines()[before:]
                st = os.stat(path)
            finally:
                os.close(fd)
            journaled = journal(m.cache_dir)
            m.wait_uploads()
        heads = [ln for ln in after if ln.startswith("HEADERS PUT") and "model.bin" in ln]
        copies = [ln for ln in heads if "x-amz-copy-source=" in ln]
        self.assertEqual(len(copies), 2, "one metadata copy per change: %r" % after)
        self.assertEqual(heads, copies, "no PUT of the data after the upload: %r" % after)
        self.assertEqual(journaled, [], "nothing journaled by the attribute changes")
        self.assertEqual((st.st_mode & 0o777, int(st.st_mtime)), (0o600, 1700000000))
        self.assertObject("model.bin", data=data, mode=0o100600, mtime=1700000000)


# --------------------------------------------------------------- failures
class FailureTest(WriteTestCase):
    """Uploads the server refuses (403 AccessDenied from faultproxy.py in
    front of the real server) stay in the journal and are retried."""

    def proxy(self, plan):
        from test_s3_faults import Proxy
        p = Proxy(plan)
        self.addCleanup(p.close)
        return p

    def puts_of(self, proxy, rel):
        return [l for l in proxy.lines() if l.startswith("PUT ") and (self.p + rel) in l]

    def test_permanent_failure_retried_and_fsync_reports_it(self):
        # denied.csv only: the first upload of a mapping also PUTs a probe of
        # whether the server honours conditional writes (conflict.c)
        proxy = self.proxy("PUT@denied.csv:403,PUT@denied.csv:403")
        with self.mount(opts={"endpoint": proxy.url, "upload_retry_max": "2s"}) as m:
            fd = os.open(m.path("t", "denied.csv"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.write(fd, b"a,b\n1,2\n")
                self.assertEqual(errno_of(os.fsync, fd), errno.EACCES,
                                 "fsync must wait for the upload and return its error")
            finally:
                with contextlib.suppress(OSError):
                    os.close(fd)
            rows = journal(m.cache_dir)
            self.assertEqual(len(rows), 1, rows)
            self.assertEqual(rows[0][4], 1, "state failed: %r" % (rows,))
            self.assertIn("AccessDenied", rows[0][7] or "", rows)
            self.assertEqual(read_all(m.path("t", "denied.csv")), b"a,b\n1,2\n",
                             "the data stays readable while its upload fails")
            self.wait_until(lambda: self.head("denied.csv") is not None, 30,
                            "retried after upload_retry_max once the server accepts it")
            m.wait_uploads()
        puts = self.puts_of(proxy, "denied.csv")
        self.assertEqual([p.split(" -> ")[1] for p in puts][:3], ["403", "403", "forwarded 200"],
                         puts)
        self.assertObject("denied.csv", data=b"a,b\n1,2\n")

    def test_failed_upload_survives_unmount(self):
        proxy = self.proxy(",".join(["PUT:403"] * 100))
        cache = os.path.join(self.tmp, "cache")
        data = os.urandom(100 * KiB)
        with self.mount(opts={"endpoint": proxy.url, "cache_dir": cache,
                              "upload_retry_max": "1h"}) as m:
            write_file(m.path("t", "kept.bin"), data)
            self.wait_until(lambda: journal(m.cache_dir)[0][4] == 1, 20, "upload marked failed")
            took = m.unmount_wait()
        self.assertLess(took, 30, "unmount waited for an upload that keeps failing")
        self.assertIsNone(self.head("kept.bin"))
        rows = journal(cache)
        self.assertEqual([(r[1].endswith("kept.bin"), r[4]) for r in rows], [(True, 1)], rows)
        with self.mount(opts={"cache_dir": cache}) as m:  # straight to the server now
            m.wait_uploads()
        self.assertObject("kept.bin", data=data)


    def test_failed_unlink_and_rename_keep_closed_data(self):
        """An unlink whose DELETE the server refuses, and a rename over a
        file whose copy it refuses, fail (EACCES) and lose nothing: the
        files keep the data close returned for, and it is uploaded later
        (issue 17.2: the pending upload was cancelled before the S3 call)."""
        self.put("src.csv", b"src,1\n")
        proxy = self.proxy("DELETE@gone.csv:403,PUT@dst.csv:403")
        with self.mount(opts={"endpoint": proxy.url, "upload_delay": "2s"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("gone.csv"), b"first\n")
            m.wait_uploads()
            write_file(t("gone.csv"), b"second,pending\n")  # not uploaded yet
            self.assertEqual(errno_of(os.unlink, t("gone.csv")), errno.EACCES,
                             "unlink with the DELETE refused: %r" % proxy.lines())
            self.assertEqual(read_all(t("gone.csv")), b"second,pending\n",
                             "the file after a failed unlink")
            write_file(t("dst.csv"), b"dst,pending\n")  # pending when the rename is tried
            self.assertEqual(errno_of(os.rename, t("src.csv"), t("dst.csv")), errno.EACCES,
                             "rename with the copy refused: %r" % proxy.lines())
            self.assertEqual(read_all(t("dst.csv")), b"dst,pending\n",
                             "the replaced file after a failed rename")
            self.assertEqual(read_all(t("src.csv")), b"src,1\n")
            m.wait_uploads()
        self.assertObject("gone.csv", data=b"second,pending\n")
        self.assertObject("dst.csv", data=b"dst,pending\n")
        self.assertObject("src.csv", data=b"src,1\n")

    def test_listing_sent_before_an_upload_ended(self):
        """A LIST sent before an upload finished, answered after it (held by
        the proxy), must not make the uploaded file vanish: its snapshot is
        older than the file's row (b66555c; random ops on RGW found it)."""
        self.put("d/old.csv", b"old\n")
        self.put("dummy.txt", b"x")
        # the first LIST under d/ passes (lookup of d), the next is held 3 s
        proxy = self.proxy("GET@?%2Fd%2F:pass,GET@?%2Fd%2F:hold")
        with self.mount(opts={"endpoint": proxy.url, "metadata_ttl": "2",
                              "upload_delay": "3s"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            os.unlink(t("dummy.txt"))  # the mount's first page of keys goes
            t0 = time.monotonic()
            write_file(t("d", "new.csv"), b"new\n")  # uploaded 3 s after close
            time.sleep(max(0.0, t0 + 2.2 - time.monotonic()))  # d's listing is stale
            names = os.listdir(t("d"))  # LIST now, answered after the upload
            held = [l for l in proxy.lines() if "-> hold" in l]
            self.assertEqual(len(held), 1, "the proxy held no LIST: %r" % proxy.lines())
            self.assertIsNotNone(self.head("d/new.csv"), "uploaded while the LIST was held")
            self.assertIn("new.csv", names, "listing after the held LIST")
            self.assertEqual(read_all(t("d", "new.csv")), b"new\n")
            m.unmount_wait()
        self.assertEqual(self.rel_keys(), ["d/new.csv", "d/old.csv"])


# ------------------------------------------------------------------- big
class BigFileTest(WriteTestCase):

    def test_1gib_write(self):
        size = GiB
        pool = os.urandom(64 * MiB)
        h = hashlib.md5()
        with self.mount(watchdog=900, exit_wait=600) as m:
            hwm0 = m.hwm_mib()
            p = m.path("t", "1g.bin")
            in_write = 0.0
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            for i in range(size // MiB):
                off = (i * 4099 * 13) % (len(pool) - MiB)
                chunk = struct.pack("<Q", i) + pool[off + 8:off + MiB]
                h.update(chunk)
                t = time.monotonic()
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
                in_write += time.monotonic() - t
            t = time.monotonic()
            os.close(fd)
            t_close = time.monotonic() - t
            t1 = time.monotonic()
            want = h.hexdigest()
            got = file_md5(p)
            t2 = time.monotonic()
            self.assertEqual(got, (want, size), "1 GiB read back through the mount (staging)")
            up = m.wait_uploads(timeout=600)
            hwm = m.hwm_mib()
            s = m.stats()
            m.unmount_wait()
        note("1 GiB: write() %.1fs = %.0f MiB/s, close %.2fs; read back through the mount "
             "%.1fs = %.0f MiB/s; upload finished %.1fs after close (%.0f MiB/s, %d parts); daemon "
             "VmHWM %.1f MiB after mount, %.1f MiB after upload",
             in_write, 1024 / in_write, t_close, t2 - t1, 1024 / (t2 - t1),
             up + (t2 - t1), 1024 / (up + t2 - t1), s["by_op"]["mpu_part"], hwm0, hwm)
        t4 = time.monotonic()
        self.assertEqual(self.s3_md5("1g.bin"), (want, size), "1 GiB read back with boto3")
        note("boto3 streamed md5 in %.1fs", time.monotonic() - t4)
        self.assertLess(hwm, float(os.environ.get("BFS_RSS_LIMIT_MIB", "200")), "daemon peak RSS (VmHWM) %.1f MiB while writing and "
                        "uploading 1 GiB" % hwm)


def main():
    return tm.suite_main(__doc__, tools=("fusermount3", "rsync", "diff", "cp", "df", "sync"))


if __name__ == "__main__":
    sys.exit(main())
