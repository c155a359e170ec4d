#!/usr/bin/python3
"""test_prefetch.py: `bucketfs prefetch` (issue 16, item 2) and `bucketfs
presign` of a file whose upload is pending (issue 16, item 3), against a
real bucketfs mount on a live S3 server.

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_prefetch.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args]

The machinery is test_ops.py's (fresh mountpoint and cache, "t" mapped to
the test's own prefix, an in-process RuleProxy that holds uploads back, the
subcommand run with or without a pseudo-terminal, curl for URLs).

"No GET after prefetch" is checked twice, independently: with the daemon's
request counters (by_op.get in user.bucketfs.stats) and with the server's
own request log (TEST_SERVER_LOG: s3rver.log, or the beast: lines of RGW's
log), counting the GETs of object keys under the test's prefix.
"""
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import test_mount as tm  # noqa: E402
import test_ops  # noqa: E402
from test_mount import KiB, MiB, md5hex  # noqa: E402
from test_ops import OpenWriter, OpsTestCase, bfs, curl  # noqa: E402
from test_write import write_file  # noqa: E402


def tree(n_dirs=4, per_dir=6):
    """{relative key: bytes}: files of 0 B to 3 MiB + 7 in nested directories."""
    sizes = [0, 1, 100 * KiB, MiB, MiB + 1, 3 * MiB + 7]
    out = {}
    for d in range(n_dirs):
        for i in range(per_dir):
            out["data/d%d/sub/f%02d.bin" % (d, i)] = os.urandom(sizes[(d + i) % len(sizes)])
    return out


class PrefetchCase(OpsTestCase):

    def gets(self, m):
        return m.stats()["by_op"]["get"]

    def read_tree(self, m, files):
        for key, data in sorted(files.items()):
            self.assertBytes(tm.read_all(m.path("t", key)), data, key)


# -------------------------------------------------------------- prefetch
class PrefetchTest(PrefetchCase):

    def test_tree_then_reads_send_no_get(self):
        """Prefetch of a tree (and of paths inside it again, and of a file
        beside it) on a fresh mount with an empty cache: the cache holds
        every byte once; reading every file afterwards sends no GET, by the
        daemon's counters and by the server's log, and the bytes are what
        boto3 wrote; so does a new mount on the same cache directory."""
        files = tree()
        files["other.csv"] = b"id,v\n" * 1000
        self.put_many(files)
        total = sum(len(v) for v in files.values())
        cache = os.path.join(self.tmp, "cache")  # ours: kept for the second mount
        with self.mount(opts={"cache_dir": cache}) as m:
            self.assertEqual(m.stats()["cache"]["bytes"], 0, "fresh cache")
            rc, out, err = bfs("prefetch", "--jobs", "4", m.path("t", "data"),
                               m.path("t", "data", "d1"), m.path("t", "data", "d2", "sub",
                                                                 "f00.bin"),
                               m.path("t", "other.csv"))
            self.assertEqual((rc, out, err), (0, "", ""))
            st = m.stats()
            self.assertEqual(st["cache"]["bytes"], total, "each file cached once, whole")
            self.assertGreater(st["by_op"]["get"], 0)
            g0, s0 = self.gets(m), self.settled_server_gets()
            self.assertGreaterEqual(s0, sum(1 for v in files.values() if v),
                                    "the server log shows fewer GETs than files prefetched")
            self.read_tree(m, files)
            self.assertEqual(self.gets(m), g0, "reads after prefetch sent GETs (daemon count)")
            time.sleep(1.5)
            self.assertEqual(self.server_gets(), s0, "reads after prefetch: GETs in the server log")
        with self.mount(opts={"cache_dir": cache}) as m:  # warm start: the cache survives
            s0 = self.settled_server_gets()
            self.read_tree(m, files)
            self.assertEqual(self.gets(m), 0, "a remount on the prefetched cache sent GETs")
            time.sleep(1.5)
            self.assertEqual(self.server_gets(), s0, "remount: GETs in the server log")

    def test_progress_bar_on_a_terminal(self):
        files = {"p/%d.bin" % i: os.urandom(MiB) for i in range(6)}
        self.put_many(files)
        with self.mount() as m:
            rc, out, err = bfs("prefetch", m.path("t", "p"), tty=True)
            self.assertEqual((rc, out), (0, ""), err)
            self.assertIn("prefetch [", err)
            self.assertIn("files left", err)
            self.assertIn("prefetch: 6.0 MiB in 6 files read in", err)
            rc, out, err = bfs("prefetch", "--quiet", m.path("t", "p"), tty=True)
            self.assertEqual((rc, out, err), (0, "", ""), "--quiet draws nothing")
            g = self.gets(m)
            self.read_tree(m, files)
            self.assertEqual(self.gets(m), g)

    def test_bigger_than_cache_refused(self):
        """12 MiB asked of an 8 MiB cache (7.2 MiB kept when full): exit 1,
        both sizes named, nothing fetched; a set that fits then works."""
        big = {"big/%02d.bin" % i: os.urandom(MiB) for i in range(12)}
        small = {"small/%d.bin" % i: os.urandom(MiB) for i in range(3)}
        self.put_many(dict(big, **small))
        with self.mount(opts={"cache_size": "8M"}) as m:
            rc, out, err = bfs("prefetch", m.path("t", "big"))
            self.assertEqual((rc, out), (1, ""), err)
            self.assertIn("the 12 files asked on %s hold 12.0 MiB, more than the 7.2 MiB its "
                          "cache keeps (cache_size 8.0 MiB" % m.mnt, err)
            self.assertIn("nothing fetched", err)
            st = m.stats()
            self.assertEqual((st["by_op"]["get"], st["cache"]["bytes"]), (0, 0),
                             "a refused prefetch fetched something")
            # the sum is of everything asked, across paths
            rc, _, err = bfs("prefetch", m.path("t", "small"), m.path("t", "big", "00.bin"),
                             m.path("t", "big", "01.bin"), m.path("t", "big", "02.bin"),
                             m.path("t", "big", "03.bin"), m.path("t", "big", "04.bin"))
            self.assertEqual(rc, 1, "8 MiB asked of a cache that keeps 7.2 MiB")
            self.assertIn("hold 8.0 MiB", err)
            rc, _, err = bfs("prefetch", m.path("t", "small"))
            self.assertEqual(rc, 0, err)
            g = self.gets(m)
            self.read_tree(m, small)
            self.assertEqual(self.gets(m), g)

    def test_usage_and_not_bucketfs(self):
        """A path on no bucketfs mount, a missing path, no path or a bad
        --jobs: exit 2, and nothing is read even when other paths are good."""
        self.put("x.bin", os.urandom(MiB))
        local = os.path.join(self.tmp, "local")
        os.mkdir(local)
        with open(os.path.join(local, "f"), "w") as f:
            f.write("local")
        with self.mount() as m:
            rc, out, err = bfs("prefetch", local)
            self.assertEqual((rc, out), (2, ""))
            self.assertIn("%s is not on a bucketfs mount" % local, err)
            rc, _, err = bfs("prefetch", m.path("t", "x.bin"), local)
            self.assertEqual(rc, 2)
            self.assertEqual(self.gets(m), 0, "nothing read when one path is not on a mount")
            rc, _, err = bfs("prefetch", m.path("t", "missing"))
            self.assertEqual(rc, 2)
            self.assertIn("No such file or directory", err)
            rc, _, err = bfs("prefetch")
            self.assertEqual(rc, 2)
            self.assertIn("no path given", err)
            for bad in ("0", "65", "x"):
                rc, _, err = bfs("prefetch", "--jobs", bad, m.path("t"))
                self.assertEqual(rc, 2, bad)
                self.assertIn("bad --jobs", err)
            rc, _, err = bfs("prefetch", "--bogus", m.path("t"))
            self.assertEqual(rc, 2)
            self.assertEqual(self.gets(m), 0)
            rc, _, err = bfs("prefetch", m.mnt)  # the whole mount
            self.assertEqual(rc, 0, err)
            self.assertEqual(m.stats()["cache"]["bytes"], MiB)

    def test_local_files_skipped(self):
        """A closed file whose upload waits and a file open for writing are
        local: not counted against the cache (4 MiB, keeps 3.6 MiB: all
        three files would not fit), not read; the S3 file beside them is."""
        s3 = os.urandom(2 * MiB)
        self.put("mix/s3.bin", s3)
        with self.mount(opts={"upload_delay": "1h", "cache_size": "4M"}) as m:
            write_file(m.path("t", "mix", "pending.bin"), os.urandom(2 * MiB))
            with OpenWriter(m.path("t", "mix", "open.bin"), os.urandom(MiB)):
                rc, _, err = bfs("prefetch", m.path("t", "mix"))
                self.assertEqual(rc, 0, err)
                st = m.stats()
                self.assertEqual(st["cache"]["bytes"], len(s3), "only the S3 file is cached")
                self.assertEqual(st["by_op"]["put"], 0, "prefetch started no upload")


# --------------------------------------------------------------- presign
class PresignWaitTest(PrefetchCase):

    def test_waits_for_held_upload_with_bar(self):
        """While the PUT is held, presign waits (sync's bar on a terminal);
        released, it prints a URL that curl downloads the bytes from."""
        data = os.urandom(300 * KiB)
        px, m = self.proxied()
        with m:
            ev = px.hold("wait.bin")
            write_file(m.path("t", "wait.bin"), data)
            res = {}
            th = threading.Thread(target=lambda: res.update(
                r=bfs("presign", m.path("t", "wait.bin"), tty=True)))
            th.start()
            time.sleep(2)
            self.assertTrue(th.is_alive(), "presign returned while the upload was held: %r"
                            % res.get("r"))
            ev.set()
            th.join(60)
            self.assertFalse(th.is_alive(), "presign did not return after the upload")
            rc, out, err = res["r"]
            self.assertEqual(rc, 0, err)
            self.assertIn("presign [", err)
            self.assertEqual(out.count("\n"), 1)
            self.assertEqual(curl(out.strip()), (200, data))
            self.assertObject("wait.bin", data=data)

    def test_starts_delayed_upload(self):
        """upload_delay=1h: presign starts the upload, as sync does, and the
        URL serves the bytes; --no-wait refuses before."""
        data = os.urandom(2 * MiB + 5)
        with self.mount(opts={"upload_delay": "1h"}) as m:
            write_file(m.path("t", "late.bin"), data)
            rc, out, err = bfs("presign", "--no-wait", m.path("t", "late.bin"))
            self.assertEqual((rc, out), (1, ""))
            self.assertIn("late.bin has data not uploaded yet (--no-wait)", err)
            t0 = time.monotonic()
            rc, out, err = bfs("presign", "--expires", "10m", m.path("t", "late.bin"))
            self.assertEqual((rc, err), (0, ""))
            self.assertLess(time.monotonic() - t0, 60)
            status, body = curl(out.strip())
            self.assertEqual((status, md5hex(body)), (200, md5hex(data)))

    def test_timeout_gives_up(self):
        data = os.urandom(100 * KiB)
        px, m = self.proxied()
        with m:
            ev = px.hold("slow.bin")
            write_file(m.path("t", "slow.bin"), data)
            t0 = time.monotonic()
            rc, out, err = bfs("presign", "--timeout", "2s", m.path("t", "slow.bin"))
            took = time.monotonic() - t0
            self.assertEqual((rc, out), (1, ""), err)
            self.assertGreaterEqual(took, 2)
            self.assertLess(took, 20)
            self.assertIn("t/slow.bin: not uploaded yet (uploading)", err)
            self.assertIn("1 upload not done at the timeout", err)
            rc, _, err = bfs("presign", "--timeout", "soon", m.path("t", "slow.bin"))
            self.assertEqual(rc, 2)
            self.assertIn("bad --timeout", err)
            ev.set()
            rc, out, err = bfs("presign", "--timeout", "1m", m.path("t", "slow.bin"))
            self.assertEqual(rc, 0, err)
            self.assertEqual(curl(out.strip()), (200, data))

    def test_open_for_writing_refused(self):
        """A file still open for writing: refused at once, saying so, with
        and without --no-wait; closed, it is presigned."""
        data = b"still writing\n"
        with self.mount() as m:
            w = OpenWriter(m.path("t", "open.txt"), data)
            with w:
                for args in ((), ("--no-wait",), ("--timeout", "1m")):
                    t0 = time.monotonic()
                    rc, out, err = bfs("presign", *args, m.path("t", "open.txt"))
                    self.assertEqual((rc, out), (1, ""), args)
                    self.assertIn("open.txt is still open for writing", err)
                    self.assertLess(time.monotonic() - t0, 10, "refused, not waited")
                w.close()
            rc, out, err = bfs("presign", m.path("t", "open.txt"))
            self.assertEqual(rc, 0, err)
            self.assertEqual(curl(out.strip()), (200, data))


if __name__ == "__main__":
    sys.exit(test_ops.main())
