#!/usr/bin/python3
"""test_ops.py: the operations subcommands (bucketfs status, sync, presign)
against a real bucketfs mount on a live S3 server.

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_ops.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Sync]

The Mount machinery is that of test_mount.py / test_write.py (fresh
mountpoint and cache, "t" mapped to the test's own prefix in bfs-test, always
unmounted, watchdog). Every claim is cross-checked with boto3 (objects, bytes)
or curl (presigned URLs).

To hold an upload back, or make one fail for good, the mount talks to the
server through a RuleProxy: faultproxy.py's forwarding, run in this process
so that a test can change its rules while the mount runs. A rule matches a
method and a substring of the decoded request path (the object key) and
holds the request until released, delays it, or answers 403 AccessDenied.

What the servers do not do: s3rver checks neither signatures nor expiry of
presigned URLs (tests/integration/README.md), so the expired and tampered
URL tests run on RGW only.
"""
import json
import os
import pty
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import faultproxy as fp  # noqa: E402  (its forwarding handler, not its plan)
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import KiB, MiB, md5hex, server_can  # noqa: E402
from test_write import WriteTestCase, write_file  # noqa: E402

SECRET = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
ACCESS = os.environ.get("AWS_ACCESS_KEY_ID", "")


# ------------------------------------------------------------------ proxy
class _RuleHandler(fp.Handler):
    def forward(self, method, target, headers, body):
        path = urllib.parse.unquote(target.split("?")[0])
        rule = self.server.owner.match(method, path)
        if rule:
            kind, arg = rule
            self.server.owner.count(kind)
            if kind == "deny":
                return (403, "Forbidden", [("Content-Type", "application/xml")],
                        fp.error_doc("AccessDenied", "Access Denied"))
            if kind == "hold":
                arg.wait(60)
            elif kind == "delay":
                time.sleep(arg)
        return super().forward(method, target, headers, body)


class RuleProxy:
    """An HTTP proxy to the test server whose rules change while it runs."""

    def __init__(self):
        if fp.log is None:
            fp.log = open(os.devnull, "w")
        self.lock = threading.Lock()
        self.rules = []          # [method, substring, kind, arg]
        self.hits = {}
        self.srv = fp.Server(("127.0.0.1", 0), _RuleHandler)
        self.srv.upstream = os.environ["AWS_ENDPOINT_URL"]
        self.srv.log_headers = ()
        self.srv.owner = self
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def match(self, method, path):
        with self.lock:
            for m, sub, kind, arg in self.rules:
                if m in ("*", method) and sub in path:
                    return kind, arg
        return None

    def count(self, kind):
        with self.lock:
            self.hits[kind] = self.hits.get(kind, 0) + 1

    def add(self, sub, kind, arg=None, method="PUT"):
        with self.lock:
            self.rules.append([method, sub, kind, arg])
        return arg

    def hold(self, sub, method="PUT"):
        """Holds matching requests until the returned event is set."""
        return self.add(sub, "hold", threading.Event(), method)

    def release(self, sub=None):
        with self.lock:
            keep = []
            for r in self.rules:
                if sub is None or r[1] == sub:
                    if r[2] == "hold":
                        r[3].set()
                else:
                    keep.append(r)
            self.rules = keep

    def close(self):
        self.release()
        self.srv.shutdown()
        self.srv.server_close()


# --------------------------------------------------------------- helpers
def bfs(*args, timeout=120, tty=False):
    """Runs `bucketfs ARGS`; returns (exit status, stdout, stderr). With tty,
    stderr is a pseudo-terminal (what a person running sync sees)."""
    cmd = [tm.BUCKETFS] + [str(a) for a in args]
    if not tty:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout, r.stderr
    master, slave = pty.openpty()
    chunks = []

    def drain():
        while True:
            try:
                b = os.read(master, 4096)
            except OSError:
                return
            if not b:
                return
            chunks.append(b)
    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                           timeout=timeout, text=True)
    finally:
        os.close(slave)
    t.join(5)
    os.close(master)
    return p.returncode, p.stdout, b"".join(chunks).decode("utf-8", "replace")


class OpenWriter:
    """A separate process that writes data to path and keeps the file open
    until closed. (A file this process held open would be flushed, which
    journals it, by every fork of a subprocess closing its copy of the fd.)"""

    def __init__(self, path, data):
        self.p = subprocess.Popen(
            [sys.executable, "-c", "import sys\nf = open(sys.argv[1], 'wb')\n"
             "f.write(sys.stdin.buffer.read(int(sys.argv[2])))\nf.flush()\n"
             "print('written', flush=True)\nsys.stdin.read()\nf.close()\n",
             path, str(len(data))], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.p.stdin.write(data)
        self.p.stdin.flush()
        if self.p.stdout.readline() != b"written\n":
            raise AssertionError("the writer process failed")

    def close(self):
        self.p.stdin.close()
        self.p.stdout.close()
        if self.p.wait(timeout=60) != 0:
            raise AssertionError("the writer process failed")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.close()


def curl(url, out=None):
    """(HTTP status, body bytes) of a plain GET with curl: no credentials."""
    fd, path = tempfile.mkstemp(prefix="bfs-curl-")
    os.close(fd)
    try:
        r = subprocess.run(["curl", "-sS", "-o", out or path, "-w", "%{http_code}", url],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("curl failed (%d): %s" % (r.returncode, r.stderr))
        with open(out or path, "rb") as f:
            return int(r.stdout), f.read()
    finally:
        os.unlink(path)


class OpsTestCase(WriteTestCase):

    def status(self, m, path=None):
        rc, out, err = bfs("status", "--json", path or m.mnt)
        self.assertEqual(rc, 0, "bucketfs status --json failed: %s" % err)
        self.assertEqual(err, "", "status --json wrote to stderr")
        self.assertNoSecret(out, "status --json")
        return json.loads(out)

    def wait_status(self, m, cond, what, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            s = self.status(m)
            if cond(s):
                return s
            if time.monotonic() > deadline:
                self.fail("%s: not seen within %d s; last status uploads: %r"
                          % (what, timeout, s["uploads"]))
            time.sleep(0.1)

    def proxied(self, **kw):
        """A mount that reaches the server through a fresh RuleProxy."""
        px = RuleProxy()
        self.addCleanup(px.close)
        opts = dict(kw.pop("opts", {}), endpoint=px.url)
        return px, self.mount(opts=opts, **kw)

    def assertNoSecret(self, text, what):
        if SECRET and SECRET != ACCESS:  # s3rver's secret is its access key
            self.assertNotIn(SECRET, text, "%s shows the secret key" % what)

    @staticmethod
    def items(s, state=None):
        return [i for i in s["uploads"]["items"] if state is None or i["state"] == state]


# ----------------------------------------------------------------- status
class StatusTest(OpsTestCase):

    def test_counters_after_reads(self):
        """Reading a 5-block object shows 5 cached blocks and GETs; a second
        read hits the cache; nothing is pending; text and JSON agree."""
        data = os.urandom(4 * MiB + 100)
        self.put("five.bin", data)
        with self.mount() as m:
            s0 = self.status(m)
            self.assertEqual(s0["stats"]["cache"]["blocks"], 0, "fresh cache: %r" % s0)
            self.assertEqual(tm.read_all(m.path("t", "five.bin")), data)
            s1 = self.status(m)
            st = s1["stats"]
            self.assertEqual(st["cache"]["blocks"], 5, "blocks after reading 4 MiB + 100 B")
            self.assertEqual(st["cache"]["bytes"], len(data))
            self.assertGreater(st["cache"]["limit"], 0)
            self.assertGreaterEqual(st["by_op"]["get"], 1)
            self.assertGreaterEqual(st["ranged_gets"], 1)
            self.assertEqual(st["by_op"]["put"], 0)
            self.assertGreaterEqual(st["bytes_down"], len(data))
            self.assertGreaterEqual(st["uptime_s"], 0)
            self.assertEqual(s1["mountpoint"], m.mnt)
            up = s1["uploads"]
            self.assertEqual((up["pending"], up["failed"], up["uploading"], up["items"]),
                             (0, 0, 0, []), "nothing was written")
            hits = st["cache"]["hits"]
            self.assertEqual(tm.read_all(m.path("t", "five.bin")), data)
            s2 = self.status(m)["stats"]
            self.assertGreaterEqual(s2["cache"]["hits"], hits + 5, "second read from the cache")
            self.assertEqual(s2["by_op"]["get"], st["by_op"]["get"], "second read: no GET")
            rc, out, err = bfs("status", m.mnt)
            self.assertEqual((rc, err), (0, ""))
            self.assertNoSecret(out, "status")
            self.assertIn("5 blocks", out)
            self.assertIn("4.0 MiB of", out)  # 4 MiB + 100 B cached
            self.assertIn("0 pending", out)
            self.assertIn("get %d" % s2["by_op"]["get"], out)

    def test_pending_and_uploading_counted(self):
        """While the PUT of one file is held back, status counts it as pending
        and uploading, with its size and path; the other files are done."""
        px, m = self.proxied()
        held = os.urandom(300 * KiB)
        with m:
            ev = px.hold("held.bin")
            write_file(m.path("t", "a.txt"), b"a" * 1000)
            write_file(m.path("t", "b.txt"), b"bb")
            write_file(m.path("t", "held.bin"), held)
            s = self.wait_status(m, lambda s: s["uploads"]["pending"] == 1 and
                                 s["uploads"]["uploading"] == 1, "one held upload")
            up = s["uploads"]
            self.assertEqual(up["pending_bytes"], len(held))
            self.assertEqual((up["failed"], up["queued"], up["retrying"]), (0, 0, 0))
            self.assertEqual(up["listed"], 1)
            it = up["items"][0]
            self.assertEqual((it["path"], it["state"], it["size"], it["error"]),
                             ("t/held.bin", "uploading", len(held), ""))
            self.assertGreaterEqual(s["stats"]["uploaded"], 2, "a.txt and b.txt are done")
            self.assertEqual(self.get("a.txt"), b"a" * 1000)
            rc, out, err = bfs("status", m.mnt)
            self.assertEqual(rc, 0, err)
            self.assertIn("1 pending (300.0 KiB), 1 uploading", out)
            self.assertRegex(out, r"uploading +300\.0 KiB  t/held\.bin")
            # the uploads of one subtree
            sub = json.loads(os.getxattr(m.path("t", "a.txt"), "user.bucketfs.uploads"))
            self.assertEqual(sub["pending"], 0, "a.txt alone has nothing pending")
            ev.set()
            self.wait_status(m, lambda s: s["uploads"]["pending"] == 0, "held upload done")
            self.assertObject("held.bin", data=held)

    def test_not_a_bucketfs_mount(self):
        rc, out, err = bfs("status", self.tmp)
        self.assertEqual(rc, 1)
        self.assertIn("is not a bucketfs mount point", err)
        self.assertEqual(out, "")
        rc, _, err = bfs("status", os.path.join(self.tmp, "nope"))
        self.assertEqual(rc, 1)
        self.assertIn("No such file or directory", err)
        rc, _, err = bfs("status")
        self.assertEqual(rc, 2)
        self.assertIn("no mount point given", err)
        rc, _, err = bfs("status", "--bogus", self.tmp)
        self.assertEqual(rc, 2)
        with self.mount() as m:
            os.mkdir(m.path("t", "d"))
            rc, _, err = bfs("status", m.path("t", "d"))
            self.assertEqual(rc, 1)
            self.assertIn("is inside the bucketfs mount %s, not its mount point" % m.mnt, err)
            rc, _, err = bfs("sync", self.tmp)
            self.assertEqual(rc, 2)
            self.assertIn("is not a bucketfs mount point", err)
            rc, _, err = bfs("sync", m.mnt, self.tmp)
            self.assertEqual(rc, 2)
            self.assertIn("is not inside the bucketfs mount", err)


# ------------------------------------------------------------------- sync
class SyncTest(OpsTestCase):

    def test_sync_waits_for_large_file(self):
        """A 40 MiB file whose parts each take 1.5 s more: right after sync
        returns 0, boto3 reads the whole object back."""
        # conflicts=overwrite: in parts whatever the server (Ceph RGW 16
        # ignores conditions on CompleteMultipartUpload: one PUT there)
        px, m = self.proxied(opts={"conflicts": "overwrite"})
        data = os.urandom(40 * MiB + 123)
        with m:
            px.add("big.bin", "delay", 1.5)
            write_file(m.path("t", "big.bin"), data)
            self.assertIsNone(self.head("big.bin"), "uploaded before sync even started")
            t0 = time.monotonic()
            rc, out, err = bfs("sync", m.mnt)
            took = time.monotonic() - t0
            self.assertEqual((rc, out, err), (0, "", ""), "sync (stderr not a terminal: quiet)")
            self.assertEqual(self.s3_md5("big.bin"), (md5hex(data), len(data)),
                             "object right after sync")
            self.assertGreaterEqual(took, 1.0, "sync returned before the parts could be sent")
            self.assertGreaterEqual(px.hits.get("delay", 0), 5, "every part went through the proxy")
            self.assertEqual(self.status(m)["uploads"]["pending"], 0)
            tm.note("sync of 40 MiB with 1.5 s per part: %.1f s", took)

    def test_sync_starts_delayed_uploads(self):
        """With upload_delay=1h a closed file waits; bucketfs sync starts it
        at once and returns when it is in S3."""
        with self.mount(opts={"upload_delay": "1h"}) as m:
            write_file(m.path("t", "late.csv"), b"a,b\n1,2\n")
            time.sleep(1.5)
            self.assertIsNone(self.head("late.csv"), "uploaded before its upload_delay")
            t0 = time.monotonic()
            rc, out, err = bfs("sync", m.mnt)
            self.assertEqual((rc, out, err), (0, "", ""))
            self.assertLess(time.monotonic() - t0, 60, "sync waited out upload_delay")
            self.assertEqual(self.get("late.csv"), b"a,b\n1,2\n", "object right after sync")

    def test_sync_path_waits_for_its_subtree_only(self):
        px, m = self.proxied()
        with m:
            ev = px.hold("slow/held.bin")
            os.mkdir(m.path("t", "fast"))
            os.mkdir(m.path("t", "slow"))
            write_file(m.path("t", "slow", "held.bin"), b"held" * 1000)
            write_file(m.path("t", "fast", "a.bin"), b"a" * 5000)
            write_file(m.path("t", "fast", "b.bin"), os.urandom(20 * MiB))  # multipart
            b = tm.read_all(m.path("t", "fast", "b.bin"))
            t0 = time.monotonic()
            rc, out, err = bfs("sync", m.mnt, m.path("t", "fast"), timeout=90)
            self.assertEqual((rc, err), (0, ""), "sync of t/fast")
            self.assertLess(time.monotonic() - t0, 60)
            self.assertObject("fast/a.bin", data=b"a" * 5000)
            self.assertEqual(self.s3_md5("fast/b.bin"), (md5hex(b), len(b)))
            self.assertIsNone(self.head("slow/held.bin"), "held.bin is held back")
            s = self.status(m)
            self.assertEqual([i["path"] for i in self.items(s)], ["t/slow/held.bin"])
            # a PATH relative to the mount point, and a file
            rc, _, err = bfs("sync", m.mnt, "t/fast/a.bin")
            self.assertEqual((rc, err), (0, ""))
            # the whole mount waits for the held file until it is released
            p = subprocess.Popen([tm.BUCKETFS, "sync", m.mnt], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            try:
                time.sleep(1.5)
                self.assertIsNone(p.poll(), "sync of the mount returned with held.bin pending")
                ev.set()
                out, err = p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.assertEqual((p.returncode, err), (0, ""))
            self.assertObject("slow/held.bin", data=b"held" * 1000)

    def test_sync_progress_bar_on_a_terminal(self):
        px, m = self.proxied()
        with m:
            ev = px.hold("bar.bin")
            write_file(m.path("t", "bar.bin"), os.urandom(3 * MiB))
            threading.Timer(2.0, ev.set).start()
            rc, out, err = bfs("sync", m.mnt, tty=True)
            self.assertEqual(rc, 0, err)
            self.assertIn("sync [", err)
            self.assertRegex(err, r"\d+%  .* of 3\.0 MiB, 1 file left")
            self.assertIn("3.0 MiB uploaded in", err)
            # --quiet: no bar even on a terminal
            write_file(m.path("t", "bar2.bin"), b"x")
            rc, out, err = bfs("sync", "--quiet", m.mnt, tty=True)
            self.assertEqual((rc, err.strip()), (0, ""))

    def test_sync_names_permanent_failure(self):
        """PUTs of one key are refused with 403 AccessDenied: sync exits 1
        naming the file and the reason instead of waiting for the daemon's
        retries, and status shows the failure; the other file is uploaded."""
        px, m = self.proxied()
        with m:
            px.add("denied.bin", "deny")
            write_file(m.path("t", "ok.bin"), b"fine")
            write_file(m.path("t", "denied.bin"), b"refused" * 100)
            t0 = time.monotonic()
            rc, out, err = bfs("sync", m.mnt, timeout=90)
            took = time.monotonic() - t0
            self.assertEqual(rc, 1, "sync with a refused upload: %s" % err)
            self.assertIn("t/denied.bin: upload failed: AccessDenied", err)
            self.assertIn("1 upload failed", err)
            self.assertNotIn("ok.bin", err)
            self.assertLess(took, 60)
            self.assertObject("ok.bin", data=b"fine")
            self.assertIsNone(self.head("denied.bin"))
            s = self.status(m)
            up = s["uploads"]
            self.assertEqual((up["failed"], up["failed_bytes"], up["pending"]), (1, 700, 0))
            it = self.items(s, "failed")[0]
            self.assertEqual(it["path"], "t/denied.bin")
            self.assertIn("AccessDenied", it["error"])
            self.assertGreaterEqual(it["attempts"], 1)
            self.assertGreater(it["retry_in_s"], 0, "the daemon keeps retrying it")
            self.assertGreaterEqual(s["stats"]["upload_failures"], 1)
            rc, out, _ = bfs("status", m.mnt)
            self.assertRegex(out, r"FAILED +700 B  t/denied\.bin")
            self.assertIn("AccessDenied", out)
            # a sync of another subtree is not affected; removing the file cancels it
            rc, _, err = bfs("sync", m.mnt, m.path("t", "ok.bin"))
            self.assertEqual((rc, err), (0, ""))
            os.unlink(m.path("t", "denied.bin"))
            rc, _, err = bfs("sync", m.mnt)
            self.assertEqual((rc, err), (0, ""))

    def test_open_file_named_not_waited_for(self):
        with self.mount() as m:
            with OpenWriter(m.path("t", "open.log"), b"still writing"):
                rc, _, err = bfs("sync", m.mnt, timeout=30)
                self.assertEqual(rc, 0, err)
                self.assertIn("t/open.log is still open for writing", err)
                self.assertEqual(self.status(m)["uploads"]["open"], 1)
            rc, _, err = bfs("sync", m.mnt)
            self.assertEqual((rc, err), (0, ""))
            self.assertObject("open.log", data=b"still writing")


# ---------------------------------------------------------------- presign
class PresignTest(OpsTestCase):

    def test_presigned_url_downloads(self):
        data = os.urandom(3 * MiB + 7)
        name = "dir/a b+c=d&é.bin"
        with self.mount() as m:
            os.makedirs(m.path("t", "dir"))
            write_file(m.path("t", name), data)
            rc, _, err = bfs("sync", m.mnt)
            self.assertEqual(rc, 0, err)
            rc, out, err = bfs("presign", m.path("t", name))
            self.assertEqual((rc, err), (0, ""))
            url = out.strip()
            self.assertEqual(out.count("\n"), 1)
            self.assertNoSecret(url, "presigned URL")
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            self.assertEqual(q["X-Amz-Expires"], ["3600"], "default expiry 1h")
            self.assertEqual(q["X-Amz-SignedHeaders"], ["host"])
            status, body = curl(url)
            self.assertEqual(status, 200)
            self.assertEqual(md5hex(body), md5hex(data), "bytes curl downloaded")
            # a file uploaded by someone else, never opened here
            other = os.urandom(1000)
            self.put("other.csv", other)
            rc, out, err = bfs("presign", "--expires", "15m", m.path("t", "other.csv"))
            self.assertEqual(rc, 0, err)
            self.assertEqual(curl(out.strip()), (200, other))

    def test_expiry_limits(self):
        self.put("f.txt", b"limits")
        with self.mount() as m:
            f = m.path("t", "f.txt")
            for arg, secs in (("1s", 1), ("30s", 30), ("15m", 900), ("1h", 3600),
                              ("7d", 604800), ("604800", 604800), ("2D", 172800)):
                rc, out, err = bfs("presign", "--expires", arg, f)
                self.assertEqual((rc, err), (0, ""), arg)
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(out.strip()).query)
                self.assertEqual(q["X-Amz-Expires"], [str(secs)], arg)
            for arg, msg in (("8d", "longer than 7 days"), ("604801", "longer than 7 days"),
                             ("169h", "longer than 7 days"), ("0", "at least 1s"),
                             ("0s", "at least 1s"), ("-5", "not a duration"),
                             ("1.5h", "not a duration"), ("soon", "not a duration")):
                rc, out, err = bfs("presign", "--expires", arg, f)
                self.assertEqual((rc, out), (2, ""), arg)
                self.assertIn(msg, err, arg)
            # the daemon refuses out-of-range values on its own too
            with self.assertRaises(OSError):
                os.getxattr(f, "user.bucketfs.presign.604801")

    def test_refusals(self):
        self.put("up.txt", b"x")
        px, m = self.proxied()
        with m:
            rc, _, err = bfs("presign", m.path("t"))
            self.assertEqual(rc, 1)
            self.assertIn("is a directory", err)
            rc, _, err = bfs("presign", m.mnt)
            self.assertEqual(rc, 1)
            self.assertIn("is a directory", err)
            rc, _, err = bfs("presign", m.path("t", "missing"))
            self.assertEqual(rc, 1)
            self.assertIn("No such file or directory", err)
            # written, not yet closed: the object is not there yet
            with OpenWriter(m.path("t", "new.bin"), b"new"):
                rc, _, err = bfs("presign", m.path("t", "new.bin"))
                self.assertEqual(rc, 1)
                self.assertIn("is still open for writing", err)
            # closed, upload held back: --no-wait refuses (waiting is in
            # test_prefetch.py)
            ev = px.hold("held.txt")
            write_file(m.path("t", "held.txt"), b"h")
            rc, _, err = bfs("presign", "--no-wait", m.path("t", "held.txt"))
            self.assertEqual(rc, 1)
            self.assertIn("has data not uploaded yet", err)
            ev.set()
            rc, _, err = bfs("sync", m.mnt)
            self.assertEqual(rc, 0, err)
            rc, out, err = bfs("presign", m.path("t", "held.txt"))
            self.assertEqual(rc, 0, err)
        with open(os.path.join(self.tmp, "local"), "w") as f:
            f.write("x")
        rc, _, err = bfs("presign", os.path.join(self.tmp, "local"))
        self.assertEqual(rc, 1)
        self.assertIn("is not on a bucketfs mount", err)
        rc, _, err = bfs("presign")
        self.assertEqual(rc, 2)

    @unittest.skipUnless(server_can("checks_sigv4"),
                         "s3rver checks neither presigned signatures nor their expiry")
    def test_expired_and_tampered_urls_refused(self):
        self.put("e.txt", b"expiring")
        with self.mount() as m:
            rc, out, err = bfs("presign", m.path("t", "e.txt"))
            self.assertEqual(rc, 0, err)
            good = out.strip()
            self.assertEqual(curl(good), (200, b"expiring"))
            sig = urllib.parse.parse_qs(urllib.parse.urlsplit(good).query)["X-Amz-Signature"][0]
            bad = good.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
            self.assertEqual(curl(bad)[0], 403, "a tampered signature must be refused")
            rc, out, err = bfs("presign", "--expires", "1s", m.path("t", "e.txt"))
            self.assertEqual(rc, 0, err)
            short = out.strip()
            time.sleep(3)
            status, body = curl(short)
            self.assertEqual(status, 403, "an expired URL must be refused: %r" % body[:300])


def main():
    return tm.suite_main(__doc__, tools=("fusermount3", "curl"))


if __name__ == "__main__":
    sys.exit(main())
