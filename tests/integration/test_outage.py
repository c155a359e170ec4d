#!/usr/bin/python3
"""test_outage.py: a bucketfs mount whose S3 server stops answering (issue 13,
item 1, "never hang"), through a real FUSE mount on a live S3 server.

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_outage.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k BlackHole]

OUTAGE_KEEP_LOGS=DIR copies each test's daemon log to DIR; OUTAGE_DEBUG=1
runs the daemon with -d (every S3 request in the log).

The mount reaches the server through an OutageProxy, run in this process
(faultproxy.py's request reading and forwarding) so that a test can switch it
while the mount runs; the server of scripts/with-server.sh keeps running for
everybody else. The proxy can:

    black-hole  accept connections and read requests, never answer (what a
                SIGSTOPped server or a dropped route looks like); when it
                ends, the requests still held are forwarded and answered
                late, as a resumed server would
    down        close its listening socket and every connection: new
                connections are refused (ECONNREFUSED), as when the server is
                not running; up() listens again on the same port
    faults      on GETs (objects, listings): reset the connection after half
                of the body (RST), or trickle the body at a few KiB/s

Every file system call is made in a child process with a timeout, so that a
call that hangs fails the test instead of blocking it, and is timed: with
request_timeout=5s each must answer within 5 s + 2 s (BOUND_S). What was
written is checked with boto3, straight at the server. The daemon runs with
-f so that its log (its stderr) can be read: an outage must be logged once
("does not answer", then "answers again"), not once per request.
"""
import errno
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import faultproxy as fp  # noqa: E402  (its request reading and forwarding)
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import BUCKET, KiB, MiB, SERVER, MountError, md5hex, mounted  # noqa: E402
from test_write import WMount, WriteTestCase, ename, journal  # noqa: E402

REQUEST_TIMEOUT_S = 5
BOUND_S = REQUEST_TIMEOUT_S + 2   # the longest one call may take during an outage
HANG_S = 40                       # a call still running then has hung
ENV = dict(os.environ, LC_ALL="C")

DOWN_MSG = "does not answer ("
UP_MSG = "answers again"


# ------------------------------------------------------------------ proxy
class _Gone(Exception):
    """The connection ends without an answer."""


class _Handler(fp.Handler):
    def read_request(self):
        # faultproxy's, except that a black hole sends no "100 Continue"
        line = self.rfile.readline(65537)
        if not line:
            return None
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers, length, expect = [], 0, False
        while True:
            h = self.rfile.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            name, value = h.decode("latin-1").split(":", 1)
            headers.append((name.strip(), value.strip()))
            if name.strip().lower() == "content-length":
                length = int(value)
            if name.strip().lower() == "expect":
                expect = True
        if expect and self.server.owner.mode != "blackhole":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        body = self.rfile.read(length) if length else b""
        return method, target, headers, body

    def handle(self):
        px = self.server.owner
        px.track(self.connection, True)
        try:
            while True:
                req = self.read_request()
                if req is None:
                    return
                method, target, headers, body = req
                if px.mode == "blackhole":
                    px.count("blackholed")
                    px.wait_open()
                    if px.mode == "down" or not self.client_connected():
                        return
                    px.count("answered late")
                fault = px.fault_for(method, target)
                status, reason, rheaders, rbody = self.forward(method, target, headers, body)
                if not self.send(method, status, reason, rheaders, rbody, fault):
                    return
        except (_Gone, OSError, ValueError):
            return
        finally:
            px.track(self.connection, False)

    def client_connected(self):
        """False when the client closed the connection (it gave up)."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            return not r or self.connection.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def send(self, method, status, reason, rheaders, rbody, fault):
        out = "HTTP/1.1 %d %s\r\n" % (status, reason)
        for k, v in rheaders:
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                out += "%s: %s\r\n" % (k, v)
        if method != "HEAD":
            out += "Content-Length: %d\r\n" % len(rbody)
        else:
            out += "".join("%s: %s\r\n" % (k, v) for k, v in rheaders
                           if k.lower() == "content-length")
        head, body = out.encode() + b"\r\n", b"" if method == "HEAD" else rbody
        if fault == "reset" and len(body) > 1:
            self.wfile.write(head + body[:len(body) // 2])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return False
        if isinstance(fault, tuple) and fault[0] == "trickle" and body:
            rate = fault[1]                       # bytes per second
            chunk = max(1, rate // 10)
            self.wfile.write(head)
            self.wfile.flush()
            for i in range(0, len(body), chunk):
                self.wfile.write(body[i:i + chunk])
                self.wfile.flush()
                time.sleep(0.1)
            return True
        self.wfile.write(head + body)
        self.wfile.flush()
        return True


class OutageProxy:
    """An HTTP proxy to the test server that can black-hole, refuse, or
    damage GET bodies while the mount runs."""

    def __init__(self):
        if fp.log is None:
            fp.log = open(os.devnull, "w")
        self.lock = threading.Lock()
        self.mode = "pass"                 # pass | blackhole | down
        self.open = threading.Event()      # set unless black-holed
        self.open.set()
        self.conns = set()
        self.faults = []                   # [what, fault, every, seen]
        self.hits = {}
        self.srv = None
        self.port = 0
        self.listen()
        self.url = "http://127.0.0.1:%d" % self.port

    def listen(self):
        deadline = time.monotonic() + 10
        while True:
            try:
                srv = fp.Server(("127.0.0.1", self.port), _Handler)
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise AssertionError("the proxy cannot listen on port %d again: %s"
                                         % (self.port, e))
                time.sleep(0.1)
        srv.upstream = os.environ["AWS_ENDPOINT_URL"]
        srv.log_headers = ()
        srv.owner = self
        self.srv, self.port = srv, srv.server_address[1]
        threading.Thread(target=srv.serve_forever, daemon=True).start()

    # ---- handler side
    def track(self, conn, add):
        with self.lock:
            (self.conns.add if add else self.conns.discard)(conn)

    def count(self, what):
        with self.lock:
            self.hits[what] = self.hits.get(what, 0) + 1

    def wait_open(self):
        while not self.open.wait(1):
            pass

    def fault_for(self, method, target):
        if method != "GET":
            return None
        path, _, query = target.partition("?")
        path = urllib.parse.unquote(path)
        kind = "list" if path.rstrip("/") == "/" + BUCKET else "object"
        with self.lock:
            for f in self.faults:
                if f[0] in ("any", kind):
                    f[3] += 1
                    if (f[3] - 1) % f[2] == 0:
                        name = f[1] if isinstance(f[1], str) else f[1][0]
                        self.hits[name] = self.hits.get(name, 0) + 1
                        return f[1]
                    return None
        return None

    # ---- test side
    def blackhole(self):
        self.mode = "blackhole"
        self.open.clear()

    def down(self):
        """Connections refused from now on; the open ones are cut."""
        self.mode = "down"
        self.srv.shutdown()
        self.srv.server_close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.open.set()

    def heal(self):
        """Answers again (listening on the same port if it was down)."""
        if self.mode == "down":
            self.listen()
        self.mode = "pass"
        self.open.set()

    def set_faults(self, *faults):
        """faults: (what, fault, every): what is "object", "list" or "any";
        fault "reset" or ("trickle", bytes_per_second); every N-th matching
        GET gets it (1: all)."""
        with self.lock:
            self.faults = [[w, f, every, 0] for w, f, every in faults]

    def close(self):
        self.heal()
        self.srv.shutdown()
        self.srv.server_close()


# ----------------------------------------------------------------- mount
class FgMount(WMount):
    """A WMount whose daemon runs in the foreground (-f), its log (stderr)
    going to a file."""

    def __init__(self, *a, log_path, before_cleanup=None, **kw):
        super().__init__(*a, **kw)
        self.log_path = log_path
        self.before_cleanup = before_cleanup
        self.proc = None

    def command(self):
        cmd = super().command()
        return [cmd[0], "-d" if os.environ.get("OUTAGE_DEBUG") else "-f"] + cmd[1:]

    def __enter__(self):
        self.cmd = self.command()
        try:
            with open(self.log_path, "wb") as logf:
                self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=logf, env=ENV)
            deadline = time.monotonic() + 30
            while not mounted(self.mnt) and time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            if not mounted(self.mnt):
                raise MountError("bucketfs -f did not mount %s (exit %r)\n$ %s\nlog: %s"
                                 % (self.mnt, self.proc.poll(), " ".join(self.cmd), self.log()))
            self.pid = self.proc.pid
            self.timer = threading.Timer(self.watchdog_s, self._watchdog)
            self.timer.daemon = True
            self.timer.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def cleanup(self):
        if self.before_cleanup and not self.unmounted:
            self.before_cleanup()  # the proxy answers again: uploads can drain
        problems = super().cleanup()
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return problems

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


# --------------------------------------------------------------- children
# Each runs in a child process and prints JSON: the errno (or null), what it
# found, and the longest single system call, so that a hang is a timeout.
READER = r'''
import hashlib, json, os, sys, time
res = {"errno": None, "longest": 0.0, "calls": 0}
def call(fn, *a):
    t = time.monotonic()
    try:
        return fn(*a)
    finally:
        res["longest"] = max(res["longest"], time.monotonic() - t)
        res["calls"] += 1
h, n = hashlib.md5(), 0
try:
    fd = call(os.open, sys.argv[1], os.O_RDONLY)
    try:
        while True:
            b = call(os.read, fd, 128 * 1024)
            if not b:
                break
            h.update(b)
            n += len(b)
    finally:
        call(os.close, fd)
except OSError as e:
    res["errno"] = e.errno
res["md5"], res["n"] = h.hexdigest(), n
print(json.dumps(res))
'''

LISTER = r'''
import json, os, sys, time
res = {"errno": None, "longest": 0.0, "names": None}
t = time.monotonic()
try:
    names = os.listdir(sys.argv[1])
    res["longest"] = time.monotonic() - t
    sizes = {}
    for n in names:
        t = time.monotonic()
        sizes[n] = os.lstat(os.path.join(sys.argv[1], n)).st_size
        res["longest"] = max(res["longest"], time.monotonic() - t)
    res["names"], res["sizes"] = sorted(names), sizes
except OSError as e:
    res["longest"] = max(res["longest"], time.monotonic() - t)
    res["errno"] = e.errno
print(json.dumps(res))
'''

WRITER = r'''
import json, os, sys, time
res = {"errno": None, "longest": 0.0, "each": {}}
data = sys.stdin.buffer.read()
size = int(sys.argv[1])
try:
    for i, path in enumerate(sys.argv[2:]):
        t = time.monotonic()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data[i * size:(i + 1) * size])
        finally:
            os.close(fd)
        res["each"][path] = time.monotonic() - t
        res["longest"] = max(res["longest"], res["each"][path])
except OSError as e:
    res["errno"], res["path"] = e.errno, path
print(json.dumps(res))
'''


class OutageTestCase(WriteTestCase):
    maxDiff = 20000

    def setUp(self):
        super().setUp()
        self.calls = []          # (what, seconds) of every timed call
        self.problems = []       # failed checks that let the test go on

    def tearDown(self):
        if self.calls:
            tm.note("%s: %s", self._testMethodName,
                    ", ".join("%s %.2fs" % c for c in self.calls))
        if self.problems:
            tm.note("%s: problems found: %s", self._testMethodName, " | ".join(self.problems))
        super().tearDown()

    def soft(self, ok, msg):
        """A check whose failure fails the test at its end (finish), so that
        the rest of the scenario still runs and reports what it finds."""
        if not ok:
            self.problems.append(msg)

    def finish(self):
        if self.problems:
            self.fail("%d problem(s):\n- %s" % (len(self.problems), "\n- ".join(self.problems)))

    def outage_mount(self, px, **opts):
        o = {"endpoint": px.url, "request_timeout": "%ds" % REQUEST_TIMEOUT_S,
             "metadata_ttl": "2s"}
        o.update(opts)
        m = FgMount(maps=[("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))], opts=o,
                    log_path=os.path.join(self.tmp, "daemon.log"), exit_wait=60, watchdog=300,
                    before_cleanup=px.heal)
        keep = os.environ.get("OUTAGE_KEEP_LOGS")
        if keep:  # runs after the unmount: the whole log
            self.addCleanup(lambda: shutil.copy(m.log_path, os.path.join(
                keep, "%s.%s.log" % (SERVER, self._testMethodName))))
        self.addCleanup(m.cleanup)
        return m

    def proxy(self):
        px = OutageProxy()
        self.addCleanup(px.close)
        return px

    # ---- timed calls in child processes
    def run_timed(self, what, cmd, input=None, bound=BOUND_S):
        """Runs cmd; fails if it hangs (HANG_S) or takes more than bound.
        Returns (exit status, stdout bytes, stderr text, seconds)."""
        t0 = time.monotonic()
        try:
            r = subprocess.run(cmd, input=input, capture_output=True, timeout=HANG_S,
                               env=ENV)
        except subprocess.TimeoutExpired:
            self.fail("%s HUNG: still running after %d s (bound %d s)\n$ %s"
                      % (what, HANG_S, bound, " ".join(map(str, cmd))))
        took = time.monotonic() - t0
        self.calls.append((what, took))
        if bound is not None:
            self.soft(took <= bound, "%s took %.1f s, more than its bound %.0f s\n  $ %s\n  "
                      "stderr: %s" % (what, took, bound, " ".join(map(str, cmd)),
                                      r.stderr.decode(errors="replace").strip()))
        return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace"), took

    def child(self, what, script, *args, input=None, bound=BOUND_S, per_call=None):
        """Runs one of the child scripts; returns its JSON. per_call bounds
        its longest system call (the whole run bounded by bound)."""
        rc, out, err, took = self.run_timed(what, [sys.executable, "-c", script] +
                                            [str(a) for a in args], input=input, bound=bound)
        self.assertEqual(rc, 0, "%s: the child failed: %s" % (what, err))
        res = json.loads(out)
        res["took"] = took
        if per_call is not None:
            self.soft(res["longest"] <= per_call,
                      "%s: one system call took %.1f s, more than request_timeout %d s + 2 s: "
                      "%r" % (what, res["longest"], REQUEST_TIMEOUT_S, res))
        return res

    def read(self, what, path, **kw):
        return self.child(what, READER, path, **kw)

    def listdir(self, what, path, **kw):
        return self.child(what, LISTER, path, **kw)

    def assertEioOrTimeout(self, res, what):
        self.assertIn(res["errno"], (errno.EIO, errno.ETIMEDOUT),
                      "%s: got %s, want EIO or ETIMEDOUT: %r" % (what, ename(res["errno"]), res))

    def assertLoggedOnce(self, m, outages=1):
        log = m.log()
        downs = [x for x in log.splitlines() if DOWN_MSG in x]
        ups = [x for x in log.splitlines() if UP_MSG in x]
        self.assertEqual(len(downs), outages, "'%s' logged %d times for %d outage(s); log:\n%s"
                         % (DOWN_MSG, len(downs), outages, log))
        self.assertEqual(len(ups), outages, "'%s' logged %d times for %d outage(s); log:\n%s"
                         % (UP_MSG, len(ups), outages, log))
        per_request = [x for x in log.splitlines() if "failed (attempt" in x]
        self.assertEqual(per_request, [], "uploads that waited for the endpoint were logged one "
                         "by one; log:\n%s" % log)
        return downs, ups

    def status_json(self, m):
        r = subprocess.run([tm.BUCKETFS, "status", "--json", m.mnt], capture_output=True,
                           text=True, timeout=HANG_S)
        self.assertEqual(r.returncode, 0, "bucketfs status --json: %s" % r.stderr)
        return json.loads(r.stdout)

    def wait_landed(self, rels, timeout):
        """Polls the server (boto3, not the mount) until every key exists;
        returns the seconds it took, or None if some never came."""
        t0 = time.monotonic()
        want = set(rels)
        while True:
            have = set(self.rel_keys())
            if want <= have:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                return None
            time.sleep(0.2)


# ------------------------------------------------------------- black hole
class BlackHoleTest(OutageTestCase):

    def test_black_hole_served_from_cache(self):
        """The server stops answering (connections accepted, requests never
        answered). Past metadata_ttl, ls -l, cat of a cached file, stat, a
        missing name, touch and a new file each answer within 5 s + 2 s with
        what the cache knows; an uncached read fails with EIO or ETIMEDOUT
        as fast; status names the outage. When the server answers again,
        the sync started during the outage waits and exits 0, and every file
        is in S3 with its bytes."""
        a, b, cold = b"alpha\n" * 100, os.urandom(200 * KiB), os.urandom(300 * KiB)
        self.put_many({"d/a.txt": a, "d/b.bin": b, "d/cold.bin": cold, "d/sub/x": b"x"})
        up, new = os.urandom(100 * KiB), os.urandom(150 * KiB)
        local_new = os.path.join(self.tmp, "new.bin")
        with open(local_new, "wb") as f:
            f.write(new)
        px = self.proxy()
        m = self.outage_mount(px)
        with m:
            d = m.path("t", "d")
            with open(os.path.join(d, "up.bin"), "wb") as f:
                f.write(up)
            m.wait_uploads(timeout=60)
            self.assertEqual(tm.read_all(os.path.join(d, "a.txt")), a)
            self.assertEqual(tm.read_all(os.path.join(d, "b.bin")), b)
            time.sleep(2.2)  # the listing and attributes from S3, just before the outage
            rc, before, err, _ = self.run_timed("ls -l before", ["ls", "-l", "--time-style=+%s",
                                                                 d], bound=None)
            self.assertEqual(rc, 0, err)
            self.assertEqual(sorted(x.split()[-1] for x in before.splitlines()[1:]),
                             [b"a.txt", b"b.bin", b"cold.bin", b"sub", b"up.bin"], before)
            stat_cmd = ["stat", "-c", "%s %Y %a %F", os.path.join(d, "b.bin")]
            rc, stat_before, err, _ = self.run_timed("stat before", stat_cmd, bound=None)
            self.assertEqual(rc, 0, err)
            s0 = m.stats()

            px.blackhole()
            t_out = time.monotonic()
            time.sleep(2.5)  # past metadata_ttl

            rc, out, err, _ = self.run_timed("ls -l", ["ls", "-l", "--time-style=+%s", d])
            self.assertEqual((rc, err), (0, ""), "ls -l of the listed directory")
            self.assertEqual(out.decode(), before.decode(), "ls -l during the outage: the "
                             "last listing and attributes")
            rc, out, err, _ = self.run_timed("cat cached", ["cat", os.path.join(d, "b.bin")])
            self.assertEqual((rc, err), (0, ""), "cat of a cached file")
            self.assertBytes(out, b, "b.bin read from the cache during the outage")
            rc, out, err, _ = self.run_timed("stat", stat_cmd)
            self.assertEqual((rc, err, out), (0, "", stat_before), "stat during the outage")
            rc, out, err, _ = self.run_timed("stat missing", ["stat", os.path.join(d, "nope")])
            self.assertEqual(rc, 1, "stat of a missing name: %s" % err)
            self.assertIn("No such file or directory", err, "a missing name is ENOENT")
            rc, out, err, _ = self.run_timed("touch new", ["touch", os.path.join(d, "empty")])
            self.assertEqual((rc, err), (0, ""), "touch of a new name")
            rc, out, err, _ = self.run_timed("cp new", ["cp", local_new,
                                                        os.path.join(d, "new.bin")])
            self.assertEqual((rc, err), (0, ""), "a new file written during the outage")
            rc, out, err, _ = self.run_timed("cat new", ["cat", os.path.join(d, "new.bin")])
            self.assertEqual(rc, 0, err)
            self.assertBytes(out, new, "new.bin read back during the outage")
            res = self.read("read uncached", os.path.join(d, "cold.bin"), per_call=BOUND_S)
            self.assertEioOrTimeout(res, "read of a file never cached")
            res = self.listdir("ls after creates", d, per_call=BOUND_S)
            self.assertEqual(res["errno"], None, res)
            self.assertEqual(res["names"], ["a.txt", "b.bin", "cold.bin", "empty", "new.bin",
                                            "sub", "up.bin"])
            self.assertEqual((res["sizes"]["empty"], res["sizes"]["new.bin"]), (0, len(new)))

            rc, out, err, _ = self.run_timed("status", [tm.BUCKETFS, "status", m.mnt])
            self.assertEqual(rc, 0, err)
            out = out.decode()
            self.assertRegex(out, r"S3 +NOT ANSWERING for ", "status names the outage:\n" + out)
            self.assertRegex(out, r"stale +\d+ answers from the cache", out)
            st = self.status_json(m)["stats"]
            self.assertGreaterEqual(st["unreachable_s"], 5, "unreachable_s: %r" % st)
            self.assertGreaterEqual(st["stale_serves"] - s0.get("stale_serves", 0), 3,
                                    "stale_serves: %r" % st)
            self.assertGreater(px.hits.get("blackholed", 0), 0, "nothing reached the black hole")

            # sync started during the outage waits for it
            p = subprocess.Popen([tm.BUCKETFS, "sync", m.mnt], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=ENV)
            try:
                time.sleep(3)
                self.assertIsNone(p.poll(), "sync exited (%r) during the outage: %s"
                                  % (p.returncode, p.stderr.read() if p.poll() is not None
                                     else ""))
                outage_s = time.monotonic() - t_out
                px.heal()
                t_heal = time.monotonic()
                out, err = p.communicate(timeout=60)
                took = time.monotonic() - t_heal
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.calls.append(("sync after heal", took))
            self.assertEqual(p.returncode, 0, "sync after the outage: %s" % err)
            self.assertEqual(len(re.findall(r"uploads? waits? for S3 \(", err)), 1,
                             "sync says once that uploads wait for S3: %r" % err)
            self.soft(took <= 10, "sync returned %.1f s after S3 answered again" % took)
            for rel, data in (("d/a.txt", a), ("d/b.bin", b), ("d/cold.bin", cold),
                              ("d/sub/x", b"x"), ("d/up.bin", up), ("d/empty", b""),
                              ("d/new.bin", new)):
                self.assertObject(rel, data=data)
            self.assertEqual(self.rel_keys(), ["d/a.txt", "d/b.bin", "d/cold.bin", "d/empty",
                                               "d/new.bin", "d/sub/x", "d/up.bin"])
            st = self.status_json(m)["stats"]
            self.assertEqual(st["unreachable_s"], 0, "unreachable_s after recovery: %r" % st)
            tm.note("black hole: %.1f s of outage; sync returned %.1f s after S3 answered "
                    "again; %d requests black-holed, %d answered late", outage_s, took,
                    px.hits.get("blackholed", 0), px.hits.get("answered late", 0))
            m.unmount_wait()
        downs, ups = self.assertLoggedOnce(m)
        tm.note("log: %s | %s", downs[0].strip(), ups[0].strip())
        self.finish()


# ------------------------------------------------------------------ down
class DownTest(OutageTestCase):

    def test_refused_writes_land_after_recovery(self):
        """Connections refused: 20 files written meanwhile are kept; sync
        --timeout 3s exits 1 naming them; uncached reads and unlisted
        directories fail with EIO or ETIMEDOUT, never ECONNREFUSED; once the
        server is back the uploads land within a few seconds without sync,
        and sync exits 0."""
        self.put_many({"out/keep": b"k", "cold.bin": os.urandom(64 * KiB),
                       "other/o": b"o"})
        px = self.proxy()
        m = self.outage_mount(px)
        names = ["out/f%02d" % i for i in range(20)]
        size = 20 * KiB
        data = os.urandom(size * len(names))
        want = {n: data[i * size:(i + 1) * size] for i, n in enumerate(names)}
        with m:
            self.assertEqual(os.listdir(m.path("t", "out")), ["keep"])
            self.assertEqual(sorted(os.listdir(m.path("t"))), ["cold.bin", "other", "out"])
            time.sleep(2.2)

            px.down()
            t_down = time.monotonic()
            res = self.child("write 20 files", WRITER, size, *[m.path("t", n) for n in names],
                             input=data, bound=None, per_call=BOUND_S)
            self.assertEqual(res["errno"], None, "writes while S3 refuses connections: %r" % res)
            res = self.read("read uncached", m.path("t", "cold.bin"), per_call=BOUND_S)
            self.assertEioOrTimeout(res, "read of an uncached file while refused")
            res = self.listdir("ls unlisted", m.path("t", "other"), per_call=BOUND_S)
            self.assertEioOrTimeout(res, "listing of a directory never listed, while refused")
            res = self.listdir("ls listed", m.path("t", "out"), per_call=BOUND_S)
            self.assertEqual(res["errno"], None, res)
            self.assertEqual(res["names"], sorted(["keep"] + [n[4:] for n in names]))

            rc, out, err, took = self.run_timed("sync --timeout 3s",
                                                [tm.BUCKETFS, "sync", "--timeout", "3s", m.mnt],
                                                bound=3 + BOUND_S)
            self.assertEqual(rc, 1, "sync --timeout 3s while S3 refuses: %s" % err)
            self.assertGreaterEqual(took, 2.9, "sync gave up before its timeout: %s" % err)
            # a file is named as failed, or as not uploaded yet when its
            # retry had just been taken at the timeout
            unnamed = [n for n in names if "t/%s: upload failed" % n not in err and
                       "t/%s: not uploaded yet" % n not in err]
            self.soft(unnamed == [], "sync --timeout 3s did not name %r of the 20 files left; "
                      "its stderr:\n%s" % (unnamed, err))
            self.soft("20 uploads not done at the timeout" in err,
                      "sync --timeout 3s: want '20 uploads not done at the timeout' "
                      "(20 are left); its stderr:\n%s" % err)
            self.assertEqual([k for k in self.rel_keys() if k.startswith("out/f")], [],
                             "uploaded while the server was down?")
            st = self.status_json(m)
            self.assertGreaterEqual(st["stats"]["unreachable_s"], 1, st["stats"])
            self.assertEqual(st["uploads"]["pending"] + st["uploads"]["failed"], 20,
                             st["uploads"])
            outage_s = time.monotonic() - t_down

            px.heal()
            # nobody touches the mount now: the daemon must find out by itself
            landed = self.wait_landed(names, timeout=5)
            if landed is None:
                rows = [r[1:] for r in journal(m.cache_dir)]
                st = self.status_json(m)
                landed = self.wait_landed(names, timeout=85)
                self.problems.append(
                    "after the server came back, the 20 uploads took %s to land without sync "
                    "(want a few seconds: at most 5 s); 5 s after: unreachable_s %d, journal "
                    "(key, gen, size, state, upload_id, attempts, error) %r"
                    % ("more than 90 s" if landed is None else "%.1f s" % (landed + 5),
                       st["stats"]["unreachable_s"], rows[:3]))
                landed = None if landed is None else landed + 5
            self.calls.append(("landed after heal", landed if landed is not None else -1))
            rc, out, err, took = self.run_timed("sync after heal", [tm.BUCKETFS, "sync", m.mnt],
                                                bound=60)
            self.assertEqual((rc, err), (0, ""), "sync after the server came back")
            for n in names:
                self.assertObject(n, data=want[n])
            tm.note("refused: %.1f s of outage; uploads landed %s after the server came back "
                    "(no sync)", outage_s, "never" if landed is None else "%.1f s" % landed)
            m.unmount_wait()
        self.assertLoggedOnce(m)
        self.finish()


# ------------------------------------------------------------ bad bodies
class BadBodyTest(OutageTestCase):

    def test_resets_and_trickle(self):
        """GET bodies cut by a reset halfway (every other one, then all) or
        trickled at a few KiB/s: reads and listings succeed with the right
        content or fail with EIO or ETIMEDOUT, each system call within 5 s +
        2 s; nothing hangs; once the faults stop, every file reads back
        right and every directory lists right."""
        files = {"f%d.bin" % i: os.urandom(2 * MiB + 512 * KiB + i) for i in range(4)}
        files["small.txt"] = os.urandom(24 * KiB)
        dirs = {d: ["e%02d" % i for i in range(40)] for d in ("la", "lb", "lc")}
        objs = dict(files)
        for d, ns in dirs.items():
            objs.update({"%s/%s" % (d, n): n.encode() for n in ns})
        self.put_many(objs)
        px = self.proxy()
        m = self.outage_mount(px, metadata_ttl="1s")
        outcome = {}

        def check_read(what, name, must_fail=False):
            res = self.read(what, m.path("t", name), per_call=BOUND_S, bound=None)
            if res["errno"] is None:
                self.assertFalse(must_fail, "%s succeeded: %r" % (what, res))
                self.assertEqual((res["md5"], res["n"]), (md5hex(files[name]), len(files[name])),
                                 "%s: the bytes read" % what)
                outcome[what] = "ok %.1fs (longest call %.1fs)" % (res["took"], res["longest"])
            else:
                self.assertEioOrTimeout(res, what)
                outcome[what] = "%s %.1fs (longest call %.1fs)" % (ename(res["errno"]), res["took"],
                                                                   res["longest"])

        def check_list(what, d, must_fail=False):
            res = self.listdir(what, m.path("t", d), per_call=BOUND_S, bound=None)
            if res["errno"] is None:
                self.assertFalse(must_fail, "%s succeeded: %r" % (what, res))
                self.assertEqual(res["names"], dirs[d], "%s: the names listed" % what)
                outcome[what] = "ok %.1fs (longest call %.1fs)" % (res["took"], res["longest"])
            else:
                self.assertEioOrTimeout(res, what)
                outcome[what] = "%s %.1fs (longest call %.1fs)" % (ename(res["errno"]), res["took"],
                                                                   res["longest"])

        with m:
            for d in dirs:
                self.assertTrue(os.path.isdir(m.path("t", d)))
            for name in files:
                self.assertEqual(os.stat(m.path("t", name)).st_size, len(files[name]))
            time.sleep(1.2)  # what the lookups learnt is stale: opendir lists

            px.set_faults(("any", "reset", 2))
            check_read("read, every other GET reset", "f0.bin")
            check_list("list, every other GET reset", "la")
            px.set_faults(("any", "reset", 1))
            check_read("read, every GET reset", "f1.bin")
            check_list("list, every GET reset", "lb")
            px.set_faults(("any", ("trickle", 8 * KiB), 1))
            check_read("read 2.5 MiB at 8 KiB/s", "f2.bin", must_fail=True)
            check_read("read 24 KiB at 8 KiB/s", "small.txt")
            check_list("list at 8 KiB/s", "lc")
            px.set_faults(("list", ("trickle", 200), 1))
            time.sleep(1.2)
            check_list("list at 200 B/s", "lc")
            hits = dict(px.hits)
            px.set_faults()
            time.sleep(1.2)
            for name in sorted(files):
                res = self.read("read %s after" % name, m.path("t", name), per_call=BOUND_S,
                                bound=None)
                self.assertEqual(res["errno"], None, "%s after the faults stopped: %r"
                                 % (name, res))
                self.assertEqual((res["md5"], res["n"]), (md5hex(files[name]), len(files[name])),
                                 "%s after the faults stopped" % name)
            for d in sorted(dirs):
                res = self.listdir("list %s after" % d, m.path("t", d), per_call=BOUND_S,
                                   bound=None)
                self.assertEqual(res["errno"], None, res)
                self.assertEqual(res["names"], dirs[d], "%s after the faults stopped" % d)
            self.assertGreater(hits.get("reset", 0), 0, hits)
            self.assertGreater(hits.get("trickle", 0), 0, hits)
            tm.note("bad bodies: %s; faults %r", "; ".join("%s: %s" % kv for kv in
                                                          outcome.items()), hits)
            tm.note("daemon log lines: %s", [x for x in m.log().splitlines()
                                             if " debug: " not in x][:12])
        self.finish()


def main():
    return tm.suite_main(__doc__, tools=("fusermount3", "ls", "stat", "cat", "touch", "cp"))


if __name__ == "__main__":
    sys.exit(main())
