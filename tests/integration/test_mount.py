#!/usr/bin/python3
"""Integration tests of the bucketfs mount (read side) against a live S3 server.

Run inside scripts/with-server.sh, which provides the server and the
AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / TEST_SERVER
environment:

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_mount.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Listing]

Every test mounts bucketfs on a fresh temporary mountpoint with a fresh cache
directory (unless it tests cache reuse), works under its own random key prefix
in bucket bfs-test (mapped as the directory "t"), and checks what it reads
through the mount against the bytes it uploaded with boto3.  Mounts are always
unmounted (fusermount3 -u; if that fails the daemon is killed and the mount
lazily detached), and a watchdog kills a daemon that hangs, so that one
failure cannot leave a stale mount behind for the tests that follow.

The request counters come from the mount root's xattr user.bucketfs.stats.
A few tests depend on the server (see tests/integration/README.md); the
differences are in SERVER_LIMITS and each skip names its reason.
"""
import argparse
import concurrent.futures
import contextlib
import errno
import glob
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

import boto3
from botocore.config import Config

BUCKETFS = None       # path of the bucketfs binary, from --bucketfs
CLI = None            # path of bfs-s3, from --cli
BUCKET = "bfs-test"
KiB = 1024
MiB = 1024 * 1024
GiB = 1024 * MiB
SERVER = os.environ.get("TEST_SERVER", "unknown")
TIMINGS = {}          # test name -> seconds, printed at the end

# What the servers used here do not do (tests/integration/README.md).
SERVER_LIMITS = {
    "s3rver": {
        # SigV4 signatures are not checked: a wrong secret is accepted
        "checks_sigv4": False,
        # GET If-Match is ignored, so a replaced object cannot be detected
        # by the conditional ranged GET
        "if_match": False,
        # "a//b" cannot be stored; key components longer than ~230 bytes
        # crash it; "x/./y" is stored as a file path (normalised)
        "odd_components": False,
    },
    "rgw": {},
}


def server_can(what):
    return SERVER_LIMITS.get(SERVER, {}).get(what, True)


def s3client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                      max_pool_connections=32, retries={"max_attempts": 3}),
    )


def md5hex(b):
    return hashlib.md5(b).hexdigest()


def file_md5(path, chunk=MiB):
    """MD5 and length of a file read sequentially in chunk-sized reads."""
    h, n = hashlib.md5(), 0
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
            n += len(b)
    return h.hexdigest(), n


def note(fmt, *args):
    """A line of information in the test output (timings, figures)."""
    print("\n  (" + (fmt % args if args else fmt) + ")", file=sys.stderr)


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def mounted(path):
    """True when path is a mount point in this mount namespace."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split(" ")[4]
            # mountinfo escapes space, tab, newline and backslash as \ooo
            mp = mp.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
            if mp == path:
                return True
    return False


def proc_state(pid):
    """The state letter of a process, or None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1]
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def alive(pid):
    s = proc_state(pid)
    return s is not None and s not in ("Z", "X")


def daemon_pids(mountpoint):
    """PIDs of live bucketfs processes whose command line names mountpoint
    (what `pgrep -f MOUNTPOINT` finds, without zombies or other programs)."""
    mountpoint = os.path.realpath(mountpoint)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) != b"bucketfs":
            continue
        if any(os.path.realpath(a.decode(errors="replace")) == mountpoint for a in argv[1:] if a):
            if alive(int(d)):
                pids.append(int(d))
    return pids


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def dir_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for n in files:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except FileNotFoundError:
                pass
    return total


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class MountError(AssertionError):
    pass


class Mount:
    """A bucketfs mount on a fresh temporary mountpoint, as a context manager.

    maps: list of (NAME, "s3://bucket/prefix") for --map, or None for none.
    opts: dict of -o options; cache_dir defaults to a fresh temp directory.
    Entering runs bucketfs (which daemonizes) and checks that the mount is up;
    leaving unmounts with fusermount3 -u, and when that fails kills the daemon
    and detaches the mount lazily, so that nothing is left behind.
    """

    def __init__(self, maps=None, opts=None, args=(), env=None, watchdog=180):
        self.maps = maps
        self.opts = dict(opts or {})
        self.args = list(args)
        self.env = env
        self.watchdog_s = watchdog
        self.mnt = tempfile.mkdtemp(prefix="bfs-mnt-")
        self.own_cache = "cache_dir" not in self.opts
        if self.own_cache:
            self.opts["cache_dir"] = tempfile.mkdtemp(prefix="bfs-cache-")
        self.cache_dir = self.opts["cache_dir"]
        self.pid = None
        self.timer = None
        self.watchdog_fired = False
        self.cmd = None
        self.stderr = ""
        self.unmounted = False

    # ---- life
    def command(self):
        cmd = [BUCKETFS]
        for name, url in self.maps or ():
            cmd += ["--map", "%s=%s" % (name, url)]
        cmd += self.args
        if self.opts:
            cmd += ["-o", ",".join(k if v is None else "%s=%s" % (k, v)
                                   for k, v in self.opts.items())]
        return cmd + [self.mnt]

    def __enter__(self):
        self.cmd = self.command()
        try:
            rc, self.stderr, elapsed = run_bucketfs(self.cmd, env=self.env, timeout=60)
            if rc is None:
                raise MountError("bucketfs did not exit within 60 s (it should daemonize once "
                                 "mounted)\n$ %s\nstderr: %s" % (shlex.join(self.cmd), self.stderr))
            if rc != 0:
                raise MountError("bucketfs failed to mount: exit status %d after %.1fs\n$ %s\n"
                                 "stderr: %s" % (rc, elapsed, shlex.join(self.cmd), self.stderr))
            deadline = time.monotonic() + 10
            while not mounted(self.mnt) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not mounted(self.mnt):
                raise MountError("bucketfs exited 0 but %s is not mounted\n$ %s\nstderr: %s"
                                 % (self.mnt, shlex.join(self.cmd), self.stderr))
            pids = daemon_pids(self.mnt)
            if len(pids) != 1:
                raise MountError("expected one bucketfs daemon for %s, found %r"
                                 % (self.mnt, pids))
            self.pid = pids[0]
            self.timer = threading.Timer(self.watchdog_s, self._watchdog)
            self.timer.daemon = True
            self.timer.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def _watchdog(self):
        # a hung FUSE daemon would block the test in the kernel forever;
        # killing it aborts the connection, so pending calls fail (ENOTCONN)
        self.watchdog_fired = True
        print("\n*** watchdog: bucketfs on %s still busy after %ds, killing pid %s"
              % (self.mnt, self.watchdog_s, self.pid), file=sys.stderr)
        if self.pid and alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)

    def __exit__(self, exc_type, exc, tb):
        problems = self.cleanup()
        if exc_type is None and problems:
            raise MountError("unmounting %s: %s" % (self.mnt, "; ".join(problems)))
        if problems:
            print("\n(also, while cleaning up after the failure: %s)" % "; ".join(problems),
                  file=sys.stderr)
        return False

    def unmount(self, timeout=60):
        """fusermount3 -u, then wait for the daemon to exit; returns problems."""
        problems = []
        if mounted(self.mnt):
            r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=timeout)
            if r.returncode != 0:
                problems.append("fusermount3 -u failed (%d): %s" % (r.returncode, r.stderr.strip()))
        if self.pid and not problems:
            deadline = time.monotonic() + 15
            while alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(self.pid):
                problems.append("daemon %d still running 15 s after fusermount3 -u" % self.pid)
        return problems

    def cleanup(self):
        """Idempotent: unmount whatever happens, kill the daemon if needed."""
        if self.unmounted:
            return []
        if self.timer:
            self.timer.cancel()
        problems = []
        if self.watchdog_fired:
            problems.append("watchdog killed a hung bucketfs after %ds" % self.watchdog_s)
        try:
            problems += self.unmount()
        except subprocess.TimeoutExpired:
            problems.append("fusermount3 -u hung")
        pids = set(daemon_pids(self.mnt))
        if self.pid and alive(self.pid):
            pids.add(self.pid)
        if pids or mounted(self.mnt):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for p in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, sig)
                deadline = time.monotonic() + 5
                while any(alive(p) for p in pids) and time.monotonic() < deadline:
                    time.sleep(0.05)
            if mounted(self.mnt):
                subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=30)
        if mounted(self.mnt):
            problems.append("%s is STILL mounted" % self.mnt)
        else:
            with contextlib.suppress(OSError):
                os.rmdir(self.mnt)
        if self.own_cache:
            shutil.rmtree(self.cache_dir, ignore_errors=True)
        self.unmounted = True
        return problems

    # ---- use
    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def stats(self):
        return json.loads(os.getxattr(self.mnt, "user.bucketfs.stats"))

    def hwm_mib(self):
        return vm_kib(self.pid, "VmHWM") / 1024


def run_bucketfs(cmd, env=None, timeout=60):
    """Runs bucketfs with stdout/stderr in files (the daemon must not hold a
    pipe of ours open). Returns (exit status or None on timeout, stderr, s)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             env=os.environ if env is None else env)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
        elapsed = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        text = (err.read() + out.read()).decode("utf-8", "replace")
    return rc, text, elapsed


class MountTestCase(unittest.TestCase):
    maxDiff = 8000

    @classmethod
    def setUpClass(cls):
        cls.s3 = s3client()

    def setUp(self):
        self.p = "tm-%s-%s/" % (self._testMethodName[5:][:40], uuid.uuid4().hex[:8])
        self.tmp = tempfile.mkdtemp(prefix="bfs-mt-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.t0 = time.monotonic()

    def tearDown(self):
        TIMINGS[self.id().split(".", 1)[1]] = time.monotonic() - self.t0

    def mount(self, maps="default", **kw):
        """A Mount with "t" mapped to this test's prefix in bfs-test, unless
        maps is given; always unmounted at the end of the test too."""
        if maps == "default":
            maps = [("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))]
        m = Mount(maps=maps, **kw)
        self.addCleanup(m.cleanup)
        return m

    # ---- server side (boto3)
    def put(self, key, data, bucket=BUCKET, **kw):
        return self.s3.put_object(Bucket=bucket, Key=self.p + key, Body=data, **kw)

    def put_many(self, items, bucket=BUCKET):
        """items: {relative key: bytes}; uploaded in parallel."""
        with concurrent.futures.ThreadPoolExecutor(32) as ex:
            list(ex.map(lambda kv: self.s3.put_object(Bucket=bucket, Key=self.p + kv[0],
                                                      Body=kv[1]), items.items()))

    def s3_keys(self, prefix=None, bucket=BUCKET):
        prefix = self.p if prefix is None else prefix
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def delete_prefix(self, prefix=None, bucket=BUCKET):
        keys = self.s3_keys(prefix, bucket)
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})

    # ---- the server's request log (TEST_SERVER_LOG)
    def server_gets(self):
        """GETs of objects under this test's prefix in the server's log."""
        log = os.environ.get("TEST_SERVER_LOG")
        self.assertTrue(log and os.path.exists(log), "TEST_SERVER_LOG is not set or missing")
        pat = re.compile(r"\bGET /%s/%s" % (BUCKET, re.escape(urllib.parse.quote(self.p))))
        with open(log, errors="replace") as f:
            return sum(1 for line in f
                       if pat.search(line) and (SERVER != "rgw" or "beast:" in line))

    def settled_server_gets(self):
        """server_gets() once it stopped changing for a second (log lines
        are written after the reply)."""
        last = self.server_gets()
        while True:
            time.sleep(1)
            now = self.server_gets()
            if now == last:
                return now
            last = now

    # ---- comparisons with useful failure messages
    def assertBytes(self, got, want, what="content"):
        if got == want:
            return
        n = min(len(got), len(want))
        i = next((i for i in range(n) if got[i] != want[i]), n)
        self.fail("%s differs: got %d bytes (md5 %s), want %d bytes (md5 %s); first difference "
                  "at offset %d: got %r, want %r"
                  % (what, len(got), md5hex(got), len(want), md5hex(want), i,
                     got[i:i + 24], want[i:i + 24]))

    def assertNames(self, got, want, what="directory entries"):
        got_l = list(got)
        dups = sorted({k for k in got_l if got_l.count(k) > 1}) if len(got_l) < 5000 else []
        missing = sorted(set(want) - set(got_l))
        extra = sorted(set(got_l) - set(want))
        if missing or extra or dups or len(got_l) != len(set(want)):
            self.fail("%s differ: got %d (%d distinct), want %d\n missing (%d): %r\n extra (%d): %r"
                      "\n listed more than once (%d): %r"
                      % (what, len(got_l), len(set(got_l)), len(set(want)), len(missing),
                         missing[:20], len(extra), extra[:20], len(dups), dups[:20]))

    def assertNotMounted(self, mnt, what):
        if mounted(mnt):
            subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)
            self.fail("%s: %s was left mounted" % (what, mnt))


# ------------------------------------------------------------------- root
class RootTest(MountTestCase):

    def test_root_lists_mappings(self):
        self.s3.put_object(Bucket="raw", Key=self.p + "in-raw.csv", Body=b"a,b\n1,2\n")
        self.s3.put_object(Bucket="models", Key=self.p + "m.bin", Body=b"\x00model")
        with self.mount(maps=[("raw", "s3://raw"), ("processed", "s3://processed"),
                              ("models", "s3://models")]) as m:
            self.assertEqual(sorted(os.listdir(m.mnt)), ["models", "processed", "raw"])
            for name in ("raw", "processed", "models"):
                self.assertTrue(stat.S_ISDIR(os.stat(m.path(name)).st_mode), name)
            self.assertIn(self.p.rstrip("/"), os.listdir(m.path("raw")))
            self.assertEqual(read_all(m.path("raw", self.p, "in-raw.csv")), b"a,b\n1,2\n")
            self.assertEqual(read_all(m.path("models", self.p, "m.bin")), b"\x00model")
            self.assertFalse(os.path.exists(m.path("processed", self.p)),
                             "a prefix of bucket raw must not appear in processed")
            self.assertFalse(os.path.exists(m.path("bfs-test")),
                             "with mappings, the root holds only the mappings")

    def test_root_without_maps_lists_buckets(self):
        self.put("hello.txt", b"hello from bfs-test\n")
        want = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        with self.mount(maps=None) as m:
            names = os.listdir(m.mnt)
            self.assertNames(names, want, "root entries (ListBuckets)")
            for b in ("bfs-test", "raw", "processed", "models"):
                self.assertIn(b, names)
                self.assertTrue(os.path.isdir(m.path(b)), b)
            self.assertEqual(read_all(m.path(BUCKET, self.p, "hello.txt")),
                             b"hello from bfs-test\n")
            self.assertGreaterEqual(m.stats()["by_op"]["list_buckets"], 1)

    def test_new_bucket_found_once_by_concurrent_lookups(self):
        """A bucket made after the mount, looked up by 16 threads at once
        (with unknown names beside it, each a ListBuckets refresh): it shows
        up once in the root, and works."""
        name = "bfs-new-%s" % uuid.uuid4().hex[:8]
        with self.mount(maps=None) as m:
            os.listdir(m.mnt)
            self.s3.create_bucket(Bucket=name)
            self.addCleanup(self.s3.delete_bucket, Bucket=name)
            names = [name if i % 2 else "no-such-bucket-%d" % i for i in range(16)]
            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                found = list(ex.map(lambda n: os.path.isdir(m.path(n)), names))
            self.assertEqual(found, [bool(i % 2) for i in range(16)], "isdir of each name")
            entries = os.listdir(m.mnt)
            self.assertEqual(entries.count(name), 1, "the new bucket in the root: %r" % entries)
            self.assertEqual(os.listdir(m.path(name)), [])


# ---------------------------------------------------------------- listing
class ListingTest(MountTestCase):

    def test_empty_prefix_and_empty_bucket(self):
        empty_bucket = "bfs-empty-" + uuid.uuid4().hex[:8]
        self.s3.create_bucket(Bucket=empty_bucket)
        self.addCleanup(self.s3.delete_bucket, Bucket=empty_bucket)
        with self.mount(maps=[("p", "s3://%s/%snothing-here" % (BUCKET, self.p)),
                              ("e", "s3://" + empty_bucket)]) as m:
            for name in ("p", "e"):
                self.assertTrue(stat.S_ISDIR(os.stat(m.path(name)).st_mode), name)
                self.assertEqual(os.listdir(m.path(name)), [], name)
            with self.assertRaises(FileNotFoundError):
                os.stat(m.path("e", "no-such-file"))

    def test_dir_marker(self):
        self.put("emptydir/", b"")
        self.put("full/", b"")
        self.put("full/f.txt", b"in full\n")
        with self.mount() as m:
            # looked up by name first (fresh mount), then listed
            st = os.stat(m.path("t", "emptydir"))
            self.assertTrue(stat.S_ISDIR(st.st_mode), "a dir/ marker is a directory: %o" % st.st_mode)
            self.assertEqual(os.listdir(m.path("t", "emptydir")), [])
            self.assertNames(os.listdir(m.path("t")), ["emptydir", "full"])
            self.assertTrue(os.path.isdir(m.path("t", "emptydir")))
            self.assertTrue(os.path.isdir(m.path("t", "full")))
            self.assertEqual(os.listdir(m.path("t", "full")), ["f.txt"],
                             "a marker must not show up as an entry of its own directory")
            self.assertEqual(read_all(m.path("t", "full", "f.txt")), b"in full\n")

    def test_nested_implicit_dirs(self):
        files = {"l1/l2/l3/deep.txt": b"deep\n", "l1/l2/mid.txt": b"mid\n",
                 "l1/top.txt": b"top\n", "only/deeper/still/x.bin": os.urandom(1000)}
        self.put_many(files)
        with self.mount() as m:
            # by name on a fresh mount
            self.assertEqual(read_all(m.path("t", "l1", "l2", "l3", "deep.txt")), b"deep\n")
            # then by listing
            self.assertNames(os.listdir(m.path("t")), ["l1", "only"])
            self.assertNames(os.listdir(m.path("t", "l1")), ["l2", "top.txt"])
            self.assertNames(os.listdir(m.path("t", "l1", "l2")), ["l3", "mid.txt"])
            self.assertNames(os.listdir(m.path("t", "l1", "l2", "l3")), ["deep.txt"])
            self.assertNames(os.listdir(m.path("t", "only")), ["deeper"])
            self.assertNames(os.listdir(m.path("t", "only", "deeper")), ["still"])
            for d in ("l1", "l1/l2", "l1/l2/l3", "only", "only/deeper", "only/deeper/still"):
                self.assertTrue(stat.S_ISDIR(os.stat(m.path("t", d)).st_mode), d)
            found = {}
            for root, _dirs, names in os.walk(m.path("t")):
                for n in names:
                    p = os.path.join(root, n)
                    found[os.path.relpath(p, m.path("t"))] = read_all(p)
            self.assertEqual(sorted(found), sorted(files))
            for k, v in files.items():
                self.assertBytes(found[k], v, k)

    def test_many_objects_one_dir(self):
        n = 2500
        objs = {"obj-%05d.dat" % i: b"x" * ((i * 7) % 101) for i in range(n)}
        t0 = time.monotonic()
        self.put_many(objs)
        note("uploaded %d objects in %.1fs", n, time.monotonic() - t0)
        with self.mount() as m:
            s0 = m.stats()
            names = os.listdir(m.path("t"))
            self.assertNames(names, objs, "entries of a directory of %d objects" % n)
            s1 = m.stats()
            sizes = {name: os.lstat(m.path("t", name)).st_size for name in names}
            modes = {os.lstat(m.path("t", name)).st_mode for name in names}
            s2 = m.stats()
            self.assertEqual(sizes, {k: len(v) for k, v in objs.items()}, "sizes from the listing")
            self.assertEqual(modes, {stat.S_IFREG | 0o644})
            self.assertEqual(s2["by_op"]["head"] - s1["by_op"]["head"], 0,
                             "stat of every listed entry must not send HEADs: %r -> %r"
                             % (s1["by_op"], s2["by_op"]))
            lists = s2["by_op"]["list"] - s0["by_op"]["list"]
            # list_meta=auto: a sample of at most 8 objects per page, which
            # carry no metadata here, so nothing more
            self.assertLessEqual(s1["by_op"]["head"] - s0["by_op"]["head"], 8 * lists,
                                 "listing objects without metadata sends its sample only: "
                                 "%r -> %r" % (s0["by_op"], s1["by_op"]))
            note("listdir + lstat of %d entries: %d LIST, %d HEAD", n, lists,
                 s2["by_op"]["head"] - s0["by_op"]["head"])
            self.assertLessEqual(lists, 5, "listing %d entries and stat-ing each took %d LISTs"
                                 % (n, lists))
            self.assertGreaterEqual(lists, 3, "2,500 keys need 3 pages of 1,000")

    def test_ls_deep_dir_request_budget(self):
        """ls -l lv1/lv2/big (2,500 objects) on a fresh mount: the mount's
        check lists the first 1,000 keys, which show lv1, lv2 and big are
        directories without markers, so the lookups need no request: 3
        LISTs (the pages) and at most 8 HEADs per page (list_meta=auto's
        sample, which shows the objects carry no metadata). zz, past that
        first page, is looked
        up with one LIST that, being all of zz, is kept as its listing:
        names not in it cost nothing, and a name asked for by itself still
        gets its metadata (one HEAD)."""
        n = 2500
        objs = {"lv1/lv2/big/f%05d.csv" % i: b"x" * (i % 13) for i in range(n)}
        objs["lv1/lv2/other.bin"] = b"m"
        objs["zz/data.csv"] = b"a,b\n"
        self.put_many(objs)
        self.put("zz/exec.sh", b"#!/bin/sh\n", Metadata={"mode": str(stat.S_IFREG | 0o755)})
        with self.mount() as m:
            s0 = m.stats()["by_op"]
            r = subprocess.run(["ls", "-l", m.path("t", "lv1", "lv2", "big")],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(r.stdout.splitlines()), n + 1, "ls -l lines (with 'total')")
            s1 = m.stats()["by_op"]
            lists, heads = s1["list"] - s0["list"], s1["head"] - s0["head"]
            note("ls -l t/lv1/lv2/big (%d entries) on a fresh mount: %d LIST, %d HEAD",
                 n, lists, heads)
            self.assertEqual(lists, 3, "LISTs for ls -l: %r -> %r" % (s0, s1))
            self.assertLessEqual(heads, 3 * 8, "HEADs for ls -l (the sample): %r -> %r" % (s0, s1))
            self.assertTrue(os.path.isdir(m.path("t", "zz")))
            s2 = m.stats()["by_op"]
            self.assertEqual((s2["list"] - s1["list"], s2["head"] - s1["head"]), (1, 0),
                             "requests for the lookup of zz")
            for missing in ("nothere.csv", "nodir", ".hidden"):
                self.assertFalse(os.path.exists(m.path("t", "zz", missing)))
            s3 = m.stats()["by_op"]
            self.assertEqual((s3["list"], s3["head"]), (s2["list"], s2["head"]),
                             "requests for names absent from a listed directory")
            st = os.stat(m.path("t", "zz", "exec.sh"))
            self.assertEqual(oct(st.st_mode), oct(stat.S_IFREG | 0o755), "mode from metadata")
            s4 = m.stats()["by_op"]
            self.assertEqual((s4["head"] - s3["head"], s4["list"] - s3["list"]), (1, 0),
                             "requests for a file of a listed directory, by name")

    ODD_NAMES = [
        "with space.txt", "  two  spaces  ", "ünïcödé-日本語-😀.txt", "a+b.txt", "100%.txt",
        "50%25.txt", "%2F.txt", "tilde~x.txt", "k=v.txt", "amp&and.txt", "semi;colon.txt",
        "comma,name.txt", "at@sign.txt", "dollar$.txt", "paren(1).txt", "quote'.txt",
        "hash#.txt", "question?.txt", "star*.txt", "bang!.txt", "[brackets].txt",
        "caret^.txt", "back`tick.txt", "pipe|.txt", "brace{}.txt", "lt<gt>.txt", 'dq".txt',
        "back\\slash.txt", ".hidden", "trailing.", "-dash", "plus+ space %20.txt",
    ]

    def test_odd_key_names(self):
        files = {n: ("content of %s\n" % n).encode() for n in self.ODD_NAMES}
        files["dir with space+plus%/ü ~=.txt"] = b"nested odd\n"
        self.put_many(files)
        stored = {k[len(self.p):] for k in self.s3_keys()}
        self.assertEqual(stored, set(files), "precondition: the server stored the keys as given")
        with self.mount() as m:
            # by name on a fresh mount (HEAD / GET of encoded keys)
            for name, data in files.items():
                with self.subTest(name=name, how="by name"):
                    p = m.path("t", *name.split("/"))
                    self.assertEqual(os.stat(p).st_size, len(data))
                    self.assertEqual(read_all(p), data)
            # by listing
            self.assertNames(os.listdir(m.path("t")),
                             self.ODD_NAMES + ["dir with space+plus%"])
            self.assertNames(os.listdir(m.path("t", "dir with space+plus%")), ["ü ~=.txt"])
            for name, data in files.items():
                with self.subTest(name=name, how="xattr"):
                    p = m.path("t", *name.split("/"))
                    self.assertEqual(os.getxattr(p, "user.s3.key").decode(), self.p + name)
                    self.assertEqual(os.getxattr(p, "user.s3.bucket").decode(), BUCKET)

    def test_unrepresentable_keys_skipped(self):
        if not server_can("odd_components"):
            self.skipTest("%s cannot store a//b, x/./y or 300-byte key components" % SERVER)
        long = "L" * 300
        bad = ["e1//b", "x/./y", "x2/../y", "./dot", "../dotdot", long, "long/" + long,
               "long/" + long + "/z"]
        good = {"ok.txt": b"fine\n", "x/good.txt": b"good\n"}
        self.put_many(dict(good, **{k: b"bad key " + k.encode() for k in bad}))
        stored = {k[len(self.p):] for k in self.s3_keys()}
        self.assertEqual(stored, set(bad) | set(good),
                         "precondition: the server stored the keys as given")
        with self.mount() as m:
            files, dirs = {}, []
            for root, dnames, fnames in os.walk(m.path("t")):
                for n in dnames + fnames:
                    self.assertLessEqual(len(n.encode()), 255, "over-long name listed")
                    self.assertNotIn(n, ("", ".", ".."), "an impossible name was listed")
                for n in fnames:
                    p = os.path.join(root, n)
                    files[os.path.relpath(p, m.path("t"))] = read_all(p)
                dirs += [os.path.relpath(os.path.join(root, d), m.path("t")) for d in dnames]
            self.assertEqual(files, good, "only the representable keys are files")
            # prefixes of skipped keys may show up as (empty) directories
            self.assertLessEqual(set(dirs), {"e1", "x", "x2", "long"})
            for d in set(dirs) - {"x"}:
                self.assertEqual(os.listdir(m.path("t", d)), [], d)
            self.assertEqual(os.listdir(m.path("t", "x")), ["good.txt"])
            self.assertGreater(m.stats()["skipped_keys"], 0, "skipped keys must be counted")
            # still serving
            self.assertEqual(read_all(m.path("t", "ok.txt")), b"fine\n")

    def test_lookups_of_neighbouring_names(self):
        """Names that sort next to each other ("a", "a-b", "a.c", "a/"...):
        on a fresh mount, lookups answered from the mount's first page of
        keys (or from S3) see each for what it is, and no more."""
        keys = {"a/y.csv": b"y", "a-b/x.csv": b"x", "a.c": b"c", "a0": b"0", "b/c/d/e.txt": b"e",
                "m/": b"", "m/n.txt": b"n"}
        self.put_many(keys)
        with self.mount() as m:
            want = {"a": "d", "a-b": "d", "a.c": "f", "a0": "f", "b": "d", "m": "d",
                    "ab": None, "a-": None, "a-b.c": None, "b/c": "d", "b/c/d": "d",
                    "b/c/d/e.txt": "f", "b/c/e": None, "a/y.csv": "f", "a-b/x.csv": "f",
                    "m/n.txt": "f", "a.c/x": None}
            got = {}
            for rel in want:
                p = m.path("t", *rel.split("/"))
                got[rel] = "d" if os.path.isdir(p) else "f" if os.path.isfile(p) else (
                    None if not os.path.lexists(p) else "?")
            self.assertEqual(got, want)
            self.assertEqual(read_all(m.path("t", "a-b", "x.csv")), b"x")

    def test_object_and_prefix_same_name(self):
        self.put_many({"dup": b"I am a file\n", "dup/inner": b"inner\n"})
        stored = {k[len(self.p):] for k in self.s3_keys()}
        if stored != {"dup", "dup/inner"}:
            self.skipTest("%s cannot store both dup and dup/inner (stored %r)" % (SERVER, stored))
        # by name on a fresh mount
        with self.mount() as m:
            self.assertTrue(stat.S_ISDIR(os.stat(m.path("t", "dup")).st_mode),
                            "a directory shadows an object of the same name (by name)")
            self.assertEqual(read_all(m.path("t", "dup", "inner")), b"inner\n")
            self.assertEqual(os.listdir(m.path("t")), ["dup"])
        # by listing on a fresh mount
        with self.mount() as m:
            self.assertEqual(os.listdir(m.path("t")), ["dup"],
                             "dup must be listed once, as the directory")
            self.assertTrue(os.path.isdir(m.path("t", "dup")))
            self.assertEqual(os.listdir(m.path("t", "dup")), ["inner"])


# ------------------------------------------------------------- attributes
class AttributeTest(MountTestCase):

    def test_s3fs_metadata_by_name(self):
        self.put("meta.bin", b"0123456789", Metadata={
            "mode": "33152", "uid": "1234", "gid": "2345", "mtime": "1600000000.5"})
        self.put("sub/meta2.bin", b"abc", Metadata={
            "mode": str(stat.S_IFREG | 0o751), "uid": "7", "gid": "8", "mtime": "1500000000"})
        with self.mount() as m:
            st = os.stat(m.path("t", "meta.bin"))  # before any listing
            self.assertEqual(oct(st.st_mode), oct(stat.S_IFREG | 0o600))
            self.assertEqual((st.st_uid, st.st_gid), (1234, 2345))
            self.assertEqual(st.st_mtime_ns, 1600000000500000000)
            self.assertEqual(st.st_size, 10)
            st = os.stat(m.path("t", "sub", "meta2.bin"))
            self.assertEqual(oct(st.st_mode), oct(stat.S_IFREG | 0o751))
            self.assertEqual((st.st_uid, st.st_gid, st.st_mtime_ns), (7, 8, 1500000000 * 10**9))
            self.assertEqual(read_all(m.path("t", "meta.bin")), b"0123456789")

    def test_defaults_without_metadata(self):
        data = os.urandom(12345)
        self.put("plain.bin", data)
        self.put("d/inner", b"x")
        lm = self.s3.head_object(Bucket=BUCKET, Key=self.p + "plain.bin")["LastModified"].timestamp()
        with self.mount() as m:
            for how in ("by name", "after listing"):
                with self.subTest(how=how):
                    if how == "after listing":
                        os.listdir(m.path("t"))
                    st = os.stat(m.path("t", "plain.bin"))
                    self.assertEqual(oct(st.st_mode), oct(stat.S_IFREG | 0o644))
                    self.assertEqual((st.st_uid, st.st_gid), (os.getuid(), os.getgid()))
                    self.assertEqual(st.st_size, len(data))
                    self.assertLessEqual(abs(st.st_mtime - lm), 1.0,
                                         "mtime %s vs LastModified %s" % (st.st_mtime, lm))
                    dst = os.stat(m.path("t", "d"))
                    self.assertEqual(oct(dst.st_mode), oct(stat.S_IFDIR | 0o755))
                    self.assertEqual((dst.st_uid, dst.st_gid), (os.getuid(), os.getgid()))
            self.assertEqual(read_all(m.path("t", "plain.bin")), data)

    def test_uid_gid_options(self):
        self.put("plain.bin", b"abc")
        self.put("d/inner", b"x")
        self.put("meta.bin", b"m", Metadata={"uid": "1234", "gid": "2345"})
        with self.mount(opts={"uid": 4321, "gid": 5432}) as m:
            for p in (("t", "plain.bin"), ("t", "d"), ("t",)):
                st = os.stat(m.path(*p))
                self.assertEqual((st.st_uid, st.st_gid), (4321, 5432), "/".join(p))
            st = os.stat(m.path("t", "meta.bin"))
            self.assertEqual((st.st_uid, st.st_gid), (1234, 2345),
                             "object metadata wins over the mount defaults")

    def test_mode_options(self):
        self.put("plain.bin", b"abc")
        self.put("implicit/inner", b"x")
        self.put("marker/", b"")
        with self.mount(opts={"file_mode": "0640", "dir_mode": "0750", "umask": "0007"}) as m:
            for how in ("by name", "after listing"):
                with self.subTest(how=how):
                    if how == "after listing":
                        os.listdir(m.path("t"))
                    self.assertEqual(oct(os.stat(m.path("t", "plain.bin")).st_mode),
                                     oct(stat.S_IFREG | 0o640))
                    self.assertEqual(oct(os.stat(m.path("t", "implicit", "inner")).st_mode),
                                     oct(stat.S_IFREG | 0o640))
                    for d in ("implicit", "marker"):
                        self.assertEqual(oct(os.stat(m.path("t", d)).st_mode),
                                         oct(stat.S_IFDIR | 0o750), d)
            self.assertEqual(oct(os.stat(m.path("t")).st_mode), oct(stat.S_IFDIR | 0o750),
                             "the mapping directory")

    def test_umask_option(self):
        self.put("plain.bin", b"abc")
        self.put("implicit/inner", b"x")
        with self.mount(opts={"umask": "0077"}) as m:
            self.assertEqual(oct(os.stat(m.path("t", "plain.bin")).st_mode),
                             oct(stat.S_IFREG | 0o600))
            self.assertEqual(oct(os.stat(m.path("t", "implicit")).st_mode),
                             oct(stat.S_IFDIR | 0o700))
            os.listdir(m.path("t"))
            self.assertEqual(oct(os.stat(m.path("t", "plain.bin")).st_mode),
                             oct(stat.S_IFREG | 0o600), "after listing")

    def test_symlink(self):
        self.put("target.txt", b"the target\n")
        self.put("link", b"target.txt", Metadata={"mode": "41471"})
        self.put("sub/abs", b"/etc/hostname", Metadata={"mode": "41471"})
        with self.mount() as m:
            st = os.lstat(m.path("t", "link"))  # by name, before listing
            self.assertTrue(stat.S_ISLNK(st.st_mode), "mode %o is not a symlink" % st.st_mode)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o777)
            self.assertEqual(os.readlink(m.path("t", "link")), "target.txt")
            self.assertEqual(st.st_size, len("target.txt"))
            self.assertEqual(read_all(m.path("t", "link")), b"the target\n",
                             "opening the link follows it")
            self.assertEqual(os.readlink(m.path("t", "sub", "abs")), "/etc/hostname")


# ------------------------------------------------------------------- data
class DataTest(MountTestCase):

    SIZES = [0, 1, 4095, 4096, MiB - 1, MiB, MiB + 1, 3 * MiB + 17, 25 * MiB]

    def test_sizes(self):
        files = {"f-%d" % n: os.urandom(n) for n in self.SIZES}
        self.put_many(files)
        with self.mount() as m:
            for name, data in files.items():
                with self.subTest(size=len(data)):
                    p = m.path("t", name)
                    self.assertEqual(os.stat(p).st_size, len(data), "st_size")
                    self.assertEqual(file_md5(p), (md5hex(data), len(data)),
                                     "md5 and length read through the mount")
            # small and odd read sizes, through a second open
            for name, data in files.items():
                with self.subTest(size=len(data), how="4097-byte reads"):
                    self.assertEqual(file_md5(m.path("t", name), chunk=4097),
                                     (md5hex(data), len(data)))
            # cat, as a program would
            r = subprocess.run(["cat", m.path("t", "f-%d" % (3 * MiB + 17))], capture_output=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertBytes(r.stdout, files["f-%d" % (3 * MiB + 17)], "cat")
            s = m.stats()
            self.assertEqual(s["errors"], 0, "S3 errors while reading: %r" % s)

    def test_random_preads(self):
        size = 25 * MiB
        data = os.urandom(size)
        self.put("big.bin", data)
        seed = random.randrange(1 << 30)
        rnd = random.Random(seed)
        with self.mount() as m:
            p = m.path("t", "big.bin")
            # one small read far into the file fetches only its block
            with open(p, "rb", buffering=0) as f:
                self.assertBytes(os.pread(f.fileno(), 100, 20 * MiB + 5), data[20 * MiB + 5:][:100])
            s = m.stats()
            self.assertLessEqual(s["bytes_down"], 2 * MiB + 64 * KiB,
                                 "a 100-byte random read downloaded %d bytes" % s["bytes_down"])
            pairs = [(size - 1, 1), (size - 10, 100), (size, 10), (size + MiB, 10), (0, 1),
                     (MiB - 1, 2), (2 * MiB - 3, MiB + 6)]
            while len(pairs) < 200:
                off = rnd.randrange(size)
                ln = rnd.choice((1, rnd.randrange(1, 4096), rnd.randrange(1, 300 * KiB),
                                 rnd.randrange(1, 3 * MiB)))
                pairs.append((off, ln))
            rnd.shuffle(pairs)
            with open(p, "rb", buffering=0) as f:
                for off, ln in pairs:
                    got = os.pread(f.fileno(), ln, off)
                    if got != data[off:off + ln]:
                        self.assertBytes(got, data[off:off + ln],
                                         "pread(%d bytes at %d) [seed %d]" % (ln, off, seed))

    def run_readers(self, nthreads, fn):
        """fn(rnd) in nthreads threads; returns the errors they reported."""
        errors = []

        def worker(seed):
            try:
                fn(random.Random(seed))
            except (OSError, AssertionError) as e:
                errors.append("thread %d: %s" % (seed, e))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "readers still blocked after 120 s")
        return errors

    def test_open_read_close_from_many_threads(self):
        """Handles released right after reads the daemon answers before it is
        done with them: a read of a missing block answered from inside its
        GET (the rest of the block still coming), and large reads of cached
        blocks spliced from their files. The daemon must not touch a released
        handle (a hang and a crash once; under AddressSanitizer a use after
        free)."""
        size = 8 * MiB
        data = os.urandom(size)
        self.put("shared.bin", data)
        with self.mount(opts={"block_size": "128K"}) as m:
            p = m.path("t", "shared.bin")

            def cold(rnd):  # the second read of a handle answers from its GET
                for _ in range(12):
                    fd = os.open(p, os.O_RDONLY)
                    try:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                        offs = [rnd.randrange(0, size - 4096) for _ in range(2)]
                        got = [os.pread(fd, 4096, off) for off in offs]
                    finally:
                        os.close(fd)
                    for off, b in zip(offs, got):
                        if b != data[off:off + 4096]:
                            raise AssertionError("4 KiB at %d differ" % off)

            self.assertEqual(self.run_readers(8, cold), [])
            s0 = m.stats()
            self.assertGreater(s0["early_answers"], 0,
                               "no read was answered from inside its GET: %r" % s0)
            file_md5(p)  # every block cached: large reads go by splice from block files

            def warm(rnd):
                for _ in range(200):
                    fd = os.open(p, os.O_RDONLY)
                    try:
                        off = rnd.randrange(0, size - 128 * KiB) & ~4095
                        got = os.pread(fd, 128 * KiB, off)
                    finally:
                        os.close(fd)
                    if got != data[off:off + 128 * KiB]:
                        raise AssertionError("128 KiB at %d differ" % off)

            self.assertEqual(self.run_readers(16, warm), [])
            s = m.stats()
            self.assertGreater(s["cache"]["hits"] - s0["cache"]["hits"],
                               s["cache"]["misses"] - s0["cache"]["misses"],
                               "the reads were not answered from the cache: %r" % s["cache"])

    def test_first_read_starts_no_read_ahead(self):
        """Reading the start of a file (a header) and then elsewhere fetches
        only the blocks read: read-ahead waits for a second sequential
        read, which a sequential reader makes at once."""
        data = os.urandom(12 * MiB)
        self.put("hdr.bin", data)
        with self.mount(opts={"block_size": "1M"}) as m:
            with open(m.path("t", "hdr.bin"), "rb", buffering=0) as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)  # no kernel read-ahead
                self.assertBytes(os.pread(f.fileno(), 1, 0), data[:1], "first byte")
                off = 7 * MiB + 3
                self.assertBytes(os.pread(f.fileno(), 100, off), data[off:off + 100])
                for _ in range(200):  # the first read returned before its block was cached
                    if m.stats()["cache"]["blocks"] >= 2:
                        break
                    time.sleep(0.05)
                s = m.stats()
            self.assertEqual((s["ranged_gets"], s["readahead_blocks"], s["cache"]["blocks"]),
                             (2, 0, 2), "blocks 0 and 7 only: %r" % s)
            self.assertEqual(file_md5(m.path("t", "hdr.bin")), (md5hex(data), len(data)))
            self.assertGreater(m.stats()["readahead_blocks"], 0, "a sequential reader reads ahead")

    def test_block_get_cut_short_and_retried(self):
        """A block GET that the network cuts half-way is tried again from
        the start while a reader already took the first bytes from it (a
        reader does not wait for whole blocks): the retry must not disturb
        what was handed out, and the file reads right."""
        from test_s3_faults import Proxy
        size = 3 * MiB + 100
        data = os.urandom(size)
        self.put("cut.bin", data)
        proxy = Proxy("GET@%scut.bin:truncate" % self.p)
        self.addCleanup(proxy.close)
        with self.mount(opts={"endpoint": proxy.url, "block_size": "1M"}) as m:
            self.assertEqual(file_md5(m.path("t", "cut.bin"), chunk=64 * KiB),
                             (md5hex(data), size), "read through a GET cut short")
            s = m.stats()
        cut = [l for l in proxy.lines() if "cut.bin -> truncate" in l]
        self.assertEqual(len(cut), 1, "the proxy cut one block GET: %r" % proxy.lines())
        self.assertGreaterEqual(s["retries"], 1, "the cut GET was retried: %r" % s)
        self.assertEqual(s["ranged_gets"], 4, "one ranged GET per block (retries inside): %r" % s)

    def test_1gib_sequential_read_rss(self):
        size = GiB
        path = os.path.join(self.tmp, "1g.bin")
        h = hashlib.md5()
        t0 = time.monotonic()
        with open(path, "wb") as f:
            for _ in range(size // (16 * MiB)):
                b = os.urandom(16 * MiB)
                h.update(b)
                f.write(b)
        want = h.hexdigest()
        t1 = time.monotonic()
        key = self.p + "1g.bin"
        r = subprocess.run([CLI, "mpu-upload", BUCKET, key, path, "--jobs", "4"],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, "bfs-s3 mpu-upload failed: %s" % r.stderr)
        os.unlink(path)
        self.addCleanup(self.s3.delete_object, Bucket=BUCKET, Key=key)
        self.assertEqual(self.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"], size)
        t2 = time.monotonic()
        with self.mount(watchdog=600) as m:
            hwm0 = m.hwm_mib()
            got = file_md5(m.path("t", "1g.bin"))
            t3 = time.monotonic()
            hwm = m.hwm_mib()
            s = m.stats()
        note("1 GiB: generated in %.1fs, uploaded in %.1fs, read through the mount in %.1fs "
             "= %.0f MiB/s; daemon VmHWM %.1f MiB after mount, %.1f MiB after reading; "
             "%d GETs, %d read-ahead blocks", t1 - t0, t2 - t1, t3 - t2, 1024 / (t3 - t2),
             hwm0, hwm, s["by_op"]["get"], s["readahead_blocks"])
        self.assertEqual(got, (want, size), "md5 and length of 1 GiB read through the mount")
        # sanitizer builds keep freed memory in quarantine: test.sh raises the limit there
        limit = float(os.environ.get("BFS_RSS_LIMIT_MIB", "200"))
        self.assertLess(hwm, limit, "daemon peak RSS (VmHWM) %.1f MiB while reading 1 GiB" % hwm)


# ------------------------------------------ background fetch after random reads
class RandomFetchTest(MountTestCase):
    """Once random reads of an open file touched a good share of its blocks
    (a quarter, and at least 4), the rest of the object is fetched in the
    background (randfetch.c): bounded, stopped at release, only into spare
    room of the cache."""

    def random_reads(self, f, data, blocks, what):
        """4 KiB preads in each of blocks (1 MiB), in that order, checked.
        Each is a jump (back, or more than read_ahead blocks ahead): a read
        near the last one does not count as random."""
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)  # no kernel read-ahead
        for b in blocks:
            off = b * MiB + 4096 * (b % 200)
            self.assertBytes(os.pread(f.fileno(), 4096, off), data[off:off + 4096],
                             "%s: 4 KiB at %d" % (what, off))

    def wait_stats(self, m, pred, timeout=60):
        deadline = time.monotonic() + timeout
        s = m.stats()
        while not pred(s) and time.monotonic() < deadline:
            time.sleep(0.1)
            s = m.stats()
        return s

    def test_random_reads_fetch_the_rest(self):
        size = 24 * MiB + 5
        data = os.urandom(size)
        self.put("r.bin", data)
        touched = [20, 3, 14, 1, 24, 10, 0, 22]  # of 25 blocks: the 7th starts the fetch
        with self.mount(opts={"block_size": "1M"}) as m:
            with open(m.path("t", "r.bin"), "rb", buffering=0) as f:
                self.random_reads(f, data, touched, "random")
                s = self.wait_stats(m, lambda s: s["cache"]["blocks"] >= 25)
                self.assertEqual(s["cache"]["blocks"], 25, "the whole object cached: %r" % s)
                self.assertEqual(s["random_fetches"], 1, "one background fetch: %r" % s)
                self.assertEqual(s["ranged_gets"], 25, "one GET per block, none twice: %r" % s)
                self.assertGreaterEqual(s["random_fetch_blocks"], 25 - len(touched), repr(s))
            g0, s0 = m.stats()["by_op"]["get"], self.settled_server_gets()
            self.assertEqual(file_md5(m.path("t", "r.bin")), (md5hex(data), size),
                             "the object read whole after the background fetch")
            self.assertEqual(m.stats()["by_op"]["get"], g0, "GETs counted by the daemon")
            self.assertEqual(self.server_gets(), s0, "GETs in the server log")
            r = subprocess.run([BUCKETFS, "status", m.mnt], capture_output=True, text=True)
            self.assertIn("fetched in the background", r.stdout, r.stdout + r.stderr)

    def test_random_fetch_stops_at_release(self):
        size = 128 * MiB
        data = os.urandom(size)
        self.put("big.bin", data)
        rnd = random.Random(15)
        start = rnd.randrange(128)
        touched = [(start + 37 * i) % 128 for i in range(32)]  # a quarter: the 32nd starts it
        with self.mount(opts={"block_size": "1M"}) as m:
            with open(m.path("t", "big.bin"), "rb", buffering=0) as f:
                self.random_reads(f, data, touched, "random")
            gets = self.settled_server_gets()
            s = m.stats()
        self.assertEqual(s["random_fetches"], 1, "the fetch started: %r" % s)
        # the GETs in flight at the release finish (4 at most), then none starts
        self.assertLess(gets, 64, "GETs after the file was closed early (of 128 blocks): "
                        "%d; stats %r" % (gets, s))

    def test_random_fetch_only_into_spare_room(self):
        """An object bigger than the cache is never fetched ahead; one that
        fits is fetched only into room free below the evictor's low-water
        mark (90%): nothing is evicted for it, the blocks another reader
        used stay."""
        a, b, c = os.urandom(10 * MiB), os.urandom(16 * MiB), os.urandom(30 * MiB)
        self.put_many({"a.bin": a, "b.bin": b, "c.bin": c})
        limit = 24 * MiB
        low = limit // 10 * 9  # 21.6 MiB
        with self.mount(opts={"block_size": "1M", "cache_size": "24M"}) as m:
            with open(m.path("t", "c.bin"), "rb", buffering=0) as f:
                self.random_reads(f, c, [3, 25, 9, 19, 1], "bigger than the cache")
            time.sleep(1)
            s = m.stats()
            self.assertEqual((s["random_fetches"], s["ranged_gets"]), (0, 5),
                             "an object bigger than the cache: only the blocks read: %r" % s)
            self.assertEqual(file_md5(m.path("t", "a.bin")), (md5hex(a), len(a)))
            self.wait_stats(m, lambda s: s["cache"]["bytes"] >= 15 * MiB, timeout=10)
            with open(m.path("t", "b.bin"), "rb", buffering=0) as f:
                self.random_reads(f, b, [5, 14, 2, 12], "fits, cache partly full")
                time.sleep(2)  # 19 MiB cached: room for 2 blocks below 21.6
                s = m.stats()
            self.assertEqual(s["random_fetches"], 1, repr(s))
            self.assertEqual(s["random_fetch_blocks"], 2, "the spare room: %r" % s)
            self.assertLessEqual(s["cache"]["bytes"], low, "past the low-water mark: %r" % s)
            self.assertEqual(s["cache"]["evictions"], 0, "evicted for the background: %r" % s)
            g0 = m.stats()["by_op"]["get"]
            self.assertEqual(file_md5(m.path("t", "a.bin")), (md5hex(a), len(a)))
            self.assertEqual(m.stats()["by_op"]["get"], g0, "the other reader's blocks stayed")

    def test_random_fetch_off(self):
        data = os.urandom(24 * MiB)
        self.put("r.bin", data)
        with self.mount(opts={"block_size": "1M", "random_fetch": "off"}) as m:
            with open(m.path("t", "r.bin"), "rb", buffering=0) as f:
                self.random_reads(f, data, [17, 3, 11, 20, 7, 1, 9, 14], "random")
                time.sleep(1)
                s = m.stats()
        self.assertEqual((s["random_fetches"], s["ranged_gets"]), (0, 8), repr(s))


# ------------------------------------------------------ change detection
class ChangeTest(MountTestCase):

    def test_overwrite_seen_after_ttl(self):
        a, b = b"version one\n" * 100, os.urandom(3 * MiB + 5)
        self.put("f.txt", a)
        self.put("gone.txt", b"soon deleted\n")
        with self.mount(opts={"metadata_ttl": "2s"}) as m:
            p = m.path("t", "f.txt")
            self.assertEqual(read_all(p), a)
            self.assertNames(os.listdir(m.path("t")), ["f.txt", "gone.txt"])
            self.put("f.txt", b)
            self.put("new.txt", b"new\n")
            self.s3.delete_object(Bucket=BUCKET, Key=self.p + "gone.txt")
            time.sleep(3)
            self.assertEqual(os.stat(p).st_size, len(b), "size after the TTL")
            self.assertBytes(read_all(p), b, "content after the TTL")
            self.assertNames(os.listdir(m.path("t")), ["f.txt", "new.txt"],
                             "listing after the TTL")
            self.assertFalse(os.path.exists(m.path("t", "gone.txt")))
            self.assertEqual(read_all(m.path("t", "new.txt")), b"new\n")

    def test_replaced_under_open_reader(self):
        if not server_can("if_match"):
            self.skipTest("%s ignores If-Match, so a replaced object cannot be detected" % SERVER)
        size = 40 * MiB
        a, b = os.urandom(size), os.urandom(size)
        self.put("big.bin", a)
        with self.mount(opts={"block_size": "1M", "metadata_ttl": "2s"}) as m:
            p = m.path("t", "big.bin")
            with open(p, "rb", buffering=0) as f:
                self.assertBytes(os.read(f.fileno(), MiB), a[:MiB], "first MiB")
                self.put("big.bin", b)
                for off in (10 * MiB, 30 * MiB):
                    try:
                        got = os.pread(f.fileno(), 64 * KiB, off)
                    except OSError as e:
                        self.assertEqual(e.errno, errno.EIO, "read at %d MiB after the object "
                                         "was replaced: %r" % (off // MiB, e))
                        note("read at %d MiB after the replacement: %s", off // MiB, e)
                        continue
                    if got == b[off:off + 64 * KiB]:
                        self.fail("read at %d MiB after the object was replaced returned the NEW "
                                  "version through a descriptor opened on the old one (must "
                                  "fail with EIO)" % (off // MiB))
                    # old bytes are consistent only when that block was read
                    # ahead before the replacement; 30 MiB is far beyond that
                    self.assertLess(off, 30 * MiB, "read at %d MiB after the object was replaced "
                                    "succeeded (%s) instead of failing with EIO"
                                    % (off // MiB, "old version" if got == a[off:off + 64 * KiB]
                                       else "MIXED bytes"))
                    self.assertBytes(got, a[off:off + 64 * KiB], "read at %d MiB" % (off // MiB))
                    note("read at %d MiB after the replacement: old version (read ahead before)",
                         off // MiB)
            time.sleep(3)
            self.assertEqual(file_md5(p), (md5hex(b), size), "a new open sees the new version")


# ----------------------------------------------------------------- cache
class CacheTest(MountTestCase):

    def test_cache_reused_across_mounts(self):
        size = 10 * MiB
        a = os.urandom(size)
        self.put("ten.bin", a)
        cache = os.path.join(self.tmp, "cache")
        opts = {"cache_dir": cache}
        with self.mount(opts=opts) as m:
            self.assertEqual(file_md5(m.path("t", "ten.bin")), (md5hex(a), size))
            s1 = m.stats()
            self.assertGreater(s1["by_op"]["get"], 0)
        with self.mount(opts=opts) as m:
            self.assertEqual(file_md5(m.path("t", "ten.bin")), (md5hex(a), size),
                             "second mount, same cache")
            s2 = m.stats()
            self.assertEqual((s2["by_op"]["get"], s2["ranged_gets"]), (0, 0),
                             "the second mount must read from the cache: %r" % s2)
            self.assertGreater(s2["cache"]["hits"], 0)
        # changed server-side (same size, new ETag) while unmounted
        b = os.urandom(size)
        self.put("ten.bin", b)
        with self.mount(opts=opts) as m:
            got = file_md5(m.path("t", "ten.bin"))
            s3 = m.stats()
            self.assertEqual(got, (md5hex(b), size),
                             "after the object changed, a new mount must read the new content "
                             "(got the %s one%s; stats %r)"
                             % ("OLD" if got[0] == md5hex(a) else "a mixed/unknown",
                                ", without a single request: the new daemon trusted metadata "
                                "that the previous mount stored" if s3["requests"] == 0 else "",
                                s3))
            self.assertGreater(s3["by_op"]["get"], 0)

    def test_schema_v1_upgrade(self):
        """A cache directory made by schema version 1 (inode numbers without
        AUTOINCREMENT) is upgraded in place: same inode numbers, blocks still
        used, and numbers of deleted rows never handed out again."""
        import sqlite3
        data = os.urandom(3 * MiB)
        self.put("old.bin", data)
        self.put("other.csv", b"x,y\n")
        cache = os.path.join(self.tmp, "cache")
        opts = {"cache_dir": cache}
        with self.mount(opts=opts) as m:
            self.assertEqual(file_md5(m.path("t", "old.bin")), (md5hex(data), len(data)))
            ino = os.stat(m.path("t", "old.bin")).st_ino
            newest = os.stat(m.path("t", "other.csv")).st_ino
        db = sqlite3.connect(os.path.join(cache, "meta.db"))
        with db:  # back to the version 1 shape
            cols = [r[1] for r in db.execute("PRAGMA table_info(nodes)")
                    if r[1] not in ("ctime_ns", "atime_ns")]  # version 4's
            db.execute("CREATE TABLE nodes_v1(ino INTEGER PRIMARY KEY, parent INTEGER NOT NULL,"
                       " name TEXT NOT NULL, kind INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0,"
                       " etag TEXT NOT NULL DEFAULT '', mtime_ns INTEGER NOT NULL DEFAULT 0,"
                       " mode INTEGER NOT NULL DEFAULT 0, uid INTEGER NOT NULL DEFAULT 0,"
                       " gid INTEGER NOT NULL DEFAULT 0, meta INTEGER NOT NULL DEFAULT 0,"
                       " fetched_ns INTEGER NOT NULL DEFAULT 0, present INTEGER NOT NULL DEFAULT 1,"
                       " local INTEGER NOT NULL DEFAULT 0, UNIQUE(parent, name))")
            db.execute("INSERT INTO nodes_v1(%s) SELECT %s FROM nodes" % (",".join(cols), ",".join(cols)))
            db.execute("DROP TABLE nodes")
            db.execute("ALTER TABLE nodes_v1 RENAME TO nodes")
            db.execute("DELETE FROM nodes WHERE ino = ?", (newest,))  # as an unlink+create did
            db.execute("PRAGMA user_version=1")
        db.close()
        with self.mount(opts=opts) as m:
            self.assertEqual(file_md5(m.path("t", "old.bin")), (md5hex(data), len(data)))
            self.assertEqual(os.stat(m.path("t", "old.bin")).st_ino, ino, "inode number kept")
            s = m.stats()
            self.assertEqual(s["by_op"]["get"], 0, "blocks of the old cache reused: %r" % s)
            # the newest name unlinked and written again gets a new number
            p = m.path("t", "new.csv")
            with open(p, "wb") as f:
                f.write(b"new\n")
            first = os.stat(p).st_ino
            os.unlink(p)
            with open(p, "wb") as f:
                f.write(b"newer\n")
            self.assertNotEqual(os.stat(p).st_ino, first)
        db = sqlite3.connect(os.path.join(cache, "meta.db"))
        version = db.execute("PRAGMA user_version").fetchone()[0]
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'nodes'").fetchone()[0]
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        db.close()
        self.assertEqual(version, 5)
        self.assertIn("AUTOINCREMENT", sql)
        self.assertIn("ctime_ns", sql, "version 4 keeps ctime and atime in the row")
        self.assertIn("staged", tables, "version 3 keeps small files' bytes in table staged")

    def test_eviction(self):
        size = 30 * MiB
        data = os.urandom(size)
        self.put("thirty.bin", data)
        with self.mount(opts={"cache_size": "8M", "block_size": "1M"}) as m:
            self.assertEqual(file_md5(m.path("t", "thirty.bin")), (md5hex(data), size))
            s = m.stats()
            on_disk = dir_bytes(os.path.join(m.cache_dir, "blocks"))
            self.assertEqual(s["cache"]["limit"], 8 * MiB)
            self.assertLessEqual(s["cache"]["bytes"], 8 * MiB, "cache.bytes over the limit: %r" % s)
            self.assertGreater(s["cache"]["evictions"], 0, "no evictions: %r" % s)
            self.assertLessEqual(on_disk, 9 * MiB, "%d bytes of blocks on disk" % on_disk)
            # a second pass still reads right with eviction going on
            self.assertEqual(file_md5(m.path("t", "thirty.bin")), (md5hex(data), size))
            on_disk = dir_bytes(os.path.join(m.cache_dir, "blocks"))
            self.assertLessEqual(on_disk, 9 * MiB, "%d bytes of blocks on disk" % on_disk)
            cache_dir = m.cache_dir
            m.own_cache = False  # look at it after unmount
        self.addCleanup(shutil.rmtree, cache_dir, True)
        on_disk = dir_bytes(os.path.join(cache_dir, "blocks"))
        self.assertLessEqual(on_disk, 9 * MiB, "%d bytes of blocks on disk after unmount" % on_disk)

    def test_evicted_block_read_through_kept_descriptor(self):
        """Block files read lately stay open (a table of at least 16): after
        eviction unlinked one, reads inside that block still return its
        bytes, from the descriptor (no GET); a block not held is fetched
        again."""
        a, b = os.urandom(3 * MiB), os.urandom(12 * MiB)  # 8 MiB cache < 13 blocks < 16
        self.put_many({"a.bin": a, "b.bin": b})
        with self.mount(opts={"cache_size": "8M", "block_size": "1M"}) as m:
            fd = os.open(m.path("t", "a.bin"), os.O_RDONLY)
            try:
                self.check_kept_descriptor(m, fd, a, b)
            finally:
                os.close(fd)

    def check_kept_descriptor(self, m, fd, a, b):
        """The body of test_evicted_block_read_through_kept_descriptor."""
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # each pread reaches the daemon
        ino = os.fstat(fd).st_ino
        block0 = os.path.join(m.cache_dir, "blocks", "%02x" % (ino & 0xff), "%d-*-0" % ino)
        self.assertBytes(os.pread(fd, 4096, 0), a[:4096], "first read (fetched)")
        # the reader got its bytes before the whole block arrived: wait
        # until the block is in the cache
        for _ in range(400):
            if glob.glob(block0):
                break
            time.sleep(0.05)
        self.assertEqual(len(glob.glob(block0)), 1, "block 0 cached: %s" % block0)
        hits = m.stats()["cache"]["hits"]
        self.assertBytes(os.pread(fd, 4096, 64 * KiB), a[64 * KiB:][:4096],
                         "second read (from the cache; the block file stays open)")
        self.assertEqual(m.stats()["cache"]["hits"], hits + 1)
        # another file pushes every block of a.bin out of the 8 MiB cache
        # (not out of the table of open files)
        self.assertEqual(file_md5(m.path("t", "b.bin")), (md5hex(b), len(b)))
        s1 = m.stats()
        self.assertGreater(s1["cache"]["evictions"], 0, s1)
        self.assertEqual(glob.glob(block0), [], "block 0 of a.bin evicted")
        # forward and apart, so that no read-ahead starts; 128 KiB reads are
        # spliced from the (unlinked) block file into the reply
        for off, n in ((128 * KiB, 4096), (512 * KiB, 4096), (640 * KiB, 128 * KiB),
                       (MiB - 4096, 4096)):
            self.assertBytes(os.pread(fd, n, off), a[off:off + n],
                             "read of %d at %d inside the evicted block" % (n, off))
        s2 = m.stats()
        self.assertEqual(s2["ranged_gets"], s1["ranged_gets"],
                         "the evicted block was read through the kept descriptor, "
                         "not fetched again: %r" % s2)
        self.assertGreaterEqual(s2["block_fd_reuses"] - s1["block_fd_reuses"], 4, s2)
        # a block not held open comes from S3 again, right
        off = 2 * MiB + 5
        self.assertBytes(os.pread(fd, 4096, off), a[off:off + 4096], "block 2, fetched again")
        self.assertGreater(m.stats()["ranged_gets"], s2["ranged_gets"])

    def test_cache_dir_private(self):
        self.put("f.bin", os.urandom(100000))
        cache = os.path.join(self.tmp, "new-cache")
        with self.mount(opts={"cache_dir": cache}) as m:
            read_all(m.path("t", "f.bin"))
        self.assertEqual(stat.S_IMODE(os.stat(cache).st_mode), 0o700)
        for root, dirs, files in os.walk(cache):
            for d in dirs:
                self.assertEqual(stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode) & 0o077, 0, d)
            for n in files:
                self.assertEqual(stat.S_IMODE(os.stat(os.path.join(root, n)).st_mode) & 0o077, 0, n)


# ----------------------------------------------------------------- errors
class ErrorTest(MountTestCase):

    def mount_fails(self, args, env=None, timeout=60, opts=None):
        mnt = tempfile.mkdtemp(prefix="bfs-mnt-")
        self.addCleanup(shutil.rmtree, mnt, True)
        cache = tempfile.mkdtemp(prefix="bfs-cache-")
        self.addCleanup(shutil.rmtree, cache, True)
        o = dict({"cache_dir": cache}, **(opts or {}))
        cmd = [BUCKETFS] + args + ["-o", ",".join("%s=%s" % kv for kv in o.items()), mnt]
        rc, err, elapsed = run_bucketfs(cmd, env=env, timeout=timeout + 30)
        desc = "\n$ %s\nexit status %s after %.1fs\nstderr: %s" % (shlex.join(cmd), rc, elapsed, err)
        if rc == 0:
            Mount.cleanup_path(mnt)
        self.assertIsNotNone(rc, "bucketfs did not exit" + desc)
        self.assertNotEqual(rc, 0, "bucketfs must fail" + desc)
        self.assertLess(elapsed, timeout, "bucketfs took too long to fail" + desc)
        self.assertTrue(err.strip(), "no message on stderr" + desc)
        self.assertNotMounted(mnt, "after a failed mount")
        self.assertEqual(daemon_pids(mnt), [], "a bucketfs process is left behind" + desc)
        note("exit %d after %.1fs: %s", rc, elapsed, err.strip().replace("\n", " | "))
        return err, desc

    def test_wrong_secret(self):
        if not server_can("checks_sigv4"):
            self.skipTest("%s does not check SigV4 signatures" % SERVER)
        secret = "WrongSecret" + uuid.uuid4().hex
        env = dict(os.environ, AWS_SECRET_ACCESS_KEY=secret)
        for maps in (["--map", "t=s3://bfs-test"], []):
            with self.subTest(maps=maps or "no mapping (ListBuckets)"):
                err, desc = self.mount_fails(maps, env=env, timeout=30)
                self.assertRegex(err, r"SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId",
                                 "the message must say what S3 refused" + desc)
                self.assertNotIn(secret, err, "the secret must not be printed")
                self.assertNotIn(secret[:16], err, "the secret must not be printed")

    def test_closed_port(self):
        port = free_port()
        env = dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:%d" % port)
        err, desc = self.mount_fails(["--map", "t=s3://bfs-test"], env=env, timeout=60)
        self.assertRegex(err, r"(?i)connect|refused|unreachable|%d" % port,
                         "the message must say the endpoint cannot be reached" + desc)

    def test_missing_bucket(self):
        name = "bfs-missing-" + uuid.uuid4().hex[:8]
        err, desc = self.mount_fails(["--map", "t=s3://" + name])
        self.assertIn(name, err, "the message must name the bucket" + desc)
        err, desc = self.mount_fails(["--map", "ok=s3://bfs-test", "--map", "t=s3://%s/pre" % name])
        self.assertIn(name, err, "the message must name the bucket" + desc)

    def test_config_errors_have_file_and_line(self):
        cfg = os.path.join(self.tmp, "bad.conf")
        cases = [
            ("unknown key, line 3", "[global]\nmetadata_ttl = 2s\nno_such_key = 1\n\n"
                                    "[t]\nbucket = bfs-test\n", 3),
            ("bad value, line 4", "; comment\n[global]\nregion = us-east-1\ncache_size = lots\n"
                                  "[t]\nbucket = bfs-test\n", 4),
            ("unknown key in a mapping, line 3", "[t]\nbucket = bfs-test\nbukket = x\n", 3),
        ]
        for what, text, line in cases:
            with open(cfg, "w") as f:
                f.write(text)
            for how in (["-c", cfg], [cfg]):
                with self.subTest(what=what, how=how[0]):
                    err, desc = self.mount_fails(how)
                    self.assertIn("%s:%d" % (cfg, line), err, "FILE:LINE expected" + desc)

    def test_bad_map_argument(self):
        for bad in ("bad", "t=bfs-test", "=s3://bfs-test", "t=s3://", "a/b=s3://bfs-test"):
            with self.subTest(map=bad):
                err, desc = self.mount_fails(["--map", bad])
                self.assertRegex(err, r"(?i)map|usage", "a usage error about --map" + desc)

    def test_secret_not_in_process_list(self):
        # a secret given with -o must not stay visible in ps output
        access, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
        if secret == access:
            self.skipTest("%s's secret equals its access key" % SERVER)
        env = dict(os.environ)
        env.pop("AWS_ACCESS_KEY_ID")
        env.pop("AWS_SECRET_ACCESS_KEY")
        with self.mount(opts={"access_key": access, "secret_key": secret}, env=env) as m:
            with open("/proc/%d/cmdline" % m.pid, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode()
            self.assertNotIn(secret, cmdline, "the secret is visible in ps output")
            self.assertEqual(os.listdir(m.path("t")), [])


# ---------------------------------------------------------------- unmount
class UnmountTest(MountTestCase):

    def test_sigterm_unmounts(self):
        self.put("f", b"data")
        with self.mount() as m:
            self.assertEqual(read_all(m.path("t", "f")), b"data")
            os.kill(m.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while mounted(m.mnt) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertFalse(mounted(m.mnt), "still mounted 10 s after SIGTERM to the daemon")
            while alive(m.pid) and time.monotonic() < deadline + 5:
                time.sleep(0.05)
            self.assertFalse(alive(m.pid), "daemon still running after SIGTERM")

    def test_fusermount_unmounts_and_daemon_exits(self):
        self.put("f", b"data")
        with self.mount() as m:
            self.assertEqual(read_all(m.path("t", "f")), b"data")
            problems = m.unmount()
            self.assertEqual(problems, [])
            self.assertFalse(mounted(m.mnt))
            self.assertFalse(alive(m.pid))


def _cleanup_path(mnt):
    """Unmounts a path mounted by accident (a mount that should have failed)."""
    for p in daemon_pids(mnt):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    if mounted(mnt):
        subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)


Mount.cleanup_path = staticmethod(_cleanup_path)


def suite_main(doc, tools=("fusermount3",), logdir_prefix=None, on_logdir=None, banner="",
               root_because=None):
    """The main() of a suite that mounts bucketfs (--bucketfs, --cli, then
    unittest's own arguments): checks what it needs (the binaries, the
    server's environment, /dev/fuse and tools), runs a private copy of the
    binary (a rebuild during the run cannot break later mounts), gives the
    suite a log directory when it asks (on_logdir(path); kept when a test
    fails), and prints the slowest tests' times. root_because: why the suite
    must run as root, if it must. Returns the exit status."""
    global BUCKETFS, CLI
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bucketfs", required=True, help="path of the bucketfs binary")
    ap.add_argument("--cli", required=True, help="path of the bfs-s3 binary")
    args, rest = ap.parse_known_args()
    BUCKETFS, CLI = os.path.abspath(args.bucketfs), os.path.abspath(args.cli)
    for opt, path in (("--bucketfs", BUCKETFS), ("--cli", CLI)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print("error: %s %s is not an executable file" % (opt, path), file=sys.stderr)
            return 2
    missing = [v for v in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
               if not os.environ.get(v)]
    if missing:
        print("error: %s not set: run this under scripts/with-server.sh" % ", ".join(missing),
              file=sys.stderr)
        return 2
    if root_because and os.geteuid() != 0:
        print("error: run as root (%s)" % root_because, file=sys.stderr)
        return 2
    for tool in tools:
        if not shutil.which(tool):
            print("error: %s is missing (scripts/setup-deps.sh installs it)" % tool,
                  file=sys.stderr)
            return 2
    if not os.path.exists("/dev/fuse"):
        print("error: /dev/fuse is missing", file=sys.stderr)
        return 2
    bindir = tempfile.mkdtemp(prefix="bfs-bin-")
    shutil.copy2(BUCKETFS, os.path.join(bindir, "bucketfs"))
    BUCKETFS = os.path.join(bindir, "bucketfs")
    logdir = tempfile.mkdtemp(prefix=logdir_prefix) if logdir_prefix else None
    if on_logdir:
        on_logdir(logdir)
    os.umask(0o022)
    print("bucketfs %s against %s at %s%s" % (args.bucketfs, SERVER,
                                               os.environ["AWS_ENDPOINT_URL"], banner),
          file=sys.stderr)
    try:
        prog = unittest.main(module="__main__", argv=[sys.argv[0]] + rest, exit=False,
                             verbosity=2)
    finally:
        shutil.rmtree(bindir, ignore_errors=True)
    ok = prog.result.wasSuccessful()
    if logdir and ok:
        shutil.rmtree(logdir, ignore_errors=True)
    elif logdir:
        print("\ndaemon logs kept in %s" % logdir, file=sys.stderr)
    if TIMINGS:
        print("\ntimings on %s:" % SERVER, file=sys.stderr)
        for name, secs in sorted(TIMINGS.items(), key=lambda kv: -kv[1]):
            print("  %6.1fs  %s" % (secs, name), file=sys.stderr)
    return 0 if ok else 1


def main():
    return suite_main(__doc__)


if __name__ == "__main__":
    sys.exit(main())
