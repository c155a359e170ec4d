#!/usr/bin/python3
"""Integration tests of "no silent clobbering" (issue 14 part 2; option
`conflicts`, SPEC.md "Cache coherence with other writers"), against a live
S3 server.

Run as root inside scripts/with-server.sh:

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_conflicts.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Crash]

A "machine" is a bucketfs daemon: the tests mount two (A and B) on the same
bucket and prefix ("t" mapped to the test's own prefix in bfs-test), each
with its OWN fresh cache directory, so that they share nothing but S3.  The
daemons run in the foreground (-f) with their log (stderr) in a file, so
that the `conflict:` lines can be counted; when a test fails, the error,
warning and conflict lines of its daemons are printed, and the logs kept.

Most mounts reach the server through an in-process recording proxy (the
forwarding of faultproxy.py), which notes every request's method, key,
If-Match / If-None-Match headers and answer: so the tests check not only
the outcome (boto3: what is at the name, what is in NAME.conflict-HOST-TIME)
but that each upload carried the version its mount had read (If-Match with
that ETag, If-None-Match: * for a new name, on PUT and on
CompleteMultipartUpload), that the loser's was refused (412), and that the
first conditional upload of a mapping probes the server once.

With conflicts=keep-both (the default) an upload whose condition fails
leaves the other machine's version at the name, puts this mount's bytes at
NAME.conflict-HOST-YYYYMMDDTHHMMSSZ, makes `bucketfs sync` exit 1 naming
both (once), counts in `bucketfs status`, and the losing mount shows the
winner's version at the name once it revalidates (after `revalidate`, 1 s).

Tests: 20 overwrite races of two mounts (two passes over 10 files), create-
create races, a multipart (> 16 MiB) race and rewrites after it, three
mounts of one host racing (their copies must not collide), conflicts =
overwrite (last upload wins, no conditions, no probe), no false conflicts
(one mount: repeated writes, fsync'd appends, a rewrite while the previous
upload runs, rsync and a hand-made temp-file-then-rename; two mounts taking
turns), kill -9 with journaled uploads (the recovered uploads stay
conditional), and the probe / unprotected report.

s3rver ignores conditional writes: there the tests that need conditions are
skipped (each skip says so) and test_unprotected checks instead that status
reports the mapping as UNPROTECTED and that the last upload wins.  Deletes
and renames of a file another writer changed since this mount learnt it
leave the other's version (NamespaceConflictTest); they check with a HEAD
where the server ignores If-Match on DELETE and CopyObject's target (RGW
16 and s3rver), so those tests run on both servers but the one whose
guard is an upload's condition.
Ceph RGW 16.2 honours If-Match / If-None-Match on PUT, answers 500 (op
status ECANCELED) to a conditional PUT that races another PUT of the key
(retried by bucketfs, accepted here), and ignores both conditions on
CompleteMultipartUpload (measured with boto3), which test_multipart_conflict
catches.

The Mount machinery, the boto3 client and the helpers are those of
test_mount.py, test_write.py and test_coherence.py (imported from this
directory).  The binary given with --bucketfs is copied at the start, so
that a rebuild during the run cannot break later mounts.
"""
import collections
import concurrent.futures
import datetime
import errno
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultproxy as fp  # noqa: E402  (its forwarding handler, not its plan)
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import (BUCKET, KiB, MiB, SERVER, MountError, file_md5, md5hex,  # noqa: E402
                        mounted, note, read_all)
from test_write import WMount, WriteTestCase, journal, write_file  # noqa: E402
from test_coherence import wait_past  # noqa: E402

# gethostname() with '.' and '/' made '_', as in the conflict copies' names
HOST = (socket.gethostname()[:63].replace(".", "_").replace("/", "_")) or "host"
MULTIPART_MIN = 16 * MiB      # larger files are uploaded in parts
SLOW = 5.0                    # upload_delay of mounts whose uploads wait for `bucketfs sync`
LOGDIR = None                 # daemon logs, kept when a test fails (set by main)

# What the servers used here do not do (tests/integration/README.md).
CONFLICT_LIMITS = {
    "s3rver": {
        # If-Match and If-None-Match on PUT are ignored: a stale upload
        # replaces the object (the mapping is "unprotected")
        "conditional_writes": False,
        # ListMultipartUploads answers 501
        "list_multipart": False,
    },
    "rgw": {},
}


def server_can(what):
    return CONFLICT_LIMITS.get(SERVER, {}).get(what, True)


def copy_re(rel):
    """The name of a conflict copy of rel: REL.conflict-HOST-YYYYMMDDTHHMMSSZ, with -N
    when mounts of one host lost in the same second."""
    return re.compile(re.escape(rel) + r"\.conflict-" + re.escape(HOST) +
                      r"-(\d{8}T\d{6}Z)(?:-\d+)?$")


ANY_COPY = re.compile(r"\.conflict-")
PROBE = ".bucketfs-condition-probe-"


def unq(etag):
    return None if etag is None else etag.strip().strip('"')


# ------------------------------------------------------------------ proxy
Req = collections.namedtuple("Req", "method key query if_match if_none_match status etag "
                                    "t_start t_end")


class _RecordHandler(fp.Handler):
    def forward(self, method, target, headers, body):
        owner = self.server.owner
        t0 = time.monotonic()
        path, _, query = target.partition("?")
        key = urllib.parse.unquote(path).lstrip("/")
        key = key.split("/", 1)[1] if "/" in key else ""
        if method in ("PUT", "POST"):
            delay = owner.delay_for(key)
            if delay:
                time.sleep(delay)
        status, reason, rheaders, data = super().forward(method, target, headers, body)
        h = {k.lower(): v for k, v in headers}
        rh = {k.lower(): v for k, v in rheaders}
        owner.record(Req(method, key, query, h.get("if-match"), h.get("if-none-match"), status,
                         rh.get("etag"), t0, time.monotonic()))
        return status, reason, rheaders, data


class RecordProxy:
    """An HTTP proxy to the test server that records every request (and can
    delay the uploads of keys containing a given text)."""

    def __init__(self):
        if fp.log is None:
            fp.log = open(os.devnull, "w")
        self.lock = threading.Lock()
        self.reqs = []
        self.delays = []     # [(substring of the key, seconds)]
        self.srv = fp.Server(("127.0.0.1", 0), _RecordHandler)
        self.srv.upstream = os.environ["AWS_ENDPOINT_URL"]
        self.srv.log_headers = ()
        self.srv.owner = self
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def record(self, r):
        with self.lock:
            self.reqs.append(r)

    def delay_for(self, key):
        with self.lock:
            for sub, secs in self.delays:
                if sub in key:
                    return secs
        return 0

    def mark(self):
        with self.lock:
            return len(self.reqs)

    def since(self, mark=0):
        with self.lock:
            return list(self.reqs[mark:])

    def writes(self, key, mark=0):
        """The requests that can replace key: PUTs of the whole object (not
        parts) and CompleteMultipartUploads, since mark."""
        return [r for r in self.since(mark) if r.key == key and (
            (r.method == "PUT" and "partNumber=" not in r.query) or
            (r.method == "POST" and "uploadId=" in r.query))]

    def conditional(self, mark=0):
        """Every write (PUT, POST) since mark that carried If-Match or
        If-None-Match (reads carry If-Match: the version they read)."""
        return [r for r in self.since(mark) if r.method in ("PUT", "POST") and
                (r.if_match is not None or r.if_none_match is not None)]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def cond_of(r):
    """("If-Match", ETag without quotes) | ("If-None-Match", value) | ("unconditional", None)"""
    if r.if_match is not None:
        return ("If-Match", unq(r.if_match))
    if r.if_none_match is not None:
        return ("If-None-Match", r.if_none_match)
    return ("unconditional", None)


def check_writes(w, want_cond, want_status):
    """None when the requests w that write one key (retries included) all
    carried want_cond and the last was answered want_status (a status or
    a tuple of them), the ones before it 5xx (Ceph RGW answers 500, op
    status ECANCELED, to a conditional PUT that races another PUT of the
    key: a passing failure, retried); else what is wrong."""
    wants = want_status if isinstance(want_status, tuple) else (want_status,)
    if (w and all(cond_of(r) == want_cond for r in w) and w[-1].status in wants and
            all(r.status >= 500 for r in w[:-1])):
        return None
    return "%s; want %s %s, answered %s (after retried 5xx only)" % (
        [show_req(r) for r in w] or "no upload", want_cond[0], want_cond[1],
        " or ".join(map(str, wants)))


def show_req(r):
    cond = ("If-Match %s" % r.if_match if r.if_match is not None else "") + \
        ("If-None-Match %s" % r.if_none_match if r.if_none_match is not None else "")
    return "%s %s%s [%s] -> %d" % (r.method, r.key, "?" + r.query if r.query else "",
                                   cond or "unconditional", r.status)


# ----------------------------------------------------------------- mount
class LogMount(WMount):
    """A WMount whose daemon runs in the foreground (-f), its log (stderr)
    going to a file."""

    def __init__(self, *a, log_path, label, **kw):
        super().__init__(*a, **kw)
        self.log_path = log_path
        self.label = label
        self.proc = None
        self.px = None

    def command(self):
        cmd = super().command()
        return [cmd[0], "-f"] + cmd[1:]

    def __enter__(self):
        self.cmd = self.command()
        try:
            with open(self.log_path, "ab") as logf:
                self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=logf)
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

    def conflict_lines(self):
        return [ln for ln in self.log().splitlines() if "conflict:" in ln]


SyncResult = collections.namedtuple("SyncResult", "rc out err secs")


def bfs_sync(m, timeout=120):
    """`bucketfs sync MOUNTPOINT` (stderr is not a terminal: no progress bar)."""
    t0 = time.monotonic()
    r = subprocess.run([tm.BUCKETFS, "sync", m.mnt], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return SyncResult(r.returncode, r.stdout, r.stderr, time.monotonic() - t0)


def sync_line(rel, copy_rel, mapping="t"):
    return ("bucketfs sync: %s/%s: changed by another writer first; its version stays, this "
            "mount's is saved as %s/%s" % (mapping, rel, mapping, copy_rel))


def stamp_time(stamp):
    return datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class ConflictTestCase(WriteTestCase):
    """Helpers: mounts with logs and recording proxies, both-writers rounds."""

    def setUp(self):
        super().setUp()
        self.p = "tx-%s-%s/" % (self._testMethodName[5:][:40], os.urandom(4).hex())
        self.logdir = os.path.join(LOGDIR or self.tmp, self._testMethodName)
        os.makedirs(self.logdir, exist_ok=True)
        self.mounts = []
        self.retried_5xx = 0     # conditional uploads the server answered 5xx (retried)

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            self.show_logs()
        return out

    def show_logs(self):
        for m in self.mounts:
            lines = [ln for ln in m.log().splitlines()
                     if re.search(r"conflict|error|warn|fail|unprotect|condition", ln, re.I)]
            print("\n--- %s (%s): %d matching log lines of %s%s" % (
                m.label, m.mnt, len(lines), m.log_path, ", the last 40:" if len(lines) > 40
                else ":"), file=sys.stderr)
            for ln in lines[-40:]:
                print("    " + ln, file=sys.stderr)

    def need_conditions(self):
        if not server_can("conditional_writes"):
            self.skipTest("%s ignores If-Match / If-None-Match on PUT, so a stale upload cannot "
                          "be refused (test_unprotected checks what it does instead)" % SERVER)

    def mount(self, label="A", maps="default", proxy=True, opts=None, **kw):
        """A LogMount of this test's prefix as "t" (unless maps is given),
        through a fresh RecordProxy (m.px) unless proxy is False."""
        if maps == "default":
            maps = [("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))]
        opts = dict(opts or {})
        px = None
        if proxy:
            px = RecordProxy()
            self.addCleanup(px.close)
            opts["endpoint"] = px.url
        n = sum(1 for m in self.mounts if m.label == label)
        m = LogMount(maps=maps, opts=opts, label=label,
                     log_path=os.path.join(self.logdir, "%s%s.log" % (label, n or "")), **kw)
        m.px = px
        self.mounts.append(m)
        self.addCleanup(m.cleanup)
        return m

    # ---- server side
    def keys_now(self):
        return set(self.rel_keys())

    def etag(self, rel):
        h = self.head(rel)
        return None if h is None else unq(h["ETag"])

    def copies(self, rel, keys=None):
        rx = copy_re(rel)
        return sorted(k for k in (self.keys_now() if keys is None else keys) if rx.match(k))

    def assertNoCopies(self, what):
        keys = self.rel_keys()
        bad = [k for k in keys if ANY_COPY.search(k)]
        self.assertEqual(bad, [], "%s: conflict copies in S3 (keys under the prefix: %r)"
                         % (what, keys[:40]))
        probes = [k for k in keys if PROBE in k]
        self.assertEqual(probes, [], "%s: the condition probe object was left behind" % what)

    # ---- the mount side
    def status(self, m):
        r = subprocess.run([tm.BUCKETFS, "status", "--json", m.mnt], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual((r.returncode, r.stderr), (0, ""), "bucketfs status --json %s" % m.mnt)
        return json.loads(r.stdout)

    def status_text(self, m):
        r = subprocess.run([tm.BUCKETFS, "status", m.mnt], capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual((r.returncode, r.stderr), (0, ""), "bucketfs status %s" % m.mnt)
        return r.stdout

    def assertSyncClean(self, r, m, what):
        self.assertEqual((r.rc, r.err), (0, ""), "bucketfs sync of mount %s (%s): exit status "
                         "and stderr" % (m.label, what))

    def write_both(self, ms, rel, data, how):
        """Each mount of ms ({label: mount}) writes data[label] to t/rel
        (open O_TRUNC, write, close): one after the other in the order of
        `how` ("AB", "BA"...) or, with how="together", from one thread each
        released at once."""
        if how != "together":
            for lab in how:
                write_file(ms[lab].path("t", rel), data[lab])
            return
        go = threading.Barrier(len(ms))

        def w(lab):
            go.wait(10)
            write_file(ms[lab].path("t", rel), data[lab])
        with concurrent.futures.ThreadPoolExecutor(len(ms)) as ex:
            for f in [ex.submit(w, lab) for lab in ms]:
                f.result()

    def sync_all(self, ms):
        """`bucketfs sync` of every mount of ms at once: {label: SyncResult}."""
        with concurrent.futures.ThreadPoolExecutor(len(ms)) as ex:
            futs = {lab: ex.submit(bfs_sync, m) for lab, m in ms.items()}
            return {lab: f.result() for lab, f in futs.items()}

    def judge(self, rel, data, syncs, keys0, t0, t1, known=None, marks=None, ms=None):
        """After both mounts of a round wrote rel and synced: what S3 holds
        must be one version at rel and the other at exactly one new
        rel.conflict-HOST-STAMP (STAMP within the round), nothing else new
        or gone; the loser's sync exited 1 with exactly the line naming rel
        and the copy, the winner's 0 with nothing on stderr.  With known
        ({label: ETag the mount had read, "" for none}) and marks (proxy
        marks at the round's start), each mount's upload of rel carried
        that condition, and the loser's was refused with 412.
        Returns (winner, loser, copy, problems)."""
        problems = []
        keys1 = self.keys_now()
        new, gone = sorted(keys1 - keys0), sorted(keys0 - keys1)
        copies = self.copies(rel, new)
        extra = [k for k in new if k not in copies and k != rel]
        if gone:
            problems.append("keys gone from S3: %r" % gone)
        if extra:
            problems.append("unexpected new keys in S3: %r" % extra)
        at_name = self.get(rel) if rel in keys1 else None
        in_copy = [self.get(c) for c in copies]
        names = {v: lab for lab, v in data.items()}
        winner = names.get(at_name)
        desc = "%s holds %s; new copies %s" % (
            rel, "nothing" if at_name is None else "%s's version" % winner if winner else
            "neither version (%d bytes)" % len(at_name),
            ", ".join("%s = %s" % (c, "%s's version" % names[v] if v in names else
                                   "neither (%d bytes)" % len(v))
                      for c, v in zip(copies, in_copy)) or "none")
        if winner is None:
            problems.append("S3: " + desc)
        if len(copies) != 1:
            problems.append("expected exactly one new %s.conflict-%s-YYYYMMDDTHHMMSSZ: %s"
                            % (rel, HOST, desc))
        losers = sorted(lab for lab in data if lab != winner)
        lost = [lab for lab in data if data[lab] != at_name and data[lab] not in in_copy]
        if lost:
            problems.append("CONTENT LOST: the version(s) of %s are neither at the name nor in a "
                            "copy (%s)" % (", ".join(lost), desc))
        copy = copies[0] if len(copies) == 1 else None
        loser = losers[0] if len(losers) == 1 else None
        if copy and loser and in_copy[0] != data[loser]:
            problems.append("the copy does not hold the loser's (%s's) version: %s" % (loser, desc))
        if copy:
            st = stamp_time(copy_re(rel).match(copy).group(1))
            if not t0 - 1.5 <= st <= t1 + 1.5:
                problems.append("the copy's time %s is not within the round (%s .. %s UTC)" % (
                    copy, time.strftime("%H:%M:%S", time.gmtime(t0)),
                    time.strftime("%H:%M:%S", time.gmtime(t1))))
        for lab, r in syncs.items():
            if lab == winner:
                if (r.rc, r.err) != (0, ""):
                    problems.append("the winner %s's bucketfs sync: exit %d, stderr %r (want 0, "
                                    "nothing)" % (lab, r.rc, r.err))
            elif lab == loser and copy:
                want = sync_line(rel, copy)
                if r.rc != 1 or r.err.splitlines() != [want]:
                    problems.append("the loser %s's bucketfs sync: exit %d, stderr %r; want exit 1 "
                                    "and exactly %r" % (lab, r.rc, r.err, want))
            elif lab == loser and (r.rc, r.err) == (0, ""):
                problems.append("the loser %s's bucketfs sync exited 0 and said nothing: its "
                                "version was replaced unreported" % lab)
        if known is not None and marks is not None and ms is not None:
            for lab, m in ms.items():
                w = m.px.writes(self.p + rel, marks[lab])
                want = ("If-Match", known[lab]) if known[lab] else ("If-None-Match", "*")
                bad = check_writes(w, want, 200 if lab == winner else 412)
                if bad:
                    problems.append("%s's uploads of %s (%s): %s" % (
                        lab, rel, "the winner" if lab == winner else "the loser", bad))
                self.retried_5xx += sum(1 for r in w if r.status >= 500)
        return winner, loser, copy, problems


# -------------------------------------------------------- 1, 2: keep-both
class KeepBothTest(ConflictTestCase):

    def race(self, ms, names, cur, known_of, rounds_done, hows, what):
        """One pass: for each name in turn both mounts write their version
        (in the order hows[i]) and sync at once.  Returns the per-round
        results and problems; updates cur (the content at the name)."""
        results, problems = [], []
        for i, rel in enumerate(names):
            rnd = rounds_done + i + 1
            data = {lab: (b"round %d, %s's version of %s\n" % (rnd, lab.encode(), rel.encode()))
                    * (2 + rnd + 5 * j) for j, lab in enumerate(sorted(ms))}
            known = {lab: known_of(lab, rel) for lab in ms}
            keys0 = self.keys_now()
            marks = {lab: m.px.mark() for lab, m in ms.items()}
            t0 = time.time()
            self.write_both(ms, rel, data, hows[i % len(hows)])
            syncs = self.sync_all(ms)
            t1 = time.time()
            winner, loser, copy, pr = self.judge(rel, data, syncs, keys0, t0, t1, known, marks,
                                                 ms)
            problems += ["round %d (%s, %s, %s): %s" % (rnd, what, rel, hows[i % len(hows)], p)
                         for p in pr]
            results.append((rnd, rel, winner, loser, copy, data, syncs))
            if winner:
                cur[rel] = data[winner]
        return results, problems

    def test_overwrites_race_both_kept(self):
        """20 rounds: mounts A and B (own caches) have both read a file; both
        overwrite it (other content, at once or one right after the other;
        upload_delay=5s, so that nothing is sent before both wrote) and both
        run `bucketfs sync` at the same time.  Each round: one version at the
        name, the other at exactly one NAME.conflict-HOST-STAMP, nothing
        lost; each upload carried If-Match with the ETag its mount had read,
        the loser's got 412; the loser's sync exits 1 naming the name and
        the copy, the winner's exits 0 silently.  10 files, twice (so that
        the second pass races on the versions the first left).  After each
        pass and the window, both mounts read the winner's version at every
        name, and the loser the copy by its name; at the end each status
        counts its conflicts (JSON and text), no sync named a conflict twice,
        and each log has one `conflict:` line per conflict lost."""
        self.need_conditions()
        names = ["f%02d.txt" % i for i in range(10)]
        cur = {n: b"v0 of %s\n" % n.encode() * (i + 1) for i, n in enumerate(names)}
        self.put_many(cur)
        opts = {"upload_delay": "%ds" % SLOW}
        all_results, problems = [], []
        with self.mount("A", opts=opts) as a, self.mount("B", opts=opts) as b:
            ms = {"A": a, "B": b}
            seen_etag = {}      # (label, rel) -> ETag of the version that mount read last
            t_known = time.monotonic()
            for pas in range(2):
                # both mounts read every file: "a file both have read"
                wait_past(t_known)
                etags = {n: self.etag(n) for n in names}
                for n in names:
                    for lab, m in ms.items():
                        got = read_all(m.path("t", n))
                        if got != cur[n]:
                            last = [r for r in all_results if r[1] == n]
                            problems.append("before pass %d, mount %s reads %s (%d bytes): %s; "
                                            "S3 holds %d bytes%s" % (
                                                pas + 1, lab, n, len(got),
                                                "its OWN losing version" if last and
                                                got == last[-1][5].get(last[-1][3]) else
                                                "not what S3 holds", len(cur[n]),
                                                " (the winner's, after the window)" if last
                                                else ""))
                        seen_etag[(lab, n)] = etags[n]
                hows = ("AB", "BA", "together") if pas == 0 else ("together", "BA", "AB")
                res, pr = self.race(ms, names, cur, lambda lab, rel: seen_etag[(lab, rel)],
                                    len(all_results), hows, "pass %d" % (pas + 1))
                t_known = time.monotonic()
                all_results += res
                problems += pr
                if pas == 0:
                    # the loser finds its version under the copy's name too
                    wait_past(t_known)
                    for rnd, rel, winner, loser, copy, data, _s in res:
                        if loser and copy:
                            try:
                                got = read_all(ms[loser].path("t", copy))
                            except OSError as e:
                                got = repr(e).encode()
                            if got != data[loser]:
                                problems.append("round %d: mount %s's read of t/%s (its own "
                                                "version's copy): %r" % (rnd, loser, copy,
                                                                         got[:80]))
            # after the last pass and the window: the winner's version everywhere
            wait_past(t_known)
            for n in names:
                for lab, m in ms.items():
                    got = read_all(m.path("t", n))
                    if got != cur[n]:
                        problems.append("after the window, mount %s reads %s (%d bytes) that is "
                                        "not the winner's version at the name (%d bytes)"
                                        % (lab, n, len(got), len(cur[n])))
            lost = {lab: sum(1 for r in all_results if r[3] == lab) for lab in ms}
            st = {lab: self.status(m)["uploads"] for lab, m in ms.items()}
            text = {lab: self.status_text(m) for lab, m in ms.items()}
        wins = collections.Counter(r[2] for r in all_results)
        note("20 rounds: winners %s; conditional uploads answered 5xx and retried: %d; "
             "sync times A %s, B %s", dict(wins), self.retried_5xx,
             " ".join("%.2f" % r[6]["A"].secs for r in all_results),
             " ".join("%.2f" % r[6]["B"].secs for r in all_results))
        self.assertEqual(problems, [], "\n  ".join(["%d problem(s):" % len(problems)] + problems))
        self.assertEqual(len(all_results), 20)
        self.assertEqual(sum(lost.values()), 20, "every round had one loser: %r" % lost)
        # every conflict was named by exactly one sync, of the mount that lost it
        for lab in ms:
            named = [ln for r in all_results for ln in r[6][lab].err.splitlines()]
            self.assertEqual(len(named), len(set(named)), "mount %s's syncs named a conflict "
                             "twice: %r" % (lab, named))
            self.assertEqual(len(named), lost[lab], "conflicts named by %s's syncs" % lab)
        for lab, m in ms.items():
            self.assertEqual(st[lab]["conflicts"], lost[lab], "status --json of %s: "
                             "uploads.conflicts" % lab)
            self.assertEqual(st[lab]["conflict_items"], [], "status --json of %s: conflicts "
                             "reported by a sync are no longer listed" % lab)
            self.assertEqual(st[lab]["unprotected"], [], "status --json of %s on %s"
                             % (lab, SERVER))
            line = "conflicts   %d since the mount:" % lost[lab]
            if lost[lab]:
                self.assertIn(line, text[lab], "bucketfs status of %s" % lab)
            else:
                self.assertNotIn("conflicts ", text[lab], "bucketfs status of %s" % lab)
            self.assertNotIn("UNPROTECTED", text[lab], "bucketfs status of %s" % lab)
            logged = [ln for ln in m.conflict_lines() if "s3://%s/%s" % (BUCKET, self.p) in ln]
            self.assertEqual(len(logged), lost[lab], "`conflict:` lines in %s's log: %r"
                             % (lab, logged[:5]))

    def test_create_create(self):
        """Both mounts create the same new names (each looked them up first:
        missing), in the top directory and in a subdirectory, with
        different content; both sync at once: one version at the name, the
        other as a conflict copy, the uploads carried If-None-Match: * and
        the loser's got 412.  The copy of a .csv file does not end in .csv.
        After the window both mounts read the winner's version."""
        self.need_conditions()
        self.put("d/keep.txt", b"d exists\n")
        names = ["new0.csv", "d/new1.csv", "new2.bin", "d/new3.txt"]
        hows = ("AB", "together", "BA", "together")
        opts = {"upload_delay": "%ds" % SLOW}
        problems, results, cur = [], [], {}
        with self.mount("A", opts=opts) as a, self.mount("B", opts=opts) as b:
            ms = {"A": a, "B": b}
            for m in ms.values():
                self.assertEqual(sorted(os.listdir(m.path("t"))), ["d"])
                for rel in names:
                    self.assertErrno(errno.ENOENT, os.stat, m.path("t", rel),
                                     what="stat of %s before either made it" % rel)
            res, problems = self.race(ms, names, cur, lambda lab, rel: "", 0, hows,
                                      "create-create")
            results += res
            t_known = time.monotonic()
            wait_past(t_known)
            for rnd, rel, winner, loser, copy, data, _s in results:
                if copy and copy.endswith((".csv", ".txt", ".bin")):
                    problems.append("the copy %s ends in the original's extension" % copy)
                for lab, m in ms.items():
                    if rel in cur and read_all(m.path("t", rel)) != cur[rel]:
                        problems.append("after the window mount %s does not read the winner's "
                                        "version of %s" % (lab, rel))
            st = {lab: self.status(m)["uploads"]["conflicts"] for lab, m in ms.items()}
        self.assertEqual(problems, [], "\n  ".join(["%d problem(s):" % len(problems)] + problems))
        self.assertEqual(sum(st.values()), len(names), "status --json conflicts of A and B: %r"
                         % st)

    def test_multipart_conflict(self):
        """Files over 16 MiB (uploaded in parts, the condition on
        CompleteMultipartUpload): an object both mounts read (If-Match) and a
        new name (If-None-Match: *), both written by A and B, both synced at
        once: each name holds one version and one copy the other, byte-exact
        (MD5), no multipart upload left open.  Then, on the versions left,
        the loser of each (after the window) and the winner (at once, on the
        ETag its own multipart upload made) overwrite them again in parts:
        no new conflict, sync exits 0."""
        self.need_conditions()
        v0 = os.urandom(64 * KiB)
        self.put("big.bin", v0)
        base = self.etag("big.bin")
        sizes = {"A": MULTIPART_MIN + 12345, "B": MULTIPART_MIN + 2 * MiB + 777}
        opts = {"upload_delay": "%ds" % SLOW}
        problems, results = [], []
        with self.mount("A", opts=opts) as a, self.mount("B", opts=opts) as b:
            ms = {"A": a, "B": b}
            for m in ms.values():
                self.assertBytes(read_all(m.path("t", "big.bin")), v0, "the first read")
                self.assertErrno(errno.ENOENT, os.stat, m.path("t", "newbig.bin"))
            for rel, how, known in (("big.bin", "AB", base), ("newbig.bin", "BA", "")):
                data = {lab: os.urandom(sizes[lab]) for lab in ms}
                keys0 = self.keys_now()
                marks = {lab: m.px.mark() for lab, m in ms.items()}
                t0 = time.time()
                self.write_both(ms, rel, data, how)
                syncs = self.sync_all(ms)
                t1 = time.time()
                # judge compares bytes; the MD5s are checked separately below
                winner, loser, copy, pr = self.judge(rel, data, syncs, keys0, t0, t1,
                                                     {lab: known for lab in ms}, marks, ms)
                problems += ["%s: %s" % (rel, p) for p in pr]
                results.append((rel, winner, loser, copy, data))
                note("%s: %s won (syncs %.1f s, %.1f s)", rel, winner, syncs["A"].secs,
                     syncs["B"].secs)
            for rel, winner, loser, copy, data in results:
                if winner and copy:
                    for what, key, lab in (("the winner's", rel, winner),
                                           ("the loser's", copy, loser)):
                        got = self.s3_md5(key)
                        if got != (md5hex(data[lab]), len(data[lab])):
                            problems.append("%s in S3 is not %s version (%s): md5, size %r"
                                            % (key, what, lab, got))
            if server_can("list_multipart"):
                ups = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=self.p).get(
                    "Uploads", [])
                if ups:
                    problems.append("multipart uploads left open: %r"
                                    % [u["Key"] for u in ups])
            n_copies = len(self.copies("big.bin")) + len(self.copies("newbig.bin"))
            # what follows runs on the versions the race left, whatever they
            # are (the race's problems are reported at the end): the mount
            # whose version is at newbig.bin writes it again at once, its base
            # the ETag its own CompleteMultipartUpload made (RGW's reply has
            # none); the other mount, after the window, rewrites big.bin
            later = []
            at = {rel: {v: k for k, v in data.items()}.get(self.get(rel)) for rel, _w, _l, _c,
                  data in results}
            w = at["newbig.bin"]
            if w:
                again = os.urandom(MULTIPART_MIN + 4321)
                mark = ms[w].px.mark()
                write_file(ms[w].path("t", "newbig.bin"), again)
                r = bfs_sync(ms[w])
                if (r.rc, r.err) != (0, "") or self.s3_md5("newbig.bin") != (md5hex(again),
                                                                             len(again)):
                    later.append("%s (whose version is at newbig.bin) wrote it again in parts at "
                                 "once: sync exit %d, %r; S3 holds its new bytes: %s" % (
                                     w, r.rc, r.err, self.s3_md5("newbig.bin") ==
                                     (md5hex(again), len(again))))
                bad = check_writes(ms[w].px.writes(self.p + "newbig.bin", mark),
                                   cond_of(ms[w].px.writes(self.p + "newbig.bin", mark)[-1]),
                                   200) if ms[w].px.writes(self.p + "newbig.bin", mark) else \
                    "no upload"
                if bad:
                    later.append("%s's rewrite of newbig.bin: %s" % (w, bad))
            w = at["big.bin"]
            if w:
                lo = "B" if w == "A" else "A"
                data = results[0][4]
                wait_past(time.monotonic())
                got = file_md5(ms[lo].path("t", "big.bin"))
                if got != (md5hex(data[w]), len(data[w])):
                    later.append("%s's read of big.bin after the window is not %s's version at "
                                 "the name: %r" % (lo, w, got))
                again = os.urandom(MULTIPART_MIN + 999)
                write_file(ms[lo].path("t", "big.bin"), again)
                r = bfs_sync(ms[lo])
                if (r.rc, r.err) != (0, "") or self.s3_md5("big.bin") != (md5hex(again),
                                                                          len(again)):
                    later.append("%s rewrote big.bin in parts after the window (on %s's "
                                 "version): sync exit %d, %r" % (lo, w, r.rc, r.err))
            if len(self.copies("big.bin")) + len(self.copies("newbig.bin")) != n_copies:
                later.append("the rewrites made conflict copies: %r" % self.rel_keys())
        self.assertEqual(problems + later, [], "\n  ".join(
            ["the race: %d problem(s)" % len(problems)] + problems +
            ["the rewrites after it: %d problem(s)" % len(later)] + later))


class NamespaceConflictTest(ConflictTestCase):
    """Deletes and renames of a file another writer changed since this
    mount learnt it (issue 14, part 2, last sentence): the other version
    stays at its name and the conflict is reported as for uploads.  The
    other writer is mount B or boto3; A learns the old version by a stat
    (kept for metadata_ttl), so its change acts on what it knew."""

    def sync_conflicts(self, m):
        r = bfs_sync(m)
        self.assertEqual(r.rc, 1, "bucketfs sync of %s after a conflict: exit status (stderr %r)"
                         % (m.label, r.err))
        return [ln for ln in r.err.splitlines() if ln.startswith("bucketfs sync: ")]

    def test_delete_of_changed_file(self):
        """A unlinks x after B replaced it: B's x stays in S3, A's sync
        exits 1 naming x as changed before the delete, status counts it,
        and after the window A shows B's x again.  y, unchanged, is
        deleted as always, with no conflict."""
        self.put("x.csv", b"old x\n")
        self.put("y.csv", b"old y\n")
        with self.mount("A") as a, self.mount("B", proxy=False) as b:
            for rel in ("x.csv", "y.csv"):
                self.assertEqual(read_all(a.path("t", rel)), b"old %s\n" % rel[0].encode())
            write_file(b.path("t", "x.csv"), b"B's new x\n")
            self.assertSyncClean(bfs_sync(b), b, "B's overwrite of x")
            os.unlink(a.path("t", "x.csv"))
            os.unlink(a.path("t", "y.csv"))
            self.assertEqual(self.get("x.csv"), b"B's new x\n", "x after A's unlink")
            self.assertIsNone(self.head("y.csv"), "y (unchanged) after A's unlink")
            lines = self.sync_conflicts(a)
            self.assertEqual(lines, ["bucketfs sync: t/x.csv: changed by another writer before "
                                     "the delete here; its version stays"], "A's sync")
            self.assertEqual(self.status(a)["uploads"]["conflicts"], 1, "A's status conflicts")
            t = time.monotonic()
            wait_past(t)
            self.assertEqual(read_all(a.path("t", "x.csv")), b"B's new x\n",
                             "x on A after the window")
            self.assertFalse(os.path.exists(a.path("t", "y.csv")), "y on A")
        self.assertNoCopies("after the deletes")

    def test_rename_of_changed_file(self):
        """A renames x to z after another writer replaced x: x stays (the
        other's version) and z holds that version too; A reads z as it is
        in S3; sync names the conflict.  An unchanged file's rename is a
        plain move."""
        self.put("x.json", b"old x\n")
        self.put("u.json", b"old u\n")
        with self.mount("A") as a:
            for rel in ("x.json", "u.json"):
                os.stat(a.path("t", rel))
            self.put("x.json", b"other writer's x\n")
            os.rename(a.path("t", "x.json"), a.path("t", "z.json"))
            os.rename(a.path("t", "u.json"), a.path("t", "v.json"))
            self.assertEqual(self.get("x.json"), b"other writer's x\n", "x after the rename")
            self.assertEqual(self.get("z.json"), b"other writer's x\n", "z after the rename")
            self.assertEqual(read_all(a.path("t", "z.json")), b"other writer's x\n", "z on A")
            self.assertIsNone(self.head("u.json"), "u after its rename")
            self.assertEqual(self.get("v.json"), b"old u\n", "v after the rename of u")
            lines = self.sync_conflicts(a)
            self.assertEqual(lines, ["bucketfs sync: t/x.json: changed by another writer before "
                                     "the rename here; its version stays, and the rename copied "
                                     "it to t/z.json"], "A's sync")
        self.assertNoCopies("after the renames")

    def test_rename_over_changed_file(self):
        """A renames src over dst after another writer replaced dst: dst
        keeps the other's version, src's bytes go to dst.conflict-HOST-TIME,
        src is gone, and A shows the other's dst; sync names both."""
        self.put("src.csv", b"src\n")
        self.put("dst.csv", b"old dst\n")
        with self.mount("A") as a:
            for rel in ("src.csv", "dst.csv"):
                os.stat(a.path("t", rel))
            self.put("dst.csv", b"other writer's dst\n")
            os.rename(a.path("t", "src.csv"), a.path("t", "dst.csv"))
            self.assertEqual(self.get("dst.csv"), b"other writer's dst\n", "dst in S3")
            self.assertIsNone(self.head("src.csv"), "src in S3 after the rename")
            copies = self.copies("dst.csv")
            self.assertEqual(len(copies), 1, "conflict copies of dst: keys %r" % self.rel_keys())
            self.assertEqual(self.get(copies[0]), b"src\n", "the conflict copy")
            self.assertEqual(read_all(a.path("t", "dst.csv")), b"other writer's dst\n",
                             "dst on A")
            self.assertEqual(self.sync_conflicts(a), [sync_line("dst.csv", copies[0])],
                             "A's sync")

    def test_pending_rename_over_changed_file(self):
        """A writes new (its upload waits out upload_delay), then renames it
        over dst, which another writer replaced after A learnt it: the
        upload at dst carries If-Match with the dst A knew, is refused, and
        goes to dst.conflict-...; dst keeps the other's version."""
        self.need_conditions()
        self.put("dst.csv", b"old dst\n")
        with self.mount("A", opts={"upload_delay": "%ds" % SLOW}) as a:
            os.stat(a.path("t", "dst.csv"))
            old = self.etag("dst.csv")
            write_file(a.path("t", "new.csv"), b"A's new\n")
            self.put("dst.csv", b"other writer's dst\n")
            mark = a.px.mark()
            os.rename(a.path("t", "new.csv"), a.path("t", "dst.csv"))
            lines = self.sync_conflicts(a)
            copies = self.copies("dst.csv")
            self.assertEqual(len(copies), 1, "conflict copies of dst: keys %r" % self.rel_keys())
            self.assertEqual(lines, [sync_line("dst.csv", copies[0])], "A's sync")
            self.assertEqual(self.get("dst.csv"), b"other writer's dst\n", "dst in S3")
            self.assertEqual(self.get(copies[0]), b"A's new\n", "the conflict copy")
            puts = a.px.writes(self.p + "dst.csv", mark)
            self.assertTrue(puts and unq(puts[0].if_match) == old and puts[0].status == 412,
                            "A's upload to dst: %s" % [show_req(r) for r in puts])
            self.assertIsNone(self.head("new.csv"), "new in S3")


class ThreeWritersTest(ConflictTestCase):

    def test_three_writers_one_host(self):
        """Three mounts of one machine (one host name) have read a file and
        overwrite it at once, then sync at once, 3 times: one version at the
        name, the other two in two distinct conflict copies (the two losers'
        copies are made in the same second by the same host: their names
        must not collide, or one copy replaces the other), each loser's sync
        exits 1 naming its own copy.  No version may be lost."""
        self.need_conditions()
        names = ["t%d.txt" % i for i in range(3)]
        self.put_many({n: b"v0\n" for n in names})
        opts = {"upload_delay": "%ds" % SLOW}
        problems = []
        with self.mount("A", opts=opts) as a, self.mount("B", opts=opts) as b, \
                self.mount("C", opts=opts) as c:
            ms = {"A": a, "B": b, "C": c}
            for n in names:
                for m in ms.values():
                    self.assertBytes(read_all(m.path("t", n)), b"v0\n")
            for rel in names:
                data = {lab: b"%s's version of %s\n" % (lab.encode(), rel.encode()) * (3 + j)
                        for j, lab in enumerate(ms)}
                keys0 = self.keys_now()
                self.write_both(ms, rel, data, "together")
                syncs = self.sync_all(ms)
                new = sorted(self.keys_now() - keys0)
                copies = self.copies(rel, new)
                at_name = self.get(rel)
                held = {k: self.get(k) for k in copies}
                who = {v: lab for lab, v in data.items()}
                winner = who.get(at_name)
                kept = {lab for lab, v in data.items() if v == at_name or v in held.values()}
                lost = sorted(set(ms) - kept)
                issues = []
                if lost:
                    issues.append("CONTENT LOST: the version(s) of %s are nowhere"
                                  % ", ".join(lost))
                if len(copies) != 2:
                    issues.append("%d conflict copies, want 2" % len(copies))
                for lab, r in syncs.items():
                    if lab == winner:
                        continue
                    mine = [k for k, v in held.items() if v == data[lab]]
                    if r.rc != 1 or not mine or r.err.splitlines() != [sync_line(rel, mine[0])]:
                        named = [ln.rsplit(" saved as ", 1)[-1] for ln in r.err.splitlines()]
                        issues.append("the loser %s's sync exited %d naming %s%s" % (
                            lab, r.rc, " and ".join(named) or "nothing",
                            "" if mine else ", which does not hold its version"))
                if issues:
                    problems.append("%s: %s (S3: %s holds %s's version; copies: %s)" % (
                        rel, "; ".join(issues), rel, winner, ", ".join(
                            "%s = %s's" % (k, who.get(v, "?")) for k, v in held.items())
                        or "none"))
                time.sleep(1.05)   # the next round in another second
        self.assertEqual(problems, [], "\n  ".join(problems))


# ------------------------------------------------------- 4: overwrite
class OverwriteOptionTest(ConflictTestCase):

    def write_config(self, conflicts):
        path = os.path.join(self.tmp, "two.conf")
        with open(path, "w") as f:
            f.write("[global]\nendpoint = %s\npath_style = true\n\n[t]\nbucket = %s\n"
                    "prefix = %s\nconflicts = %s\n"
                    % (os.environ["AWS_ENDPOINT_URL"], BUCKET, self.p, conflicts))
        os.chmod(path, 0o600)
        return path

    def test_overwrite_last_upload_wins(self):
        """conflicts=overwrite on both mounts (A: -o conflicts=overwrite; B: in
        its config file's mapping section): 6 files both have read are
        overwritten by both; syncing one mount then the other leaves the
        last one's version at the name; no conflict copy, every sync exits 0
        silently, no upload carries If-Match / If-None-Match, no probe;
        status shows no conflicts and nothing unprotected.  A bad value is
        refused naming the option."""
        bad = self.mount("bad", opts={"conflicts": "sometimes"})
        with self.assertRaises(MountError, msg="-o conflicts=sometimes must be refused") as cm:
            with bad:
                pass
        self.assertIn("conflicts", str(cm.exception).split("log:", 1)[-1],
                      "the error for conflicts=sometimes names the option")
        names = ["o%d.txt" % i for i in range(6)]
        cur = {n: b"v0 of %s\n" % n.encode() for n in names}
        self.put_many(cur)
        cfg = self.write_config("overwrite")
        problems = []
        with self.mount("A", opts={"conflicts": "overwrite", "upload_delay": "%ds" % SLOW}) as a, \
                self.mount("B", maps=None, args=[cfg], opts={"upload_delay": "%ds" % SLOW}) as b:
            ms = {"A": a, "B": b}
            for n in names:
                for m in ms.values():
                    self.assertBytes(read_all(m.path("t", n)), cur[n], "the first read")
            for i, rel in enumerate(names):
                data = {lab: b"%s's version of %s\n" % (lab.encode(), rel.encode()) * (3 + i + j)
                        for j, lab in enumerate("AB")}
                self.write_both(ms, rel, data, ("AB", "BA", "together")[i % 3])
                order = "AB" if i % 2 == 0 else "BA"
                for lab in order:
                    r = bfs_sync(ms[lab])
                    if (r.rc, r.err) != (0, ""):
                        problems.append("%s: %s's sync: exit %d, %r" % (rel, lab, r.rc, r.err))
                    got = self.get(rel)
                    if got != data[lab]:
                        problems.append("%s: after %s's sync S3 holds %s, not %s's version" % (
                            rel, lab, {v: k for k, v in data.items()}.get(got, "neither"), lab))
                cur[rel] = data[order[-1]]
            wait_past(time.monotonic())
            for rel in names:
                for lab, m in ms.items():
                    if read_all(m.path("t", rel)) != cur[rel]:
                        problems.append("after the window, %s does not read the last upload "
                                        "of %s" % (lab, rel))
            st = {lab: self.status(m)["uploads"] for lab, m in ms.items()}
            text = {lab: self.status_text(m) for lab, m in ms.items()}
        self.assertEqual(problems, [], "\n  ".join(problems))
        self.assertNoCopies("conflicts=overwrite")
        for lab, m in ms.items():
            cond = [show_req(r) for r in m.px.conditional()]
            self.assertEqual(cond, [], "%s (conflicts=overwrite) sent conditional requests" % lab)
            probes = [show_req(r) for r in m.px.since() if PROBE in r.key]
            self.assertEqual(probes, [], "%s (conflicts=overwrite) probed the server" % lab)
            puts = [r for r in m.px.since() if r.method == "PUT"]
            self.assertEqual(len(puts), len(names), "%s: one PUT per upload: %r"
                             % (lab, [show_req(r) for r in puts]))
            self.assertEqual((st[lab]["conflicts"], st[lab]["conflict_items"],
                              st[lab]["unprotected"]), (0, [], []),
                             "status --json of %s (conflicts=overwrite)" % lab)
            self.assertNotIn("UNPROTECTED", text[lab])
            self.assertNotIn("conflicts ", text[lab])
            self.assertEqual(m.conflict_lines(), [], "%s's log" % lab)


# ------------------------------------------------- 5: no false conflicts
class NoFalseConflictTest(ConflictTestCase):

    def check_no_conflicts(self, ms, what, since=None):
        self.assertNoCopies(what)
        for lab, m in ms.items():
            st = self.status(m)["uploads"]
            self.assertEqual((st["conflicts"], st["conflict_items"]), (0, []),
                             "%s: status --json of %s" % (what, lab))
            self.assertEqual(m.conflict_lines(), [], "%s: %s's log" % (what, lab))
            refused = [show_req(r) for r in m.px.since((since or {}).get(lab, 0))
                       if r.status == 412 and PROBE not in r.key]
            self.assertEqual(refused, [], "%s: uploads of %s refused (412)" % (what, lab))

    def test_one_mount(self):
        """One mount, no other writer: (a) a file written 10 times in a row,
        close + sync each time; (b) appends through a descriptor kept open,
        fsync after each; (c) a file rewritten at once after its close, while
        the upload of the first version runs (upload_delay=0, the proxy holds
        each PUT 0.3 s), 6 times; (d) rsync of a changing file 4 times (temp
        name, then rename over the file), each followed by an overwrite in
        place; (e) the same by hand with the temp file uploaded before the
        rename (server-side copy), then an append in place.  Each sync exits
        0 silently, S3 holds the last bytes each time, no upload is refused
        (412) but the probe's, no conflict copy, status and log show none."""
        problems = []
        with self.mount("A") as a, self.mount("Z", opts={"upload_delay": "0"}) as z:
            z.px.delays.append(("quick", 0.3))

            marks = {a: a.px.mark(), z: z.px.mark()}

            def synced(m, rel, want, what):
                r = bfs_sync(m)
                n = len(problems)
                if (r.rc, r.err) != (0, ""):
                    problems.append("%s: sync exit %d, stderr %r" % (what, r.rc, r.err))
                got = self.get(rel) if self.head(rel) else None
                if got != want:
                    problems.append("%s: S3 holds %s, not the %d bytes written" % (
                        what, "nothing" if got is None else "%d bytes" % len(got), len(want)))
                if len(problems) > n:  # what the mount sent since its last sync
                    problems.append("    its writes since the step before: %s" % "; ".join(
                        show_req(q) for q in m.px.since(marks[m])
                        if q.method in ("PUT", "POST", "DELETE") and "partNumber" not in q.query))
                marks[m] = m.px.mark()

            # (a)
            for i in range(10):
                data = os.urandom(1000 + 997 * i)
                write_file(a.path("t", "same.bin"), data)
                synced(a, "same.bin", data, "(a) write %d of same.bin" % (i + 1))
            # (b)
            acc = b""
            fd = os.open(a.path("t", "app.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                for i in range(10):
                    line = b"line %d %s\n" % (i, os.urandom(8).hex().encode())
                    os.write(fd, line)
                    acc += line
                    os.fsync(fd)
                    got = self.get("app.log")
                    if got != acc:
                        problems.append("(b) after fsync %d S3 holds %d bytes, not %d"
                                        % (i + 1, len(got), len(acc)))
            finally:
                os.close(fd)
            synced(a, "app.log", acc, "(b) app.log after the close")
            # (c)
            overlaps = 0
            for i in range(6):
                v1, v2 = os.urandom(200 * KiB + i), os.urandom(150 * KiB + 7 * i)
                write_file(z.path("t", "quick.bin"), v1)
                time.sleep(0.05)   # the upload of v1 has started (held by the proxy)
                write_file(z.path("t", "quick.bin"), v2)
                t_close = time.monotonic()
                synced(z, "quick.bin", v2, "(c) rewrite %d of quick.bin" % (i + 1))
                overlaps += any(r.t_start < t_close < r.t_end
                                for r in z.px.writes(self.p + "quick.bin"))
            # (d)
            src = os.path.join(self.tmp, "rs.txt")
            for i in range(4):
                data = b"rsync %d\n" % i * (100 + 50 * i)
                with open(src, "wb") as f:
                    f.write(data)
                os.utime(src, (1.7e9 + i, 1.7e9 + i))
                r = subprocess.run(["rsync", "-t", src, a.path("t", "rs.txt")],
                                   capture_output=True, text=True, timeout=60)
                if r.returncode != 0:
                    problems.append("(d) rsync %d: %s" % (i, r.stderr))
                synced(a, "rs.txt", data, "(d) rsync %d of rs.txt" % (i + 1))
                data = b"in place %d\n" % i * (70 + i)
                write_file(a.path("t", "rs.txt"), data)
                synced(a, "rs.txt", data, "(d) overwrite %d of rs.txt after rsync" % (i + 1))
            # (e)
            for i in range(4):
                data = b"by hand %d\n" % i * (30 + 9 * i)
                tmp = z.path("t", ".em.txt.tmp%d" % i)
                write_file(tmp, data)
                synced(z, ".em.txt.tmp%d" % i, data, "(e) temp file %d" % (i + 1))
                os.rename(tmp, z.path("t", "em.txt"))
                synced(z, "em.txt", data, "(e) rename %d over em.txt" % (i + 1))
                with open(z.path("t", "em.txt"), "ab") as f:
                    f.write(b"appended\n")
                synced(z, "em.txt", data + b"appended\n", "(e) append %d to em.txt" % (i + 1))
            ms = {"A": a, "Z": z}
            self.assertEqual(problems, [], "\n  ".join(problems))
            note("(c): %d of 6 rewrites closed while the previous upload ran", overlaps)
            self.assertGreater(overlaps, 0, "precondition: no rewrite of quick.bin was closed "
                               "while the upload of the version before it ran")
            self.check_no_conflicts(ms, "one mount")
            self.assertEqual(sorted(self.rel_keys()), ["app.log", "em.txt", "quick.bin",
                                                       "rs.txt", "same.bin"])

    def test_two_mounts_taking_turns(self):
        """A and B take turns, 6 times: the one whose turn it is waits past
        the window after the other's sync, opens, writes, syncs.  turn.txt
        is overwritten (O_TRUNC), log.txt appended to (each turn reads the
        other's lines first).  Every sync exits 0 silently; log.txt ends
        with all 6 lines in order, turn.txt with the last turn's bytes; no
        upload refused, no copies, status and logs count no conflict."""
        problems, lines = [], []
        with self.mount("A") as a, self.mount("B") as b:
            ms = {"A": a, "B": b}
            t_sync = time.monotonic() - 10
            for turn in range(6):
                lab = "AB"[turn % 2]
                m = ms[lab]
                wait_past(t_sync)
                line = b"turn %d by %s\n" % (turn, lab.encode())
                with open(m.path("t", "log.txt"), "ab") as f:
                    f.write(line)
                lines.append(line)
                data = b"turn %d: %s's\n" % (turn, lab.encode()) * (turn + 1)
                write_file(m.path("t", "turn.txt"), data)
                r = bfs_sync(m)
                t_sync = time.monotonic()
                if (r.rc, r.err) != (0, ""):
                    problems.append("turn %d (%s): sync exit %d, stderr %r"
                                    % (turn, lab, r.rc, r.err))
                for rel, want in (("log.txt", b"".join(lines)), ("turn.txt", data)):
                    got = self.get(rel) if self.head(rel) else b""
                    if got != want:
                        problems.append("turn %d (%s): S3's %s is %r, want %r"
                                        % (turn, lab, rel, got[-60:], want[-60:]))
            self.assertEqual(problems, [], "\n  ".join(problems))
            self.check_no_conflicts(ms, "two mounts taking turns")
            self.assertEqual(sorted(self.rel_keys()), ["log.txt", "turn.txt"])


# --------------------------------------------------------------- 6: crash
class CrashTest(ConflictTestCase):

    def test_recovered_upload_stays_conditional(self):
        """Mount A (upload_delay=1h) reads f.txt and mine.txt and looks up
        made.txt (missing), then overwrites the first two and creates the
        third: journaled, not uploaded.  Meanwhile B replaces f.txt and
        creates made.txt, and syncs.  kill -9 A; remount A on the same cache
        dir: the recovered uploads are still conditional (If-Match with the
        ETag A had read, If-None-Match: * for made.txt): f.txt and made.txt
        keep B's version and A's go to conflict copies; mine.txt, which
        nobody else changed, is uploaded at its name.  Before a sync, status
        --json lists the 2 conflicts (path, copy, age_s) and keeps listing
        them; the sync names both and exits 1, the next sync exits 0 with
        nothing; after the window A reads B's versions."""
        self.need_conditions()
        cache = os.path.join(self.tmp, "cache-A")
        f0, m0 = b"f.txt as it was\n", b"mine.txt as it was\n"
        self.put("f.txt", f0)
        self.put("mine.txt", m0)
        etag_f0, etag_m0 = self.etag("f.txt"), self.etag("mine.txt")
        mine_a = {"f.txt": b"A's f.txt, written before the crash\n" * 3,
                  "mine.txt": b"A's mine.txt\n" * 5,
                  "made.txt": b"A's made.txt\n" * 7}
        theirs = {"f.txt": b"B's f.txt\n" * 11, "made.txt": b"B's made.txt\n" * 13}
        a1 = self.mount("A", opts={"cache_dir": cache, "upload_delay": "1h"})
        with a1:
            self.assertBytes(read_all(a1.path("t", "f.txt")), f0)
            self.assertBytes(read_all(a1.path("t", "mine.txt")), m0)
            self.assertErrno(errno.ENOENT, os.stat, a1.path("t", "made.txt"))
            for rel, data in mine_a.items():
                write_file(a1.path("t", rel), data)
            with self.mount("B") as b:
                for rel, data in theirs.items():
                    write_file(b.path("t", rel), data)
                r = bfs_sync(b)
                self.assertSyncClean(r, b, "B's versions, while A's wait")
            for rel, data in theirs.items():
                self.assertObject(rel, data=data, what="B's version, synced")
            self.assertObject("mine.txt", data=m0, what="not replaced yet")
            rows = journal(cache, "SELECT key FROM uploads ORDER BY key")
            self.assertEqual([k for (k,) in rows], sorted(self.p + r for r in mine_a),
                             "precondition: A's three uploads journaled, pending")
            a1.kill9()
        sent = [show_req(r) for r in a1.px.since() if r.method in ("PUT", "POST")]
        self.assertEqual(sent, [], "precondition: A (upload_delay=1h) sent nothing before the "
                         "kill")
        with self.mount("A", opts={"cache_dir": cache}) as a2:
            # the recovered uploads go on their own; status (not sync) lists
            # the conflicts and does not mark them reported
            deadline = time.monotonic() + 60
            while self.status(a2)["uploads"]["conflicts"] < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            st1 = self.status(a2)["uploads"]
            st2 = self.status(a2)["uploads"]
            # two syncs at once: each conflict is named by one of them only
            r1s = list(self.sync_all({"1": a2, "2": a2}).values())
            r2 = bfs_sync(a2)
            t_done = time.monotonic()
            st3 = self.status(a2)["uploads"]
            copies = {rel: self.copies(rel) for rel in mine_a}
            for rel in ("f.txt", "made.txt"):
                self.assertEqual(len(copies[rel]), 1, "one conflict copy of %s: keys %r"
                                 % (rel, self.rel_keys()))
                self.assertObject(rel, data=theirs[rel], what="B's version stays at the name")
                self.assertObject(copies[rel][0], data=mine_a[rel], what="A's recovered version")
            self.assertEqual(copies["mine.txt"], [], "mine.txt: nobody else changed it")
            self.assertObject("mine.txt", data=mine_a["mine.txt"],
                              what="A's recovered upload, not in conflict")
            want = {"f.txt": (("If-Match", etag_f0), 412),
                    "made.txt": (("If-None-Match", "*"), 412),
                    "mine.txt": (("If-Match", etag_m0), 200)}
            bad = ["%s: %s" % (rel, check_writes(a2.px.writes(self.p + rel), *want[rel]))
                   for rel in mine_a if check_writes(a2.px.writes(self.p + rel), *want[rel])]
            self.assertEqual(bad, [], "the recovered uploads' conditions and answers")
            items = sorted((i["path"], i["copy"]) for i in st1["conflict_items"])
            want_items = sorted(("t/" + rel, "t/" + copies[rel][0]) for rel in ("f.txt",
                                                                               "made.txt"))
            self.assertEqual(st1["conflicts"], 2, "status --json conflicts")
            self.assertEqual(items, want_items, "status --json conflict_items before a sync")
            self.assertTrue(all(isinstance(i["age_s"], int) and 0 <= i["age_s"] < 60
                                for i in st1["conflict_items"]),
                            "age_s of the conflict items: %r" % st1["conflict_items"])
            self.assertEqual(sorted((i["path"], i["copy"]) for i in st2["conflict_items"]),
                             want_items, "a second status still lists them (status does not "
                             "take them)")
            self.assertEqual(sorted(ln for r in r1s for ln in r.err.splitlines()),
                             sorted(sync_line(rel, copies[rel][0]) for rel in ("f.txt",
                                                                             "made.txt")),
                             "two syncs at once after the recovery name both conflicts, each "
                             "once: %r" % (r1s,))
            self.assertEqual([r.rc for r in r1s], [1 if r.err else 0 for r in r1s],
                             "a sync that named a conflict exits 1, one that named none 0: %r"
                             % (r1s,))
            self.assertEqual((r2.rc, r2.err), (0, ""), "the second sync: they were reported")
            self.assertEqual((st3["conflicts"], st3["conflict_items"]), (2, []),
                             "status --json after the sync")
            self.assertEqual(len(a2.conflict_lines()), 2, "conflict lines in A's log")
            wait_past(t_done)
            for rel, data in theirs.items():
                self.assertBytes(read_all(a2.path("t", rel)), data,
                                 "A after the window: B's %s" % rel)
            self.assertBytes(read_all(a2.path("t", "mine.txt")), mine_a["mine.txt"])


# -------------------------------------------------------- 7: unprotected
class UnprotectedTest(ConflictTestCase):

    def test_unprotected(self):
        """Before the first upload of a mapping, bucketfs probes the server
        (man bucketfs.conf, `conflicts`): one PUT of
        PREFIX.bucketfs-condition-probe-HOST-PID-N with an If-Match no object
        can satisfy, deleted at once if the server stored it, never shown in
        listings (a stray one left by boto3 is not listed either), and done
        once per mapping.  On s3rver the PUT is accepted (then deleted):
        status --json lists the mapping in uploads.unprotected (not before
        the first upload), status says UNPROTECTED, the log warns once; and
        of two mounts that both read a file and overwrite it, the last to
        sync wins, no copy, both syncs exit 0.  On RGW the PUT is refused
        (412 or 404, nothing made, no DELETE), nothing is unprotected, and the
        same sequence keeps both (the first to sync wins, the second's
        version is the copy, its sync exits 1)."""
        protected = server_can("conditional_writes")
        stray = self.p + PROBE + "otherhost-1-1"
        self.s3.put_object(Bucket=BUCKET, Key=stray, Body=b"")
        with self.mount("A") as a, self.mount("B") as b:
            ms = {"A": a, "B": b}
            listed = os.listdir(a.path("t"))
            self.assertEqual(listed, [], "a probe object left in S3 must not be listed")
            self.s3.delete_object(Bucket=BUCKET, Key=stray)
            self.assertEqual(self.status(a)["uploads"]["unprotected"], [],
                             "unprotected before any upload (not known yet)")
            write_file(a.path("t", "first.txt"), b"first\n")
            self.assertSyncClean(bfs_sync(a), a, "the first upload")
            st = self.status(a)["uploads"]
            text = self.status_text(a)
            reqs = a.px.since()
            # at the top of the bucket: no directory of its own for a server
            # that keeps objects as files to remove while others write into it
            probe_rx = re.compile("^" + re.escape(PROBE) + r".+-%d-\w+$" % a.pid)
            probes = [r for r in reqs if PROBE in r.key]
            show = [show_req(r) for r in probes]
            puts = [r for r in probes if r.method == "PUT"]
            self.assertTrue(puts and all(probe_rx.match(r.key) for r in probes),
                            "probe requests, keys %sHOST-%d-N: %r" % (PROBE, a.pid, show))
            self.assertEqual(len({r.key for r in probes}), 1, "one probe key: %r" % show)
            self.assertTrue(all(r.if_match is not None for r in puts),
                            "the probe PUT carries If-Match: %r" % show)
            left = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=puts[-1].key).get("Contents", [])
            self.assertEqual(left, [], "the probe object is not left in S3")
            if protected:
                self.assertEqual(check_writes(puts, cond_of(puts[0]), (412, 404)), None,
                                 "the probe on %s" % SERVER)
                self.assertEqual([r for r in probes if r.method != "PUT"], [],
                                 "requests other than the PUT for the probe: %r" % show)
            else:
                self.assertEqual(check_writes(puts, cond_of(puts[0]), 200), None,
                                 "the probe on %s" % SERVER)
                self.assertEqual([(r.method, r.status // 100) for r in probes[len(puts):]],
                                 [("DELETE", 2)], "the probe's object, made, is deleted: %r"
                                 % show)
            first = a.px.writes(self.p + "first.txt")
            self.assertEqual([(r.if_none_match, r.status) for r in first],
                             [("*" if protected else None, 200)],
                             "first.txt's upload: %r" % [show_req(r) for r in first])
            self.assertLess(reqs.index(probes[-1]), reqs.index(first[0]),
                            "the probe comes before the first conditional upload")
            self.assertEqual([k for k in self.rel_keys() if PROBE in k], [],
                             "probe object left in S3")
            warn = [ln for ln in a.log().splitlines() if "ignores conditional writes" in ln]
            if protected:
                self.assertEqual(st["unprotected"], [], "status --json on %s" % SERVER)
                self.assertNotIn("UNPROTECTED", text)
                self.assertEqual(warn, [], "A's log on %s" % SERVER)
            else:
                self.assertEqual(st["unprotected"], ["t"], "status --json uploads.unprotected "
                                 "on %s" % SERVER)
                self.assertIn("UNPROTECTED t: ", text, "bucketfs status on %s" % SERVER)
                self.assertEqual(len(warn), 1, "A's log warns once: %r" % warn)
            # a second upload does not probe again
            mark = a.px.mark()
            write_file(a.path("t", "second.txt"), b"second\n")
            self.assertSyncClean(bfs_sync(a), a, "the second upload")
            self.assertEqual([show_req(r) for r in a.px.since(mark) if PROBE in r.key], [],
                             "a second upload probed again")
            # two writers of one file, one sync after the other
            self.put("shared.txt", b"v0\n")
            wait_past(time.monotonic())
            for m in ms.values():
                self.assertBytes(read_all(m.path("t", "shared.txt")), b"v0\n")
            data = {"A": b"A's shared\n" * 3, "B": b"B's shared\n" * 5}
            self.write_both(ms, "shared.txt", data, "AB")
            ra = bfs_sync(a)
            t0 = time.time()
            rb = bfs_sync(b)
            self.assertSyncClean(ra, a, "the first to sync")
            copies = self.copies("shared.txt")
            if protected:
                self.assertEqual(len(copies), 1, "the second writer's copy: %r"
                                 % self.rel_keys())
                self.assertObject("shared.txt", data=data["A"], what="the first upload stays")
                self.assertObject(copies[0], data=data["B"], what="the second writer's version")
                self.assertEqual((rb.rc, rb.err.splitlines()),
                                 (1, [sync_line("shared.txt", copies[0])]), "B's sync")
                st = copy_re("shared.txt").match(copies[0]).group(1)
                self.assertLess(abs(stamp_time(st) - t0), 2.5, "the copy's time %s" % st)
            else:
                self.assertSyncClean(rb, b, "the second to sync, unprotected")
                self.assertEqual(copies, [], "no copies where the server ignores conditions")
                self.assertObject("shared.txt", data=data["B"], what="the last upload wins")
                self.assertNoCopies("unprotected")
                sb = self.status(b)["uploads"]
                self.assertEqual((sb["conflicts"], sb["unprotected"]), (0, ["t"]),
                                 "B's status --json")


def set_logdir(path):
    global LOGDIR
    LOGDIR = path


def main():
    return tm.suite_main(__doc__, tools=("fusermount3", "rsync"),
                         logdir_prefix="bfs-conflict-logs-", on_logdir=set_logdir,
                         banner=" (host name in copies: %s)" % HOST)


if __name__ == "__main__":
    sys.exit(main())
