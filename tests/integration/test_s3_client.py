#!/usr/bin/python3
"""Integration tests of bfs-s3 (the command-line face of bucketfs's S3 client)
against a live S3 server.

Run inside scripts/with-server.sh, which provides the server and the
AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / TEST_SERVER
environment:

    scripts/with-server.sh s3rver /usr/bin/python3 tests/integration/test_s3_client.py \
        --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k copy]

Every test checks what the server stored, read back independently with boto3.
Each test works under its own random key prefix in bucket bfs-test.
A few assertions depend on the server; the differences are listed in
SERVER_LIMITS and each skip names its reason.
"""
import argparse
import base64
import concurrent.futures
import hashlib
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

CLI = None            # path of bfs-s3, from --cli
BUCKET = "bfs-test"
MiB = 1024 * 1024
SERVER = os.environ.get("TEST_SERVER", "unknown")

# What the servers used here do not implement (measured with boto3, see
# tests/integration/README.md).  Tests skip or adapt only for these.
SERVER_LIMITS = {
    "s3rver": {
        # lib/middleware/authentication.js: "Signature version 4 calculation
        # is unimplemented": a V4 request with a known access key is accepted
        # whatever its signature (and anonymous requests are accepted too)
        "checks_sigv4": False,
        "if_match": False,          # GET If-Match is ignored (200, body)
        "empty_components": False,  # "a//b" is stored as a file path: 404 afterwards
        "abort_upload": False,      # AbortMultipartUpload -> 405 MethodNotAllowed
        "list_uploads": False,      # ListMultipartUploads -> 501 NotImplemented
        "list_parts": False,        # ListParts -> 405
        "mpu_etag_md5s": False,     # multipart ETag = MD5 of the whole body, no "-N"
        "content_md5": False,       # Content-MD5 is not verified
        # the listing walks directories and prunes those under a common
        # prefix, so a prefix holding only deeper keys (c/d/3) is not reported
        "nested_common_prefixes": False,
        # x-amz-copy-source goes through decodeURI, which leaves %2B %26 %3D
        # %3F %23 %24 %2C %3A %3B %40 encoded: such source keys are not found
        "copy_source_reserved": False,
        # Range "bytes=0-0": end 0 is taken as "no end", the whole body comes back
        "range_end_zero": False,
        # keys are listed in directory-walk order, not UTF-8 binary order
        "binary_order": False,
    },
    "rgw": {},
}


def server_can(what):
    return SERVER_LIMITS.get(SERVER, {}).get(what, True)


def s3client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                      max_pool_connections=32, retries={"max_attempts": 3}),
    )


def md5hex(b):
    return hashlib.md5(b).hexdigest()


def quoted(h):
    return '"%s"' % h


def multipart_etag(data, part_size):
    """The ETag S3 gives an object uploaded in parts of part_size bytes."""
    if not server_can("mpu_etag_md5s"):
        return quoted(md5hex(data))
    digests = b"".join(hashlib.md5(data[i:i + part_size]).digest()
                       for i in range(0, len(data), part_size))
    n = (len(data) + part_size - 1) // part_size
    return quoted("%s-%d" % (md5hex(digests), n))


def epoch(dt):
    return int(dt.timestamp())


ERROR_RE = re.compile(r"^error: code=(?P<code>\S*) status=(?P<status>\d+) "
                      r"errno=(?P<errno>\S+) message=(?P<message>.*)$", re.M)


class Result:
    def __init__(self, cmd, rc, out, err, elapsed):
        self.cmd, self.rc, self.out, self.err, self.elapsed = cmd, rc, out, err, elapsed

    @property
    def text(self):
        return self.out.decode("utf-8", errors="surrogateescape")

    @property
    def lines(self):
        return [l for l in self.text.split("\n") if l != ""]

    def describe(self):
        out = self.out if len(self.out) <= 3000 else self.out[:3000] + b"...[%d bytes]" % len(self.out)
        err = self.err if len(self.err) <= 3000 else self.err[:3000] + "...[truncated]"
        return ("\n$ %s\nexit status %s after %.1fs\n--- stdout ---\n%s\n--- stderr ---\n%s"
                % (shlex.join(self.cmd), self.rc, self.elapsed,
                   out.decode("utf-8", errors="backslashreplace"), err))


class BfsTestCase(unittest.TestCase):
    maxDiff = 8000

    @classmethod
    def setUpClass(cls):
        cls.s3 = s3client()

    def setUp(self):
        self.p = "t-%s-%s/" % (self._testMethodName[5:], uuid.uuid4().hex[:8])
        self.tmp = tempfile.mkdtemp(prefix="bfs-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    # ---- running the tool
    def bfs(self, *args, env=None, timeout=180):
        cmd = [CLI] + [str(a) for a in args]
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               env=os.environ if env is None else env, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.fail("bfs-s3 hung: no exit after %ss\n$ %s\nstderr so far: %s"
                      % (timeout, shlex.join(cmd), (e.stderr or b"").decode(errors="replace")))
        return Result(cmd, p.returncode, p.stdout, p.stderr.decode("utf-8", errors="replace"),
                      time.monotonic() - t0)

    def ok(self, *args, **kw):
        r = self.bfs(*args, **kw)
        self.assertEqual(r.rc, 0, "bfs-s3 failed" + r.describe())
        return r

    def fails(self, *args, rc=3, **kw):
        """Runs a command that must fail with exit status rc; for rc 3 returns
        the parsed `error:` line."""
        r = self.bfs(*args, **kw)
        self.assertEqual(r.rc, rc, "expected exit status %d" % rc + r.describe())
        if rc != 3:
            return r
        m = ERROR_RE.findall(r.err)
        self.assertEqual(len(m), 1, "expected exactly one 'error: code=.. status=.. errno=.. "
                         "message=..' line on stderr" + r.describe())
        e = ERROR_RE.search(r.err).groupdict()
        e["status"] = int(e["status"])
        e["result"] = r
        return e

    def one_line(self, r):
        self.assertEqual(len(r.lines), 1, "expected one line of output" + r.describe())
        return r.lines[0]

    # ---- local files
    def file(self, data, name=None):
        path = os.path.join(self.tmp, name or uuid.uuid4().hex)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    # ---- comparisons with useful failure messages
    def assertBytes(self, got, want, what="body"):
        if got == want:
            return
        n = min(len(got), len(want))
        i = next((i for i in range(n) if got[i] != want[i]), n)
        self.fail("%s differs: got %d bytes (md5 %s), want %d bytes (md5 %s); first difference "
                  "at offset %d: got %r, want %r"
                  % (what, len(got), md5hex(got), len(want), md5hex(want), i,
                     got[i:i + 24], want[i:i + 24]))

    def assertKeySet(self, got, want, what="keys"):
        got_l = list(got)
        dups = sorted({k for k in got_l if got_l.count(k) > 1}) if len(got_l) < 5000 else []
        missing = sorted(set(want) - set(got_l))
        extra = sorted(set(got_l) - set(want))
        if missing or extra or dups or len(got_l) != len(set(want)):
            self.fail("%s differ: got %d (%d distinct), want %d\n missing (%d): %r\n extra (%d): %r\n"
                      " listed more than once (%d): %r"
                      % (what, len(got_l), len(set(got_l)), len(set(want)), len(missing),
                         missing[:20], len(extra), extra[:20], len(dups), dups[:20]))

    # ---- server side (boto3)
    def s3_body(self, key, bucket=BUCKET):
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def s3_put(self, key, data, bucket=BUCKET, **kw):
        return self.s3.put_object(Bucket=bucket, Key=key, Body=data, **kw)["ETag"]

    def s3_exists(self, key, bucket=BUCKET):
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as e:
            if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                return False
            raise

    def s3_keys(self, prefix, bucket=BUCKET):
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def s3_uploads(self, prefix):
        r = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
        return sorted((u["Key"], u["UploadId"]) for u in r.get("Uploads", []))

    # ---- parsing the tool's output
    def parse_list(self, r):
        objs, prefixes, nxt, pages = [], [], None, None
        lines = r.lines
        self.assertTrue(lines and lines[-1].startswith("PAGES\t"),
                        "the last line of list must be PAGES<TAB>n" + r.describe())
        for line in lines:
            f = line.split("\t")
            if f[0] == "K" and len(f) == 5:
                objs.append((f[1], int(f[2]), f[3], int(f[4])))
            elif f[0] == "P" and len(f) == 2:
                prefixes.append(f[1])
            elif f[0] == "NEXT" and len(f) == 2:
                self.assertIsNone(nxt, "two NEXT lines" + r.describe())
                nxt = f[1]
            elif f[0] == "PAGES" and len(f) == 2:
                self.assertIsNone(pages, "two PAGES lines" + r.describe())
                pages = int(f[1])
            else:
                self.fail("unexpected list line %r" % line + r.describe())
        return objs, prefixes, nxt, pages

    def parse_head(self, r):
        d = {}
        for line in r.lines:
            self.assertIn("=", line, "head lines are NAME=VALUE" + r.describe())
            k, v = line.split("=", 1)
            self.assertNotIn(k, d, "head printed %s twice" % k + r.describe())
            d[k] = v
        return d

    def env_without_keys(self, home):
        env = dict(os.environ)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                  "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                  "AWSACCESSKEYID", "AWSSECRETACCESSKEY"):
            env.pop(k, None)
        env["HOME"] = home
        return env


# ----------------------------------------------------------------- objects
class ObjectTest(BfsTestCase):

    def test_list_buckets(self):
        r = self.ok("list-buckets")
        names = r.lines
        want = sorted(b["Name"] for b in self.s3.list_buckets()["Buckets"])
        for b in ("raw", "processed", "models", "bfs-test"):
            self.assertIn(b, names, r.describe())
        self.assertEqual(sorted(names), want, "list-buckets must print every bucket once")

    def test_put_then_boto3_get(self):
        data = os.urandom(70000) + "héllo, wörld\n".encode()
        key = self.p + "data/file.csv"
        r = self.ok("put", BUCKET, key, self.file(data), "--meta", "color=blue",
                    "--meta", "owner=data team", "--meta", "mode=33188",
                    "--content-type", "text/csv")
        etag = self.one_line(r)
        self.assertEqual(etag, quoted(md5hex(data)), "put must print the ETag, quoted")
        o = self.s3.get_object(Bucket=BUCKET, Key=key)
        self.assertBytes(o["Body"].read(), data, "stored body")
        self.assertEqual(o["Metadata"], {"color": "blue", "owner": "data team", "mode": "33188"})
        self.assertEqual(o["ContentType"], "text/csv")
        self.assertEqual(o["ETag"], etag)
        self.assertEqual(o["ContentLength"], len(data))

    def test_put_empty_and_overwrite(self):
        key = self.p + "empty"
        self.assertEqual(self.one_line(self.ok("put", BUCKET, key, self.file(b""))),
                         quoted(md5hex(b"")))
        self.assertEqual(self.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"], 0)
        self.ok("put", BUCKET, key, self.file(b"second version"))
        self.assertBytes(self.s3_body(key), b"second version")

    def test_put_md5_checksum_unsigned(self):
        for i, flags in enumerate((["--md5"], ["--checksum-sha256"], ["--md5", "--checksum-sha256"],
                                   ["--unsigned-payload"])):
            with self.subTest(flags=flags):
                data = os.urandom(100000 + i)
                key = self.p + "sum%d" % i
                glob = ["--unsigned-payload"] if "--unsigned-payload" in flags else []
                opts = [f for f in flags if f != "--unsigned-payload"]
                r = self.ok(*glob, "put", BUCKET, key, self.file(data), *opts)
                self.assertEqual(self.one_line(r), quoted(md5hex(data)))
                self.assertBytes(self.s3_body(key), data)
                if "--checksum-sha256" in flags:
                    h = self.s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
                    if h.get("ChecksumSHA256"):   # servers without checksums store none
                        self.assertEqual(h["ChecksumSHA256"],
                                         base64.b64encode(hashlib.sha256(data).digest()).decode())

    def test_head_matches_boto3(self):
        key = self.p + "h/obj.json"
        self.s3_put(key, b'{"a": 1}\n', ContentType="application/json",
                    Metadata={"mtime": "1700000000.25", "uid": "1000", "x-y": "v w"})
        r = self.ok("head", BUCKET, key)
        got = self.parse_head(r)
        h = self.s3.head_object(Bucket=BUCKET, Key=key)
        want = {"size": str(h["ContentLength"]), "etag": h["ETag"],
                "last_modified": str(epoch(h["LastModified"])), "content_type": h["ContentType"]}
        want.update({"meta." + k: v for k, v in h["Metadata"].items()})
        self.assertEqual(got, want, r.describe())

    def test_get_full_and_ranges(self):
        data = os.urandom(100000)
        key = self.p + "ranged.bin"
        self.s3_put(key, data)
        self.assertBytes(self.ok("get", BUCKET, key).out, data, "get to stdout")
        out = os.path.join(self.tmp, "out.bin")
        r = self.ok("get", BUCKET, key, "-o", out)
        self.assertBytes(self.read(out), data, "get -o FILE")
        self.assertEqual(r.out, b"", "get -o must not write the body to stdout")
        n = len(data)
        ranges = [("0-0", data[0:1])] if server_can("range_end_zero") else []
        for rng, want in ranges + [("1-1", data[1:2]), ("0-99", data[:100]), ("1000-1999", data[1000:2000]),
                          ("%d-%d" % (n - 1, n - 1), data[-1:]), ("%d-%d" % (n - 1000, n - 1), data[-1000:]),
                          ("99000-200000", data[99000:]), ("0-%d" % (n - 1), data)]:
            with self.subTest(range=rng):
                self.assertBytes(self.ok("get", BUCKET, key, "--range", rng).out, want,
                                 "range %s" % rng)

    def test_get_if_match(self):
        data = b"conditional body\n"
        key = self.p + "cond"
        etag = self.s3_put(key, data)
        self.assertBytes(self.ok("get", BUCKET, key, "--if-match", etag).out, data)
        if not server_can("if_match"):
            self.skipTest("%s ignores If-Match on GET (the good case passed)" % SERVER)
        e = self.fails("get", BUCKET, key, "--if-match", quoted("0" * 32))
        self.assertEqual((e["code"], e["status"]), ("PreconditionFailed", 412), e["result"].describe())
        self.assertEqual(e["result"].out, b"", "no body on a failed precondition")

    def test_get_if_none_match(self):
        data = b"cached body\n"
        key = self.p + "cond"
        etag = self.s3_put(key, data)
        e = self.fails("get", BUCKET, key, "--if-none-match", etag)
        self.assertEqual(e["status"], 304, e["result"].describe())
        self.assertIn(e["code"], ("NotModified", "304", ""), e["result"].describe())
        self.assertEqual(e["result"].out, b"")
        self.assertBytes(self.ok("get", BUCKET, key, "--if-none-match", quoted("0" * 32)).out, data)


# ----------------------------------------------------------------- key names
SPECIAL_KEYS = [
    "with space/file name.txt",
    "plus+sign+1.txt",
    "percent%20and%2Fliteral%.txt",
    "tilde~x.txt",
    "données/é ü 日本.csv",
    "eq=amp&q?hash#.txt",
    "bang!star*quote'paren().txt",
    "dollar$at@colon:semi;comma,.txt",
    "xml&lt;<tag>\"quote\".txt",
    " lead and trail ",
]


class KeyNameTest(BfsTestCase):

    def test_special_keys_put_by_bfs(self):
        expected = []
        for k in SPECIAL_KEYS:
            with self.subTest(key=k):
                key = self.p + k
                data = ("body of %r\n" % k).encode()
                self.ok("put", BUCKET, key, self.file(data))
                expected.append(key)
                try:
                    body = self.s3_body(key)
                except ClientError as e:
                    self.fail("boto3 cannot read %r after bfs-s3 put: %s; stored keys now: %r"
                              % (key, e, self.s3_keys(self.p)))
                self.assertBytes(body, data, "body of %r" % key)
        self.assertKeySet(self.s3_keys(self.p), expected, "keys stored by bfs-s3 put (boto3 list)")

    def test_special_keys_put_by_boto3(self):
        expected = {}
        for k in SPECIAL_KEYS:
            key = self.p + k
            data = ("boto3 body of %r\n" % k).encode()
            self.s3_put(key, data)
            expected[key] = data
        for key, data in expected.items():
            with self.subTest(key=key):
                self.assertBytes(self.ok("get", BUCKET, key).out, data, "bfs-s3 get %r" % key)
                h = self.parse_head(self.ok("head", BUCKET, key))
                self.assertEqual(h.get("size"), str(len(data)))
                objs, _, _, _ = self.parse_list(self.ok("list", BUCKET, "--prefix", key))
                self.assertIn(key, [o[0] for o in objs], "list --prefix of the key itself")
        objs, prefixes, _, _ = self.parse_list(self.ok("list", BUCKET, "--prefix", self.p))
        self.assertKeySet([o[0] for o in objs], expected, "bfs-s3 list of keys put by boto3")
        self.assertEqual(prefixes, [])

    def test_empty_components(self):
        if not server_can("empty_components"):
            self.skipTest("%s cannot store keys with empty components such as a//b" % SERVER)
        k1, k2 = self.p + "a//b", self.p + "x//y//"
        self.ok("put", BUCKET, k1, self.file(b"a//b"))
        self.s3_put(k2, b"x//y//")
        self.assertBytes(self.s3_body(k1), b"a//b")
        self.assertBytes(self.ok("get", BUCKET, k2).out, b"x//y//")
        objs, _, _, _ = self.parse_list(self.ok("list", BUCKET, "--prefix", self.p))
        self.assertEqual([o[0] for o in objs], sorted([k1, k2]))
        objs, prefixes, _, _ = self.parse_list(
            self.ok("list", BUCKET, "--prefix", self.p + "a/", "--delimiter", "/"))
        self.assertEqual((objs, prefixes), ([], [self.p + "a//"]))

    def test_special_keys_delimiter(self):
        # common prefixes must come back decoded, exactly as stored
        keys = [self.p + "données é/1", self.p + "with space/2", self.p + "p+q%r/3", self.p + "top"]
        for k in keys:
            self.s3_put(k, b"x")
        objs, prefixes, _, _ = self.parse_list(
            self.ok("list", BUCKET, "--prefix", self.p, "--delimiter", "/"))
        self.assertEqual([o[0] for o in objs], [self.p + "top"])
        self.assertEqual(sorted(prefixes),
                         sorted([self.p + "données é/", self.p + "with space/", self.p + "p+q%r/"]))


# ----------------------------------------------------------------- listing
class ListTest(BfsTestCase):

    def test_delimiter_and_prefix(self):
        names = ["a.txt", "b/1", "b/2", "c/d/3", "e.txt", "b.txt"]
        for i, n in enumerate(names):
            self.s3_put(self.p + n, b"x" * i)
        r = self.ok("list", BUCKET, "--prefix", self.p, "--delimiter", "/")
        objs, prefixes, nxt, pages = self.parse_list(r)
        s3r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=self.p, Delimiter="/")
        want = [(o["Key"], o["Size"], o["ETag"], epoch(o["LastModified"])) for o in s3r["Contents"]]
        self.assertEqual([o[:3] for o in objs], [w[:3] for w in want], r.describe())
        for o, w in zip(objs, want):
            self.assertLessEqual(abs(o[3] - w[3]), 1, "LastModified of %s: %d vs %d" % (o[0], o[3], w[3]))
        self.assertEqual(prefixes, [c["Prefix"] for c in s3r["CommonPrefixes"]])
        if server_can("nested_common_prefixes"):
            self.assertEqual(prefixes, [self.p + "b/", self.p + "c/"])
        self.assertIsNone(nxt)
        self.assertEqual(pages, 1)
        # no delimiter: everything, recursively
        objs, prefixes, _, _ = self.parse_list(self.ok("list", BUCKET, "--prefix", self.p))
        # in the server's order (s3rver does not use UTF-8 binary order: b/1 before b.txt)
        self.assertEqual([o[0] for o in objs], self.s3_keys(self.p))
        self.assertKeySet([o[0] for o in objs], [self.p + n for n in names])
        self.assertEqual(prefixes, [])
        # a deeper prefix
        objs, prefixes, _, _ = self.parse_list(
            self.ok("list", BUCKET, "--prefix", self.p + "b/", "--delimiter", "/"))
        self.assertEqual([o[0] for o in objs], [self.p + "b/1", self.p + "b/2"])
        self.assertEqual([o[1] for o in objs], [1, 2])
        self.assertEqual(prefixes, [])
        # a prefix matching nothing
        objs, prefixes, nxt, pages = self.parse_list(self.ok("list", BUCKET, "--prefix", self.p + "zzz"))
        self.assertEqual((objs, prefixes, nxt, pages), ([], [], None, 1))


class ListManyTest(BfsTestCase):
    N = 2500

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.prefix = "t-many-%s/" % uuid.uuid4().hex[:8]
        cls.keys = ["%sk%05d" % (cls.prefix, i) for i in range(cls.N)]
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda k: cls.s3.put_object(Bucket=BUCKET, Key=k, Body=k[-5:].encode()), cls.keys))
        print("\n[ListManyTest] created %d keys with boto3 in %.1fs"
              % (cls.N, time.monotonic() - t0), file=sys.stderr)

    def test_all_pages(self):
        r = self.ok("list", BUCKET, "--prefix", self.prefix)
        objs, prefixes, nxt, pages = self.parse_list(r)
        got = [o[0] for o in objs]
        self.assertKeySet(got, self.keys, "keys listed across pages")
        self.assertEqual(got, sorted(self.keys), "keys must come in order")
        self.assertTrue(all(o[1] == 5 for o in objs), "sizes")
        self.assertGreaterEqual(pages, 3, "2,500 keys need at least 3 pages of 1,000")
        self.assertIsNone(nxt, "no NEXT without --single-page")

    def test_single_page_and_continuation(self):
        objs, _, tok, pages = self.parse_list(self.ok(
            "list", BUCKET, "--prefix", self.prefix, "--max-keys", 1000, "--single-page"))
        self.assertEqual([o[0] for o in objs], self.keys[:1000])
        self.assertEqual(pages, 1)
        self.assertTrue(tok, "a truncated single page must print NEXT<TAB>token")
        objs, _, tok2, pages = self.parse_list(self.ok(
            "list", BUCKET, "--prefix", self.prefix, "--max-keys", 1000, "--single-page",
            "--continuation", tok))
        self.assertEqual([o[0] for o in objs], self.keys[1000:2000])
        self.assertEqual(pages, 1)
        self.assertTrue(tok2)
        objs, _, tok3, pages = self.parse_list(self.ok(
            "list", BUCKET, "--prefix", self.prefix, "--max-keys", 1000, "--single-page",
            "--continuation", tok2))
        self.assertEqual([o[0] for o in objs], self.keys[2000:])
        self.assertIsNone(tok3, "the last page is not truncated")
        # --continuation without --single-page follows the rest
        objs, _, _, pages = self.parse_list(self.ok(
            "list", BUCKET, "--prefix", self.prefix, "--continuation", tok))
        self.assertEqual([o[0] for o in objs], self.keys[1000:])
        self.assertGreaterEqual(pages, 2)

    def test_small_pages(self):
        objs, _, _, pages = self.parse_list(self.ok(
            "list", BUCKET, "--prefix", self.prefix, "--max-keys", 500))
        self.assertKeySet([o[0] for o in objs], self.keys, "keys listed in pages of 500")
        self.assertIn(pages, (5, 6), "2,500 keys in pages of 500")

    def test_start_after(self):
        objs, _, _, pages = self.parse_list(self.ok(
            "list", BUCKET, "--prefix", self.prefix, "--start-after", self.keys[2399]))
        self.assertEqual([o[0] for o in objs], self.keys[2400:])
        self.assertEqual(pages, 1)


# ----------------------------------------------------------------- copy, delete
class CopyDeleteTest(BfsTestCase):

    def test_copy_keeps_metadata(self):
        src = self.p + "src/données é~%.txt"
        data = os.urandom(5000)
        etag = self.s3_put(src, data, ContentType="text/plain", Metadata={"color": "red", "n": "1"})
        dst = self.p + "dst/copy 1.txt"
        r = self.ok("copy", BUCKET, src, BUCKET, dst)
        self.assertEqual(self.one_line(r), etag, "copy prints the new ETag")
        h = self.s3.head_object(Bucket=BUCKET, Key=dst)
        self.assertEqual(h["ETag"], etag)
        self.assertEqual(h["Metadata"], {"color": "red", "n": "1"})
        self.assertEqual(h["ContentType"], "text/plain")
        self.assertBytes(self.s3_body(dst), data)
        self.assertBytes(self.s3_body(src), data, "the source is untouched")

    def test_copy_replace_metadata(self):
        src = self.p + "src"
        data = b"replace me\n"
        self.s3_put(src, data, ContentType="text/plain", Metadata={"color": "red", "n": "1"})
        dst = self.p + "dst"
        r = self.ok("copy", BUCKET, src, BUCKET, dst, "--replace", "--meta", "color=blue",
                    "--meta", "mtime=1700000000", "--content-type", "application/json")
        self.assertEqual(self.one_line(r), quoted(md5hex(data)))
        h = self.s3.head_object(Bucket=BUCKET, Key=dst)
        self.assertEqual(h["Metadata"], {"color": "blue", "mtime": "1700000000"})
        self.assertEqual(h["ContentType"], "application/json")
        self.assertBytes(self.s3_body(dst), data)
        # in place: a metadata update of the object itself
        self.ok("copy", BUCKET, dst, BUCKET, dst, "--replace", "--meta", "color=green")
        self.assertEqual(self.s3.head_object(Bucket=BUCKET, Key=dst)["Metadata"], {"color": "green"})
        self.assertBytes(self.s3_body(dst), data)

    def test_copy_source_reserved_characters(self):
        if not server_can("copy_source_reserved"):
            self.skipTest("%s does not decode %%2B, %%26... in x-amz-copy-source" % SERVER)
        for i, name in enumerate(("a+b.txt", "q?x=1&y=2#frag", "d$@:;,.txt", "sp ace+plus/é")):
            with self.subTest(key=name):
                src, dst = self.p + "src/" + name, self.p + "dst/%d %s" % (i, name)
                self.s3_put(src, name.encode(), Metadata={"k": str(i)})
                self.ok("copy", BUCKET, src, BUCKET, dst)
                self.assertBytes(self.s3_body(dst), name.encode())
                self.assertEqual(self.s3.head_object(Bucket=BUCKET, Key=dst)["Metadata"], {"k": str(i)})

    def test_copy_across_buckets_and_missing_source(self):
        src = self.p + "x y"
        self.s3_put(src, b"to raw")
        self.ok("copy", BUCKET, src, "raw", self.p + "copied")
        self.assertBytes(self.s3_body(self.p + "copied", bucket="raw"), b"to raw")
        e = self.fails("copy", BUCKET, self.p + "missing", BUCKET, self.p + "dst")
        self.assertEqual((e["code"], e["status"], e["errno"]), ("NoSuchKey", 404, "ENOENT"),
                         e["result"].describe())
        self.assertFalse(self.s3_exists(self.p + "dst"))

    def test_delete(self):
        key = self.p + "gone soon.txt"
        self.s3_put(key, b"x")
        self.ok("delete", BUCKET, key)
        self.assertFalse(self.s3_exists(key), "object still there after delete")
        self.ok("delete", BUCKET, key)  # deleting a missing key succeeds
        self.ok("delete", BUCKET, self.p + "never existed")

    def test_delete_many(self):
        keys = [self.p + n for n in ("1", "dir/2", "x&y<z>.txt", "données é.txt", "sp ace+plus")]
        for k in keys:
            self.s3_put(k, b"x")
        keep = self.p + "keep"
        self.s3_put(keep, b"k")
        missing = self.p + "missing"
        r = self.ok("delete-many", BUCKET, *keys, missing)
        self.assertEqual(sorted(r.lines), sorted("deleted\t" + k for k in keys + [missing]), r.describe())
        self.assertEqual(self.s3_keys(self.p), [keep], "only the untouched key remains")


# ----------------------------------------------------------------- multipart
class MultipartTest(BfsTestCase):
    SIZE = 25 * MiB
    PART = 5 * MiB

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data = os.urandom(cls.SIZE)
        cls.dir = tempfile.mkdtemp(prefix="bfs-it-mpu-")
        cls.path = os.path.join(cls.dir, "25MiB.bin")
        with open(cls.path, "wb") as f:
            f.write(cls.data)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def check_object(self, key, etag, data, part_size):
        h = self.s3.head_object(Bucket=BUCKET, Key=key)
        self.assertEqual(h["ContentLength"], len(data))
        self.assertEqual(etag, h["ETag"], "the printed ETag must be the stored one")
        self.assertEqual(etag, multipart_etag(data, part_size))
        if server_can("mpu_etag_md5s"):
            self.assertTrue(etag.endswith('-%d"' % ((len(data) + part_size - 1) // part_size)), etag)
        self.assertBytes(self.s3_body(key), data, "multipart object")
        return h

    def test_create_part_complete(self):
        key = self.p + "big file.bin"
        uid = self.one_line(self.ok("mpu-create", BUCKET, key, "--meta", "m=1",
                                    "--content-type", "application/x-test"))
        if server_can("list_uploads"):
            self.assertIn((key, uid), self.s3_uploads(self.p), "boto3 must see the new upload")
        etags = []
        for i in range(self.SIZE // self.PART):
            chunk = self.data[i * self.PART:(i + 1) * self.PART]
            r = self.ok("mpu-part", BUCKET, key, uid, i + 1, self.path,
                        "--offset", i * self.PART, "--length", self.PART)
            etags.append(self.one_line(r))
            self.assertEqual(etags[-1], quoted(md5hex(chunk)), "part %d ETag" % (i + 1))
        if server_can("list_parts"):
            parts = self.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid)["Parts"]
            self.assertEqual([(p["PartNumber"], p["ETag"], p["Size"]) for p in parts],
                             [(i + 1, e, self.PART) for i, e in enumerate(etags)])
        etag = self.one_line(self.ok("mpu-complete", BUCKET, key, uid, *etags))
        h = self.check_object(key, etag, self.data, self.PART)
        self.assertEqual(h["Metadata"], {"m": "1"})
        self.assertEqual(h["ContentType"], "application/x-test")
        if server_can("list_uploads"):
            self.assertEqual(self.s3_uploads(self.p), [], "no upload left after complete")
        # and bfs-s3 reads the 25 MiB back
        out = os.path.join(self.tmp, "back.bin")
        self.ok("get", BUCKET, key, "-o", out)
        self.assertBytes(self.read(out), self.data, "bfs-s3 get of the multipart object")

    def test_abort_and_list(self):
        k1, k2 = self.p + "one", self.p + "two/é"
        u1 = self.one_line(self.ok("mpu-create", BUCKET, k1))
        u2 = self.one_line(self.ok("mpu-create", BUCKET, k2))
        self.ok("mpu-part", BUCKET, k1, u1, 1, self.path, "--offset", 0, "--length", MiB)
        if not server_can("abort_upload"):
            # the tool must report the server's refusal faithfully, not hang or succeed
            e = self.fails("mpu-abort", BUCKET, k1, u1)
            self.assertEqual(e["status"], 405, e["result"].describe())
            e = self.fails("mpu-list", BUCKET, "--prefix", self.p)
            self.assertEqual(e["status"], 501, e["result"].describe())
            self.skipTest("%s implements neither AbortMultipartUpload nor ListMultipartUploads; "
                          "checked that bfs-s3 reports their 405/501" % SERVER)
        r = self.ok("mpu-list", BUCKET, "--prefix", self.p)
        self.assertEqual(sorted(r.lines), sorted(["U\t%s\t%s" % (k1, u1), "U\t%s\t%s" % (k2, u2)]),
                         r.describe())
        self.assertEqual(self.s3_uploads(self.p), sorted([(k1, u1), (k2, u2)]))
        self.ok("mpu-abort", BUCKET, k1, u1)
        self.assertEqual(self.s3_uploads(self.p), [(k2, u2)], "boto3 still sees the aborted upload")
        r = self.ok("mpu-list", BUCKET, "--prefix", self.p)
        self.assertEqual(r.lines, ["U\t%s\t%s" % (k2, u2)], r.describe())
        with self.assertRaises(ClientError, msg="parts of an aborted upload must be gone"):
            self.s3.list_parts(Bucket=BUCKET, Key=k1, UploadId=u1)
        self.ok("mpu-abort", BUCKET, k2, u2)
        self.assertEqual(self.ok("mpu-list", BUCKET, "--prefix", self.p).lines, [])
        self.assertFalse(self.s3_exists(k1) or self.s3_exists(k2))

    def test_parallel_upload(self):
        key = self.p + "parallel.bin"
        r = self.ok("mpu-upload", BUCKET, key, self.path, "--part-size", self.PART, "--jobs", 4)
        self.check_object(key, self.one_line(r), self.data, self.PART)
        if server_can("list_uploads"):
            self.assertEqual(self.s3_uploads(self.p), [])

    def test_parallel_upload_uneven(self):
        data = self.data[:12 * MiB + 1]
        path = self.file(data)
        key = self.p + "uneven.bin"
        r = self.ok("mpu-upload", BUCKET, key, path, "--part-size", self.PART, "--jobs", 3)
        self.check_object(key, self.one_line(r), data, self.PART)


# ----------------------------------------------------------------- errors
class ErrorTest(BfsTestCase):

    def assertNoSecret(self, r, secret):
        for where, text in (("stdout", r.text), ("stderr", r.err)):
            self.assertNotIn(secret, text, "the secret key appears on %s" % where + r.describe())

    def test_head_missing_key(self):
        e = self.fails("head", BUCKET, self.p + "nope")
        self.assertEqual((e["status"], e["errno"]), (404, "ENOENT"), e["result"].describe())
        self.assertEqual(e["result"].out, b"")

    def test_get_missing_key_and_bucket(self):
        e = self.fails("get", BUCKET, self.p + "nope")
        self.assertEqual((e["code"], e["status"], e["errno"]), ("NoSuchKey", 404, "ENOENT"),
                         e["result"].describe())
        e = self.fails("get", "no-such-bucket-" + uuid.uuid4().hex[:8], "k")
        self.assertEqual((e["code"], e["status"], e["errno"]), ("NoSuchBucket", 404, "ENOENT"),
                         e["result"].describe())
        e = self.fails("list", "no-such-bucket-" + uuid.uuid4().hex[:8])
        self.assertEqual(e["code"], "NoSuchBucket", e["result"].describe())

    def test_wrong_secret(self):
        if not server_can("checks_sigv4"):
            self.skipTest("%s does not verify SigV4 signatures (any secret works)" % SERVER)
        secret = "WrongSecret" + uuid.uuid4().hex
        env = dict(os.environ, AWS_SECRET_ACCESS_KEY=secret)
        for cmd in (["list-buckets"], ["head", BUCKET, "k"], ["list", BUCKET]):
            with self.subTest(cmd=cmd):
                e = self.fails(*cmd, env=env)
                r = e["result"]
                if cmd[0] != "head":   # a HEAD reply has no body, hence no S3 Code
                    self.assertIn(e["code"], ("SignatureDoesNotMatch", "InvalidAccessKeyId"), r.describe())
                self.assertEqual((e["status"], e["errno"]), (403, "EACCES"), r.describe())
                self.assertNoSecret(r, secret)

    def test_wrong_access_key(self):
        secret = "WrongSecret" + uuid.uuid4().hex
        env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDWRONG" + uuid.uuid4().hex[:8].upper(),
                   AWS_SECRET_ACCESS_KEY=secret)
        e = self.fails("list-buckets", env=env)
        self.assertEqual((e["code"], e["status"], e["errno"]), ("InvalidAccessKeyId", 403, "EACCES"),
                         e["result"].describe())
        self.assertNoSecret(e["result"], secret)
        e = self.fails("get", BUCKET, "k", env=env)
        self.assertEqual((e["status"], e["errno"]), (403, "EACCES"), e["result"].describe())
        self.assertNoSecret(e["result"], secret)

    def test_unreachable_endpoint(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()   # nothing listens there now
        env = dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:%d" % port)
        env.pop("AWS_ENDPOINT_URL_S3", None)
        r = self.bfs("head", BUCKET, "k", env=env, timeout=90)
        self.assertNotEqual(r.rc, 0, r.describe())
        self.assertLess(r.elapsed, 60, "an unreachable endpoint must fail within 60 s" + r.describe())
        self.assertRegex(r.err, r"(?i)connect|refused|unreachable|127\.0\.0\.1:%d" % port,
                         "the message must say the server cannot be reached" + r.describe())

    def test_usage_errors(self):
        self.fails("no-such-command", rc=2)
        self.fails("put", BUCKET, self.p + "k", os.path.join(self.tmp, "no such file"), rc=2)
        self.fails("presign", BUCKET, "k", "--expires", 604801, rc=2)
        self.fails("get", BUCKET, rc=2)


# ----------------------------------------------------------------- credentials
class CredentialsTest(BfsTestCase):

    def setUp(self):
        super().setUp()
        self.ak = os.environ["AWS_ACCESS_KEY_ID"]
        self.sk = os.environ["AWS_SECRET_ACCESS_KEY"]
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(os.path.join(self.home, ".aws"))

    def write_aws(self, name, text):
        path = os.path.join(self.home, ".aws", name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def creds(self, r):
        d = self.parse_head(r)   # NAME=VALUE lines
        if self.sk != self.ak:   # s3rver's secret is its access key
            self.assertNotIn(self.sk, r.text + r.err, "creds must never print the secret" + r.describe())
        return d

    def assertWorks(self, *glob, env):
        r = self.ok(*glob, "list-buckets", env=env)
        self.assertIn(BUCKET, r.lines, r.describe())
        key = self.p + "via-%s" % uuid.uuid4().hex[:6]
        self.ok(*glob, "put", BUCKET, key, self.file(b"creds ok"), env=env)
        self.assertBytes(self.s3_body(key), b"creds ok")

    def test_env(self):
        d = self.creds(self.ok("creds"))
        self.assertEqual((d.get("source"), d.get("access_key")), ("env", self.ak))

    def test_credentials_file_profile(self):
        self.write_aws("credentials",
                       "[default]\naws_access_key_id = AKIDDEFAULTWRONG\naws_secret_access_key = nope\n\n"
                       "[bfsprof]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (self.ak, self.sk))
        env = self.env_without_keys(self.home)
        env["AWS_PROFILE"] = "bfsprof"
        d = self.creds(self.ok("creds", env=env))
        self.assertEqual((d.get("source"), d.get("access_key")), ("profile", self.ak))
        self.assertWorks(env=env)
        # --profile instead of AWS_PROFILE
        env2 = self.env_without_keys(self.home)
        self.assertEqual(self.creds(self.ok("--profile", "bfsprof", "creds", env=env2))["access_key"], self.ak)
        self.assertWorks("--profile", "bfsprof", env=env2)
        # no profile named: [default], whose keys the server refuses
        self.assertEqual(self.creds(self.ok("creds", env=env2))["access_key"], "AKIDDEFAULTWRONG")
        e = self.fails("list-buckets", env=env2)
        self.assertEqual(e["status"], 403, e["result"].describe())

    def test_config_file_profile(self):
        self.write_aws("config", "[default]\nregion = us-east-1\n\n[profile x]\nregion = us-east-1\n"
                       "aws_access_key_id = %s\naws_secret_access_key = %s\n" % (self.ak, self.sk))
        env = self.env_without_keys(self.home)
        env["AWS_PROFILE"] = "x"
        d = self.creds(self.ok("creds", env=env))
        self.assertEqual(d["access_key"], self.ak)
        self.assertIn(d["source"], ("profile", "config"))
        self.assertWorks(env=env)
        # keys in both files: the credentials file wins (as in the AWS CLI and SDKs)
        self.write_aws("config", "[profile x]\naws_access_key_id = AKIDCONFIGWRONG\n"
                       "aws_secret_access_key = nope\n")
        self.write_aws("credentials", "[x]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                       % (self.ak, self.sk))
        self.assertEqual(self.creds(self.ok("creds", env=env))["access_key"], self.ak)
        self.assertWorks(env=env)

    def test_passwd_file(self):
        path = os.path.join(self.tmp, "passwd-s3")
        with open(path, "w") as f:
            f.write("%s:%s\n" % (self.ak, self.sk))
        os.chmod(path, 0o600)
        env = self.env_without_keys(self.home)
        d = self.creds(self.ok("--passwd-file", path, "creds", env=env))
        self.assertEqual((d.get("source"), d.get("access_key")), ("passwd", self.ak))
        self.assertWorks("--passwd-file", path, env=env)
        os.chmod(path, 0o644)
        r = self.fails("--passwd-file", path, "list-buckets", env=env, rc=2)
        self.assertRegex(r.err, r"(?i)permission", "the refusal must mention permissions" + r.describe())
        if self.sk != self.ak:
            self.assertNotIn(self.sk, r.err + r.text)

    def test_global_options(self):
        env = dict(os.environ)
        url = env.pop("AWS_ENDPOINT_URL")
        env.pop("AWS_REGION", None)
        env.pop("AWS_DEFAULT_REGION", None)
        self.assertWorks("--endpoint", url, "--region", "us-east-1", "--path-style", env=env)
        # --endpoint beats AWS_ENDPOINT_URL; AWS_ENDPOINT_URL_S3 beats AWS_ENDPOINT_URL
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = "http://127.0.0.1:%d" % s.getsockname()[1]
        s.close()
        self.assertWorks("--endpoint", url, env=dict(env, AWS_ENDPOINT_URL=dead))
        self.assertWorks(env=dict(env, AWS_ENDPOINT_URL=dead, AWS_ENDPOINT_URL_S3=url))

    def test_virtual_host(self):
        self.skipTest("virtual-host addressing needs DNS names for buckets; not testable on 127.0.0.1")


# ----------------------------------------------------------------- presign
class PresignTest(BfsTestCase):

    def test_presigned_get_with_curl(self):
        for name in ("plain.bin", "dir/é ü+%&=.bin"):
            with self.subTest(key=name):
                key = self.p + name
                data = os.urandom(3000)
                self.s3_put(key, data)
                url = self.one_line(self.ok("presign", BUCKET, key, "--expires", 300))
                self.assertTrue(url.startswith(os.environ["AWS_ENDPOINT_URL"] + "/"), url)
                self.assertIn("X-Amz-Expires=300", url)
                if os.environ["AWS_SECRET_ACCESS_KEY"] != os.environ["AWS_ACCESS_KEY_ID"]:
                    self.assertNotIn(os.environ["AWS_SECRET_ACCESS_KEY"], url)
                out = os.path.join(self.tmp, "dl")
                c = subprocess.run(["curl", "-g", "-sS", "--max-time", "30", "-o", out,
                                    "-w", "%{http_code}", url], capture_output=True, text=True)
                self.assertEqual(c.stdout, "200", "curl of the presigned URL: %s %s\n%s"
                                 % (c.stdout, c.stderr, url))
                self.assertBytes(self.read(out), data, "bytes downloaded with the presigned URL")
        self.one_line(self.ok("presign", BUCKET, self.p + "plain.bin", "--expires", 604800))
        self.fails("presign", BUCKET, self.p + "plain.bin", "--expires", 604801, rc=2)

    def test_presigned_url_is_signed(self):
        if not server_can("checks_sigv4"):
            self.skipTest("%s does not verify SigV4 signatures" % SERVER)
        key = self.p + "signed"
        self.s3_put(key, b"x")
        url = self.one_line(self.ok("presign", BUCKET, key, "--expires", 300))
        bad = re.sub(r"(X-Amz-Signature=)([0-9a-f])", lambda m: m.group(1) + ("1" if m.group(2) != "1" else "2"), url)
        self.assertNotEqual(bad, url)
        c = subprocess.run(["curl", "-g", "-s", "-o", "/dev/null", "-w", "%{http_code}", bad],
                           capture_output=True, text=True)
        self.assertEqual(c.stdout, "403", "a tampered signature must be refused")


def main():
    global CLI
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True, help="path of the bfs-s3 binary")
    args, rest = ap.parse_known_args()
    CLI = os.path.abspath(args.cli)
    if not (os.path.isfile(CLI) and os.access(CLI, os.X_OK)):
        print("error: --cli %s is not an executable file" % args.cli, file=sys.stderr)
        return 2
    missing = [v for v in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
               if not os.environ.get(v)]
    if missing:
        print("error: %s not set: run this under scripts/with-server.sh" % ", ".join(missing),
              file=sys.stderr)
        return 2
    print("bfs-s3 %s against %s at %s" % (CLI, SERVER, os.environ["AWS_ENDPOINT_URL"]),
          file=sys.stderr)
    prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
