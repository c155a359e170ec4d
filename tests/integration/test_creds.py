#!/usr/bin/python3
"""test_creds.py: the credential chain's services, renewal of temporary
credentials, anonymous access and region discovery, through a real bucketfs
mount and bfs-s3 against the real test server.

    scripts/with-server.sh s3rver /usr/bin/python3 tests/integration/test_creds.py \\
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Refresh]

The services S3 is not, and that cannot be reached here, are played by small
HTTP servers in this process: STS (AssumeRoleWithWebIdentity), the ECS
container credentials endpoint and EC2 instance metadata (IMDSv2: it refuses
every request without a session token). They hand out the test server's
access key with short expiries, a new session token each time and, on RGW
(which checks signatures), a new real key pair each time (made with
radosgw-admin), and they record every request. S3 traffic goes through a
recording proxy (S3Spy) in front of the real server, which notes which keys,
token and signing region each request used; for the region tests it plays
AWS's answers for buckets that live in another region (x-amz-bucket-region on
HeadBucket, 400 to a request signed for the wrong region). Nothing here ever
contacts 169.254.169.254 or 169.254.170.2 of the host: the tests that use the
default addresses run in a private network namespace (unshare -n).

Mounts run in the foreground with -d, so that every line bucketfs logs is
read and checked for secrets.
"""
import argparse
import contextlib
import errno
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import test_mount as tm  # noqa: E402  (shared helpers, not its tests)
from test_mount import BUCKET, MiB, SERVER, md5hex, mounted  # noqa: E402

KiB = 1024
CREDS_PATH = "/latest/meta-data/iam/security-credentials/"
ROLE_ARN = "arn:aws:iam::123456789012:role/bfs-test-role"
ENV_DROP = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
            "AWS_ENDPOINT_URL_STS", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
            "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ------------------------------------------------------------------ key pool
RGW_KEYS = []     # access keys this run made with radosgw-admin (removed at the end)
KEY_POOL = []


def rgw_admin(*args):
    conf = os.path.join(os.environ["TEST_SERVER_DIR"], "ceph.conf")
    r = subprocess.run(["radosgw-admin", "-c", conf, "-n", "client.admin", *args],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("radosgw-admin %s failed: %s" % (" ".join(args), r.stderr[-500:]))
    return r.stdout


def key_pool():
    """Key pairs the fake services hand out in turn. On RGW: the test user's
    own plus three made for this run (real keys, checked by the server). On
    s3rver (which checks the access key only): its key with made-up secrets,
    so that a leaked secret is recognisable in output."""
    ak = os.environ["AWS_ACCESS_KEY_ID"]
    if KEY_POOL:
        return KEY_POOL
    if SERVER != "rgw":
        KEY_POOL.extend((ak, "fake-secret-%d-%s" % (i, uuid.uuid4().hex)) for i in range(4))
        return KEY_POOL
    pool = KEY_POOL
    pool.append((ak, os.environ["AWS_SECRET_ACCESS_KEY"]))
    while len(pool) < 4:
        out = json.loads(rgw_admin("key", "create", "--uid", ak, "--key-type", "s3",
                                   "--gen-access-key", "--gen-secret"))
        have = {p[0] for p in pool}
        for k in out["keys"]:
            if k["user"] == ak and k["access_key"] not in have and k["access_key"] not in RGW_KEYS:
                RGW_KEYS.append(k["access_key"])
                pool.append((k["access_key"], k["secret_key"]))
                break
    return pool


# ------------------------------------------------------------ fake services
class Issuer:
    """Hands out credentials: the next pair of the pool, a fresh session
    token, an expiry lifetime seconds away (whole seconds, as the services
    write them). Can be told to fail requests."""

    def __init__(self, pool, lifetime=3600):
        self.pool = pool
        self.lifetime = lifetime
        self.lock = threading.Lock()
        self.issued = []      # dicts: t, ak, sk, token, exp
        self.failures = []    # times of refused credential requests
        self.fail_next = 0    # refuse this many requests, then hand out again
        self.fail_all = False

    def issue(self):
        with self.lock:
            now = time.time()
            if self.fail_all or self.fail_next > 0:
                self.fail_next = max(0, self.fail_next - 1)
                self.failures.append(now)
                return None
            ak, sk = self.pool[len(self.issued) % len(self.pool)]
            rec = {"t": now, "ak": ak, "sk": sk, "exp": int(now + self.lifetime),
                   "token": "session-%d-%s" % (len(self.issued), uuid.uuid4().hex)}
            self.issued.append(rec)
            return rec

    def count(self):
        with self.lock:
            return len(self.issued)

    def by_token(self):
        with self.lock:
            return {r["token"]: r for r in self.issued}

    def secrets(self):
        with self.lock:
            return [r["sk"] for r in self.issued] + [r["token"] for r in self.issued]


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, entry, status, body=b"", ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        entry["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        entry = {"t": time.time(), "method": self.command, "path": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                 "status": None}
        self.server.record(entry)
        getattr(self, "serve_" + self.server.kind)(entry)

    do_GET = do_PUT = do_POST = do_DELETE = handle_any

    # EC2 instance metadata, IMDSv2 only
    def serve_imds(self, e):
        s, h = self.server, e["headers"]
        if e["method"] == "PUT" and e["path"] == "/latest/api/token":
            ttl = h.get("x-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self.reply(e, 400, "missing or bad X-aws-ec2-metadata-token-ttl-seconds")
            tok = "imds-session-" + uuid.uuid4().hex
            s.tokens.add(tok)
            return self.reply(e, 200, tok)
        if h.get("x-aws-ec2-metadata-token") not in s.tokens:
            s.refused += 1
            return self.reply(e, 401)
        if e["method"] != "GET":
            return self.reply(e, 405)
        if e["path"] == CREDS_PATH:
            if s.cfg.get("no_role"):
                return self.reply(e, 404)
            return self.reply(e, 200, "bfs-role")
        if e["path"] != CREDS_PATH + "bfs-role":
            return self.reply(e, 404)
        if s.cfg.get("malformed"):
            return self.reply(e, 200, '{"Code": "Success", "AccessKeyId": "AK', "text/plain")
        rec = s.issuer.issue()
        if rec is None:
            return self.reply(e, 500, "")
        self.reply(e, 200, json.dumps({
            "Code": "Success", "LastUpdated": iso(rec["t"]), "Type": "AWS-HMAC",
            "AccessKeyId": rec["ak"], "SecretAccessKey": rec["sk"], "Token": rec["token"],
            "Expiration": iso(rec["exp"])}, indent=2), "text/plain")

    # the ECS container credentials endpoint
    def serve_ecs(self, e):
        s = self.server
        if e["method"] != "GET" or e["path"] != s.cfg["path"]:
            return self.reply(e, 404)
        want = s.cfg.get("auth")
        if want is not None and e["headers"].get("authorization") != want:
            s.refused += 1
            return self.reply(e, 401, json.dumps({"code": "AccessDenied",
                                                  "message": "bad authorization"}))
        rec = s.issuer.issue()
        if rec is None:
            return self.reply(e, 500, json.dumps({"code": "InternalError"}))
        self.reply(e, 200, json.dumps({
            "RoleArn": ROLE_ARN, "AccessKeyId": rec["ak"], "SecretAccessKey": rec["sk"],
            "Token": rec["token"], "Expiration": iso(rec["exp"])}), "application/json")

    # STS AssumeRoleWithWebIdentity
    def sts_error(self, e, status, code, msg):
        self.reply(e, status, '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                   "<Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error>"
                   "<RequestId>fake-sts</RequestId></ErrorResponse>" % (code, msg), "text/xml")

    def serve_sts(self, e):
        s = self.server
        if e["method"] != "POST" or e["path"] != "/":
            return self.sts_error(e, 405, "InvalidAction", "POST / only")
        try:
            form = urllib.parse.parse_qs(e["body"].decode(), keep_blank_values=True,
                                         strict_parsing=True)
        except ValueError:
            return self.sts_error(e, 400, "MalformedQueryString", "bad form")
        one = {k: v[0] for k, v in form.items() if len(v) == 1}
        e["form"] = one
        if one.get("Action") != "AssumeRoleWithWebIdentity" or one.get("Version") != "2011-06-15":
            return self.sts_error(e, 400, "InvalidAction", "unknown action")
        if one.get("RoleArn") != s.cfg["role"]:
            return self.sts_error(e, 403, "AccessDenied", "Not authorized to perform "
                                  "sts:AssumeRoleWithWebIdentity")
        if one.get("WebIdentityToken") != s.cfg["token"]:
            return self.sts_error(e, 400, "InvalidIdentityToken", "Token is not valid")
        rec = s.issuer.issue()
        if rec is None:
            return self.sts_error(e, 503, "ServiceUnavailable", "try again")
        self.reply(e, 200, (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            "<SessionToken>%s</SessionToken><SecretAccessKey>%s</SecretAccessKey>"
            "<Expiration>%s</Expiration><AccessKeyId>%s</AccessKeyId></Credentials>"
            "<SubjectFromWebIdentityToken>system:sa</SubjectFromWebIdentityToken>"
            "</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>fake</RequestId>"
            "</ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
            % (rec["token"], rec["sk"], iso(rec["exp"]), rec["ak"])), "text/xml")


class FakeService(ThreadingHTTPServer):
    """One fake credential service (kind: imds, ecs or sts) on a thread."""
    daemon_threads = True

    def __init__(self, kind, issuer, bind=("127.0.0.1", 0), **cfg):
        super().__init__(bind, FakeHandler)
        self.kind, self.issuer, self.cfg = kind, issuer, cfg
        self.lock = threading.Lock()
        self.log = []
        self.tokens = set()     # IMDS session tokens handed out
        self.refused = 0        # requests without (the right) token
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://%s:%d" % self.server_address[:2]

    def record(self, entry):
        with self.lock:
            self.log.append(entry)

    def entries(self):
        with self.lock:
            return list(self.log)

    def close(self):
        self.shutdown()
        self.server_close()


class Staller:
    """Accepts connections and never answers (a hung metadata service)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.conns = []
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        with contextlib.suppress(OSError):
            while True:
                self.conns.append(self.sock.accept()[0])

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


# --------------------------------------------------------------- S3 proxy
AUTH_RE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/s3/aws4_request")


class SpyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def handle_any(self):
        s = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        auth = self.headers.get("Authorization")
        m = AUTH_RE.search(auth or "")
        parts = urllib.parse.urlsplit(self.path).path.split("/", 2)
        bucket = parts[1] if len(parts) > 1 and parts[1] else None
        key = parts[2] if len(parts) > 2 and parts[2] else None
        rec = {"t": time.time(), "method": self.command, "path": self.path, "bucket": bucket,
               "key": key, "auth": auth is not None, "ak": m.group(1) if m else None,
               "region": m.group(2) if m else None,
               "token": self.headers.get("x-amz-security-token"), "status": None}
        s.record(rec)
        want = s.regions.get(bucket)
        head_bucket = self.command == "HEAD" and bucket and not key
        if want and m and m.group(2) != want:
            # what AWS answers to a request signed for another region
            extra = [] if head_bucket and not s.head_header else [("x-amz-bucket-region", want)]
            doc = ("<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region '%s' "
                   "is wrong; expecting '%s'</Message><Region>%s</Region><RequestId>spy"
                   "</RequestId></Error>" % (m.group(2), want, want)).encode()
            return self.answer(rec, 400, "Bad Request", extra, b"" if head_bucket else doc)
        extra = [("x-amz-bucket-region", want)] if head_bucket and want and s.head_header else []
        self.forward(rec, body, extra)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

    def answer(self, rec, status, reason, headers, body):
        rec["status"] = status
        self.send_response_only(status, reason)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def forward(self, rec, body, extra):
        up = urllib.parse.urlsplit(self.server.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                conn.putheader(k, v)
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            rec["status"] = resp.status
            hdrs = [(k, v) for k, v in resp.getheaders()
                    if k.lower() not in ("connection", "transfer-encoding", "keep-alive")]
            length = resp.getheader("Content-Length")
            data = None
            if self.command != "HEAD" and length is None:
                data = resp.read()
                hdrs = [(k, v) for k, v in hdrs if k.lower() != "content-length"]
                hdrs.append(("Content-Length", str(len(data))))
            self.send_response_only(resp.status, resp.reason)
            for k, v in hdrs + extra:
                self.send_header(k, v)
            self.end_headers()
            if self.command == "HEAD":
                return
            if data is not None:
                self.wfile.write(data)
                return
            while True:
                chunk = resp.read(256 * KiB)
                if not chunk:
                    break
                self.wfile.write(chunk)
        finally:
            conn.close()


class S3Spy(ThreadingHTTPServer):
    """A recording proxy in front of the real S3 server. regions: bucket ->
    region it plays "lives in" (AWS's answers); head_header: whether
    HeadBucket names that region."""
    daemon_threads = True

    def __init__(self, regions=None, head_header=True):
        super().__init__(("127.0.0.1", 0), SpyHandler)
        self.upstream = os.environ["AWS_ENDPOINT_URL"]
        self.regions = dict(regions or {})
        self.head_header = head_header
        self.lock = threading.Lock()
        self.log = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def record(self, rec):
        with self.lock:
            self.log.append(rec)

    def entries(self, bucket=None):
        with self.lock:
            return [r for r in self.log if bucket is None or r["bucket"] == bucket]

    def close(self):
        self.shutdown()
        self.server_close()


# ------------------------------------------------------------ foreground mount
class FgMount:
    """bucketfs -d (foreground, debug log) on a fresh mountpoint; the log is
    kept in self.log after unmounting."""

    def __init__(self, maps, env, opts=None, watchdog=240):
        self.maps, self.env = maps, env
        self.opts = dict(opts or {})
        self.mnt = tempfile.mkdtemp(prefix="bfs-mnt-")
        self.cache = tempfile.mkdtemp(prefix="bfs-cache-")
        self.opts.setdefault("cache_dir", self.cache)
        fd, self.errname = tempfile.mkstemp(prefix="bfs-log-")
        os.close(fd)
        self.proc = None
        self.log = ""
        self.watchdog = watchdog
        self.timer = None
        self.closed = False

    def command(self):
        cmd = [tm.BUCKETFS, "-d"]
        for name, url in self.maps:
            cmd += ["--map", "%s=%s" % (name, url)]
        cmd += ["-o", ",".join("%s=%s" % kv for kv in self.opts.items()), self.mnt]
        return cmd

    def __enter__(self):
        with open(self.errname, "wb") as errf:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=errf,
                                         stderr=errf, env=self.env)
        deadline = time.monotonic() + 60
        while not mounted(self.mnt) and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not mounted(self.mnt):
            self.close()
            raise tm.MountError("bucketfs did not mount (exit %s)\n$ %s\nlog:\n%s"
                                % (self.proc.returncode, shlex.join(self.command()),
                                   self.log[-4000:]))
        self.timer = threading.Timer(self.watchdog, self.kill)
        self.timer.daemon = True
        self.timer.start()
        return self

    def kill(self):
        print("\n*** watchdog: killing bucketfs on %s" % self.mnt, file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def path(self, *p):
        return os.path.join(self.mnt, *p)

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.timer:
            self.timer.cancel()
        if mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True, timeout=60)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True, timeout=30)
        with open(self.errname, encoding="utf-8", errors="replace") as f:
            self.log = f.read()
        os.unlink(self.errname)
        with contextlib.suppress(OSError):
            os.rmdir(self.mnt)
        shutil.rmtree(self.cache, ignore_errors=True)

    def __exit__(self, *exc):
        self.close()
        return False


def slow_read(path, chunk, pause):
    """Reads path chunk bytes at a time with a pause after each; returns
    (md5, length, seconds)."""
    import hashlib
    h, n, t0 = hashlib.md5(), 0, time.monotonic()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
            n += len(b)
            time.sleep(pause)
    return h.hexdigest(), n, time.monotonic() - t0


# ------------------------------------------------------------------- tests
class CredsTestCase(tm.MountTestCase):
    """Runs with no credentials in the environment and an empty HOME, so
    that only what a test sets up can be found."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pool = key_pool()

    def setUp(self):
        super().setUp()
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.home)
        self.services = []
        self.secrets = [p[1] for p in self.pool if p[1] != p[0]]

    def tearDown(self):
        for s in self.services:
            s.close()
        super().tearDown()

    def base_env(self, **extra):
        env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
        env["HOME"] = self.home
        env["AWS_EC2_METADATA_DISABLED"] = "true"  # never the host's own
        env.update(extra)
        return env

    def service(self, kind, lifetime=3600, **cfg):
        svc = FakeService(kind, Issuer(self.pool, lifetime), **cfg)
        self.services.append(svc)
        return svc

    def spy(self, **kw):
        s = S3Spy(**kw)
        self.services.append(s)
        return s

    def imds_env(self, svc, **extra):
        env = self.base_env()
        del env["AWS_EC2_METADATA_DISABLED"]
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = svc.url
        env.update(extra)
        return env

    def ecs_env(self, svc, token="ecs-auth-" + uuid.uuid4().hex, **extra):
        return self.base_env(AWS_CONTAINER_CREDENTIALS_FULL_URI=svc.url + svc.cfg["path"],
                             AWS_CONTAINER_AUTHORIZATION_TOKEN=token, **extra)

    def sts_service(self, lifetime=3600):
        tok = os.path.join(self.tmp, "wi-token")
        with open(tok, "w") as f:
            token = "eyJhbGciOiJSUzI1NiJ9.wi-token-%s.sig" % uuid.uuid4().hex
            f.write(token + "\n")
        self.secrets.append(token)
        return self.service("sts", lifetime, role=ROLE_ARN, token_file=tok, token=token)

    def sts_env(self, svc, **extra):
        return self.base_env(AWS_WEB_IDENTITY_TOKEN_FILE=svc.cfg["token_file"],
                             AWS_ROLE_ARN=ROLE_ARN, AWS_ROLE_SESSION_NAME="bfs-test-session",
                             AWS_ENDPOINT_URL_STS=svc.url, **extra)

    def cli(self, *args, env, timeout=60):
        t0 = time.monotonic()
        r = subprocess.run([tm.CLI, *map(str, args)], capture_output=True, text=True, env=env,
                           timeout=timeout)
        r.elapsed = time.monotonic() - t0
        self.assertNoSecrets(r.stdout + r.stderr, "bfs-s3 %s" % " ".join(map(str, args)))
        return r

    def creds(self, env, timeout=60):
        r = self.cli("creds", env=env, timeout=timeout)
        self.assertEqual(r.returncode, 0, "bfs-s3 creds failed: %s" % r.stderr)
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def all_secrets(self):
        out = list(self.secrets)
        for s in self.services:
            if isinstance(s, FakeService):
                out += s.issuer.secrets() + list(s.tokens)
                if s.cfg.get("auth"):
                    out.append(s.cfg["auth"])
        return [x for x in out if x and len(x) >= 8]

    def assertNoSecrets(self, text, what):
        for secret in self.all_secrets():
            if secret in text:
                self.fail("%s printed a secret (%s...): %s" % (what, secret[:6], text[-2000:]))

    def mount(self, maps, env, **opts):
        m = FgMount(maps, env, opts)
        self.addCleanup(m.close)
        return m

    def check_log(self, m):
        """No secret in what the mount logged, no sanitizer report, a clean exit."""
        self.assertNoSecrets(m.log, "the bucketfs log")
        self.assertNotRegex(m.log, r"AddressSanitizer|LeakSanitizer|runtime error:",
                            "sanitizer report in the bucketfs log")
        self.assertEqual(m.proc.returncode, 0, "bucketfs exit status; log:\n" + m.log[-3000:])

    def assertSignedWithIssued(self, spy, svc, slack=1.0, what="request"):
        """Every signed request to S3 used a key and token svc handed out,
        before they expired."""
        issued = svc.issuer.by_token()
        used = set()
        for r in spy.entries():
            if not r["auth"]:
                continue
            rec = issued.get(r["token"])
            self.assertIsNotNone(rec, "%s %s %s carried a token the service never issued: %r"
                                 % (what, r["method"], r["path"], (r["token"] or "")[:12]))
            self.assertEqual(r["ak"], rec["ak"], "access key and token of different issues")
            self.assertLessEqual(r["t"], rec["exp"] + slack,
                                 "%s %s %s used keys %.1f s after they expired"
                                 % (what, r["method"], r["path"], r["t"] - rec["exp"]))
            used.add(r["token"])
        return used


class ProviderTest(CredsTestCase):

    def test_web_identity(self):
        sts = self.sts_service()
        imds = self.service("imds")
        spy = self.spy()
        env = self.sts_env(sts, AWS_ENDPOINT_URL=spy.url,
                           AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
        del env["AWS_EC2_METADATA_DISABLED"]
        d = self.creds(env)
        self.assertEqual(d.get("source"), "web-identity")
        self.assertEqual(d.get("access_key"), self.pool[0][0])
        self.assertAlmostEqual(int(d["expires"]), sts.issuer.issued[0]["exp"], delta=1)
        (req,) = sts.entries()
        self.assertEqual(req["method"], "POST")
        self.assertNotIn("authorization", req["headers"], "STS web identity calls are unsigned")
        self.assertEqual(req["headers"].get("content-type"), "application/x-www-form-urlencoded")
        with open(sts.cfg["token_file"]) as f:
            token = f.read().strip()
        self.assertEqual(req["form"], {"Action": "AssumeRoleWithWebIdentity",
                                       "Version": "2011-06-15", "RoleArn": ROLE_ARN,
                                       "RoleSessionName": "bfs-test-session",
                                       "WebIdentityToken": token})
        self.assertEqual(imds.entries(), [], "the chain stops at web identity")
        # through a mount: read and write
        self.put("wi/in.txt", b"read with web identity\n")
        with self.mount([("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))], env) as m:
            with open(m.path("t", "wi", "in.txt"), "rb") as f:
                self.assertEqual(f.read(), b"read with web identity\n")
            with open(m.path("t", "wi", "out.txt"), "wb") as f:
                f.write(b"written with web identity\n")
        self.check_log(m)
        got = self.s3.get_object(Bucket=BUCKET, Key=self.p + "wi/out.txt")["Body"].read()
        self.assertEqual(got, b"written with web identity\n")
        used = self.assertSignedWithIssued(spy, sts)
        self.assertTrue(used)
        self.assertTrue(all(r["auth"] for r in spy.entries()))

    def test_ecs_full_uri(self):
        ecs = self.service("ecs", path="/v2/credentials/" + uuid.uuid4().hex,
                           auth="ecs-auth-" + uuid.uuid4().hex)
        spy = self.spy()
        env = self.ecs_env(ecs, token=ecs.cfg["auth"], AWS_ENDPOINT_URL=spy.url)
        d = self.creds(env)
        self.assertEqual((d.get("source"), d.get("access_key")), ("ecs", self.pool[0][0]))
        self.assertEqual(ecs.entries()[0]["headers"].get("authorization"), ecs.cfg["auth"])
        # the token file wins over the variable (it is the one EKS rotates)
        tokfile = os.path.join(self.tmp, "ecs-token")
        with open(tokfile, "w") as f:
            f.write(ecs.cfg["auth"] + "\n")
        env2 = dict(env, AWS_CONTAINER_AUTHORIZATION_TOKEN="wrong-" + uuid.uuid4().hex,
                    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=tokfile)
        self.assertEqual(self.creds(env2)["source"], "ecs")
        self.assertEqual(ecs.refused, 0)
        self.put("ecs/in.bin", b"\x01" * 5000)
        with self.mount([("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))], env2) as m:
            with open(m.path("t", "ecs", "in.bin"), "rb") as f:
                self.assertEqual(f.read(), b"\x01" * 5000)
        self.check_log(m)
        self.assertSignedWithIssued(spy, ecs)
        # a wrong token: refused, said so, not shown
        r = self.cli("creds", env=dict(env, AWS_CONTAINER_AUTHORIZATION_TOKEN="wrong-tok-value"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("HTTP 401", r.stderr)
        self.assertIn(ecs.url, r.stderr)
        self.assertNotIn("wrong-tok-value", r.stderr)

    def test_imds_v2(self):
        imds = self.service("imds")
        spy = self.spy()
        env = self.imds_env(imds, AWS_ENDPOINT_URL=spy.url)
        d = self.creds(env)
        self.assertEqual((d.get("source"), d.get("access_key")), ("imds", self.pool[0][0]))
        log = imds.entries()
        self.assertEqual([(e["method"], e["path"]) for e in log],
                         [("PUT", "/latest/api/token"), ("GET", CREDS_PATH),
                          ("GET", CREDS_PATH + "bfs-role")])
        self.assertEqual(log[0]["headers"].get("x-aws-ec2-metadata-token-ttl-seconds"), "21600")
        for e in log[1:]:
            self.assertIn(e["headers"].get("x-aws-ec2-metadata-token"), imds.tokens)
        self.assertEqual(imds.refused, 0)
        # the fake really is IMDSv2-only: a v1 request is refused
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(imds.url + CREDS_PATH + "bfs-role", timeout=10)
        self.assertEqual(cm.exception.code, 401)
        imds.refused = 0
        self.put("imds/a.txt", b"via instance metadata")
        with self.mount([("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))], env) as m:
            with open(m.path("t", "imds", "a.txt"), "rb") as f:
                self.assertEqual(f.read(), b"via instance metadata")
        self.check_log(m)
        self.assertEqual(imds.refused, 0, "bucketfs sent a metadata request without the token")
        self.assertSignedWithIssued(spy, imds)

    def test_chain_order(self):
        """passwd file, then web identity, then ECS, then EC2; each only when
        the earlier ones are absent."""
        sts = self.sts_service()
        ecs = self.service("ecs", path="/creds")
        imds = self.service("imds")
        env = self.sts_env(sts, AWS_CONTAINER_CREDENTIALS_FULL_URI=ecs.url + "/creds",
                           AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
        del env["AWS_EC2_METADATA_DISABLED"]
        pw = os.path.join(self.home, ".passwd-s3fs")
        with open(pw, "w") as f:
            f.write("%s:%s\n" % self.pool[0])
        os.chmod(pw, 0o600)
        counts = lambda: (len(sts.entries()), len(ecs.entries()), len(imds.entries()))  # noqa
        self.assertEqual(self.creds(env)["source"], "passwd")
        self.assertEqual(counts(), (0, 0, 0))
        os.unlink(pw)
        self.assertEqual(self.creds(env)["source"], "web-identity")
        self.assertEqual(counts(), (1, 0, 0))
        for k in ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
            del env[k]
        self.assertEqual(self.creds(env)["source"], "ecs")
        self.assertEqual(counts(), (1, 1, 0))
        del env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        self.assertEqual(self.creds(env)["source"], "imds")
        self.assertEqual(counts(), (1, 1, 3))
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        r = self.cli("creds", env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no credentials found", r.stderr)
        self.assertIn("AWS_EC2_METADATA_DISABLED", r.stderr)
        self.assertLess(r.elapsed, 5)
        self.assertEqual(counts(), (1, 1, 3))

    def run_in_netns(self, kind, addr, env, path="/"):
        """bfs-s3 creds in a private network namespace where a fake service
        listens on the default link-local address: the default endpoint is
        used, and the host's is never touched."""
        if not shutil.which("unshare") or not shutil.which("ip"):
            self.fail("unshare and ip (util-linux, iproute2) are needed")
        log = os.path.join(self.tmp, "netns-log-" + kind)
        ready = os.path.join(self.tmp, "netns-ready-" + kind)
        keys = "%s:%s" % self.pool[0]
        script = ("ip link set lo up && ip addr add %s/32 dev lo || exit 90\n"
                  "%s %s --serve %s --bind %s --path %s --keys %s --log %s --ready %s &\n"
                  "srv=$!\n"
                  "for i in $(seq 100); do [ -e %s ] && break; sleep 0.1; done\n"
                  "%s creds; rc=$?\nkill $srv; wait $srv 2>/dev/null; exit $rc\n"
                  % (addr, sys.executable, shlex.quote(os.path.abspath(__file__)), kind, addr,
                     shlex.quote(path), shlex.quote(keys), log, ready, ready, tm.CLI))
        r = subprocess.run(["unshare", "-n", "--", "sh", "-c", script], capture_output=True,
                           text=True, env=env, timeout=60)
        self.assertNotEqual(r.returncode, 90, "could not set up the namespace: " + r.stderr)
        self.assertEqual(r.returncode, 0, "bfs-s3 creds in the namespace: %s" % r.stderr)
        self.assertNotIn(self.pool[0][1], r.stdout + r.stderr)
        with open(log) as f:
            reqs = [json.loads(line) for line in f]
        return dict(x.split("=", 1) for x in r.stdout.splitlines() if "=" in x), reqs

    def test_default_addresses(self):
        rel = "/v2/credentials/" + uuid.uuid4().hex
        d, reqs = self.run_in_netns("ecs", "169.254.170.2",
                                    self.base_env(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=rel),
                                    path=rel)
        self.assertEqual((d.get("source"), d.get("access_key")), ("ecs", self.pool[0][0]))
        self.assertEqual([(q["method"], q["path"]) for q in reqs], [("GET", rel)])
        env = self.base_env()
        del env["AWS_EC2_METADATA_DISABLED"]
        d, reqs = self.run_in_netns("imds", "169.254.169.254", env)
        self.assertEqual((d.get("source"), d.get("access_key")), ("imds", self.pool[0][0]))
        self.assertEqual([q["path"] for q in reqs],
                         ["/latest/api/token", CREDS_PATH, CREDS_PATH + "bfs-role"])


class FailureTest(CredsTestCase):
    """A provider that fails says what and where, quickly, and never prints
    a secret; a mount with it fails the same way."""

    def fails(self, env, *want, limit=15):
        r = self.cli("creds", env=env, timeout=limit + 30)
        self.assertEqual(r.returncode, 2, "bfs-s3 creds should have failed: %s %s"
                         % (r.stdout, r.stderr))
        self.assertLess(r.elapsed, limit, "failing took %.1f s: %s" % (r.elapsed, r.stderr))
        for w in want:
            self.assertIn(w, r.stderr)
        return r

    def test_sts_refusals(self):
        sts = self.sts_service()
        r = self.fails(dict(self.sts_env(sts), AWS_ROLE_ARN=ROLE_ARN + "-other"),
                       "AccessDenied", ROLE_ARN + "-other", sts.url, "HTTP 403")
        with open(sts.cfg["token_file"], "w") as f:
            f.write("eyJ.another-token.sig\n")
        self.fails(self.sts_env(sts), "InvalidIdentityToken", "HTTP 400")
        self.fails(dict(self.sts_env(sts), AWS_WEB_IDENTITY_TOKEN_FILE="/nonexistent/token"),
                   "/nonexistent/token", "No such file")
        self.fails(dict(self.sts_env(sts), AWS_ROLE_ARN=""), "AWS_ROLE_ARN")
        # a mount with it: fails, names the cause, mounts nothing
        env = dict(self.sts_env(sts), AWS_ROLE_ARN=ROLE_ARN + "-other")
        mnt = tempfile.mkdtemp(prefix="bfs-mnt-")
        self.addCleanup(os.rmdir, mnt)
        rc, err, elapsed = tm.run_bucketfs([tm.BUCKETFS, "--map", "t=s3://%s" % BUCKET, "-o",
                                            "cache_dir=" + os.path.join(self.tmp, "c"), mnt],
                                           env=env, timeout=60)
        self.assertNotEqual(rc, 0)
        self.assertIn("AccessDenied", err)
        self.assertLess(elapsed, 20)
        self.assertFalse(mounted(mnt))
        self.assertNoSecrets(err, "bucketfs")
        del r

    def test_ecs_unreachable(self):
        port = tm.free_port()
        r = self.fails(self.base_env(AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:%d/c"
                                     % port), "ECS credentials endpoint", "did not answer",
                       limit=5)
        self.assertIn("127.0.0.1:%d" % port, r.stderr)
        self.fails(self.base_env(AWS_CONTAINER_CREDENTIALS_FULL_URI="http://example.com/c"),
                   "FULL_URI", limit=5)

    def test_imds_failures(self):
        imds = self.service("imds", no_role=True)
        self.fails(self.imds_env(imds), "no IAM role", limit=5)
        bad = self.service("imds", malformed=True)
        self.fails(self.imds_env(bad), "not a flat JSON object", limit=5)
        down = self.service("imds")
        down.issuer.fail_all = True
        self.fails(self.imds_env(down), "HTTP 500", limit=5)
        # a hung service: the whole chain gives up within seconds
        st = Staller()
        self.addCleanup(st.close)
        r = self.fails(self.imds_env(self.service("imds"),
                                     AWS_EC2_METADATA_SERVICE_ENDPOINT=st.url),
                       "no credentials found", "did not answer", limit=12)
        self.assertRegex(r.stderr, r"(?i)timed out|timeout")
        # an address nobody answers (TEST-NET-1): fails after the 1 s connect timeout at most
        r = self.fails(self.imds_env(self.service("imds"),
                                     AWS_EC2_METADATA_SERVICE_ENDPOINT="http://192.0.2.1"),
                       "192.0.2.1", "did not answer", limit=5)


class RefreshTest(CredsTestCase):
    """Temporary credentials are renewed before they expire, during a long
    read, by one thread, and a failed renewal keeps the keys that still work."""

    def slow_read_with(self, kind):
        lifetime = 5
        if kind == "imds":
            svc = self.service("imds", lifetime)
        elif kind == "ecs":
            svc = self.service("ecs", lifetime, path="/creds", auth="a-" + uuid.uuid4().hex)
        else:
            svc = self.sts_service(lifetime)
        spy = self.spy()
        env = {"imds": self.imds_env, "ecs": lambda s, **kw: self.ecs_env(s, s.cfg["auth"], **kw),
               "sts": self.sts_env}[kind](svc, AWS_ENDPOINT_URL=spy.url)
        data = os.urandom(8 * MiB)
        self.put("slow.bin", data)
        with self.mount([("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))], env,
                        block_size="256K", read_ahead=1) as m:
            before = svc.issuer.count()
            t0 = time.time()
            md5, n, secs = slow_read(m.path("t", "slow.bin"), 256 * KiB, 0.5)
            during = svc.issuer.count() - before
        self.check_log(m)
        self.assertEqual((md5, n), (md5hex(data), len(data)))
        gets = [r for r in spy.entries() if r["method"] == "GET" and r["key"] and r["t"] >= t0]
        used = self.assertSignedWithIssued(spy, svc)
        get_tokens = {r["token"] for r in gets}
        tm.note("%s: read %d MiB in %.1f s with keys valid %d s: %d renewals during the read, "
                "%d distinct tokens on %d GETs", kind, n // MiB, secs, lifetime, during,
                len(get_tokens), len(gets))
        self.assertGreaterEqual(secs, 12)
        self.assertGreaterEqual(during, 2, "keys of %d s over a %.0f s read" % (lifetime, secs))
        self.assertLessEqual(during, secs / (lifetime * 0.5) + 2, "renewed far too often")
        self.assertGreaterEqual(len(get_tokens), 3)
        self.assertGreaterEqual(len(used), 3)
        if SERVER == "rgw":
            # real, different key pairs, all accepted by the server
            self.assertGreaterEqual(len({r["ak"] for r in gets}), 3)
        self.assertTrue(all(r["status"] in (200, 206) for r in gets),
                        [(r["status"], r["path"]) for r in gets if r["status"] not in (200, 206)])

    def test_renewal_during_slow_read_imds(self):
        self.slow_read_with("imds")

    def test_renewal_during_slow_read_ecs(self):
        self.slow_read_with("ecs")

    def test_renewal_during_slow_read_web_identity(self):
        self.slow_read_with("sts")

    def test_failed_renewal_keeps_valid_keys(self):
        imds = self.service("imds", lifetime=12)
        spy = self.spy()
        env = self.imds_env(imds, AWS_ENDPOINT_URL=spy.url)
        data = os.urandom(16 * MiB)
        self.put("long.bin", data)
        with self.mount([("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))], env,
                        block_size="256K", read_ahead=1) as m:
            os.listdir(m.path("t"))  # served once the daemon has its own keys
            self.assertEqual(imds.issuer.count(), 2, "the check pass and the daemon")
            imds.issuer.fail_next = 1
            first = imds.issuer.issued[-1]
            md5, n, secs = slow_read(m.path("t", "long.bin"), 256 * KiB, 0.25)
        self.check_log(m)
        self.assertEqual((md5, n), (md5hex(data), len(data)), "no read may fail")
        self.assertEqual(len(imds.issuer.failures), 1, "the renewal was not attempted")
        t_fail = imds.issuer.failures[0]
        after = [r for r in imds.issuer.issued if r["t"] > t_fail]
        self.assertTrue(after, "no renewal after the failed one")
        t_ok = after[0]["t"]
        tm.note("renewal failed %.1f s before expiry, succeeded %.1f s later",
                first["exp"] - t_fail, t_ok - t_fail)
        self.assertLess(t_fail, first["exp"], "the renewal must start before expiry")
        between = [r for r in spy.entries() if t_fail < r["t"] < t_ok and r["auth"]]
        self.assertTrue(between, "no request between the failed and the good renewal")
        self.assertTrue(all(r["token"] == first["token"] for r in between),
                        "the still valid keys must stay in use")
        self.assertSignedWithIssued(spy, imds)
        self.assertIn("renewing credentials from imds failed", m.log)
        self.assertIn("the current ones stay in use", m.log)
        self.assertIn("renewed after 1 failed attempt", m.log)

    def test_expired_unrenewable_then_recovers(self):
        imds = self.service("imds", lifetime=4)
        spy = self.spy()
        env = self.imds_env(imds, AWS_ENDPOINT_URL=spy.url)
        self.put("a.txt", b"first")
        self.put("b.txt", b"second")
        with self.mount([("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))], env) as m:
            self.assertEqual(sorted(os.listdir(m.path("t"))), ["a.txt", "b.txt"])
            imds.issuer.fail_all = True
            time.sleep(max(0, imds.issuer.issued[-1]["exp"] - time.time()) + 1)
            t0 = time.monotonic()
            with self.assertRaises(OSError) as cm:
                with open(m.path("t", "a.txt"), "rb") as f:
                    f.read()
            elapsed = time.monotonic() - t0
            self.assertIn(cm.exception.errno, (errno.EACCES, errno.EIO))
            self.assertLess(elapsed, 40, "a read with expired keys must fail, not hang")
            imds.issuer.fail_all = False
            deadline = time.monotonic() + 20
            while True:
                try:
                    with open(m.path("t", "b.txt"), "rb") as f:
                        self.assertEqual(f.read(), b"second")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        self.check_log(m)
        self.assertIn("they have expired", m.log)
        self.assertSignedWithIssued(spy, imds)
        tm.note("a read with expired, unrenewable keys failed after %.1f s", elapsed)


class AnonymousTest(CredsTestCase):

    def test_anonymous_public_bucket(self):
        bucket = "bfs-public-" + uuid.uuid4().hex[:8]
        self.s3.create_bucket(Bucket=bucket)
        self.addCleanup(self.drop_bucket, bucket)
        self.s3.put_object(Bucket=bucket, Key="pub/hello.txt", Body=b"hello, anyone\n",
                           ACL="public-read")
        try:
            self.s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
        except Exception as e:  # s3rver has no ACLs, and lets anyone read anyway
            if SERVER == "rgw":
                raise
            tm.note("s3rver: put_bucket_acl: %s", e)
        spy = self.spy()
        env = self.base_env(AWS_ENDPOINT_URL=spy.url)
        r = self.cli("--anonymous", "get", bucket, "pub/hello.txt", "-o",
                     os.path.join(self.tmp, "o"), env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        opts = {"anonymous": "true", "sync_upload": "true"}
        with self.mount([("p", "s3://%s" % bucket)], env, **opts) as m:
            self.assertEqual(os.listdir(m.path("p")), ["pub"])
            with open(m.path("p", "pub", "hello.txt"), "rb") as f:
                self.assertEqual(f.read(), b"hello, anyone\n")
            if SERVER == "rgw":   # s3rver lets anonymous requests write
                with self.assertRaises(OSError) as cm:
                    with open(m.path("p", "pub", "new.txt"), "wb") as f:
                        f.write(b"x")
                self.assertEqual(cm.exception.errno, errno.EACCES)
        self.check_log(m)
        reqs = spy.entries()
        self.assertTrue(reqs)
        self.assertEqual([r["path"] for r in reqs if r["auth"] or r["token"]], [],
                         "anonymous requests must carry no Authorization or token")
        self.assertIn(200, {r["status"] for r in reqs if r["method"] == "GET" and r["key"]})
        if SERVER == "rgw":
            # and RGW refuses anonymous access to a private bucket, clearly
            mnt = tempfile.mkdtemp(prefix="bfs-mnt-")
            self.addCleanup(os.rmdir, mnt)
            rc, err, _ = tm.run_bucketfs([tm.BUCKETFS, "--map", "t=s3://%s" % BUCKET, "-o",
                                          "anonymous=true,cache_dir=" + os.path.join(self.tmp, "c"),
                                          mnt], env=env)
            self.assertNotEqual(rc, 0)
            self.assertIn("AccessDenied", err)

    def drop_bucket(self, bucket):
        for o in self.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            self.s3.delete_object(Bucket=bucket, Key=o["Key"])
        self.s3.delete_bucket(Bucket=bucket)


class RegionTest(CredsTestCase):
    """No region configured: each bucket's region is found (HeadBucket's
    x-amz-bucket-region, or a 400 that names it) and signs its requests."""

    def keys_env(self, spy, **extra):
        env = self.base_env(AWS_ENDPOINT_URL=spy.url, AWS_ACCESS_KEY_ID=self.pool[0][0],
                            AWS_SECRET_ACCESS_KEY=self.pool[0][1])
        env.pop("AWS_REGION", None)
        env.pop("AWS_DEFAULT_REGION", None)
        env.update(extra)
        return env

    def signed_regions(self, spy, bucket, skip_head=True):
        return {r["region"] for r in spy.entries(bucket)
                if r["auth"] and not (skip_head and r["method"] == "HEAD" and not r["key"])}

    def test_region_per_mapping(self):
        spy = self.spy(regions={"raw": "eu-west-3", "processed": "ap-southeast-2"})
        env = self.keys_env(spy)
        for b in ("raw", "processed", BUCKET):
            self.s3.put_object(Bucket=b, Key=self.p + "f.txt", Body=b"in " + b.encode())
        pre = self.p.rstrip("/")
        with self.mount([("r", "s3://raw/" + pre), ("p", "s3://processed/" + pre),
                         ("t", "s3://%s/%s" % (BUCKET, pre))], env) as m:
            for name, b in (("r", "raw"), ("p", "processed"), ("t", BUCKET)):
                with open(m.path(name, "f.txt"), "rb") as f:
                    self.assertEqual(f.read(), b"in " + b.encode())
            with open(m.path("r", "new.txt"), "wb") as f:
                f.write(b"new in raw")
        self.check_log(m)
        self.assertEqual(self.s3.get_object(Bucket="raw", Key=self.p + "new.txt")["Body"].read(),
                         b"new in raw")
        self.assertEqual(self.signed_regions(spy, "raw"), {"eu-west-3"})
        self.assertEqual(self.signed_regions(spy, "processed"), {"ap-southeast-2"})
        self.assertEqual(self.signed_regions(spy, BUCKET), {"us-east-1"})
        for b in ("raw", "processed", BUCKET):
            heads = [r for r in spy.entries(b) if r["method"] == "HEAD" and not r["key"]]
            self.assertTrue(heads, "no HeadBucket for " + b)
            # one discovery per client: the mount's check pass and the daemon
            self.assertLessEqual(len([h for h in heads if h["region"] == "us-east-1"]), 2, b)
        bad = [(r["method"], r["path"]) for r in spy.entries()
               if r["status"] == 400 and not (r["method"] == "HEAD" and not r["key"])]
        self.assertEqual(bad, [], "only HeadBucket may meet the wrong region")

    def test_region_learnt_from_a_400(self):
        """A server whose HeadBucket names no region, but whose 400 to a
        wrongly signed request does (x-amz-bucket-region): the request is
        signed again for that region and the region is kept."""
        spy = self.spy(regions={"raw": "eu-north-1"}, head_header=False)
        env = self.keys_env(spy)
        self.s3.put_object(Bucket="raw", Key=self.p + "g.txt", Body=b"learnt")
        with self.mount([("r", "s3://raw/" + self.p.rstrip("/"))], env) as m:
            with open(m.path("r", "g.txt"), "rb") as f:
                self.assertEqual(f.read(), b"learnt")
        self.check_log(m)
        non_head = [r for r in spy.entries("raw") if not (r["method"] == "HEAD" and not r["key"])]
        wrong = [r for r in non_head if r["status"] == 400]
        self.assertGreaterEqual(len(wrong), 1)
        # per client (check pass and daemon), and only requests already in flight
        self.assertLessEqual(len(wrong), 6, "the region must be kept once learnt")
        self.assertTrue(all(r["region"] == "us-east-1" for r in wrong))
        self.assertEqual({r["region"] for r in non_head if r["status"] != 400}, {"eu-north-1"})

    def test_configured_region_is_not_discovered(self):
        spy = self.spy(regions={"raw": "eu-west-3"})
        env = self.keys_env(spy, AWS_REGION="eu-west-3")
        self.s3.put_object(Bucket="raw", Key=self.p + "c.txt", Body=b"configured")
        with self.mount([("r", "s3://raw/" + self.p.rstrip("/"))], env) as m:
            with open(m.path("r", "c.txt"), "rb") as f:
                self.assertEqual(f.read(), b"configured")
        self.assertEqual([r for r in spy.entries() if r["method"] == "HEAD" and not r["key"]], [])
        self.assertEqual(self.signed_regions(spy, "raw", skip_head=False), {"eu-west-3"})

    def test_cli_and_presign(self):
        spy = self.spy(regions={"raw": "eu-west-3"})
        env = self.keys_env(spy)
        self.s3.put_object(Bucket="raw", Key=self.p + "p.txt", Body=b"presigned")
        out = os.path.join(self.tmp, "got")
        r = self.cli("get", "raw", self.p + "p.txt", "-o", out, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"presigned")
        r = self.cli("presign", "raw", self.p + "p.txt", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("%2Feu-west-3%2Fs3%2Faws4_request", r.stdout)


# ------------------------------------------------- serve mode (network namespace)
def serve(argv):
    """--serve imds|ecs: one fake service in the foreground, for the tests
    that run in a private network namespace; one JSON line per request."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", required=True)
    ap.add_argument("--bind", required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--keys", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready", required=True)
    a = ap.parse_args(argv)
    ak, sk = a.keys.split(":", 1)
    svc = FakeService(a.serve, Issuer([(ak, sk)]), bind=(a.bind, 80), path=a.path)
    with open(a.ready, "w"):
        pass
    signal.signal(signal.SIGTERM, lambda *x: sys.exit(0))
    try:
        while True:
            time.sleep(0.1)
            with open(a.log, "w") as f:
                for e in svc.entries():
                    f.write(json.dumps({"method": e["method"], "path": e["path"]}) + "\n")
    finally:
        with open(a.log, "w") as f:
            for e in svc.entries():
                f.write(json.dumps({"method": e["method"], "path": e["path"]}) + "\n")
    return 0


def main():
    if "--serve" in sys.argv:
        return serve(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bucketfs", required=True, help="path of the bucketfs binary")
    ap.add_argument("--cli", required=True, help="path of the bfs-s3 binary")
    args, rest = ap.parse_known_args()
    tm.BUCKETFS, tm.CLI = os.path.abspath(args.bucketfs), os.path.abspath(args.cli)
    missing = [v for v in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
               if not os.environ.get(v)]
    if missing:
        print("error: %s not set: run this under scripts/with-server.sh" % ", ".join(missing),
              file=sys.stderr)
        return 2
    print("bucketfs %s against %s at %s" % (tm.BUCKETFS, SERVER, os.environ["AWS_ENDPOINT_URL"]),
          file=sys.stderr)
    try:
        prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    finally:
        for ak in RGW_KEYS:
            with contextlib.suppress(Exception):
                rgw_admin("key", "rm", "--uid", os.environ["AWS_ACCESS_KEY_ID"], "--key-type",
                          "s3", "--access-key", ak)
    if tm.TIMINGS:
        print("\ntimings on %s:" % SERVER, file=sys.stderr)
        for name, secs in sorted(tm.TIMINGS.items(), key=lambda kv: -kv[1]):
            print("  %6.1fs  %s" % (secs, name), file=sys.stderr)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
