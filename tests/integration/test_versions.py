#!/usr/bin/python3
"""test_versions.py: versioned buckets (issue 16, item 1): mappings as of a
time (`--map NAME=s3://bucket/prefix@TIME`, `as_of =` in the config, also
relative), `bucketfs versions` and `bucketfs restore`, against a real
bucketfs mount on a live S3 server, every result cross-checked with boto3.

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_versions.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args]

The versioned bucket is bfs-versions (made here, versioning enabled with
boto3); each test writes under its own prefix. s3rver 3.7.1 has no
versioning (SERVER_LIMITS): there every test that needs it is skipped with
that reason, and what still runs is that a mount of an as_of mapping on a
bucket without versioning fails, naming the mapping.
"""
import concurrent.futures
import datetime
import errno
import json
import math
import os
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import test_mount as tm  # noqa: E402
from test_mount import BUCKET, MountTestCase  # noqa: E402
from test_ops import bfs  # noqa: E402

VBUCKET = "bfs-versions"
SERVER_LIMITS = {"s3rver": {"versioning": False}}
NO_VERSIONING = ("%s has no bucket versioning (s3rver 3.7.1: no ListObjectVersions, "
                 "no GetBucketVersioning; tests/integration/README.md): run this suite on rgw")


def can_version():
    return SERVER_LIMITS.get(tm.SERVER, {}).get("versioning", True)


def iso(dt):
    """A UTC datetime as the ISO 8601 that --map @TIME and as_of take."""
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class VersionsCase(MountTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not can_version():
            return
        try:
            cls.s3.create_bucket(Bucket=VBUCKET)
        except cls.s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        except cls.s3.exceptions.BucketAlreadyExists:
            pass
        cls.s3.put_bucket_versioning(Bucket=VBUCKET,
                                     VersioningConfiguration={"Status": "Enabled"})

    def setUp(self):
        super().setUp()
        if not can_version():
            self.skipTest(NO_VERSIONING % tm.SERVER)

    # ---- boto3 side
    def vput(self, key, data):
        return self.s3.put_object(Bucket=VBUCKET, Key=self.p + key, Body=data)["VersionId"]

    def versions(self, key):
        """boto3's versions and delete markers of exactly key, newest first."""
        out, kw = [], {"Bucket": VBUCKET, "Prefix": self.p + key}
        while True:
            r = self.s3.list_object_versions(**kw)
            for v in r.get("Versions", []):
                out.append(dict(v, delete_marker=False))
            for v in r.get("DeleteMarkers", []):
                out.append(dict(v, delete_marker=True, Size=0, ETag=""))
            if not r.get("IsTruncated"):
                break
            kw.update(KeyMarker=r["NextKeyMarker"], VersionIdMarker=r.get("NextVersionIdMarker", ""))
        out = [v for v in out if v["Key"] == self.p + key]
        out.sort(key=lambda v: v["LastModified"], reverse=True)
        return out

    def lm(self, key, version_id):
        return next(v["LastModified"] for v in self.versions(key) if v["VersionId"] == version_id)

    def between(self, key, older, newer):
        a, b = self.lm(key, older), self.lm(key, newer)
        self.assertLess(a, b, "the two versions need distinct LastModified")
        return a + (b - a) / 2

    def current(self, key):
        return self.s3.get_object(Bucket=VBUCKET, Key=self.p + key)["Body"].read()

    # ---- mounts
    def live(self, **kw):
        return self.mount(maps=[("t", "s3://%s/%s" % (VBUCKET, self.p.rstrip("/")))], **kw)

    def past(self, when, **kw):
        """"old" as of when (a datetime) through --map @TIME, beside "t" now."""
        return self.mount(maps=[("old", "s3://%s/%s@%s" % (VBUCKET, self.p.rstrip("/"), iso(when))),
                                ("t", "s3://%s/%s" % (VBUCKET, self.p.rstrip("/")))], **kw)


class AsOfTest(VersionsCase):

    def test_overwrite_then_view_between(self):
        """Two versions of a file: a view as of a time between them reads
        the first, the live mapping beside it the second; a view from
        before the first has no such file."""
        one, two = b"model v1\n" * 1000, b"model v2, retrained\n" * 700
        v1 = self.vput("models/m.pkl", one)
        time.sleep(1.5)
        v2 = self.vput("models/m.pkl", two)
        t = self.between("models/m.pkl", v1, v2)
        before = self.lm("models/m.pkl", v1) - datetime.timedelta(seconds=5)
        with self.past(t) as m:
            self.assertEqual(tm.read_all(m.path("old", "models", "m.pkl")), one)
            self.assertEqual(os.stat(m.path("old", "models", "m.pkl")).st_size, len(one))
            self.assertEqual(os.listdir(m.path("old", "models")), ["m.pkl"])
            self.assertEqual(tm.read_all(m.path("t", "models", "m.pkl")), two)
            self.assertEqual(tm.read_all(m.path("old", "models", "m.pkl")), one,
                             "blocks of the two versions mixed in the cache")
            etag = os.getxattr(m.path("old", "models", "m.pkl"), "user.s3.etag").decode()
            self.assertEqual(etag, tm.md5hex(one))
            self.assertEqual(os.getxattr(m.path("old", "models", "m.pkl"),
                                         "user.s3.version_id").decode(), v1)
        with self.past(before) as m:
            self.assertFalse(os.path.exists(m.path("old", "models", "m.pkl")))

    def test_delete_then_view_before(self):
        """A deleted file shows in a view from before the delete (config
        file, relative as_of), and not in one from after it (absolute)."""
        data = b"id,temp\n1,20.5\n" * 500
        v1 = self.vput("raw/data.csv", data)
        time.sleep(3)  # a relative as_of in whole seconds lands between the two
        self.s3.delete_object(Bucket=VBUCKET, Key=self.p + "raw/data.csv")
        marker = self.versions("raw/data.csv")[0]
        self.assertTrue(marker["delete_marker"])
        t = self.between("raw/data.csv", v1, marker["VersionId"])
        ago = (datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()
        conf = os.path.join(self.tmp, "asof.conf")
        with open(conf, "w") as f:
            f.write("[before]\nbucket = %s\nprefix = %s\nas_of = -%ds\n\n"
                    "[after]\nbucket = %s\nprefix = %s\nas_of = %s\n"
                    % (VBUCKET, self.p, math.ceil(ago), VBUCKET, self.p,
                       iso(datetime.datetime.now(datetime.timezone.utc))))
        with self.mount(maps=None, args=["-c", conf]) as m:
            self.assertEqual(tm.read_all(m.path("before", "raw", "data.csv")), data)
            self.assertEqual(os.listdir(m.path("before", "raw")), ["data.csv"])
            self.assertEqual(os.listdir(m.path("after", "raw")), [],
                             "a deleted file shows after its delete marker")
            self.assertFalse(os.path.exists(m.path("after", "raw", "data.csv")))

    def test_directory_of_1500_keys_as_of(self):
        """1,500 keys (two pages of versions and more), then 300 overwritten,
        200 deleted, 100 added: the listing as of a time between equals
        what boto3 computes from list_object_versions (names and sizes), the
        old bytes are read, and the live mapping shows today's."""
        keys = ["big/k%04d.txt" % i for i in range(1500)]
        first = {k: b"first %s\n" % k.encode() for k in keys}
        with concurrent.futures.ThreadPoolExecutor(32) as ex:
            list(ex.map(lambda k: self.vput(k, first[k]), keys))
        time.sleep(2)
        t = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(2)
        changed = {k: b"second, longer: %s\n" % k.encode() for k in keys[:300]}
        added = {"big/new%03d.txt" % i: b"new" for i in range(100)}
        with concurrent.futures.ThreadPoolExecutor(32) as ex:
            list(ex.map(lambda kv: self.vput(*kv), list(changed.items()) + list(added.items())))
            list(ex.map(lambda k: self.s3.delete_object(Bucket=VBUCKET, Key=self.p + k),
                        keys[300:500]))
        expect = self.expected_as_of("big/", t)
        self.assertEqual(len(expect), 1500)
        with self.past(t) as m:
            names = sorted(os.listdir(m.path("old", "big")))
            self.assertEqual(names, sorted(expect))
            sizes = {n: os.stat(m.path("old", "big", n)).st_size for n in names}
            self.assertEqual(sizes, expect)
            for k in keys[0:600:50]:
                self.assertEqual(tm.read_all(m.path("old", k)), first[k], k)
            live = sorted(os.listdir(m.path("t", "big")))
            self.assertEqual(len(live), 1500 - 200 + 100)
            self.assertEqual(tm.read_all(m.path("t", keys[0])), changed[keys[0]])

    def expected_as_of(self, sub, t):
        """{name: size} under sub as of t, from boto3's list_object_versions."""
        newest, kw = {}, {"Bucket": VBUCKET, "Prefix": self.p + sub}
        while True:
            r = self.s3.list_object_versions(**kw)
            for v in r.get("Versions", []) + r.get("DeleteMarkers", []):
                if v["LastModified"] > t:
                    continue
                cur = newest.get(v["Key"])
                if cur is None or v["LastModified"] > cur["LastModified"]:
                    newest[v["Key"]] = v
            if not r.get("IsTruncated"):
                break
            kw.update(KeyMarker=r["NextKeyMarker"], VersionIdMarker=r.get("NextVersionIdMarker", ""))
        plen = len(self.p + sub)
        return {k[plen:]: v["Size"] for k, v in newest.items() if "Size" in v}

    def test_changes_answer_erofs(self):
        """Creating, writing, unlinking, mkdir, rename, chmod, setxattr and
        restore in an as_of mapping: EROFS (restore: exit 1, named), and S3
        keeps exactly what it had."""
        v1 = self.vput("f.txt", b"one")
        time.sleep(1.5)
        v2 = self.vput("f.txt", b"two")
        with self.past(self.between("f.txt", v1, v2)) as m:
            f = m.path("old", "f.txt")
            calls = {
                "create": lambda: open(m.path("old", "new.txt"), "wb").close(),
                "write": lambda: open(f, "r+b").close(),
                "truncate": lambda: os.truncate(f, 0),
                "unlink": lambda: os.unlink(f),
                "mkdir": lambda: os.mkdir(m.path("old", "d")),
                "rename": lambda: os.rename(f, m.path("old", "g.txt")),
                "chmod": lambda: os.chmod(f, 0o600),
                "setxattr": lambda: os.setxattr(f, "user.x", b"1"),
                "symlink": lambda: os.symlink("f.txt", m.path("old", "l")),
            }
            for what, call in calls.items():
                with self.subTest(what):
                    with self.assertRaises(OSError) as cm:
                        call()
                    self.assertEqual(cm.exception.errno, errno.EROFS, what)
            rc, out, err = bfs("restore", "--version", v1, f)
            self.assertEqual(rc, 1, out + err)
            self.assertIn("as_of", err)
            self.assertEqual(tm.read_all(f), b"one")
        self.assertEqual([v["VersionId"] for v in self.versions("f.txt")], [v2, v1])
        self.assertEqual(self.current("f.txt"), b"two")


class VersionsTest(VersionsCase):

    def test_versions_json_matches_boto3(self):
        """`versions --json` lists what list_object_versions does for the
        key (ids, sizes, ETags, latest, delete markers, times; not the key
        f.csv2 beside it); the table names each version."""
        for i in range(3):
            self.vput("f.csv", b"x" * (10 + i))
            time.sleep(1.1)
        self.s3.delete_object(Bucket=VBUCKET, Key=self.p + "f.csv")
        self.vput("f.csv2", b"other key")
        want = self.versions("f.csv")
        self.assertEqual(len(want), 4)
        with self.live() as m:
            rc, out, err = bfs("versions", "--json", m.path("t", "f.csv"))
            self.assertEqual((rc, err), (0, ""))
            got = json.loads(out)
            self.assertEqual(got["key"], self.p + "f.csv")
            self.assertFalse(got["truncated"])
            self.assertEqual(
                [(v["version_id"], v["size"], v["etag"], v["latest"], v["delete_marker"],
                  v["mtime_ns"] // 1000000) for v in got["versions"]],
                [(v["VersionId"], v["Size"], v["ETag"].strip('"'), v["IsLatest"],
                  v["delete_marker"], int(v["LastModified"].timestamp() * 1000)) for v in want])
            rc, out, err = bfs("versions", m.path("t", "f.csv"))
            self.assertEqual((rc, err), (0, ""))
            for v in want:
                self.assertIn(v["VersionId"], out)
            self.assertIn("(delete marker)", out)

    def test_restore_by_version_and_at(self):
        """restore --version makes v1 current (boto3 sees its bytes as the
        latest version; the mount, which had read v3, reads v1 at once);
        restore --at a time between v2 and v3 then makes v2 current."""
        data = [b"version %d\n" % i * (100 + i) for i in range(3)]
        ids = []
        for d in data:
            ids.append(self.vput("m.bin", d))
            time.sleep(1.5)
        t23 = self.between("m.bin", ids[1], ids[2])
        with self.live() as m:
            f = m.path("t", "m.bin")
            self.assertEqual(tm.read_all(f), data[2])
            rc, out, err = bfs("restore", "--version", ids[0], f)
            self.assertEqual((rc, err), (0, ""))
            self.assertIn(ids[0], out)
            self.assertEqual(self.current("m.bin"), data[0])
            latest = self.versions("m.bin")[0]
            self.assertTrue(latest["IsLatest"])
            self.assertEqual(latest["ETag"].strip('"'), tm.md5hex(data[0]))
            self.assertEqual(tm.read_all(f), data[0], "the mount shows the restored version")
            self.assertEqual(os.stat(f).st_size, len(data[0]))
            rc, out, err = bfs("restore", "--at", iso(t23), f)
            self.assertEqual((rc, err), (0, ""))
            self.assertIn(ids[1], out)
            self.assertEqual(self.current("m.bin"), data[1])
            self.assertEqual(tm.read_all(f), data[1])
            self.assertEqual(len(self.versions("m.bin")), 5, "two restores, two new versions")
            rc, out, err = bfs("restore", "--version", "no-such-version", f)
            self.assertEqual(rc, 1)
            self.assertIn("no such version", err)

    def test_restore_deleted_file(self):
        """A file removed through the mount comes back with `restore PATH`
        (the version before the delete marker): boto3 reads it, the mount
        lists and reads it at once."""
        data = b"weights" * 3000
        self.vput("models/best.joblib", data)
        with self.live() as m:
            f = m.path("t", "models", "best.joblib")
            self.assertEqual(tm.read_all(f), data)
            os.unlink(f)
            rc, _, err = bfs("sync", m.mnt)
            self.assertEqual(rc, 0, err)
            self.assertFalse(os.path.exists(f))
            self.assertTrue(self.versions("models/best.joblib")[0]["delete_marker"])
            rc, out, err = bfs("restore", f)
            self.assertEqual((rc, err), (0, ""))
            self.assertEqual(self.current("models/best.joblib"), data)
            self.assertIn("best.joblib", os.listdir(m.path("t", "models")))
            self.assertEqual(tm.read_all(f), data)

    def test_restore_refuses_pending_upload(self):
        """A file written through the mount whose upload has not happened
        yet is refused with a message, and S3 is left alone."""
        self.vput("p.txt", b"old")
        time.sleep(1.1)
        self.vput("p.txt", b"older?")
        with self.live(opts={"upload_delay": "20s"}) as m:
            f = m.path("t", "p.txt")
            with open(f, "wb") as fh:
                fh.write(b"local, not uploaded")
            rc, out, err = bfs("restore", f)
            self.assertEqual(rc, 1, out + err)
            self.assertIn("not uploaded yet", err)
            self.assertEqual(len(self.versions("p.txt")), 2)


class NoVersioningTest(MountTestCase):
    """Runs on every server: bfs-test never has versioning enabled."""

    mount_fails = tm.ErrorTest.mount_fails  # its tests are test_mount.py's to run

    def test_as_of_on_unversioned_bucket_fails(self):
        err, desc = self.mount_fails(["--map", "past=s3://%s/x@2026-01-01T00:00:00Z" % BUCKET])
        self.assertIn("mapping past", err, desc)
        self.assertIn("versioned bucket", err, desc)

    def test_bad_as_of_refused(self):
        conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        self.addCleanup(os.unlink, conf.name)
        conf.write("[m]\nbucket = %s\nas_of = yesterday\n" % BUCKET)
        conf.close()
        err, desc = self.mount_fails(["-c", conf.name])
        self.assertIn("as_of", err, desc)
        self.assertIn(":3", err, desc)  # file and line

    def test_versions_without_versioning(self):
        """On a bucket without versioning `versions` of a file lists its one
        (null) version, or none on s3rver: never a crash, a clear exit."""
        self.s3.put_object(Bucket=BUCKET, Key=self.p + "a.txt", Body=b"a")
        m = tm.Mount(maps=[("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))])
        self.addCleanup(m.cleanup)
        with m:
            rc, out, err = bfs("versions", m.path("t", "a.txt"))
            if can_version():
                self.assertEqual((rc, err), (0, ""))
                self.assertIn("null", out)
            else:
                self.assertEqual(rc, 1, out + err)
                self.assertIn("bucketfs versions", err)


if __name__ == "__main__":
    sys.exit(tm.main())
