#!/usr/bin/python3
"""test_s3_faults.py: the S3 client against a real server behind faultproxy.py,
which injects 5xx, SlowDown, 429, connection resets, truncated bodies, stalls
and errors inside 200 replies. Checks that transient failures are retried
(and that the server ends up with the right data, read back with boto3 over
a direct connection), that requests which may have run are not repeated
unless S3 makes that safe, and that exhausted retries fail with the right
error, in bounded time.

    scripts/with-server.sh s3rver|rgw /usr/bin/python3 tests/integration/test_s3_faults.py --cli build/tests/tools/bfs-s3
"""
import argparse, hashlib, os, re, shutil, subprocess, sys, tempfile, time, unittest, uuid

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
CLI = None
BUCKET = "bfs-test"
SERVER = os.environ.get("TEST_SERVER", "")


def s3():
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                      retries={"max_attempts": 1}))


class Proxy:
    """faultproxy.py in front of the test server, with one plan."""

    def __init__(self, plan, args=()):
        self.dir = tempfile.mkdtemp(prefix="bfs-proxy-")
        self.log = os.path.join(self.dir, "log")
        pf = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "faultproxy.py"),
                                      "--upstream", os.environ["AWS_ENDPOINT_URL"],
                                      "--port-file", pf, "--log", self.log, "--plan", plan,
                                      *args])
        for _ in range(200):
            if os.path.exists(pf):
                break
            time.sleep(0.05)
        with open(pf) as f:
            self.url = "http://127.0.0.1:" + f.read().strip()

    def lines(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return f.read().splitlines()

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, True)


class FaultTest(unittest.TestCase):
    def setUp(self):
        self.prefix = f"faults-{uuid.uuid4().hex[:8]}/"
        self.proxies = []
        self.tmp = tempfile.mkdtemp(prefix="bfs-faults-")

    def tearDown(self):
        for p in self.proxies:
            p.close()

    def proxy(self, plan):
        p = Proxy(plan)
        self.proxies.append(p)
        return p

    def cli(self, proxy, *args, timeout=120):
        t = time.time()
        r = subprocess.run([CLI, "--endpoint", proxy.url, "--low-speed-time", "2", "--stats", *args],
                           capture_output=True, timeout=timeout)
        r.elapsed = time.time() - t
        return r

    def stats(self, r):
        m = re.search(rb"stats: requests=(\d+) retries=(\d+) errors=(\d+)", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        return tuple(int(x) for x in m.groups())

    def file(self, size):
        data = os.urandom(size)
        path = os.path.join(self.tmp, uuid.uuid4().hex)
        with open(path, "wb") as f:
            f.write(data)
        return path, data

    def test_get_retries_every_transient_fault(self):
        key = self.prefix + "get.bin"
        data = os.urandom(300_000)
        s3().put_object(Bucket=BUCKET, Key=key, Body=data)
        p = self.proxy("GET:503,GET:500,GET:429,GET:reset,GET:truncate")
        out = os.path.join(self.tmp, "out")
        r = self.cli(p, "get", BUCKET, key, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(open(out, "rb").read(), data)
        faults = [l for l in p.lines() if "forwarded 200" not in l]
        self.assertEqual(len(faults), 5, p.lines())
        # curl itself retries a request whose reused connection was reset
        # before any answer, so the reset may not count as a retry of ours
        self.assertGreaterEqual(self.stats(r)[1], 4)

    def test_put_retried_and_stored(self):
        key = self.prefix + "put.bin"
        path, data = self.file(200_000)
        p = self.proxy("PUT:503,PUT:reset,PUT:500")
        r = self.cli(p, "put", BUCKET, key, path, "--md5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s3().get_object(Bucket=BUCKET, Key=key)["Body"].read(), data)
        self.assertEqual(len([l for l in p.lines() if "forwarded" not in l]), 3, p.lines())
        self.assertGreaterEqual(self.stats(r)[1], 2)

    def test_stalled_transfer_times_out_and_retries(self):
        key = self.prefix + "stall.txt"
        s3().put_object(Bucket=BUCKET, Key=key, Body=b"after the stall")
        p = self.proxy("GET:stall")
        out = os.path.join(self.tmp, "o")
        r = self.cli(p, "get", BUCKET, key, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(open(out, "rb").read(), b"after the stall")
        self.assertLess(r.elapsed, 30, "a stall must end at the low-speed timeout, not hang")
        self.assertEqual(self.stats(r)[1], 1)

    def test_head_and_list_retried(self):
        key = self.prefix + "h.txt"
        s3().put_object(Bucket=BUCKET, Key=key, Body=b"x")
        p = self.proxy("HEAD:503,HEAD:reset,GET:500")
        self.assertEqual(self.cli(p, "head", BUCKET, key).returncode, 0)
        r = self.cli(p, "list", BUCKET, "--prefix", self.prefix)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(key.encode(), r.stdout)

    def test_copy_error_inside_200_is_retried(self):
        src, dst = self.prefix + "src", self.prefix + "dst"
        s3().put_object(Bucket=BUCKET, Key=src, Body=b"copy me")
        p = self.proxy("PUT:200error,PUT:503")
        r = self.cli(p, "copy", BUCKET, src, BUCKET, dst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s3().get_object(Bucket=BUCKET, Key=dst)["Body"].read(), b"copy me")
        self.assertEqual(self.stats(r)[1], 2)

    def test_create_multipart_not_repeated_when_it_may_have_run(self):
        key = self.prefix + "mpu"
        p = self.proxy("POST:reset")
        r = self.cli(p, "mpu-create", BUCKET, key)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn(b"code=ConnectionReset", r.stderr)
        self.assertEqual(len([l for l in p.lines() if l.startswith("POST")]), 1, p.lines())
        # but a 503 (the server did nothing) is repeated
        p2 = self.proxy("POST:503")
        r = self.cli(p2, "mpu-create", BUCKET, key)
        self.assertEqual(r.returncode, 0, r.stderr)
        upload_id = r.stdout.decode().strip()
        s3().abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id) \
            if SERVER != "s3rver" else None

    def test_multipart_with_faults(self):
        key = self.prefix + "big.bin"
        path, data = self.file(12 * 1024 * 1024)
        p = self.proxy("PUT:reset,PUT:503,PUT:truncate,POST:503")
        r = self.cli(p, "mpu-upload", BUCKET, key, path, "--part-size", str(5 << 20), "--jobs", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        self.assertEqual(hashlib.md5(got).hexdigest(), hashlib.md5(data).hexdigest())

    @unittest.skipIf(SERVER == "s3rver", "s3rver's multipart ETag is not MD5-of-MD5s-N, "
                     "which the lost-reply check compares with")
    def test_complete_reply_lost(self):
        key = self.prefix + "lost.bin"
        path, data = self.file(6 * 1024 * 1024)
        p = self.proxy("POST:truncate")  # truncate hits CreateMultipartUpload first
        p.close()
        p = self.proxy("")
        r = self.cli(p, "mpu-create", BUCKET, key)
        upload_id = r.stdout.decode().strip()
        r1 = self.cli(p, "mpu-part", BUCKET, key, upload_id, "1", path, "--length", str(5 << 20))
        r2 = self.cli(p, "mpu-part", BUCKET, key, upload_id, "2", path, "--offset", str(5 << 20))
        etags = [r1.stdout.decode().strip(), r2.stdout.decode().strip()]
        # the server completes, but the reply is cut: the retry must still succeed
        p3 = self.proxy("POST:truncate")
        r = self.cli(p3, "mpu-complete", BUCKET, key, upload_id, *etags)
        self.assertEqual(r.returncode, 0, r.stderr + p3.log.encode())
        self.assertTrue(r.stdout.decode().strip().endswith('-2"'), r.stdout)
        self.assertEqual(s3().get_object(Bucket=BUCKET, Key=key)["Body"].read(), data)

    def test_retries_exhausted(self):
        key = self.prefix + "never"
        p = self.proxy(",".join(["HEAD:503"] * 10))
        r = self.cli(p, "--max-retries", "3", "head", BUCKET, key)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn(b"errno=EAGAIN", r.stderr)
        self.assertIn(b"status=503", r.stderr)
        self.assertEqual(self.stats(r), (4, 3, 1))
        self.assertLess(r.elapsed, 20)

    def test_permanent_error_not_retried(self):
        p = self.proxy("")
        r = self.cli(p, "head", BUCKET, self.prefix + "missing")
        self.assertEqual(r.returncode, 3)
        self.assertIn(b"errno=ENOENT", r.stderr)
        self.assertEqual(self.stats(r)[:2], (1, 0))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    a, rest = ap.parse_known_args()
    CLI = os.path.abspath(a.cli)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
