#!/usr/bin/python3
"""Integration tests of the times a stat shows (ctime, atime, mtime) and of
files unlinked while still open, against a live S3 server.

Run inside scripts/with-server.sh:

    scripts/with-server.sh s3rver /usr/bin/python3 tests/integration/test_times.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Unlinked]

S3 keeps only an mtime (x-amz-meta-mtime); ctime and atime are kept in the
cache directory (columns ctime_ns and atime_ns of the nodes table of
CACHE_DIR/meta.db).  A stat shows ctime = the later of the local ctime and
mtime, and atime = the atime set explicitly (utimensat, os.utime, touch -a)
or else mtime.  chmod, chown, utimens, setxattr and a rename of the file
set its ctime to now; open(O_TRUNC) of an existing file, even an empty one,
is a change of its content (mtime and ctime now, uploaded).  Each such test
checks three states: the writing mount; a remount with the same cache
directory (ctime and atime as they were, to the nanosecond, also when the
rows are older than metadata_ttl and get checked with S3 again); and a fresh
mount with an empty cache, where both fall back to the object's mtime.
After a kill -9 with an upload pending, the mount that recovers it from the
journal shows the same times too (the recovered upload held back by
faultproxy.py refusing PUTs, so that the state lasts).

"Now" is checked against this process's clock, read just before and just
after the call: the daemon runs on the same machine, so the window is the
call's duration plus CLOCK_SLACK_NS (rename's time comes from SQLite, in
milliseconds).  Where the old time could be close to now, the test first
sleeps just over a second, so that a ctime left at mtime cannot pass.

A file unlinked while open (the tempfile.TemporaryFile pattern) shows,
through its descriptor, nlink 0 and the size and bytes its handle wrote;
ftruncate and fchmod on the descriptor change that open file only and must
never bring the name back: not in a listing, not as an object in S3 (checked
with boto3 once the upload journal is empty).  A file created afterwards
under the same name is a file of its own, and the old descriptor keeps
working (fstat, pread, ftruncate, fchmod) while it exists; so does the
descriptor of a file that another file was renamed over (the atomic-save
pattern: that file is unlinked while open too).

The Mount machinery, the boto3 client and the helpers are those of
test_mount.py and test_write.py (imported from this directory).  The binary
given with --bucketfs is copied at the start, so that a rebuild of build/
during the run cannot break later mounts.
"""
import errno
import os
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import KiB, MiB, note, read_all  # noqa: E402
from test_write import WriteTestCase, journal, write_file  # noqa: E402
from test_meta import fmt_ns, parse_mtime_ns  # noqa: E402

SEC = 10**9
CLOCK_SLACK_NS = 20 * 10**6          # 20 ms either side of the call
OLD_MTIME = "1500000000.25"          # x-amz-meta-mtime of the objects put with boto3
OLD_MTIME_NS = 1500000000 * SEC + 250000000
UID_A, GID_A = 1234, 2345


def times(st):
    return {"mtime": st.st_mtime_ns, "ctime": st.st_ctime_ns, "atime": st.st_atime_ns}


def show(t):
    return "mtime %s ctime %s atime %s" % (fmt_ns(t["mtime"]), fmt_ns(t["ctime"]),
                                           fmt_ns(t["atime"]))


class TimesTestCase(WriteTestCase):

    def setUp(self):
        super().setUp()
        self.p = "tt-%s-%s/" % (self._testMethodName[5:][:40], os.urandom(4).hex())

    def put_old(self, rel, data=b"old\n", mode=stat.S_IFREG | 0o644, **meta):
        """An object written elsewhere, long ago: mtime OLD_MTIME."""
        md = {"mode": str(mode), "uid": str(os.getuid()), "gid": str(os.getgid()),
              "mtime": OLD_MTIME}
        md.update(meta)
        self.put(rel, data, Metadata=md)

    def s3_mtime_ns(self, rel):
        h = self.head(rel)
        self.assertIsNotNone(h, "S3 object %s does not exist; keys: %r" % (rel, self.rel_keys()))
        self.assertIn("mtime", h.get("Metadata", {}), "%s: no x-amz-meta-mtime" % rel)
        return parse_mtime_ns(h["Metadata"]["mtime"])

    def assertNow(self, ns, t0, t1, what):
        """ns is a time taken between t0 and t1 (time.time_ns() around the call)."""
        if not (t0 - CLOCK_SLACK_NS <= ns <= t1 + CLOCK_SLACK_NS):
            self.fail("%s: %s, but the call ran from %s to %s (slack %d ms): off by %+.3f s"
                      % (what, fmt_ns(ns), fmt_ns(t0), fmt_ns(t1), CLOCK_SLACK_NS // 10**6,
                         (ns - (t1 if ns > t1 else t0)) / 1e9))

    def assertTimes(self, got, want, what):
        if got != want:
            self.fail("%s:\n  shown    %s\n  expected %s" % (what, show(got), show(want)))

    def assertNoProblems(self, problems, what):
        if problems:
            self.fail("%s: %d problem(s):\n  %s" % (what, len(problems), "\n  ".join(problems)))

    def assertNoName(self, m, rel, what):
        """rel is neither listed nor looked up on mount m, nor an object in S3."""
        d, name = os.path.split(rel)
        listed = os.listdir(m.path("t", d) if d else m.path("t"))
        self.assertNotIn(name, listed, "%s: the name is back in the listing" % what)
        self.assertFalse(os.path.lexists(m.path("t", rel)), "%s: the name can be looked up"
                         % what)
        self.assertNoObject(rel, what)


# ------------------------------------------------------------------- ctime
class CtimeTest(TimesTestCase):

    OPS = ("chmod", "chown", "setxattr", "rename", "utime")

    def apply(self, m, op, rel):
        p = m.path("t", rel)
        if op == "chmod":
            os.chmod(p, 0o600)
        elif op == "chown":
            if os.geteuid() == 0:
                os.chown(p, UID_A, GID_A)
            else:  # to the owner it has: still a change of the inode
                os.chown(p, os.getuid(), os.getgid())
        elif op == "setxattr":
            os.setxattr(p, "user.note", b"ctime test")
        elif op == "rename":
            os.rename(p, p + ".moved")
            return rel + ".moved"
        elif op == "utime":
            os.utime(p, ns=(1600000000 * SEC + 111111111, 1400000000 * SEC + 222222222))
        return rel

    def test_each_change_sets_ctime_not_mtime(self):
        """chmod, chown, setxattr, rename and utime set ctime to now and
        leave mtime alone (utime: to what it was given), on objects written
        elsewhere (mtime 2017), on files written and uploaded here, and on a
        file still open for writing; an untouched file keeps its times.
        Then a remount with the same cache shows the same three times (also
        once the rows are checked with S3 again), and a fresh mount with an
        empty cache shows ctime = atime = mtime, the mtime in S3."""
        for op in self.OPS:
            self.put_old("b-%s.csv" % op)
        self.put_old("b-none.csv")
        cache = os.path.join(self.tmp, "cache")
        with self.mount(opts={"cache_dir": cache}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            for op in self.OPS + ("none",):
                write_file(t("w-%s.csv" % op), b"written here: %s\n" % op.encode())
            m.wait_uploads()
            before = {}
            for op in self.OPS + ("none",):
                for rel in ("b-%s.csv" % op, "w-%s.csv" % op):
                    before[rel] = times(os.stat(t(rel)))
            for op in self.OPS + ("none",):
                b = before["b-%s.csv" % op]
                self.assertTimes(b, {"mtime": OLD_MTIME_NS, "ctime": OLD_MTIME_NS,
                                     "atime": OLD_MTIME_NS},
                                 "b-%s.csv, an object with x-amz-meta-mtime %s, never changed "
                                 "here" % (op, OLD_MTIME))
                w = before["w-%s.csv" % op]
                self.assertEqual(w["atime"], w["mtime"], "w-%s.csv: atime of a file written "
                                 "here, never set: %s" % (op, show(w)))
                self.assertGreaterEqual(w["ctime"], w["mtime"], "w-%s.csv: %s" % (op, show(w)))
            # a file open for writing when its mode changes
            fd = os.open(t("o-chmod.csv"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, b"open while chmod\n")
                o_before = times(os.fstat(fd))
                time.sleep(1.1)  # the files written here: their mtime is a second old now
                names, window = {}, {}
                for op in self.OPS:
                    for rel in ("b-%s.csv" % op, "w-%s.csv" % op):
                        t0 = time.time_ns()
                        names[rel] = self.apply(m, op, rel)
                        window[rel] = (t0, time.time_ns())
                t0 = time.time_ns()
                os.chmod(t("o-chmod.csv"), 0o640)
                o_window = (t0, time.time_ns())
                o_after = times(os.fstat(fd))
                o_stat = times(os.stat(t("o-chmod.csv")))
            finally:
                os.close(fd)
            self.assertEqual(o_after["mtime"], o_before["mtime"],
                             "o-chmod.csv (open for writing): chmod changed mtime: before %s, "
                             "after %s" % (show(o_before), show(o_after)))
            self.assertNow(o_after["ctime"], *o_window, "o-chmod.csv (open for writing): "
                           "fstat's ctime after chmod")
            self.assertTimes(o_stat, o_after, "o-chmod.csv: stat by name and fstat")
            after = {}
            for op in self.OPS:
                for rel in ("b-%s.csv" % op, "w-%s.csv" % op):
                    a = after[rel] = times(os.stat(t(names[rel])))
                    b = before[rel]
                    what = "%s after %s (was %s)" % (rel, op, show(b))
                    self.assertNow(a["ctime"], *window[rel], what + ": ctime")
                    self.assertGreaterEqual(a["ctime"] - b["mtime"], SEC, what + ": ctime is not "
                                            "a second past the old mtime: %s" % show(a))
                    if op == "utime":
                        self.assertEqual((a["mtime"], a["atime"]),
                                         (1400000000 * SEC + 222222222,
                                          1600000000 * SEC + 111111111),
                                         what + ": mtime and atime as given: %s" % show(a))
                    else:
                        self.assertEqual((a["mtime"], a["atime"]), (b["mtime"], b["mtime"]),
                                         what + ": mtime and atime unchanged: %s" % show(a))
            for rel in ("b-none.csv", "w-none.csv"):
                after[rel] = times(os.stat(t(rel)))
                self.assertTimes(after[rel], before[rel], "%s, not touched" % rel)
            after["o-chmod.csv"] = o_after
            names.update({"b-none.csv": "b-none.csv", "w-none.csv": "w-none.csv",
                          "o-chmod.csv": "o-chmod.csv"})
            for who in ("b", "w"):  # the changes took
                self.assertEqual(stat.S_IMODE(os.stat(t(who + "-chmod.csv")).st_mode), 0o600)
                if os.geteuid() == 0:
                    st = os.stat(t(who + "-chown.csv"))
                    self.assertEqual((st.st_uid, st.st_gid), (UID_A, GID_A))
                self.assertEqual(os.getxattr(t(who + "-setxattr.csv"), "user.note"),
                                 b"ctime test")
            m.unmount_wait()
        # S3 holds the mtimes shown (a change of the inode is not one of the content)
        for rel, a in sorted(after.items()):
            self.assertEqual(self.s3_mtime_ns(names[rel]), a["mtime"],
                             "x-amz-meta-mtime of %s, shown %s" % (names[rel], show(a)))
        for ttl in ("60", "0"):  # rows fresh, then rows checked with S3 again
            with self.mount(opts={"cache_dir": cache, "metadata_ttl": ttl}) as m:
                for rel, a in sorted(after.items()):
                    self.assertTimes(times(os.stat(m.path("t", names[rel]))), a,
                                     "%s on a remount with the same cache (metadata_ttl=%s)"
                                     % (names[rel], ttl))
                listed = sorted(os.listdir(m.path("t")))
                self.assertEqual(listed, sorted(names.values()))
                for rel, a in sorted(after.items()):
                    self.assertTimes(times(os.stat(m.path("t", names[rel]))), a,
                                     "%s on a remount with the same cache (metadata_ttl=%s), "
                                     "after a listing" % (names[rel], ttl))
        with self.mount() as m:  # an empty cache: what S3 keeps
            for rel, a in sorted(after.items()):
                mt = a["mtime"]
                self.assertTimes(times(os.stat(m.path("t", names[rel]))),
                                 {"mtime": mt, "ctime": mt, "atime": mt},
                                 "%s on a fresh mount (empty cache)" % names[rel])

    def test_rename_sets_ctime_of_the_file_only(self):
        """A rename sets the renamed file's ctime, not that of the file it
        replaces (gone) nor of a neighbour; rename over an existing name."""
        self.put_old("src.csv", b"source\n")
        self.put_old("dst.csv", b"replaced\n")
        self.put_old("other.csv", b"other\n")
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            other = times(os.stat(t("other.csv")))
            t0 = time.time_ns()
            os.rename(t("src.csv"), t("dst.csv"))
            t1 = time.time_ns()
            a = times(os.stat(t("dst.csv")))
            self.assertEqual(read_all(t("dst.csv")), b"source\n")
            self.assertNow(a["ctime"], t0, t1, "dst.csv after rename over it: ctime")
            self.assertEqual((a["mtime"], a["atime"]), (OLD_MTIME_NS, OLD_MTIME_NS), show(a))
            self.assertTimes(times(os.stat(t("other.csv"))), other, "other.csv, not renamed")
            m.unmount_wait()
        self.assertEqual(self.rel_keys(), ["dst.csv", "other.csv"])
        self.assertEqual(self.s3_mtime_ns("dst.csv"), OLD_MTIME_NS)


# ------------------------------------------------------------------- atime
class AtimeTest(TimesTestCase):

    A = 1600000000 * SEC + 123456789     # later than mtime, as atime usually is
    M = 1500000000 * SEC + 987654321
    A2 = 1300000000 * SEC + 5            # earlier than mtime

    def test_utime_keeps_atime_and_mtime(self):
        """os.utime with atime != mtime shows both, to the nanosecond, on
        a file just written (upload pending), on an uploaded one and on an
        object written elsewhere; touch -a changes atime only and touch -m
        mtime only. A remount with the same cache shows the same times; a
        fresh mount with an empty cache shows atime = ctime = mtime, the
        mtime S3 keeps."""
        self.put_old("elsewhere.csv")
        self.put_old("touch.csv")
        cache = os.path.join(self.tmp, "cache")
        with self.mount(opts={"cache_dir": cache}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("uploaded.csv"), b"uploaded\n")
            m.wait_uploads()
            write_file(t("pending.csv"), b"pending\n")
            want = {}
            for rel, (a, mt) in (("pending.csv", (self.A, self.M)),
                                 ("uploaded.csv", (self.A2, self.M)),
                                 ("elsewhere.csv", (self.A, self.M + 1))):
                t0 = time.time_ns()
                os.utime(t(rel), ns=(a, mt))
                t1 = time.time_ns()
                got = times(os.stat(t(rel)))
                self.assertEqual((got["atime"], got["mtime"]), (a, mt),
                                 "%s after os.utime(ns=(%s, %s)): %s"
                                 % (rel, fmt_ns(a), fmt_ns(mt), show(got)))
                self.assertNow(got["ctime"], t0, t1, "%s after os.utime: ctime" % rel)
                want[rel] = got
            # a write changes mtime and ctime, not an atime set explicitly
            write_file(t("appended.csv"), b"first\n")
            os.utime(t("appended.csv"), ns=(self.A, self.M))
            t0 = time.time_ns()
            with open(t("appended.csv"), "ab") as f:
                f.write(b"second\n")
            t1 = time.time_ns()
            got = want["appended.csv"] = times(os.stat(t("appended.csv")))
            self.assertNow(got["mtime"], t0, t1, "appended.csv after utime and an append: mtime")
            self.assertEqual((got["atime"], got["ctime"]), (self.A, got["mtime"]),
                             "appended.csv after utime and an append: %s" % show(got))
            # touch -a: atime only (mtime UTIME_OMIT); then touch -m: mtime only
            subprocess.run(["touch", "-a", "-d", "@1400000000.5", t("touch.csv")], check=True)
            got = times(os.stat(t("touch.csv")))
            self.assertEqual((got["atime"], got["mtime"]), (1400000000 * SEC + 500000000,
                                                            OLD_MTIME_NS),
                             "touch.csv after touch -a: %s" % show(got))
            subprocess.run(["touch", "-m", "-d", "@1450000000.75", t("touch.csv")], check=True)
            got = times(os.stat(t("touch.csv")))
            self.assertEqual((got["atime"], got["mtime"]), (1400000000 * SEC + 500000000,
                                                            1450000000 * SEC + 750000000),
                             "touch.csv after touch -a then touch -m: %s" % show(got))
            want["touch.csv"] = got
            # reading does not move an explicit atime (the mount is noatime-like)
            read_all(t("pending.csv"))
            self.assertTimes(times(os.stat(t("pending.csv"))), want["pending.csv"],
                             "pending.csv after a read")
            m.unmount_wait()
        for rel, w in sorted(want.items()):
            self.assertEqual(self.s3_mtime_ns(rel), w["mtime"], "x-amz-meta-mtime of %s" % rel)
        for ttl in ("60", "0"):
            with self.mount(opts={"cache_dir": cache, "metadata_ttl": ttl}) as m:
                for rel, w in sorted(want.items()):
                    self.assertTimes(times(os.stat(m.path("t", rel))), w,
                                     "%s on a remount with the same cache (metadata_ttl=%s)"
                                     % (rel, ttl))
                os.listdir(m.path("t"))
                for rel, w in sorted(want.items()):
                    self.assertTimes(times(os.stat(m.path("t", rel))), w,
                                     "%s on a remount with the same cache (metadata_ttl=%s), "
                                     "after a listing" % (rel, ttl))
        with self.mount() as m:
            os.listdir(m.path("t"))  # listed first this time
            for rel, w in sorted(want.items()):
                mt = w["mtime"]
                self.assertTimes(times(os.stat(m.path("t", rel))),
                                 {"mtime": mt, "ctime": mt, "atime": mt},
                                 "%s on a fresh mount (empty cache)" % rel)


    def test_times_kept_through_crash_recovery(self):
        """kill -9 while a file's upload is pending (upload_delay=1h), after
        utime (atime != mtime) and chmod: the next mount with the same cache
        recovers the upload from the journal and shows the same three times
        while that upload is still pending (the server refuses it, through
        faultproxy.py), and an append then keeps the explicit atime (a
        write changes mtime and ctime only); once uploaded, the times
        are still those."""
        from test_s3_faults import Proxy
        cache = os.path.join(self.tmp, "cache")
        with self.mount(opts={"cache_dir": cache, "upload_delay": "1h"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("crash.csv"), b"a,b\n")
            os.utime(t("crash.csv"), ns=(self.A, self.M))
            os.chmod(t("crash.csv"), 0o600)
            before = times(os.stat(t("crash.csv")))
            self.assertEqual((before["atime"], before["mtime"]), (self.A, self.M), show(before))
            m.kill9()
        self.assertEqual(len(journal(cache)), 1, "precondition: the upload is pending at kill -9")
        proxy = Proxy(",".join(["PUT:403"] * 200))
        self.addCleanup(proxy.close)
        with self.mount(opts={"cache_dir": cache, "endpoint": proxy.url,
                              "upload_retry_max": "1h"}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            got = times(os.stat(t("crash.csv")))
            pending = journal(cache)
            self.assertEqual(len(pending), 1, "precondition: the recovered upload is pending")
            problems = []
            if got != before:
                problems.append("crash.csv after kill -9 and a mount with the same cache, its "
                                "recovered upload pending:\n    shown    %s\n    expected %s"
                                % (show(got), show(before)))
            t0 = time.time_ns()
            with open(t("crash.csv"), "ab") as f:
                f.write(b"1,2\n")
            t1 = time.time_ns()
            after = times(os.stat(t("crash.csv")))
            self.assertNow(after["mtime"], t0, t1, "crash.csv after an append: mtime")
            self.assertEqual(after["ctime"], after["mtime"], "crash.csv after an append: ctime")
            if after["atime"] != self.A:
                problems.append("crash.csv after an append, its recovered upload pending: atime "
                                "%s, want %s (set by utime before the crash); shown %s"
                                % (fmt_ns(after["atime"]), fmt_ns(self.A), show(after)))
                after["atime"] = self.A  # what the next mounts must show
            m.unmount_wait()
        with self.mount(opts={"cache_dir": cache}) as m:  # straight to the server now
            m.wait_uploads()
            got = times(os.stat(m.path("t", "crash.csv")))
            if got != after:
                problems.append("crash.csv once uploaded, same cache:\n    shown    %s\n    "
                                "expected %s" % (show(got), show(after)))
            m.unmount_wait()
        self.assertObject("crash.csv", data=b"a,b\n1,2\n", mode=stat.S_IFREG | 0o600)
        self.assertEqual(self.s3_mtime_ns("crash.csv"), after["mtime"])
        self.assertNoProblems(problems, "times after crash recovery")


# ------------------------------------------------------------------ O_TRUNC
class TruncTest(TimesTestCase):

    def test_o_trunc_of_existing_file_bumps_mtime(self):
        """open(O_TRUNC) of an existing file is a change of its content even
        when it was empty already: mtime and ctime now, size 0, uploaded
        (x-amz-meta-mtime follows). An open without O_TRUNC that writes
        nothing changes nothing."""
        self.put_old("empty-old.txt", b"")
        self.put_old("full-old.txt", b"some bytes\n")
        self.put_old("untouched.txt", b"kept\n")
        cache = os.path.join(self.tmp, "cache")
        with self.mount(opts={"cache_dir": cache}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("empty-here.txt"), b"")
            m.wait_uploads()
            before = {rel: times(os.stat(t(rel))) for rel in
                      ("empty-old.txt", "full-old.txt", "untouched.txt", "empty-here.txt")}
            time.sleep(1.1)  # empty-here.txt's mtime is more than a second old
            want = {}
            for rel in ("empty-old.txt", "full-old.txt", "empty-here.txt"):
                t0 = time.time_ns()
                os.close(os.open(t(rel), os.O_WRONLY | os.O_TRUNC))
                t1 = time.time_ns()
                st = os.stat(t(rel))
                got = want[rel] = times(st)
                what = "%s after open(O_TRUNC) and close (was %s)" % (rel, show(before[rel]))
                self.assertEqual(st.st_size, 0, what)
                self.assertNow(got["mtime"], t0, t1, what + ": mtime")
                self.assertNow(got["ctime"], t0, t1, what + ": ctime")
                self.assertGreaterEqual(got["mtime"] - before[rel]["mtime"], SEC, what)
                self.assertEqual(got["atime"], got["mtime"], what + ": atime")
            fd = os.open(t("untouched.txt"), os.O_RDWR)
            os.close(fd)
            self.assertTimes(times(os.stat(t("untouched.txt"))), before["untouched.txt"],
                             "untouched.txt after open(O_RDWR) and close, nothing written")
            want["untouched.txt"] = before["untouched.txt"]
            m.unmount_wait()
        for rel, w in sorted(want.items()):
            self.assertEqual(self.s3_mtime_ns(rel), w["mtime"],
                             "x-amz-meta-mtime of %s, shown %s" % (rel, show(w)))
            self.assertObject(rel, data=b"kept\n" if rel == "untouched.txt" else b"")
        with self.mount(opts={"cache_dir": cache}) as m:
            for rel, w in sorted(want.items()):
                self.assertTimes(times(os.stat(m.path("t", rel))), w,
                                 "%s on a remount with the same cache" % rel)
        with self.mount() as m:
            for rel, w in sorted(want.items()):
                mt = w["mtime"]
                self.assertTimes(times(os.stat(m.path("t", rel))),
                                 {"mtime": mt, "ctime": mt, "atime": mt},
                                 "%s on a fresh mount (empty cache)" % rel)


# ---------------------------------------------------------------- unlinked
class UnlinkedOpenTest(TimesTestCase):

    def check_fd(self, fd, data, mode, what):
        """pread shows data, fstat nlink 0, mode and len(data)."""
        self.check_pread(fd, data, what)
        return self.check_fstat(fd, data, mode, what)

    def check_pread(self, fd, data, what):
        got = os.pread(fd, len(data) + 4096, 0)
        self.assertBytes(got, bytes(data), "%s: pread of the whole file" % what)
        if len(data) > 5000:
            self.assertEqual(os.pread(fd, 1000, 4000), bytes(data[4000:5000]),
                             "%s: pread at 4000" % what)

    def check_fstat(self, fd, data, mode, what):
        st = os.fstat(fd)
        self.assertEqual(st.st_nlink, 0, "%s: fstat's nlink" % what)
        self.assertTrue(stat.S_ISREG(st.st_mode), "%s: fstat's mode 0%o" % (what, st.st_mode))
        self.assertEqual(oct(stat.S_IMODE(st.st_mode)), oct(mode), "%s: fstat's mode" % what)
        self.assertEqual(st.st_size, len(data), "%s: fstat's size" % what)
        return st

    def attempt(self, problems, what, fn, *args):
        """fn(*args), its failure noted in problems (so that one test names
        every call that fails, not just the first)."""
        try:
            return fn(*args)
        except (OSError, AssertionError) as e:
            problems.append("%s: %s" % (what, e))
            return None

    def fd_problems(self, fd, data, mode, what):
        """check_pread and check_fstat as a list of problems."""
        problems = []
        self.attempt(problems, "pread, " + what, self.check_pread, fd, data, what)
        self.attempt(problems, "fstat, " + what, self.check_fstat, fd, data, mode, what)
        return problems

    def test_new_file_unlinked_while_open(self):
        """A file created, written and unlinked while open: fstat shows nlink 0
        and what the handle wrote; pread, pwrite, ftruncate (shorter and
        longer), fchmod and futimens act on the open file only; nothing
        brings the name back, in the listing or in S3, before or after
        close; a file made under that name afterwards is a file of its own;
        after a clean unmount staging/ is empty."""
        cache = os.path.join(self.tmp, "cache")
        with self.mount(opts={"cache_dir": cache}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("neighbour.csv"), b"a,b\n")
            fd = os.open(t("scratch.bin"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                data = bytearray(os.urandom(300 * KiB + 7))
                write_file_fd(fd, data)
                ino = os.fstat(fd).st_ino
                os.unlink(t("scratch.bin"))
                self.check_fd(fd, data, 0o644, "after unlink")
                self.assertNoName(m, "scratch.bin", "right after unlink")
                more = os.urandom(10 * KiB)
                self.assertEqual(os.pwrite(fd, more, len(data)), len(more))
                data += more
                self.check_fd(fd, data, 0o644, "after a pwrite past the end")
                os.ftruncate(fd, 100 * KiB)
                del data[100 * KiB:]
                self.check_fd(fd, data, 0o644, "after ftruncate to 100 KiB")
                os.ftruncate(fd, 150 * KiB)
                data += bytes(50 * KiB)
                self.check_fd(fd, data, 0o644, "after ftruncate to 150 KiB (a hole)")
                t0 = time.time_ns()
                os.fchmod(fd, 0o600)
                t1 = time.time_ns()
                st = self.check_fd(fd, data, 0o600, "after fchmod 0600")
                self.assertNow(st.st_ctime_ns, t0, t1, "ctime after fchmod of the unlinked file")
                os.utime(fd, ns=(1600000000 * SEC + 1, 1500000000 * SEC + 2))
                st = self.check_fd(fd, data, 0o600, "after futimens")
                self.assertEqual((st.st_atime_ns, st.st_mtime_ns),
                                 (1600000000 * SEC + 1, 1500000000 * SEC + 2), "after futimens")
                os.pwrite(fd, b"tail", len(data) - 4)
                data[-4:] = b"tail"
                self.check_fd(fd, data, 0o600, "after a last pwrite")
                self.assertEqual(os.fstat(fd).st_ino, ino)
                m.wait_uploads()
                self.assertNoName(m, "scratch.bin", "after ftruncate, fchmod, futimens and the "
                                  "upload journal emptied, still open")
            finally:
                os.close(fd)
            m.wait_uploads()
            self.assertNoName(m, "scratch.bin", "after close and the upload journal emptied")
            self.assertEqual(os.listdir(t()), ["neighbour.csv"])
            # a new file of the same name: its own inode, mode, size, bytes
            write_file(t("scratch.bin"), b"second file\n", mode=0o644)
            st = os.stat(t("scratch.bin"))
            self.assertNotEqual(st.st_ino, ino, "the new file got the unlinked one's inode")
            self.assertEqual((st.st_nlink, oct(stat.S_IMODE(st.st_mode)), st.st_size),
                             (1, oct(0o644), 12), "the new scratch.bin")
            self.assertEqual(read_all(t("scratch.bin")), b"second file\n")
            self.assertEqual(sorted(os.listdir(t())), ["neighbour.csv", "scratch.bin"])
            m.unmount_wait()
        self.assertObject("scratch.bin", data=b"second file\n", mode=stat.S_IFREG | 0o644)
        self.assertEqual(self.rel_keys(), ["neighbour.csv", "scratch.bin"])
        self.assertEqual(os.listdir(os.path.join(cache, "staging")), [],
                         "staging files left after a clean unmount")
        self.assertEqual(journal(cache), [])

    def test_same_name_created_while_unlinked_is_open(self):
        """The name made again while the unlinked file is still open: fstat,
        pread, pwrite, ftruncate and fchmod on the old descriptor work on
        the old file and do not touch the new one, here or in S3."""
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            fd = os.open(t("both.bin"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            problems = []
            try:
                data = bytearray(os.urandom(64 * KiB))
                write_file_fd(fd, data)
                os.unlink(t("both.bin"))
                write_file(t("both.bin"), b"the new one\n", mode=0o640)
                new = os.stat(t("both.bin"))
                if self.attempt(problems, "pwrite(old fd)", os.pwrite, fd, b"OLD", 0) == 3:
                    data[:3] = b"OLD"
                problems += self.fd_problems(fd, data, 0o644, "the old, unlinked both.bin after "
                                             "the name was made again and a pwrite")
                self.attempt(problems, "ftruncate(old fd, 10 KiB)", os.ftruncate, fd, 10 * KiB)
                del data[10 * KiB:]
                self.attempt(problems, "fchmod(old fd, 0600)", os.fchmod, fd, 0o600)
                problems += self.fd_problems(fd, data, 0o600, "the old, unlinked both.bin after "
                                             "ftruncate and fchmod")
                st = os.stat(t("both.bin"))
                if (st.st_ino, st.st_nlink, oct(stat.S_IMODE(st.st_mode)), st.st_size,
                        st.st_mtime_ns) != (new.st_ino, 1, oct(0o640), 12, new.st_mtime_ns):
                    problems.append("the new both.bin changed by ops on the old descriptor: "
                                    "ino %d nlink %d mode %s size %d mtime %s, was ino %d nlink 1 "
                                    "mode 0o640 size 12 mtime %s"
                                    % (st.st_ino, st.st_nlink, oct(stat.S_IMODE(st.st_mode)),
                                       st.st_size, fmt_ns(st.st_mtime_ns), new.st_ino,
                                       fmt_ns(new.st_mtime_ns)))
                self.assertEqual(read_all(t("both.bin")), b"the new one\n")
                m.wait_uploads()
                self.assertObject("both.bin", data=b"the new one\n", mode=stat.S_IFREG | 0o640)
            finally:
                os.close(fd)
            m.wait_uploads()
            self.assertEqual(read_all(t("both.bin")), b"the new one\n")
            self.assertEqual(os.listdir(t()), ["both.bin"])
            m.unmount_wait()
        self.assertObject("both.bin", data=b"the new one\n", mode=stat.S_IFREG | 0o640)
        self.assertEqual(self.rel_keys(), ["both.bin"])
        self.assertNoProblems(problems, "calls on the descriptor of an unlinked file whose name "
                              "was made again")

    def test_file_replaced_by_rename_while_open(self):
        """The atomic-save pattern: another file renamed over the name of a
        file still open (read-only and read-write): the open file is
        unlinked, so fstat shows nlink 0 and its own size, pread its old
        bytes, and ftruncate and fchmod of the read-write descriptor change
        it only; the name and the S3 object are the renamed file's."""
        self.put_old("doc.txt", b"old document\n")
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("log.txt"), b"old log\n")
            m.wait_uploads()
            rfd = os.open(t("doc.txt"), os.O_RDONLY)
            wfd = os.open(t("log.txt"), os.O_RDWR)
            problems = []
            try:
                self.assertEqual(os.pread(rfd, 100, 0), b"old document\n")
                for rel in ("doc.txt", "log.txt"):
                    write_file(t(rel + ".new"), b"new " + rel.encode() + b"\n")
                    os.rename(t(rel + ".new"), t(rel))
                problems += self.fd_problems(rfd, b"old document\n", 0o644,
                                             "doc.txt (read-only descriptor) replaced by rename")
                problems += self.fd_problems(wfd, b"old log\n", 0o644,
                                             "log.txt (read-write descriptor) replaced by rename")
                self.attempt(problems, "ftruncate(replaced log.txt, 3)", os.ftruncate, wfd, 3)
                self.attempt(problems, "fchmod(replaced log.txt, 0600)", os.fchmod, wfd, 0o600)
                problems += self.fd_problems(wfd, b"old", 0o600, "log.txt (read-write "
                                             "descriptor) replaced, then ftruncate and fchmod")
            finally:
                os.close(rfd)
                os.close(wfd)
            m.wait_uploads()
            self.assertEqual(sorted(os.listdir(t())), ["doc.txt", "log.txt"])
            for rel in ("doc.txt", "log.txt"):
                self.assertEqual(read_all(t(rel)), b"new " + rel.encode() + b"\n")
                self.assertEqual(oct(stat.S_IMODE(os.stat(t(rel)).st_mode)), oct(0o644), rel)
            m.unmount_wait()
        for rel in ("doc.txt", "log.txt"):
            self.assertObject(rel, data=b"new " + rel.encode() + b"\n", mode=stat.S_IFREG | 0o644)
        self.assertEqual(self.rel_keys(), ["doc.txt", "log.txt"])
        self.assertNoProblems(problems, "calls on descriptors of files replaced by a rename")

    def test_existing_object_unlinked_while_open(self):
        """An object opened for writing (its bytes copied in), unlinked (the
        object goes), then read, ftruncated and fchmodded through the
        descriptor: the object never comes back; a new file of the name
        afterwards is uploaded as itself."""
        body = os.urandom(200 * KiB)
        self.put_old("exist.bin", body)
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            fd = os.open(t("exist.bin"), os.O_RDWR)
            try:
                data = bytearray(body)
                os.unlink(t("exist.bin"))
                self.wait_until(lambda: self.head("exist.bin") is None, 10,
                                "unlink deletes the object")
                self.check_fd(fd, data, 0o644, "existing object after unlink")
                os.ftruncate(fd, 1000)
                del data[1000:]
                os.fchmod(fd, 0o600)
                os.pwrite(fd, b"changed", 10)
                data[10:17] = b"changed"
                self.check_fd(fd, data, 0o600, "existing object after unlink, ftruncate, fchmod")
                m.wait_uploads()
                self.assertNoName(m, "exist.bin", "an unlinked object after ftruncate and "
                                  "fchmod, still open")
            finally:
                os.close(fd)
            m.wait_uploads()
            self.assertNoName(m, "exist.bin", "an unlinked object after close")
            write_file(t("exist.bin"), b"new\n")
            self.assertEqual(read_all(t("exist.bin")), b"new\n")
            m.unmount_wait()
        self.assertObject("exist.bin", data=b"new\n", mode=stat.S_IFREG | 0o644)
        self.assertEqual(self.rel_keys(), ["exist.bin"])

    def test_tempfile_temporaryfile(self):
        """tempfile.TemporaryFile(dir=mount): written, read back, truncated,
        never listed, never in S3; several at once."""
        # does the mount take O_TMPFILE (then TemporaryFile uses it)?
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            write_file(t("keep.txt"), b"keep\n")
            try:
                os.close(os.open(t(), os.O_TMPFILE | os.O_RDWR, 0o600))
                how = "O_TMPFILE"
            except OSError as e:
                how = "mkstemp + unlink (O_TMPFILE: %s)" % errno.errorcode.get(e.errno, e.errno)
            note("tempfile.TemporaryFile on the mount uses %s", how)
            blobs = [os.urandom(n) for n in (2 * MiB + 17, 4096, 1)]
            files = [tempfile.TemporaryFile(dir=t()) for _ in blobs]
            try:
                for f, b in zip(files, blobs):
                    self.assertEqual(os.fstat(f.fileno()).st_nlink, 0)
                    f.write(b)
                    f.flush()
                self.assertEqual(os.listdir(t()), ["keep.txt"], "listing with %d temporary "
                                 "files open" % len(files))
                for i, (f, b) in enumerate(zip(files, blobs)):
                    f.seek(0)
                    self.assertBytes(f.read(), b, "temporary file %d read back" % i)
                    self.assertEqual(os.fstat(f.fileno()).st_size, len(b))
                f = files[0]
                f.truncate(MiB)
                f.seek(0)
                self.assertBytes(f.read(), blobs[0][:MiB], "temporary file 0 after truncate")
                self.assertEqual(f.seek(0, os.SEEK_END), MiB)
                st = os.fstat(f.fileno())
                self.assertEqual((st.st_nlink, st.st_size), (0, MiB))
                m.wait_uploads()
                self.assertEqual(self.rel_keys(), ["keep.txt"], "S3 keys with the temporary "
                                 "files open")
            finally:
                for f in files:
                    f.close()
            self.assertEqual(os.listdir(t()), ["keep.txt"])
            m.wait_uploads()
            self.assertEqual(self.rel_keys(), ["keep.txt"])
            m.unmount_wait()
        self.assertEqual(self.rel_keys(), ["keep.txt"])


def write_file_fd(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main():
    return tm.suite_main(__doc__, tools=("fusermount3", "touch"))


if __name__ == "__main__":
    sys.exit(main())
