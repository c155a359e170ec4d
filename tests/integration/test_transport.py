#!/usr/bin/python3
"""test_transport.py: TLS verification and server-side encryption / storage
class, through a real bucketfs mount.

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_transport.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args]

TlsTest starts its own s3rver over HTTPS (a throw-away CA and a certificate
for 127.0.0.1, made with openssl) and runs in the s3rver pass only.

EncryptionTest mounts four mappings of the test server's bucket through
faultproxy.py, which logs the encryption and storage-class headers of every
request: none, SSE-S3 (AES256), SSE-KMS with a key id, SSE-C with a key file.
Each mapping gets a small file (one PUT), a large one (multipart), a rename
(CopyObject), a chmod (copy onto itself), and a read after a remount with an
empty cache (HEAD, GET). The log must show the right headers on each request
kind. On RGW (started with the "testing" KMS backend and SSE-C allowed over
plain HTTP, see scripts/rgw-start.sh) boto3 also checks that the objects are
really encrypted: KMS key id reported, SSE-C object unreadable without the
key. s3rver ignores encryption headers, so there only the headers are checked.
"""
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import (BUCKET, MiB, SERVER, MountError, free_port, md5hex,  # noqa: E402
                        read_all)
from test_write import WriteTestCase  # noqa: E402
from test_s3_faults import Proxy  # noqa: E402


import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_cert(d):
    """A CA and a certificate for 127.0.0.1 signed by it, under d."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=bucketfs test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem", cwd=d)
    return os.path.join(d, "ca.pem"), os.path.join(d, "server.key"), os.path.join(d, "server.pem")


@unittest.skipUnless(SERVER == "s3rver", "runs in the s3rver pass (it starts its own HTTPS s3rver)")
class TlsTest(WriteTestCase):
    """Certificates are verified unless the user explicitly says otherwise."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = tempfile.mkdtemp(prefix="bfs-tls-")
        cls.ca, key, cert = make_ca_and_cert(cls.dir)
        cls.state = os.path.join(cls.dir, "s3rver")
        port = free_port()
        env = dict(os.environ, S3RVER_KEY=key, S3RVER_CERT=cert, S3RVER_BUCKETS=BUCKET)
        out = subprocess.run([os.path.join(TOP, "scripts", "s3rver.sh"), "start", cls.state,
                              str(port)], env=env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError("HTTPS s3rver did not start: " + out.stderr)
        cls.url = out.stdout.strip()
        assert cls.url == "https://127.0.0.1:%d" % port, cls.url
        cls.tls_s3 = boto3.client("s3", endpoint_url=cls.url, verify=cls.ca)
        cls.tls_s3.put_object(Bucket=BUCKET, Key="tls/hello.txt", Body=b"over TLS\n")

    @classmethod
    def tearDownClass(cls):
        subprocess.run([os.path.join(TOP, "scripts", "s3rver.sh"), "stop", cls.state],
                       capture_output=True, timeout=60)
        shutil.rmtree(cls.dir, True)

    def tls_mount(self, env_extra=None, **opts):
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        env.update(env_extra or {})
        opts["endpoint"] = self.url
        return self.mount(maps=[("t", "s3://%s/tls" % BUCKET)], opts=opts, env=env)

    def test_unknown_ca_refused(self):
        with self.assertRaises(MountError) as cm:
            with self.tls_mount():
                pass
        msg = str(cm.exception)
        self.assertRegex(msg, r"(?i)certificate|tls|ssl", "the error should say why: %s" % msg)
        tm.note("unknown CA: %s", msg.split("stderr:")[-1].strip()[:300])
        with self.assertRaises(MountError):
            with self.tls_mount(insecure="false"):
                pass

    def test_ca_file_accepted(self):
        with self.tls_mount(ca_file=self.ca) as m:
            self.assertEqual(read_all(m.path("t", "hello.txt")), b"over TLS\n")
            with open(m.path("t", "written.txt"), "wb") as f:
                f.write(b"back over TLS\n")
            m.unmount_wait()
        got = self.tls_s3.get_object(Bucket=BUCKET, Key="tls/written.txt")["Body"].read()
        self.assertEqual(got, b"back over TLS\n")

    def test_aws_ca_bundle_environment(self):
        with self.tls_mount(env_extra={"AWS_CA_BUNDLE": self.ca}) as m:
            self.assertEqual(read_all(m.path("t", "hello.txt")), b"over TLS\n")

    def test_insecure_must_be_explicit(self):
        with self.tls_mount(insecure="true") as m:
            self.assertEqual(read_all(m.path("t", "hello.txt")), b"over TLS\n")


CAPTURED = ("x-amz-server-side-encryption", "x-amz-copy-source-server-side-encryption",
            "x-amz-storage-class")


class EncryptionTest(WriteTestCase):

    def setUp(self):
        super().setUp()
        self.key = os.urandom(32)
        self.key_file = os.path.join(self.tmp, "sse-c.key")
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, base64.b64encode(self.key) + b"\n")
        os.close(fd)
        proxy = Proxy("", args=["--log-headers", ",".join(CAPTURED)])
        self.addCleanup(proxy.close)
        self.log = proxy.log
        self.endpoint = proxy.url
        self.storage_class = "STANDARD" if SERVER == "rgw" else "STANDARD_IA"

    def config(self):
        path = os.path.join(self.tmp, "bucketfs.conf")
        with open(path, "w") as f:
            # conflicts=overwrite: the large files in parts whatever the server
            # (Ceph RGW 16 ignores conditions on CompleteMultipartUpload, so
            # there a conditional upload goes as one PUT)
            f.write("[global]\nendpoint = %s\nconflicts = overwrite\n\n" % self.endpoint)
            f.write("[plain]\nbucket = %s\nprefix = %splain/\n\n" % (BUCKET, self.p))
            f.write("[s3]\nbucket = %s\nprefix = %ss3/\nsse = AES256\nstorage_class = %s\n\n"
                    % (BUCKET, self.p, self.storage_class))
            f.write("[kms]\nbucket = %s\nprefix = %skms/\nsse = aws:kms\n"
                    "sse_kms_key_id = testkey-1\n\n" % (BUCKET, self.p))
            f.write("[cust]\nbucket = %s\nprefix = %scust/\nsse = sse-c\nsse_c_key_file = %s\n"
                    % (BUCKET, self.p, self.key_file))
        return path

    def requests(self):
        """[(method, path, query, {header: value})] from the proxy log."""
        out = []
        with open(self.log) as f:
            lines = f.read().splitlines()
        for line in lines:
            m = re.match(r"HEADERS (\S+) (\S+) ?(.*)$", line)
            if not m:
                continue
            path, _, query = m.group(2).partition("?")
            hdrs = dict(h.split("=", 1) for h in m.group(3).split("; ") if "=" in h)
            out.append((m.group(1), path, query, hdrs))
        return out

    def of(self, reqs, mapping, method, pred=lambda path, query: True):
        part = "/%s/%s%s/" % (BUCKET, self.p, mapping)
        return [h for meth, path, query, h in reqs
                if meth == method and part in path and pred(path, query)]

    def test_headers_on_every_request_kind(self):
        small = b"id,value\n1,2\n"
        big = os.urandom(20 * MiB)  # multipart (above the 16 MiB single-PUT limit)
        conf = self.config()
        with self.mount(maps=None, args=["-c", conf]) as m:
            for name in ("plain", "s3", "kms", "cust"):
                with open(m.path(name, "small.csv"), "wb") as f:
                    f.write(small)
                with open(m.path(name, "big.bin"), "wb") as f:
                    f.write(big)
            m.unmount_wait()
        with self.mount(maps=None, args=["-c", conf]) as m:
            for name in ("plain", "s3", "kms", "cust"):
                # Ceph RGW 16 cannot CopyObject an encrypted source
                # (NotImplemented): rename then fails with EXDEV, and
                # shutil.move, like mv, copies through the mount instead
                shutil.move(m.path(name, "small.csv"), m.path(name, "moved.csv"))
                if not (SERVER == "rgw" and name in ("kms", "cust")):
                    os.chmod(m.path(name, "moved.csv"), 0o600)
        with self.mount(maps=None, args=["-c", conf]) as m:  # empty cache: HEAD + GET
            for name in ("plain", "s3", "kms", "cust"):
                self.assertEqual(read_all(m.path(name, "moved.csv")), small, name)
                self.assertEqual(md5hex(read_all(m.path(name, "big.bin"))), md5hex(big), name)
        reqs = self.requests()
        tm.note("%d requests logged by the proxy", len(reqs))
        key_b64 = base64.b64encode(self.key).decode()
        key_md5 = base64.b64encode(hashlib.md5(self.key).digest()).decode()
        cust = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
                "x-amz-server-side-encryption-customer-key": key_b64,
                "x-amz-server-side-encryption-customer-key-md5": key_md5}
        cust_src = {"x-amz-copy-source-" + k[len("x-amz-"):]: v for k, v in cust.items()}
        want_create = {
            "plain": {},
            "s3": {"x-amz-server-side-encryption": "AES256",
                   "x-amz-storage-class": self.storage_class},
            "kms": {"x-amz-server-side-encryption": "aws:kms",
                    "x-amz-server-side-encryption-aws-kms-key-id": "testkey-1"},
            "cust": cust,
        }
        is_put = lambda path, q: q == ""  # noqa: E731  (PutObject, CopyObject)
        is_create = lambda path, q: q.startswith("uploads")  # noqa: E731
        is_part = lambda path, q: "partNumber=" in q  # noqa: E731
        is_complete = lambda path, q: q.startswith("uploadId=")  # noqa: E731
        for name, want in want_create.items():
            with self.subTest(mapping=name):
                kinds = {"PUT object/copy": self.of(reqs, name, "PUT", is_put),
                         "CreateMultipartUpload": self.of(reqs, name, "POST", is_create)}
                for kind, seen in kinds.items():
                    self.assertTrue(seen, "no %s request seen for [%s]" % (kind, name))
                    for h in seen:
                        self.assertEqual(h.get("x-amz-storage-class"),
                                         want.get("x-amz-storage-class"), kind)
                        for k, v in want.items():
                            self.assertEqual(h.get(k), v, "%s of [%s]: %s" % (kind, name, k))
                        if name != "cust":
                            self.assertFalse([k for k in h if "customer" in k], kind)
                reads = {"GET": self.of(reqs, name, "GET", lambda p, q: "list-type" not in q),
                         "HEAD": self.of(reqs, name, "HEAD"),
                         "UploadPart": self.of(reqs, name, "PUT", is_part),
                         "CompleteMultipartUpload": self.of(reqs, name, "POST", is_complete)}
                for kind, seen in reads.items():
                    self.assertTrue(seen, "no %s request seen for [%s]" % (kind, name))
                    for h in seen:
                        self.assertEqual({k: v for k, v in h.items() if "customer" in k},
                                         cust if name == "cust" else {}, "%s of [%s]" % (kind, name))
                        self.assertNotIn("x-amz-server-side-encryption", h, kind)
                        self.assertNotIn("x-amz-storage-class", h, kind)
                copies = [h for h in self.of(reqs, name, "PUT", is_put)
                          if any(k.startswith("x-amz-copy-source-") for k in h)]
                if name == "cust":
                    self.assertTrue(copies, "CopyObject of [cust] without the source key")
                    for h in copies:
                        for k, v in cust_src.items():
                            self.assertEqual(h.get(k), v, "CopyObject of [cust]: " + k)
                else:
                    self.assertEqual(copies, [], "copy-source SSE-C headers on [%s]" % name)
        if SERVER != "rgw":
            return  # s3rver stores the objects unencrypted
        h = self.s3.head_object(Bucket=BUCKET, Key=self.p + "kms/big.bin")
        self.assertEqual((h.get("ServerSideEncryption"), h.get("SSEKMSKeyId")),
                         ("aws:kms", "testkey-1"))
        for k in ("cust/moved.csv", "cust/big.bin"):
            with self.assertRaises(ClientError, msg="%s readable without the SSE-C key" % k):
                self.s3.get_object(Bucket=BUCKET, Key=self.p + k)
            got = self.s3.get_object(Bucket=BUCKET, Key=self.p + k, SSECustomerAlgorithm="AES256",
                                     SSECustomerKey=self.key)["Body"].read()
            self.assertEqual(len(got), len(small) if k.endswith(".csv") else len(big), k)

    def test_bad_encryption_settings(self):
        cases = [
            ("sse = sse-c\n", "needs sse_c_key_file"),
            ("sse_kms_key_id = k1\n", "needs sse = aws:kms"),
            ("sse = rot13\n", "sse"),
            ("storage_class = cold storage\n", "storage_class"),
            ("sse = sse-c\nsse_c_key_file = %s\n" % os.path.join(self.tmp, "missing.key"),
             "missing.key"),
        ]
        short = os.path.join(self.tmp, "short.key")
        with open(short, "w") as f:
            f.write("dG9vIHNob3J0\n")
        os.chmod(short, 0o600)
        cases.append(("sse = sse-c\nsse_c_key_file = %s\n" % short, "256-bit"))
        loose = os.path.join(self.tmp, "loose.key")
        with open(loose, "wb") as f:
            f.write(base64.b64encode(os.urandom(32)))
        os.chmod(loose, 0o644)
        cases.append(("sse = sse-c\nsse_c_key_file = %s\n" % loose, "group or others"))
        for body, want in cases:
            with self.subTest(config=body):
                path = os.path.join(self.tmp, "bad.conf")
                with open(path, "w") as f:
                    f.write("[global]\nendpoint = %s\n[m]\nbucket = %s\n%s"
                            % (self.endpoint, BUCKET, body))
                with self.assertRaises(MountError) as cm:
                    with self.mount(maps=None, args=["-c", path]):
                        pass
                self.assertIn(want, str(cm.exception))
                self.assertNotIn(base64.b64encode(self.key).decode(), str(cm.exception))


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--bucketfs", required=True)
    ap.add_argument("--cli", required=True)
    a, rest = ap.parse_known_args()
    tm.BUCKETFS = os.path.abspath(a.bucketfs)
    tm.CLI = os.path.abspath(a.cli)
    print("bucketfs %s against %s at %s" % (tm.BUCKETFS, SERVER, os.environ.get("AWS_ENDPOINT_URL")))
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
