#!/usr/bin/python3
"""Integration tests of a written file's life (issue 17: "close the windows
where closed data can be lost"), against a live S3 server.

Run as root inside scripts/with-server.sh:

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_wstate.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Rename]

Every mount reaches the server through an in-process proxy (the forwarding
of faultproxy.py) that records each request (method, key, whether it is a
server-side copy, status, start and end), can hold back the PUTs/POSTs of
keys containing a text for some seconds (a slow upload, a slow CopyObject),
and can answer matching requests with 500 InternalError or reset their
connection for as long as a fault stays switched on (so that the daemon's
retries are exhausted).  The daemons run in the foreground (-f) with their
log in a file; the error/warning lines are printed when a test fails.

What is checked, always with the bytes: what S3 holds (boto3, directly to
the server, after `bucketfs sync` and once the proxy has no request in
flight), what the mount reads, and what a fresh mount with an empty cache
reads.

  RenameDuringCloseTest  a file opened O_RDWR is renamed in another thread
      while the copy to the new key is held 2 s; meanwhile the descriptor
      writes and is closed: the new name holds the new bytes, the old name
      is gone (uploaded file, file with a pending upload, file never
      uploaded, and the rename of the file's directory).
  FaultTest  unlink and rename whose DELETE / CopyObject get 500 or resets
      until retries are exhausted: EIO, nothing closed is lost, the
      replaced file of a rename over an existing one stays, a later retry
      succeeds.
  TwoWritersTest  two descriptors (one process, two processes) write
      different ranges; close, close, kill -9 at once, remount: both
      writes are there; the last close returns once journaled.
  MmapTest  shared writable mappings, msync/munmap before and after close.
  UnlinkDuringUploadTest  unlink while the PUT (or the multipart upload)
      runs, with and without a new file at the same name right after.

The Mount machinery and helpers are those of test_mount.py, test_write.py
and test_conflicts.py (imported from this directory).  The binary given
with --bucketfs is copied at the start, so that a rebuild during the run
cannot break later mounts.
"""
import collections
import errno
import mmap
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultproxy as fp  # noqa: E402  (its forwarding handler, not its plan)
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import BUCKET, KiB, MiB, read_all, note  # noqa: E402
from test_write import WriteTestCase, errno_of, ename, journal, write_file  # noqa: E402
from test_conflicts import LogMount, bfs_sync  # noqa: E402

LOGDIR = None      # daemon logs, kept when a test fails (set by main)
HOLD = 2.0         # seconds the proxy holds a delayed PUT/POST


# ------------------------------------------------------------------ proxy
Req = collections.namedtuple("Req", "method key query copy status fault t_start t_end")


class _Reset(Exception):
    """Raised by the handler to drop a connection without an answer."""


class _Handler(fp.Handler):
    def forward(self, method, target, headers, body):
        px = self.server.owner
        t0 = time.monotonic()
        path, _, query = target.partition("?")
        key = urllib.parse.unquote(path).lstrip("/")
        key = key.split("/", 1)[1] if "/" in key else ""
        h = {k.lower(): v for k, v in headers}
        copy = "x-amz-copy-source" in h
        px.begin()
        try:
            fault = px.fault_for(method, key, query, copy)
            if fault == "500":
                px.record(Req(method, key, query, copy, 500, "500", t0, time.monotonic()))
                return 500, "Internal Server Error", [("Content-Type", "application/xml")], \
                    fp.error_doc("InternalError", "injected by test_wstate")
            if fault == "reset":
                px.record(Req(method, key, query, copy, 0, "reset", t0, time.monotonic()))
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
                raise _Reset()
            delay = px.delay_for(method, key, query, copy) if method in ("PUT", "POST") else 0
            if delay:
                px.note_held(key)
                time.sleep(delay)
            status, reason, rheaders, data = super().forward(method, target, headers, body)
            px.record(Req(method, key, query, copy, status, "held %gs" % delay if delay else None,
                          t0, time.monotonic()))
            return status, reason, rheaders, data
        finally:
            px.end()


class _Server(fp.Server):
    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (_Reset, ConnectionError)):
            return
        super().handle_error(request, client_address)


class WProxy:
    """An HTTP proxy to the test server that records every request, can hold
    back the uploads of some keys, and can fail some requests while a fault
    is switched on."""

    def __init__(self):
        if fp.log is None:
            fp.log = open(os.devnull, "w")
        self.lock = threading.Lock()
        self.reqs = []
        self.delays = []     # [(substring of the key, seconds, "copy"|"upload"|"any")]
        self.faults = []     # [(method, substring of the key, "copy"|"upload"|"any", fault)]
        self.held = []       # keys whose request is being held, in order
        self.inflight = 0
        self.srv = _Server(("127.0.0.1", 0), _Handler)
        self.srv.upstream = os.environ["AWS_ENDPOINT_URL"]
        self.srv.log_headers = ()
        self.srv.owner = self
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    @staticmethod
    def _kind_ok(kind, method, query, copy):
        """any | copy (a PUT with x-amz-copy-source) | upload (any other PUT or
        POST) | part (UploadPart) | complete (CompleteMultipartUpload) | final
        (a PUT of the whole object or CompleteMultipartUpload)"""
        if kind == "any":
            return True
        if kind == "copy":
            return copy
        if kind == "part":
            return method == "PUT" and "partNumber=" in query and not copy
        if kind == "complete":
            return method == "POST" and "uploadId=" in query
        if kind == "final":      # what makes the object: a whole PUT or the Complete
            return ((method == "PUT" and "partNumber=" not in query and not copy) or
                    (method == "POST" and "uploadId=" in query))
        return method in ("PUT", "POST") and not copy

    # ---- handler side
    def begin(self):
        with self.lock:
            self.inflight += 1

    def end(self):
        with self.lock:
            self.inflight -= 1

    def record(self, r):
        with self.lock:
            self.reqs.append(r)

    def note_held(self, key):
        with self.lock:
            self.held.append(key)

    def delay_for(self, method, key, query, copy):
        with self.lock:
            for sub, secs, kind in self.delays:
                if sub in key and self._kind_ok(kind, method, query, copy):
                    return secs
        return 0

    def fault_for(self, method, key, query, copy):
        with self.lock:
            for m, sub, kind, fault in self.faults:
                if m == method and sub in key and self._kind_ok(kind, method, query, copy):
                    return fault
        return None

    # ---- test side
    def delay(self, sub, secs=HOLD, kind="any"):
        with self.lock:
            self.delays.append((sub, secs, kind))

    def no_delays(self):
        with self.lock:
            self.delays = []

    def fail(self, method, sub, fault, kind="any"):
        with self.lock:
            self.faults.append((method, sub, kind, fault))

    def heal(self):
        with self.lock:
            self.faults = []

    def mark(self):
        with self.lock:
            return len(self.reqs)

    def since(self, mark=0):
        with self.lock:
            return list(self.reqs[mark:])

    def held_keys(self):
        with self.lock:
            return list(self.held)

    def wait_held(self, sub, timeout, start=0):
        """Waits until a request for a key containing sub is being held."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(sub in k for k in self.held_keys()[start:]):
                return True
            time.sleep(0.01)
        return False

    def wait_idle(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.inflight == 0:
                    return True
            time.sleep(0.05)
        return False

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def show(r):
    return "%s %s%s%s -> %s%s (%.2f-%.2f)" % (
        r.method, r.key, "?" + r.query if r.query else "", " [copy]" if r.copy else "",
        r.status, " " + r.fault if r.fault else "", r.t_start, r.t_end)


# --------------------------------------------------------------- the tests
class WStateTestCase(WriteTestCase):

    def setUp(self):
        super().setUp()
        self.p = "ws-%s-%s/" % (self._testMethodName[5:][:40], os.urandom(4).hex())
        self.logdir = os.path.join(LOGDIR or self.tmp, self._testMethodName)
        os.makedirs(self.logdir, exist_ok=True)
        self.mounts = []
        self.proxies = []

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            self.show_logs()
        return out

    def show_logs(self):
        for m in self.mounts:
            lines = [ln for ln in m.log().splitlines()
                     if re.search(r"error|warn|fail|lost|conflict|rename|unlink|commit", ln, re.I)]
            print("\n--- daemon %s: %d matching log lines of %s%s" % (
                m.mnt, len(lines), m.log_path, ", the last 40:" if len(lines) > 40 else ":"),
                file=sys.stderr)
            for ln in lines[-40:]:
                print("    " + ln, file=sys.stderr)
        for px in self.proxies:
            reqs = px.since()
            print("\n--- proxy %s: %d requests, the last 40:" % (px.url, len(reqs)),
                  file=sys.stderr)
            for r in reqs[-40:]:
                print("    " + show(r), file=sys.stderr)

    def mount(self, maps="default", proxy=True, opts=None, cache=None, **kw):
        """A LogMount of this test's prefix as "t" through a fresh WProxy (m.px)
        unless proxy is False (or a WProxy to reuse)."""
        if maps == "default":
            maps = [("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))]
        opts = dict(opts or {})
        if cache:
            opts["cache_dir"] = cache
        px = None
        if isinstance(proxy, WProxy):
            px = proxy
        elif proxy:
            px = WProxy()
            self.proxies.append(px)
            self.addCleanup(px.close)
        if px is not None:
            opts["endpoint"] = px.url
        m = LogMount(maps=maps, opts=opts, label="m%d" % len(self.mounts),
                     log_path=os.path.join(self.logdir, "m%d.log" % len(self.mounts)), **kw)
        m.px = px
        self.mounts.append(m)
        self.addCleanup(m.cleanup)
        return m

    def sync(self, m, timeout=90, check=True):
        """`bucketfs sync`, which must exit 0 (unless check is False: the
        caller checks r.rc later); then waits until the proxy has no request
        in flight (a held request would land after the check)."""
        r = bfs_sync(m, timeout=timeout)
        if check:
            self.assertSynced(r)
        if m.px is not None:
            self.assertTrue(m.px.wait_idle(30), "requests still in flight 30 s after sync")
        return r

    def assertSynced(self, r):
        self.assertEqual(r.rc, 0, "bucketfs sync exited %d after %.1fs: %s %s"
                         % (r.rc, r.secs, r.out, r.err))

    def fresh_read(self, rels):
        """{rel: bytes or errno name} read by a fresh mount with an empty cache
        (straight to the server)."""
        out = {}
        with self.mount(proxy=False) as m:
            for rel in rels:
                try:
                    out[rel] = read_all(m.path("t", rel))
                except OSError as e:
                    out[rel] = errno.errorcode.get(e.errno, str(e.errno))
            m.unmount_wait()
        return out

    def assertGone(self, m, rel, what):
        self.assertErrno(errno.ENOENT, os.stat, m.path("t", rel), what="stat %s (%s)" % (rel, what))
        self.assertNoObject(rel, what)


def patch(data, off, new):
    out = bytearray(data)
    if off > len(out):
        out += bytes(off - len(out))
    out[off:off + len(new)] = new
    return bytes(out)


# ------------------------------------------------------ 1. rename vs close
class RenameDuringCloseTest(WStateTestCase):
    """A file opened O_RDWR (descriptor kept) is renamed in another thread;
    the proxy holds the PUTs of the new key (the CopyObject and any upload)
    HOLD seconds; during that time the descriptor writes new bytes and is
    closed.  After `bucketfs sync`: no object at the old name, the new name
    holds the new bytes in S3, on the mount and on a fresh mount, the old
    name is ENOENT."""

    def one(self, m, old, new, base, off, new_bytes, rename_from=None, rename_to=None,
            hold=None, expect_hold=True):
        """Opens old O_RDWR, renames rename_from (old) to rename_to (new) in a
        thread with the PUTs of keys containing hold (the new name) held,
        writes new_bytes at off and closes while the rename runs (once the
        proxy holds the copy when expect_hold).  Returns what the file must
        hold, a description of the timing, and whether a copy was held."""
        px = m.px
        t = lambda *a: m.path("t", *a)  # noqa: E731
        rename_from = rename_from or old
        rename_to = rename_to or new
        hold = self.p + (hold or rename_to)
        fd = os.open(t(old), os.O_RDWR)
        held0 = len(px.held_keys())
        px.delay(hold, HOLD)
        res = {}

        def do_rename():
            t0 = time.monotonic()
            try:
                os.rename(t(rename_from), t(rename_to))
                res["rc"] = None
            except OSError as e:
                res["rc"] = e.errno
            res["t"] = time.monotonic() - t0
            res["end"] = time.monotonic()

        th = threading.Thread(target=do_rename)
        closed = False
        try:
            th.start()
            held = px.wait_held(hold, 3 if expect_hold else 0.3, held0)
            os.pwrite(fd, new_bytes, off)
            t_write = time.monotonic()
            os.close(fd)
            closed = True
            t_close = time.monotonic()
        finally:
            if not closed:
                os.close(fd)
            th.join(30)
        px.no_delays()
        self.assertFalse(th.is_alive(), "rename still running 30 s later")
        self.assertIsNone(res["rc"], "rename %s -> %s: %s" % (rename_from, rename_to,
                                                             ename(res["rc"])))
        window = ("copy held: %s; rename took %.2fs; write returned %+.2fs and "
                  "close %+.2fs from the rename's return" % (
                      held, res["t"], t_write - res["end"], t_close - res["end"]))
        note("%s -> %s: %s", rename_from, rename_to, window)
        if expect_hold:
            self.assertTrue(held, "precondition: the rename %s -> %s must copy %s (a PUT the "
                            "proxy holds); requests %r" % (rename_from, rename_to, hold,
                                                           [show(r) for r in px.since()][-10:]))
        return patch(base, off, new_bytes), window, held

    def check(self, m, cases):
        """cases: [(old, new, want, window)]"""
        t = lambda *a: m.path("t", *a)  # noqa: E731
        for old, new, want, window in cases:
            self.assertBytes(read_all(t(new)), want, "%s on the mount before sync (%s)"
                             % (new, window))
            self.assertErrno(errno.ENOENT, os.stat, t(old), what="stat old name %s" % old)
        r = self.sync(m, check=False)
        said = "; bucketfs sync exited %d: %s" % (r.rc, r.err.strip()) if r.rc else ""
        for old, new, want, window in cases:
            window += said
            self.assertNoObject(old, "renamed away before the close (%s)" % window)
            self.assertObject(new, data=want, what="the bytes written during the rename (%s)"
                              % window)
            self.assertBytes(read_all(t(new)), want, "%s on the mount after sync" % new)
            self.assertErrno(errno.ENOENT, os.stat, t(old), what="stat old name %s after sync"
                             % old)
        self.assertSynced(r)
        m.unmount_wait()
        fresh = self.fresh_read([c[0] for c in cases] + [c[1] for c in cases])
        for old, new, want, window in cases:
            self.assertEqual(fresh[old], "ENOENT", "old name %s on a fresh mount" % old)
            self.assertBytes(fresh[new], want, "%s on a fresh mount" % new)

    def test_rename_during_close_uploaded(self):
        base = os.urandom(200 * KiB)
        self.put("up.bin", base)
        self.put("upd/f.bin", base[::-1])
        other = os.urandom(10 * KiB)
        self.put("upe/f.bin", base)
        self.put("upe/other.bin", other)
        with self.mount(opts={"upload_delay": "200ms"}) as m:
            read_all(m.path("t", "up.bin"))  # cached, as a program that read it first
            # the kernel locks the file against writes during its rename: the
            # write and the close wait for the rename's end
            want, w, _held = self.one(m, "up.bin", "up-new.bin", base, 1000, os.urandom(5000))
            # the same through the rename of the file's directory, which the
            # kernel does not lock against writes to the file
            want2, w2, held2 = self.one(m, "upd/f.bin", "upd2/f.bin", base[::-1], 50 * KiB,
                                        os.urandom(300), rename_from="upd", rename_to="upd2")
            # and held by the copy of a file beside it (the file's own copy
            # may be done by then)
            want3, w3, _held = self.one(m, "upe/f.bin", "upe2/f.bin", base, 0, os.urandom(700),
                                        rename_from="upe", rename_to="upe2",
                                        hold="upe2/other.bin")
            self.check(m, [("up.bin", "up-new.bin", want, w),
                           ("upd/f.bin", "upd2/f.bin", want2, w2),
                           ("upe/f.bin", "upe2/f.bin", want3, w3),
                           ("upe/other.bin", "upe2/other.bin", other, "beside it")])
        self.assertEqual([k for k in self.rel_keys() if not k.endswith("/")],
                         ["up-new.bin", "upd2/f.bin", "upe2/f.bin", "upe2/other.bin"],
                         "keys (directory markers aside)")

    def test_rename_during_close_upload_pending(self):
        """The object is in S3, and a newer version closed on the mount waits
        for its upload (upload_delay 30 s) when the file is reopened and
        renamed."""
        old, other = os.urandom(150 * KiB), os.urandom(10 * KiB)
        self.put("pend.bin", old)
        self.put("pd/f.bin", old[::-1])
        self.put("pd/other.bin", other)
        base, base2 = os.urandom(180 * KiB), os.urandom(90 * KiB)
        with self.mount(opts={"upload_delay": "30s"}) as m:
            write_file(m.path("t", "pend.bin"), base)
            write_file(m.path("t", "pd", "f.bin"), base2)
            self.assertEqual(len(journal(m.cache_dir)), 2, "precondition: uploads pending")
            want, w, _held = self.one(m, "pend.bin", "pend-new.bin", base, 170 * KiB,
                                      os.urandom(20 * KiB), expect_hold=False)
            # the rename of its directory, held by the copy of an uploaded
            # file beside it
            want2, w2, _held = self.one(m, "pd/f.bin", "pd2/f.bin", base2, 0, os.urandom(100),
                                        rename_from="pd", rename_to="pd2", hold="pd2/other.bin")
            self.check(m, [("pend.bin", "pend-new.bin", want, w),
                           ("pd/f.bin", "pd2/f.bin", want2, w2),
                           ("pd/other.bin", "pd2/other.bin", other, "beside it")])
        self.assertEqual([k for k in self.rel_keys() if not k.endswith("/")],
                         ["pd2/f.bin", "pd2/other.bin", "pend-new.bin"],
                         "keys (directory markers aside)")

    def test_rename_during_close_never_uploaded(self):
        """A file created on the mount and closed (upload pending, never in
        S3), and one still open from its creation, renamed while written."""
        base, other = os.urandom(100 * KiB), os.urandom(10 * KiB)
        self.put("nd/other.bin", other)
        with self.mount(opts={"upload_delay": "30s"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("new.bin"), base)
            write_file(t("nd", "f.bin"), base[::-1])
            want, w, _held = self.one(m, "new.bin", "new-renamed.bin", base, 10, os.urandom(64),
                                      expect_hold=False)
            want3, w3, _held = self.one(m, "nd/f.bin", "nd2/f.bin", base[::-1], 99 * KiB,
                                        os.urandom(4 * KiB), rename_from="nd", rename_to="nd2",
                                        hold="nd2/other.bin")
            # never closed before: created, written, renamed while open
            fd = os.open(t("open.bin"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.pwrite(fd, base[::-1], 0)
                os.rename(t("open.bin"), t("open-renamed.bin"))
                os.pwrite(fd, b"after the rename", 4096)
            finally:
                os.close(fd)
            want2 = patch(base[::-1], 4096, b"after the rename")
            self.check(m, [("new.bin", "new-renamed.bin", want, w),
                           ("nd/f.bin", "nd2/f.bin", want3, w3),
                           ("nd/other.bin", "nd2/other.bin", other, "beside it"),
                           ("open.bin", "open-renamed.bin", want2, "renamed while open")])
        self.assertEqual([k for k in self.rel_keys() if not k.endswith("/")],
                         ["nd2/f.bin", "nd2/other.bin", "new-renamed.bin", "open-renamed.bin"],
                         "keys (directory markers aside)")


# ----------------------------------------------------- 2. faults in S3
class FaultTest(WStateTestCase):
    """unlink and rename whose S3 request fails until the daemon's retries
    are exhausted (the proxy answers every matching request with 500 or a
    reset while the fault is on): the call fails with EIO and nothing closed
    is lost; once the fault ends a retry succeeds."""

    def wait_reachable(self, m):
        """After resets the mount marks the endpoint down: calls that need S3
        fail at once with ETIMEDOUT, but for one every 2 s, which tries (a
        lookup is answered from the cached listing then).  Waits until a
        mkdir (a marker PUT) gets through, and removes the directory."""
        deadline = time.monotonic() + 15
        d = m.path("t", "probe-%s" % os.urandom(4).hex())
        while True:
            e = errno_of(os.mkdir, d)
            if e is None:
                os.rmdir(d)
                return
            if time.monotonic() > deadline:
                self.fail("mkdir still fails (%s) 15 s after the fault ended" % ename(e))
            time.sleep(0.5)

    def test_unlink_fails_then_succeeds(self):
        up = os.urandom(64 * KiB)
        self.put("up.csv", up)
        self.put("pend.csv", b"old version\n")
        with self.mount(opts={"upload_delay": "2s"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            px = m.px
            # an uploaded file, DELETE answered 500
            px.fail("DELETE", self.p + "up.csv", "500")
            mk = px.mark()
            self.assertErrno(errno.EIO, os.unlink, t("up.csv"), what="unlink, DELETE 500")
            deletes = [r for r in px.since(mk) if r.method == "DELETE"]
            self.assertGreater(len(deletes), 1, "the DELETE was not retried: %r"
                               % [show(r) for r in deletes])
            self.assertBytes(read_all(t("up.csv")), up, "up.csv after the failed unlink")
            self.assertIn("up.csv", os.listdir(t()))
            # a closed version waiting for its upload, DELETE reset
            pend = os.urandom(30 * KiB)
            write_file(t("pend.csv"), pend)
            px.fail("DELETE", self.p + "pend.csv", "reset")
            e = errno_of(os.unlink, t("pend.csv"))
            self.assertEqual(e, errno.EIO, "unlink, DELETE reset: got %s, want EIO" % ename(e))
            self.assertBytes(read_all(t("pend.csv")), pend, "pend.csv after the failed unlink")
            px.heal()
            self.wait_reachable(m)
            self.sync(m)
            self.assertObject("up.csv", data=up, what="after the failed unlink")
            self.assertObject("pend.csv", data=pend, what="the closed version, uploaded after "
                              "the failed unlink")
            self.assertBytes(read_all(t("pend.csv")), pend, "pend.csv after sync")
            # now the unlinks go through
            os.unlink(t("up.csv"))
            os.unlink(t("pend.csv"))
            self.sync(m)
            self.assertGone(m, "up.csv", "unlinked again after the fault")
            self.assertGone(m, "pend.csv", "unlinked again after the fault")
            m.unmount_wait()
        self.assertEqual(self.rel_keys(), [])

    def test_rename_copy_fails_then_succeeds(self):
        a = os.urandom(40 * KiB)
        self.put("a.bin", a)
        self.put("p.bin", b"p old\n")
        with self.mount(opts={"upload_delay": "2s"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            px = m.px
            # uploaded file, copy answered 500 (every try)
            px.fail("PUT", self.p + "a2.bin", "500", kind="copy")
            mk = px.mark()
            self.assertErrno(errno.EIO, os.rename, t("a.bin"), t("a2.bin"),
                             what="rename, copy 500")
            copies = [r for r in px.since(mk) if r.copy]
            self.assertGreater(len(copies), 1, "the copy was not retried: %r"
                               % [show(r) for r in copies])
            self.assertBytes(read_all(t("a.bin")), a, "a.bin after the failed rename")
            self.assertErrno(errno.ENOENT, os.stat, t("a2.bin"), what="new name after the "
                             "failed rename")
            self.assertNotIn("a2.bin", os.listdir(t()))
            # uploaded file, copy reset (every try)
            px.fail("PUT", self.p + "a3.bin", "reset", kind="copy")
            e = errno_of(os.rename, t("a.bin"), t("a3.bin"))
            self.assertEqual(e, errno.EIO, "rename, copy reset: got %s, want EIO" % ename(e))
            self.assertBytes(read_all(t("a.bin")), a, "a.bin after the second failed rename")
            self.assertErrno(errno.ENOENT, os.stat, t("a3.bin"), what="a3.bin after the failed "
                             "rename")
            px.heal()
            self.wait_reachable(m)
            # a file whose closed version waits for its upload: copy and
            # DELETE fail; either the rename fails and changes nothing, or it
            # succeeds without S3 (the pending upload goes to the new name)
            p = os.urandom(20 * KiB)
            write_file(t("p.bin"), p)
            px.fail("PUT", self.p + "p2.bin", "500", kind="copy")
            px.fail("DELETE", self.p + "p.bin", "500")
            e_p = errno_of(os.rename, t("p.bin"), t("p2.bin"))
            self.assertIn(e_p, (None, errno.EIO), "rename of a pending file with S3 failing: %s"
                          % ename(e_p))
            note("rename of a file with a pending upload, copy and DELETE failing: %s; its "
                 "requests: %s", ename(e_p), [show(r) for r in px.since(mk)
                                              if "/p.bin" in r.key or "/p2.bin" in r.key])
            p_at, p_gone = ("p.bin", "p2.bin") if e_p else ("p2.bin", "p.bin")
            self.assertBytes(read_all(t(p_at)), p, "%s after the rename (%s)"
                             % (p_at, ename(e_p)))
            self.assertErrno(errno.ENOENT, os.stat, t(p_gone), what="%s after the rename (%s)"
                             % (p_gone, ename(e_p)))
            px.heal()
            self.wait_reachable(m)
            self.sync(m)
            self.assertObject("a.bin", data=a, what="after the failed renames")
            self.assertNoObject("a2.bin", "the failed rename's target")
            self.assertNoObject("a3.bin", "the failed rename's target")
            self.assertObject(p_at, data=p, what="the closed version, after the rename (%s)"
                              % ename(e_p))
            self.assertNoObject(p_gone, "after the rename (%s)" % ename(e_p))
            # the retries go through
            os.rename(t("a.bin"), t("a2.bin"))
            if e_p:
                os.rename(t("p.bin"), t("p2.bin"))
            self.sync(m)
            self.assertBytes(read_all(t("a2.bin")), a, "a2.bin after the retried rename")
            self.assertBytes(read_all(t("p2.bin")), p, "p2.bin after the retried rename")
            self.assertGone(m, "a.bin", "renamed on the retry")
            self.assertGone(m, "p.bin", "renamed")
            m.unmount_wait()
        self.assertObject("a2.bin", data=a)
        self.assertObject("p2.bin", data=p)
        self.assertEqual(self.rel_keys(), ["a2.bin", "p2.bin"])
        fresh = self.fresh_read(["a2.bin", "p2.bin", "a.bin"])
        self.assertEqual(fresh, {"a2.bin": a, "p2.bin": p, "a.bin": "ENOENT"})

    def test_rename_over_existing_copy_fails(self):
        """rename(src, dst) with dst existing: uploaded dst, and dst with a
        closed version pending; the copy onto dst fails (500, reset): EIO,
        dst keeps its bytes (mount, S3 after sync), src keeps its own."""
        src, dst = os.urandom(30 * KiB), os.urandom(50 * KiB)
        self.put("src.bin", src)
        self.put("dst.bin", dst)
        self.put("dp.bin", b"dp old\n")
        with self.mount(opts={"upload_delay": "2s"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            px = m.px
            read_all(t("dst.bin"))
            px.fail("PUT", self.p + "dst.bin", "500", kind="copy")
            self.assertErrno(errno.EIO, os.rename, t("src.bin"), t("dst.bin"),
                             what="rename over uploaded dst, copy 500")
            self.assertBytes(read_all(t("dst.bin")), dst, "the replaced file after the failed "
                             "rename")
            self.assertBytes(read_all(t("src.bin")), src, "src after the failed rename")
            dp = os.urandom(12 * KiB)
            write_file(t("dp.bin"), dp)   # pending (upload_delay) when the rename is tried
            px.fail("PUT", self.p + "dp.bin", "reset", kind="copy")
            e = errno_of(os.rename, t("src.bin"), t("dp.bin"))
            self.assertEqual(e, errno.EIO, "rename over pending dp.bin, copy reset: got %s, want "
                             "EIO" % ename(e))
            self.assertBytes(read_all(t("dp.bin")), dp, "the replaced pending file after the "
                             "failed rename")
            self.assertBytes(read_all(t("src.bin")), src, "src after the failed rename")
            px.heal()
            self.wait_reachable(m)
            self.sync(m)
            self.assertObject("dst.bin", data=dst, what="replaced by a rename that failed")
            self.assertObject("dp.bin", data=dp, what="its closed version, replaced by a rename "
                              "that failed")
            self.assertObject("src.bin", data=src, what="source of the failed renames")
            # the retry replaces dst
            os.rename(t("src.bin"), t("dst.bin"))
            self.sync(m)
            self.assertBytes(read_all(t("dst.bin")), src, "dst.bin after the retried rename")
            self.assertGone(m, "src.bin", "renamed over dst.bin on the retry")
            m.unmount_wait()
        self.assertObject("dst.bin", data=src)
        self.assertObject("dp.bin", data=dp)
        self.assertEqual(self.rel_keys(), ["dp.bin", "dst.bin"])
        fresh = self.fresh_read(["dst.bin", "dp.bin", "src.bin"])
        self.assertEqual(fresh, {"dst.bin": src, "dp.bin": dp, "src.bin": "ENOENT"})


# --------------------------------------------------- 3. two writer handles
CHILD = textwrap.dedent("""
    import os, sys
    path, off, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    import random
    data = random.Random(seed).randbytes(n)
    fd = os.open(path, os.O_WRONLY)
    os.pwrite(fd, data, off)
    print("written", flush=True)
    sys.stdin.readline()
    os.close(fd)
    print("closed", flush=True)
    sys.stdin.readline()
""")


class TwoWritersTest(WStateTestCase):
    """Two writer descriptors of one file write different ranges; the first
    is closed, then the second; right after the second close returns the
    daemon is killed with SIGKILL and the cache remounted: both writes are
    there (mount and, after the unmount, S3)."""

    def remount_check(self, cache, rels_want, what):
        with self.mount(cache=cache) as m:
            problems = []
            for rel, want in rels_want.items():
                try:
                    got = read_all(m.path("t", rel))
                except OSError as e:
                    got = None
                    problems.append("%s: %s" % (rel, e))
                if got is not None and got != want:
                    diff = next((i for i in range(min(len(got), len(want)))
                                 if got[i] != want[i]), min(len(got), len(want)))
                    problems.append("%s: %d bytes, want %d, first difference at %d"
                                    % (rel, len(got), len(want), diff))
            m.unmount_wait()
        self.assertEqual(problems, [], "%s: closed data lost by a kill -9 right after the last "
                         "close" % what)
        for rel, want in rels_want.items():
            self.assertObject(rel, data=want, what=what)

    def test_two_fds_one_process_kill9(self):
        cache = os.path.join(self.tmp, "cache")
        want = {}
        with self.mount(cache=cache, opts={"upload_delay": "30s"}) as m:
            for i in range(3):
                rel = "one%d.bin" % i
                a, b = os.urandom(100 * KiB + i), os.urandom(70 * KiB)
                p = m.path("t", rel)
                fa = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
                fb = os.open(p, os.O_RDWR)
                os.pwrite(fb, b, 300 * KiB)      # the second writes far out first
                os.pwrite(fa, a, 0)
                os.close(fa)
                os.close(fb)
                want[rel] = patch(patch(b"", 300 * KiB, b), 0, a)
            m.kill9()
        self.remount_check(cache, want, "two descriptors of one process")

    def test_two_processes_kill9(self):
        cache = os.path.join(self.tmp, "cache")
        base = os.urandom(400 * KiB)
        self.put("shared.bin", base)
        import random
        with self.mount(cache=cache, opts={"upload_delay": "30s"}) as m:
            p = m.path("t", "shared.bin")
            procs = []
            for off, n, seed in ((10 * KiB, 30 * KiB, 1), (350 * KiB, 100 * KiB, 2)):
                c = subprocess.Popen([sys.executable, "-c", CHILD, p, str(off), str(n), str(seed)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                procs.append(c)
                self.addCleanup(c.communicate)
                self.addCleanup(c.kill)
                self.assertEqual(c.stdout.readline().strip(), "written")
            for c in procs:       # close the first, then the second
                c.stdin.write("\n")
                c.stdin.flush()
                self.assertEqual(c.stdout.readline().strip(), "closed")
            m.kill9()
            for c in procs:
                c.kill()
                c.communicate()
        want = patch(base, 10 * KiB, random.Random(1).randbytes(30 * KiB))
        want = patch(want, 350 * KiB, random.Random(2).randbytes(100 * KiB))
        self.remount_check(cache, {"shared.bin": want}, "two writer processes")

    def test_last_close_returns_journaled(self):
        """Right after the last close returns (upload_delay 30 s, nothing
        uploaded yet) the journal has the file's row with its final size and
        its staging file holds both writes; after the first close alone it
        has no row for it."""
        with self.mount(opts={"upload_delay": "30s"}) as m:
            for i in range(3):
                rel = "j%d.bin" % i
                key = self.p + rel
                a, b = os.urandom(64 * KiB), os.urandom(32 * KiB + i)
                p = m.path("t", rel)
                fa = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
                fb = os.open(p, os.O_WRONLY)
                os.pwrite(fa, a, 0)
                os.pwrite(fb, b, 100 * KiB)
                os.close(fa)
                os.close(fb)
                rows = [r for r in journal(m.cache_dir) if r[1] == key]  # at once
                want = patch(patch(b"", 100 * KiB, b), 0, a)
                self.assertEqual(len(rows), 1, "journal right after the last close of %s: %r"
                                 % (rel, journal(m.cache_dir)))
                ino, _k, gen, size = rows[0][:4]
                self.assertEqual(size, len(want), "journaled size of %s" % rel)
                st = os.path.join(m.cache_dir, "staging", "%d-%d" % (ino, gen))
                with open(st, "rb") as f:
                    self.assertBytes(f.read(), want, "staging file %s of %s" % (st, rel))
                self.assertNoObject(rel, "upload_delay 30 s")
            # the last writer is another process
            import random
            base = os.urandom(128 * KiB)
            write_file(m.path("t", "jp.bin"), base)
            want = base
            procs = []
            for off, n, seed in ((0, 1000, 3), (200 * KiB, 5000, 4)):
                c = subprocess.Popen([sys.executable, "-c", CHILD, m.path("t", "jp.bin"), str(off),
                                      str(n), str(seed)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
                self.addCleanup(c.communicate)
                self.addCleanup(c.kill)
                procs.append(c)
                self.assertEqual(c.stdout.readline().strip(), "written")
                want = patch(want, off, random.Random(seed).randbytes(n))
            for c in procs:
                c.stdin.write("\n")
                c.stdin.flush()
                self.assertEqual(c.stdout.readline().strip(), "closed")
            rows = [r for r in journal(m.cache_dir) if r[1] == self.p + "jp.bin"]
            self.assertEqual(len(rows), 1, "journal right after the last close of jp.bin (by "
                             "another process): %r" % journal(m.cache_dir))
            ino, _k, gen, size = rows[0][:4]
            self.assertEqual(size, len(want), "journaled size of jp.bin")
            with open(os.path.join(m.cache_dir, "staging", "%d-%d" % (ino, gen)), "rb") as f:
                self.assertBytes(f.read(), want, "staging file of jp.bin")
            for c in procs:
                c.stdin.write("\n")
                c.stdin.flush()
                c.communicate()
            m.unmount_wait()
        for i in range(3):
            self.assertIsNotNone(self.head("j%d.bin" % i))
        self.assertObject("jp.bin", data=want)


# ----------------------------------------------------------- 4. mmap
class MmapTest(WStateTestCase):
    """Shared writable mappings (numpy.memmap / joblib style): the bytes
    changed through the mapping reach S3 and a fresh mount."""

    def test_mmap_shared_write(self):
        obj = os.urandom(3 * 65536 + 100)
        self.put("existing.bin", obj)
        self.put("after.bin", obj[::-1])
        size_new = 256 * KiB
        # straight to the server, no in-process proxy: Python's msync and the
        # page faults of a mapping hold the GIL, so the proxy's threads
        # would stall until the daemon's request timed out
        with self.mount(proxy=False, opts={"upload_delay": "200ms"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            want = {}
            # an existing object: map, change, msync, munmap, close
            fd = os.open(t("existing.bin"), os.O_RDWR)
            mm = mmap.mmap(fd, len(obj), flags=mmap.MAP_SHARED,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE)
            mm[5:15] = b"0123456789"
            mm[70000:70004] = b"MMAP"
            mm[len(obj) - 3:] = b"end"
            mm.flush()
            mm.close()
            os.close(fd)
            w = patch(patch(patch(obj, 5, b"0123456789"), 70000, b"MMAP"), len(obj) - 3, b"end")
            want["existing.bin"] = w
            # a new file, numpy.memmap(mode="w+"): create, size, map, fill
            fd = os.open(t("new.npy"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            os.ftruncate(fd, size_new)
            mm = mmap.mmap(fd, size_new, flags=mmap.MAP_SHARED,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE)
            fill = bytes(range(256)) * (size_new // 256)
            mm[:] = fill
            mm.flush()
            mm[100:110] = b"second msy"
            mm.flush()
            mm.close()
            os.close(fd)
            want["new.npy"] = patch(fill, 100, b"second msy")
            # munmap after close, no msync: the mapping's dirty pages are
            # all that carries the change
            fd = os.open(t("after.bin"), os.O_RDWR)
            mm = mmap.mmap(fd, len(obj), flags=mmap.MAP_SHARED,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE)
            mm[0:4] = b"FRST"
            os.close(fd)
            mm[140000:140006] = b"closed"
            mm.close()
            want["after.bin"] = patch(patch(obj[::-1], 0, b"FRST"), 140000, b"closed")
            # a second mapping without an open descriptor, on a new file
            fd = os.open(t("late.bin"), os.O_RDWR | os.O_CREAT, 0o644)
            os.ftruncate(fd, 8192)
            mm = mmap.mmap(fd, 8192, flags=mmap.MAP_SHARED,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE)
            os.close(fd)
            mm[4000:4010] = b"late bytes"
            mm.close()
            want["late.bin"] = patch(bytes(8192), 4000, b"late bytes")
            for rel, w in want.items():
                self.assertBytes(read_all(t(rel)), w, "%s on the mount after munmap" % rel)
            self.sync(m)
            for rel, w in want.items():
                self.assertObject(rel, data=w, what="written through a shared mapping")
            m.unmount_wait()
        fresh = self.fresh_read(list(want))
        for rel, w in want.items():
            self.assertBytes(fresh[rel] if isinstance(fresh[rel], bytes) else b"", w,
                             "%s on a fresh mount (%s)" % (rel, fresh[rel] if isinstance(
                                 fresh[rel], str) else "read"))


# ----------------------------------------------- 5. unlink during upload
class UnlinkDuringUploadTest(WStateTestCase):
    """unlink of a file whose upload is running (the proxy holds its PUT,
    or the CompleteMultipartUpload, HOLD seconds): after sync no object and
    ENOENT; with a new file created at the name right after the unlink, S3
    ends with the new file's bytes."""

    def start_upload(self, m, rel, data, kind="upload"):
        held0 = len(m.px.held_keys())
        m.px.delay(self.p + rel, HOLD, kind=kind)
        write_file(m.path("t", rel), data)
        self.assertTrue(m.px.wait_held(self.p + rel, 10, held0),
                        "precondition: the upload of %s did not start within 10 s: %r"
                        % (rel, [show(r) for r in m.px.since()][-10:]))

    def test_unlink_during_put(self):
        with self.mount(opts={"upload_delay": "0"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            self.start_upload(m, "gone.bin", os.urandom(200 * KiB))
            os.unlink(t("gone.bin"))
            self.assertErrno(errno.ENOENT, os.stat, t("gone.bin"), what="after the unlink")
            new = os.urandom(30 * KiB)
            self.start_upload(m, "again.bin", os.urandom(100 * KiB))
            os.unlink(t("again.bin"))
            write_file(t("again.bin"), new)
            self.assertBytes(read_all(t("again.bin")), new, "the new file at once")
            self.sync(m)
            self.assertGone(m, "gone.bin", "unlinked while its PUT was held")
            self.assertObject("again.bin", data=new, what="created after the unlink of a file "
                              "whose PUT was held")
            self.assertBytes(read_all(t("again.bin")), new, "again.bin after sync")
            m.unmount_wait()
        self.assertEqual(self.rel_keys(), ["again.bin"])
        fresh = self.fresh_read(["gone.bin", "again.bin"])
        self.assertEqual(fresh["gone.bin"], "ENOENT")
        self.assertBytes(fresh["again.bin"], new, "again.bin on a fresh mount")

    def test_unlink_during_multipart(self):
        big, big2 = os.urandom(20 * MiB), os.urandom(18 * MiB)
        with self.mount(opts={"upload_delay": "0"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            # conditional uploads to RGW go as one PUT (RGW ignores conditions
            # on CompleteMultipartUpload): then the PUT is held
            self.start_upload(m, "big.bin", big)                 # parts (or the PUT) held
            os.unlink(t("big.bin"))
            self.start_upload(m, "big2.bin", big2, kind="final")  # Complete (or PUT) held
            os.unlink(t("big2.bin"))
            new = b"the new big2\n"
            write_file(t("big2.bin"), new)
            self.sync(m, timeout=120)
            self.assertGone(m, "big.bin", "unlinked during its multipart upload")
            self.assertObject("big2.bin", data=new, what="created after the unlink of a file "
                              "whose upload was running")
            m.unmount_wait()
        self.assertEqual(self.rel_keys(), ["big2.bin"])


def set_logdir(path):
    global LOGDIR
    LOGDIR = path


def main():
    return tm.suite_main(__doc__, logdir_prefix="bfs-wstate-logs-", on_logdir=set_logdir)


if __name__ == "__main__":
    sys.exit(main())
