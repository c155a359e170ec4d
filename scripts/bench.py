#!/usr/bin/python3
"""bench.py: bucketfs side by side with s3fs-fuse, rclone mount and curl.

Run through scripts/bench.sh, which installs the peers, builds bucketfs and
starts the server (scripts/with-server.sh provides AWS_ENDPOINT_URL, the keys
and TEST_SERVER_LOG, the server's request log):

    scripts/with-server.sh rgw /usr/bin/python3 scripts/bench.py [--quick] [--out FILE]

Every workload runs against the same server for each tool in turn (the order
rotates from one run to the next), on a fresh mount with an empty cache
unless it says otherwise; writes are timed until the server has every byte.
curl is the physical limit: the same bytes moved with plain S3 requests.
The result is the median of --runs runs (3; 1 with --quick).

Output: FILE (markdown tables), beside it FILE.json (every sample, the request
counts, bucketfs's own counters; FILE without its .md) and, when gnuplot is
there, FILE.png (the ratios).
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MB = 1e6
BUCKET = "bfs-bench"
# what s3fs writes on an object (x-amz-meta-*): mode 33188 = S_IFREG | 0644
S3FS_META = {"mode": "33188", "uid": "1000", "gid": "1000", "mtime": "1500000000"}
# rclone uploads 5 s after the last close by default; with 0 s its upload races
# rsync's utimes and rename of the temporary file and fails (rclone 1.60)
RCLONE_WRITE_BACK = os.environ.get("BENCH_RCLONE_WRITE_BACK", "5s")
POLL_S = 0.2               # how often the server is asked whether writes are complete
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(fmt, *args):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), fmt % args), file=sys.stderr, flush=True)


# ---------------------------------------------------------------- sizes

class Sizes:
    """What each workload moves; --quick scales everything down."""

    def __init__(self, quick):
        self.quick = quick
        self.big = 128 * MiB if quick else GiB          # workloads 1, 2, 3, 6
        self.small_n = 200 if quick else 1000           # workloads 4 and 9
        self.small_size = 16 * KiB
        self.list_n = 2000 if quick else 10000          # workloads 5, 10 and 11
        self.fio_s = 5 if quick else 30                 # workload 6
        self.rand_n = 100 if quick else 300             # workload 6, reads timed one by one
        self.mig_n = 60 if quick else 300               # workload 7
        self.mig_max = 4 * MiB if quick else 20 * MiB
        self.tree_dirs = 20 if quick else 50            # workload 8
        self.tree_n = 1000 if quick else 5000
        self.settle_s = 60 if quick else 300            # a write not in the server by then failed
        self.par_n = 8                                  # workload 14: readers at once
        self.par_size = 32 * MiB if quick else 256 * MiB

    def mig_sizes(self):
        """mig_n sizes from 1 KiB to mig_max, log-uniform (seeded)."""
        rnd = random.Random(6)
        lo, hi = KiB, self.mig_max
        sizes = [int(lo * (hi / lo) ** rnd.random()) for _ in range(self.mig_n)]
        sizes[0], sizes[-1] = lo, hi
        return sizes


def human(n):
    return "%d GiB" % (n // GiB) if n >= GiB and n % GiB == 0 else "%d MiB" % (n // MiB)


# ---------------------------------------------------------------- processes

def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == path for line in f)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def pids_of(name, mountpoint):
    """Live processes called name whose command line names mountpoint."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == name and mountpoint in argv[1:] and alive(int(d)):
            out.append(int(d))
    return out


def proc_usage(pid):
    """Peak RSS (MiB, VmHWM) and CPU seconds (utime+stime) of a live process."""
    try:
        with open("/proc/%d/status" % pid) as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, StopIteration):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return {"rss_mib": hwm / 1024, "cpu_s": (int(fields[11]) + int(fields[12])) / ticks}


def run(cmd, timeout=1800, **kw):
    """Runs cmd (a list, or a string for bash); returns elapsed seconds.
    Raises on failure with the command's stderr."""
    if isinstance(cmd, str):
        cmd = ["bash", "-c", cmd]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdin=kw.pop("stdin", subprocess.DEVNULL), capture_output=True,
                       timeout=timeout, **kw)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (cmd[:3], r.returncode,
                                                r.stderr.decode(errors="replace")[-800:]))
    return dt


# ---------------------------------------------------------------- the server

class Server:
    """The S3 server of this run: boto3 for setup and completion checks, curl
    for the limits, and its request log to count what each tool sent."""

    def __init__(self):
        self.endpoint = os.environ["AWS_ENDPOINT_URL"]
        self.kind = os.environ.get("TEST_SERVER", "unknown")
        self.log_path = os.environ.get("TEST_SERVER_LOG", "")
        self.ak = os.environ["AWS_ACCESS_KEY_ID"]
        self.sk = os.environ["AWS_SECRET_ACCESS_KEY"]
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                               config=Config(max_pool_connections=32,
                                             retries={"max_attempts": 8, "mode": "standard"}))
        self.own_requests = 0   # requests of ours (polls) inside a counting window

    # -- request log
    def log_mark(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def requests_since(self, mark):
        """{"LIST": n, "GET": n, ...} of the requests logged after mark,
        less the ones we sent ourselves (counted in own_requests)."""
        time.sleep(0.5)   # RGW writes its log from a thread
        counts = {}
        try:
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                text = f.read().decode(errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            if self.kind == "rgw":
                m = re.search(r'beast: .*"([A-Z]+) (\S+) HTTP/[\d.]+"', line)
            else:
                m = re.match(r"info: ([A-Z]+) (/\S*) \d{3} ", line)
            if not m:
                continue
            method, target = m.group(1), m.group(2)
            path, _, query = target.partition("?")
            bucket_level = "/" not in path.strip("/")
            if method == "GET" and bucket_level:
                kind = "LIST"
            elif method == "POST" or "uploadId" in query or "uploads" in query:
                kind = "MPU"
            else:
                kind = method
            counts[kind] = counts.get(kind, 0) + 1
        counts["LIST"] = counts.get("LIST", 0) - self.own_requests   # our polls are LISTs
        counts["total"] = sum(counts.values())
        return counts

    # -- boto3
    def keys(self, prefix):
        """{key: size} below prefix."""
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            self.own_requests += 1
            out.update((o["Key"], o["Size"]) for o in page.get("Contents", []))
        return out

    def wait_keys(self, prefix, want, timeout):
        """Polls until every key of want {key: size} is in the server with
        its size (the end of a write workload's timing)."""
        deadline = time.monotonic() + timeout
        while True:
            have = self.keys(prefix)
            if all(have.get(k) == s for k, s in want.items()):
                return
            if time.monotonic() > deadline:
                missing = [k for k, s in want.items() if have.get(k) != s]
                raise RuntimeError("%d keys under %s not complete after %ds, e.g. %s"
                                   % (len(missing), prefix, timeout, missing[:3]))
            time.sleep(POLL_S)

    def delete_prefix(self, prefix):
        keys = list(self.keys(prefix))
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=BUCKET, Delete={
                "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})

    def put_many(self, items):
        """items: [(key, bytes)] or [(key, bytes, {metadata})], in parallel."""
        with concurrent.futures.ThreadPoolExecutor(32) as ex:
            list(ex.map(lambda kv: self.s3.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1],
                                                      Metadata=kv[2] if len(kv) > 2 else {}), items))

    # -- curl (the keys go through a config on stdin, never on a command line)
    def curl_auth(self):
        return ('user = "%s:%s"\naws-sigv4 = "aws:amz:us-east-1:s3"\n'
                'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\nsilent\nshow-error\nfail\n'
                % (self.ak, self.sk))

    def url(self, key):
        return "%s/%s/%s" % (self.endpoint, BUCKET, key)

    def curl(self, config, timeout=1800):
        """Runs curl -K - with config; returns (seconds, stdout)."""
        t0 = time.perf_counter()
        r = subprocess.run(["curl", "-K", "-"], input=config.encode(),
                           capture_output=True, timeout=timeout)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError("curl: exit %d: %s" % (r.returncode, r.stderr.decode()[-500:]))
        return dt, r.stdout.decode(errors="replace")

    def curl_list(self, prefix, delimiter):
        """ListObjectsV2 of every page below prefix, one curl per page
        (curl 7.88 signs the query as given: sorted, encoded by us)."""
        enc = lambda s: "".join(c if c.isalnum() or c in "-._~" else "%%%02X" % ord(c) for c in s)
        after, total, pages = "", 0.0, 0
        while True:
            q = ("delimiter=%2F&" if delimiter else "") + "list-type=2&prefix=" + enc(prefix)
            if after:
                q += "&start-after=" + enc(after)
            dt, out = self.curl(self.curl_auth() + 'url = "%s/%s?%s"\n' % (self.endpoint, BUCKET, q))
            total += dt
            pages += 1
            keys = re.findall(r"<Key>([^<]*)</Key>", out)
            if "<IsTruncated>true</IsTruncated>" not in out or not keys:
                return total, pages
            after = keys[-1]


# ---------------------------------------------------------------- the tools

class Mount:
    """A mounted tool. root: where the bucket's keys appear; stop() unmounts
    and waits for the daemon to exit (bucketfs drains its uploads first)."""

    def __init__(self, tool, mnt, root, pid, popen=None):
        self.tool, self.mnt, self.root, self.pid, self.popen = tool, mnt, root, pid, popen
        self.usage = None

    def sample(self):
        """Records the daemon's peak RSS and CPU time (call before stop)."""
        self.usage = proc_usage(self.pid)
        return self.usage

    def stop(self, timeout=900):
        if mounted(self.mnt):
            for _ in range(50):
                if subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)   # EBUSY right after a command closed its files
        deadline = time.monotonic() + timeout
        while alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.popen:
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if alive(self.pid) or mounted(self.mnt):
            log("%s did not stop cleanly: killing pid %d", self.tool.name, self.pid)
            try:
                os.kill(self.pid, 9)
            except OSError:
                pass
            subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True)


class Tool:
    name = "?"
    daemon = "?"   # process name, to find a daemonized process

    def __init__(self, ctx):
        self.ctx = ctx

    def mount(self, cache):
        """Mounts the bench bucket on a fresh mountpoint with cache dir cache."""
        mnt = tempfile.mkdtemp(prefix="mnt-%s-" % self.name, dir=self.ctx.work)
        os.makedirs(cache, exist_ok=True)
        popen = self.start(mnt, cache)
        deadline = time.monotonic() + 60
        while not mounted(mnt):
            if time.monotonic() > deadline or (popen and popen.poll() is not None):
                raise RuntimeError("%s did not mount %s: %s" % (self.name, mnt, self.errors(mnt)))
            time.sleep(0.05)
        pids = [popen.pid] if popen else pids_of(self.daemon, mnt)
        if len(pids) != 1:
            raise RuntimeError("%s: expected one daemon for %s, found %r" % (self.name, mnt, pids))
        m = Mount(self, mnt, self.root(mnt), pids[0], popen)
        self.ctx.live.append(m)
        return m

    def errors(self, mnt):
        try:
            with open(mnt + ".err") as f:
                return f.read()[-800:]
        except OSError:
            return "(no output)"

    def spawn(self, cmd, mnt, env=None, wait=True):
        with open(mnt + ".err", "w") as err:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env)
        if wait:   # the command daemonizes once mounted
            if p.wait(timeout=60) != 0:
                raise RuntimeError("%s exited %d: %s" % (self.name, p.returncode, self.errors(mnt)))
            return None
        return p

    def root(self, mnt):
        return mnt

    def settle(self, m, rel_paths):
        """Waits, the tool's own way, until what was written is uploaded."""

    def stats(self, m):
        return None


class BucketFS(Tool):
    name = daemon = "bucketfs"

    def start(self, mnt, cache):
        self.spawn([self.ctx.bfs, "--map", "b=s3://" + BUCKET, "-o",
                    "endpoint=%s,cache_dir=%s" % (self.ctx.server.endpoint, cache), mnt], mnt)

    def root(self, mnt):
        return os.path.join(mnt, "b")

    def settle(self, m, rel_paths):
        if self.ctx.bfs_sync:
            run([self.ctx.bfs, "sync", m.mnt])
            return
        for p in rel_paths:   # fsync waits for that file's upload, even read-only
            fd = os.open(os.path.join(m.root, p), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def stats(self, m):
        try:
            return json.loads(os.getxattr(m.mnt, "user.bucketfs.stats"))
        except (OSError, ValueError):
            return None


class BucketFSBase(BucketFS):
    """--baseline: another bucketfs build (the base of a change), measured
    as one more tool in the same run; not a peer in the ratios."""
    name = daemon = "bucketfs-base"   # the copy's file name

    def start(self, mnt, cache):
        self.spawn([self.ctx.bfs_base, "--map", "b=s3://" + BUCKET, "-o",
                    "endpoint=%s,cache_dir=%s" % (self.ctx.server.endpoint, cache), mnt], mnt)


class S3fs(Tool):
    name = daemon = "s3fs"

    def start(self, mnt, cache):
        self.spawn(["/usr/bin/s3fs", BUCKET, mnt, "-o",
                    "url=%s,use_path_request_style,passwd_file=%s,use_cache=%s"
                    % (self.ctx.server.endpoint, self.ctx.passwd, cache)], mnt)


class Rclone(Tool):
    name = daemon = "rclone"

    def start(self, mnt, cache):
        s = self.ctx.server
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        env.update(RCLONE_CONFIG=os.path.join(self.ctx.work, "rclone.conf"),
                   RCLONE_CONFIG_BENCH_TYPE="s3",
                   RCLONE_CONFIG_BENCH_PROVIDER="Ceph" if s.kind == "rgw" else "Other",
                   RCLONE_CONFIG_BENCH_ENDPOINT=s.endpoint, RCLONE_CONFIG_BENCH_REGION="us-east-1",
                   RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=s.ak, RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=s.sk)
        with socket.socket() as sock:   # a free port for its remote control (upload queue)
            sock.bind(("127.0.0.1", 0))
            self.rc = "127.0.0.1:%d" % sock.getsockname()[1]
        return self.spawn(["/usr/bin/rclone", "mount", "bench:" + BUCKET, mnt,
                           "--vfs-cache-mode", "full", "--cache-dir", cache,
                           "--vfs-write-back", RCLONE_WRITE_BACK,
                           "--rc", "--rc-addr", self.rc], mnt, env=env, wait=False)   # vfs/stats needs no auth

    def settle(self, m, rel_paths):
        """Until its upload queue is empty (the server is checked after)."""
        deadline = time.monotonic() + self.ctx.sizes.settle_s
        while time.monotonic() < deadline:
            try:
                req = urllib.request.Request("http://%s/vfs/stats" % self.rc, data=b"{}",
                                             headers={"Content-Type": "application/json"})
                dc = json.load(urllib.request.urlopen(req, timeout=10)).get("diskCache", {})
            except (OSError, ValueError):
                return
            if dc.get("uploadsInProgress", 0) == 0 and dc.get("uploadsQueued", 0) == 0:
                return
            time.sleep(0.05)


# ---------------------------------------------------------------- bookkeeping

class Ctx:
    """What every workload needs: server, sizes, tools, local sources, and
    the samples collected so far."""

    def __init__(self, args):
        self.args = args
        self.sizes = Sizes(args.quick)
        self.server = Server()
        self.work = tempfile.mkdtemp(prefix="bfs-bench-")
        self.live = []
        self.samples = {}   # metric -> tool -> [values]
        self.extra = []     # one record per measurement: requests, usage, stats
        self.bfs = os.path.join(self.work, "bucketfs")   # a snapshot: others rebuild build/
        shutil.copy2(args.bucketfs, self.bfs)
        self.rev = subprocess.run(["git", "-C", TOP, "describe", "--always", "--dirty"],
                                  capture_output=True, text=True).stdout.strip() or "?"
        out = subprocess.run([self.bfs, "sync", "--help"], capture_output=True, text=True)
        self.bfs_sync = "bucketfs sync" in (out.stdout + out.stderr)
        self.passwd = os.path.join(self.work, "s3fs.passwd")
        fd = os.open(self.passwd, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, ("%s:%s\n" % (self.server.ak, self.server.sk)).encode())
        os.close(fd)
        self.tools = [BucketFS(self), S3fs(self), Rclone(self)]
        if args.baseline:
            self.bfs_base = os.path.join(self.work, "bucketfs-base")
            shutil.copy2(args.baseline, self.bfs_base)
            self.tools.insert(1, BucketFSBase(self))

    def add(self, metric, tool, value):
        self.samples.setdefault(metric, {}).setdefault(tool, []).append(value)

    def cache(self, tool, tag):
        return os.path.join(self.work, "cache-%s-%s" % (tool.name, tag))

    def drop(self, *paths):
        for p in paths:
            shutil.rmtree(p, ignore_errors=True)

    def finish(self, metric, m, mark, moved, rnd):
        """Closes a measurement on mount m: usage sampled, counters read,
        unmounted, requests counted since mark."""
        usage = m.usage or m.sample()
        stats = m.tool.stats(m)
        m.stop()
        self.live.remove(m)
        req = self.server.requests_since(mark)
        self.server.own_requests = 0
        self.extra.append({"metric": metric, "tool": m.tool.name, "run": rnd, "bytes": moved,
                           "usage": usage, "requests": req, "stats": stats})
        return req

    def begin(self):
        time.sleep(0.5)   # our own last requests (deletes) reach RGW's log late
        self.server.own_requests = 0
        return self.server.log_mark()

    def rotated(self, rnd):
        k = rnd % len(self.tools)
        return self.tools[k:] + self.tools[:k]


def write_tree(base, files):
    """files: {relative path: size}; random bytes."""
    for rel, size in files.items():
        p = os.path.join(base, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(left, 8 * MiB)
                f.write(os.urandom(n))
                left -= n


# ---------------------------------------------------------------- setup

def setup(ctx):
    """The server-side data set and the local sources of the write workloads."""
    s, z = ctx.server, ctx.sizes
    try:
        s.s3.create_bucket(Bucket=BUCKET)
    except s.s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    t0 = time.monotonic()
    ctx.src_big = os.path.join(ctx.work, "src", "big.bin")
    write_tree(os.path.join(ctx.work, "src"), {"big.bin": z.big})
    s.s3.upload_file(ctx.src_big, BUCKET, "data/big.bin")
    ctx.src_par = os.path.join(ctx.work, "src", "par.bin")
    write_tree(os.path.join(ctx.work, "src"), {"par.bin": z.par_size})
    for i in range(z.par_n):  # the same bytes under 8 names: 8 objects to the server
        s.s3.upload_file(ctx.src_par, BUCKET, "data/par/f%d.bin" % i)
    items = [("data/list/f%05d" % i, b"l" * 128) for i in range(z.list_n)]
    items += [("data/listmeta/f%05d" % i, b"m" * 128, S3FS_META) for i in range(z.list_n)]
    per_dir = z.tree_n // z.tree_dirs
    items += [("data/tree/d%02d/f%04d" % (d, i), b"t" * KiB)
              for d in range(z.tree_dirs) for i in range(per_dir)]
    items += [("data/small/f%04d" % i, os.urandom(z.small_size)) for i in range(z.small_n)]
    s.put_many(items)
    ctx.small_files = {"f%04d" % i: z.small_size for i in range(z.small_n)}
    ctx.src_small = os.path.join(ctx.work, "src", "small")
    write_tree(ctx.src_small, ctx.small_files)
    sizes = z.mig_sizes()
    ctx.mig_files = {"d%d/f%03d.bin" % (i % 10, i): n for i, n in enumerate(sizes)}
    ctx.src_mig = os.path.join(ctx.work, "src", "mig")
    write_tree(ctx.src_mig, ctx.mig_files)
    log("data set ready in %.0fs: %s object, %d + %d (with metadata) + %d + %d small objects; "
        "migration tree %d files, %.0f MiB", time.monotonic() - t0, human(z.big), z.list_n, z.list_n,
        z.tree_n, z.small_n, len(sizes), sum(sizes) / MiB)


# ---------------------------------------------------------------- workloads
# Each takes (ctx, tool, rnd) and adds its samples; *_limit(ctx, rnd) adds curl's.

def seq_read(ctx, tool, rnd):
    """1 and 2: dd of the big object on a fresh mount, then again after a
    remount that keeps the tool's cache."""
    z, cache = ctx.sizes, ctx.cache(tool, "read%d" % rnd)
    for metric in ("read_cold", "read_warm"):
        mark = ctx.begin()
        m = tool.mount(cache)
        dt = run(["dd", "if=" + os.path.join(m.root, "data/big.bin"), "of=/dev/null", "bs=1M"])
        ctx.add(metric, tool.name, z.big / dt / MB)
        ctx.finish(metric, m, mark, z.big, rnd)
    ctx.drop(cache)


def seq_read_limit(ctx, rnd):
    dt, _ = ctx.server.curl(ctx.server.curl_auth() + 'url = "%s"\noutput = "/dev/null"\n'
                            % ctx.server.url("data/big.bin"))
    ctx.add("read_cold", "curl", ctx.sizes.big / dt / MB)


def seq_write(ctx, tool, rnd):
    """3: cp of the big local file into the mount, until the server has it."""
    z, cache = ctx.sizes, ctx.cache(tool, "write%d" % rnd)
    name = "out/big-%s-%d.bin" % (tool.name, rnd)
    mark = ctx.begin()
    m = tool.mount(cache)
    os.makedirs(os.path.join(m.root, "out"), exist_ok=True)
    t0 = time.perf_counter()
    run(["cp", ctx.src_big, os.path.join(m.root, name)])
    tool.settle(m, [name])
    ctx.server.wait_keys(name, {name: z.big}, z.settle_s)
    ctx.add("write_seq", tool.name, z.big / (time.perf_counter() - t0) / MB)
    ctx.finish("write_seq", m, mark, z.big, rnd)
    ctx.server.delete_prefix("out/")
    ctx.drop(cache)


def seq_write_limit(ctx, rnd):
    name = "limit/big-%d.bin" % rnd
    dt, _ = ctx.server.curl(ctx.server.curl_auth() + 'upload-file = "%s"\nurl = "%s"\noutput = "/dev/null"\n'
                            % (ctx.src_big, ctx.server.url(name)))
    ctx.add("write_seq", "curl", ctx.sizes.big / dt / MB)
    ctx.server.delete_prefix("limit/")


def copy_tree(ctx, tool, rnd, metric, cmd, files, moved):
    """4 and 7: cmd(src, dst) copies a local tree into the mount; timed until
    every file is in the server with its size."""
    cache = ctx.cache(tool, "%s%d" % (metric, rnd))
    dest = "out/%s-%s-%d" % (metric, tool.name, rnd)
    mark = ctx.begin()
    m = tool.mount(cache)
    os.makedirs(os.path.join(m.root, "out"), exist_ok=True)
    t0 = time.perf_counter()
    run(cmd(os.path.join(m.root, dest)))
    tool.settle(m, [os.path.join(dest, f) for f in files])
    ctx.server.wait_keys(dest + "/", {dest + "/" + f: n for f, n in files.items()}, ctx.sizes.settle_s)
    ctx.add(metric, tool.name, time.perf_counter() - t0)
    ctx.finish(metric, m, mark, moved, rnd)
    ctx.server.delete_prefix("out/")
    ctx.drop(cache)


def parallel_put_limit(ctx, rnd, metric, src, files):
    """curl -Z: every file PUT, 16 at a time, on reused connections."""
    s = ctx.server
    cfg = s.curl_auth() + "parallel\nparallel-max = 16\n"
    for f in files:
        cfg += 'upload-file = "%s"\nurl = "%s"\noutput = "/dev/null"\n' % (
            os.path.join(src, f), s.url("limit/%s-%d/%s" % (metric, rnd, f)))
    dt, _ = s.curl(cfg)
    ctx.add(metric, "curl", dt)
    s.delete_prefix("limit/")


def small_write(ctx, tool, rnd):
    z = ctx.sizes
    copy_tree(ctx, tool, rnd, "small_write", lambda dst: ["cp", "-r", ctx.src_small, dst],
              ctx.small_files, z.small_n * z.small_size)


def small_write_limit(ctx, rnd):
    parallel_put_limit(ctx, rnd, "small_write", ctx.src_small, ctx.small_files)


def migrate(ctx, tool, rnd):
    copy_tree(ctx, tool, rnd, "rsync", lambda dst: ["rsync", "-a", ctx.src_mig + "/", dst + "/"],
              ctx.mig_files, sum(ctx.mig_files.values()))


def migrate_limit(ctx, rnd):
    parallel_put_limit(ctx, rnd, "rsync", ctx.src_mig, ctx.mig_files)


def cold_meta(ctx, tool, rnd, metric, cmd, moved=0):
    """5, 8, 9, 10 and 11: one command over server-made data on a fresh mount
    (11: on a remount, see remount_meta); seconds, and the requests it cost."""
    cache = ctx.cache(tool, "%s%d" % (metric, rnd))
    mark = ctx.begin()
    m = tool.mount(cache)
    dt = run(cmd(m.root))
    m.sample()
    ctx.add(metric, tool.name, dt)
    req = ctx.finish(metric, m, mark, moved, rnd)
    if req:
        ctx.add(metric + "_requests", tool.name, req["total"])
    ctx.drop(cache)


def remount_meta(ctx, tool, rnd, metric, cmd):
    """11: cmd once on a fresh mount (neither timed nor counted), unmount,
    then cold_meta's measurement on a mount of the same cache."""
    m = tool.mount(ctx.cache(tool, "%s%d" % (metric, rnd)))
    run(cmd(m.root))
    m.stop()
    ctx.live.remove(m)
    cold_meta(ctx, tool, rnd, metric, cmd)


def list_pages_limit(ctx, metric, prefix, delimiter=True):
    """The LIST pages below prefix, and how many."""
    dt, pages = ctx.server.curl_list(prefix, delimiter=delimiter)
    ctx.add(metric, "curl", dt)
    ctx.add(metric + "_requests", "curl", pages)


def ls_l(d):
    return lambda root: "ls -l %s/%s > /dev/null" % (root, d)


def listing(ctx, tool, rnd):
    cold_meta(ctx, tool, rnd, "list", ls_l("data/list"))


def listing_limit(ctx, rnd):
    list_pages_limit(ctx, "list", "data/list/")


def listing_meta(ctx, tool, rnd):
    """10: as 5, the objects carrying s3fs's metadata (mode, uid, gid, mtime)."""
    cold_meta(ctx, tool, rnd, "list_meta", ls_l("data/listmeta"))


def listing_meta_limit(ctx, rnd):
    list_pages_limit(ctx, "list_meta", "data/listmeta/")


def listing_remount(ctx, tool, rnd):
    """11: 5's and 10's ls -l again after a remount that keeps the cache."""
    remount_meta(ctx, tool, rnd, "list_remount", ls_l("data/list"))
    remount_meta(ctx, tool, rnd, "list_meta_remount", ls_l("data/listmeta"))


def listing_remount_limit(ctx, rnd):
    """The same LIST pages as 5 and 10 (what a remount that kept nothing sends)."""
    list_pages_limit(ctx, "list_remount", "data/list/")
    list_pages_limit(ctx, "list_meta_remount", "data/listmeta/")


def tree_walk(ctx, tool, rnd):
    cold_meta(ctx, tool, rnd, "find",
              lambda root: "find %s/data/tree -name '*.csv' > /dev/null" % root)


def tree_walk_limit(ctx, rnd):
    list_pages_limit(ctx, "find", "data/tree/", delimiter=False)


def small_read(ctx, tool, rnd):
    z = ctx.sizes
    cold_meta(ctx, tool, rnd, "small_read", lambda root: "cat %s/data/small/* > /dev/null" % root,
              z.small_n * z.small_size)


def small_reread(ctx, tool, rnd):
    """12: 9's cat on one mount, then again 2 s later (past bucketfs's 1 s
    revalidate window: each open asks S3 whether the file changed, the
    close-to-open check); the second cat is timed and counted. """
    z = ctx.sizes
    cache = ctx.cache(tool, "reread%d" % rnd)
    m = tool.mount(cache)
    cmd = "cat %s/data/small/* > /dev/null" % m.root
    run(cmd)
    time.sleep(2)
    mark = ctx.begin()
    dt = run(cmd)
    m.sample()
    ctx.add("small_reread", tool.name, dt)
    req = ctx.finish("small_reread", m, mark, z.small_n * z.small_size, rnd)
    if req:
        ctx.add("small_reread_requests", tool.name, req["total"])
    ctx.drop(cache)


def small_reread_limit(ctx, rnd):
    """One HEAD per file, one after another on one connection (what an open
    that checks the version costs at least)."""
    s = ctx.server
    cfg = s.curl_auth() + "".join('url = "%s"\nhead\noutput = "/dev/null"\n'
                                  % s.url("data/small/" + f) for f in sorted(ctx.small_files))
    dt, _ = s.curl(cfg)
    ctx.add("small_reread", "curl", dt)
    ctx.add("small_reread_requests", "curl", len(ctx.small_files))


def small_read_limit(ctx, rnd):
    """One curl, the GETs one after another on one connection, as cat reads."""
    s = ctx.server
    cfg = s.curl_auth() + "".join('url = "%s"\noutput = "/dev/null"\n' % s.url("data/small/" + f)
                                  for f in sorted(ctx.small_files))
    dt, _ = s.curl(cfg)
    ctx.add("small_read", "curl", dt)
    ctx.add("small_read_requests", "curl", len(ctx.small_files))


def server_copy(ctx, tool, rnd):
    """13: cp of the big object to another name inside the mount (pipelines'
    "save the model, then copy it to versions/"), on a fresh mount, timed
    until the server has the copy. bucketfs makes it one CopyObject."""
    z, cache = ctx.sizes, ctx.cache(tool, "copy%d" % rnd)
    name = "out/copy-%s-%d.bin" % (tool.name, rnd)
    mark = ctx.begin()
    m = tool.mount(cache)
    os.makedirs(os.path.join(m.root, "out"), exist_ok=True)
    t0 = time.perf_counter()
    run(["cp", os.path.join(m.root, "data/big.bin"), os.path.join(m.root, name)])
    tool.settle(m, [name])
    ctx.server.wait_keys(name, {name: z.big}, z.settle_s)
    ctx.add("server_copy", tool.name, time.perf_counter() - t0)
    req = ctx.finish("server_copy", m, mark, z.big, rnd)
    if req:
        ctx.add("server_copy_gets", tool.name, req.get("GET", 0))
    ctx.server.delete_prefix("out/")
    ctx.drop(cache)


def server_copy_limit(ctx, rnd):
    """One CopyObject by curl."""
    s = ctx.server
    name = "limit/copy-%d.bin" % rnd
    dt, _ = s.curl(s.curl_auth() + 'url = "%s"\nrequest = "PUT"\nheader = "x-amz-copy-source: '
                   '/%s/data/big.bin"\noutput = "/dev/null"\n' % (s.url(name), BUCKET))
    ctx.add("server_copy", "curl", dt)
    ctx.add("server_copy_gets", "curl", 0)
    s.delete_prefix("limit/")


def parallel_read(ctx, tool, rnd):
    """14: 8 readers at once, each dd of a different object (a training
    job's data loader workers), fresh mount; aggregate MB/s."""
    z, cache = ctx.sizes, ctx.cache(tool, "par%d" % rnd)
    mark = ctx.begin()
    m = tool.mount(cache)
    files = " ".join(os.path.join(m.root, "data/par/f%d.bin" % i) for i in range(z.par_n))
    dt = run("pids=; for f in %s; do dd if=$f of=/dev/null bs=1M status=none & pids=\"$pids $!\"; "
             "done; rc=0; for p in $pids; do wait $p || rc=1; done; exit $rc" % files)
    ctx.add("par_read", tool.name, z.par_n * z.par_size / dt / MB)
    ctx.finish("par_read", m, mark, z.par_n * z.par_size, rnd)
    ctx.drop(cache)


def parallel_read_limit(ctx, rnd):
    """8 curls at once, one GET each."""
    s, z = ctx.server, ctx.sizes
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-K", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
             for _ in range(z.par_n)]
    for i, p in enumerate(procs):
        p.communicate((s.curl_auth() + 'url = "%s"\noutput = "/dev/null"\n'
                       % s.url("data/par/f%d.bin" % i)).encode())
    if any(p.returncode for p in procs):
        raise RuntimeError("curl of data/par failed")
    ctx.add("par_read", "curl", z.par_n * z.par_size / (time.perf_counter() - t0) / MB)


def random_offsets(ctx, rnd):
    """The 4 KiB-aligned offsets of the cold random reads (the same for every tool and curl)."""
    rng = random.Random(rnd)
    return [rng.randrange(ctx.sizes.big // 4096) * 4096 for _ in range(ctx.sizes.rand_n)]


def random_read(ctx, tool, rnd):
    """6: on a fresh mount, time to first byte (open and read 1 byte), then
    rand_n 4 KiB preads at random offsets; on another fresh mount, fio's
    random reads for fio_s seconds (the tool's cache warms up meanwhile)."""
    z = ctx.sizes
    cache = ctx.cache(tool, "ttfb%d" % rnd)
    mark = ctx.begin()
    m = tool.mount(cache)
    t0 = time.perf_counter()
    fd = os.open(os.path.join(m.root, "data/big.bin"), os.O_RDONLY)
    try:
        os.read(fd, 1)
        ctx.add("ttfb", tool.name, (time.perf_counter() - t0) * 1000)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)   # no kernel read-ahead, as fio
        t0 = time.perf_counter()
        for off in random_offsets(ctx, rnd):
            os.pread(fd, 4096, off)
        ctx.add("rand_cold", tool.name, z.rand_n / (time.perf_counter() - t0))
    finally:
        os.close(fd)
    ctx.finish("rand_cold", m, mark, z.rand_n * 4096, rnd)
    ctx.drop(cache)

    cache = ctx.cache(tool, "fio%d" % rnd)
    mark = ctx.begin()
    m = tool.mount(cache)
    out = subprocess.run(["fio", "--name=rand", "--filename=" + os.path.join(m.root, "data/big.bin"),
                          "--readonly", "--rw=randread", "--bs=4k", "--size=%d" % z.big,
                          "--ioengine=psync", "--time_based", "--runtime=%d" % z.fio_s,
                          "--output-format=json"], capture_output=True, text=True,
                         timeout=z.fio_s + 600)
    if out.returncode != 0:
        ctx.finish("rand_read", m, mark, 0, rnd)
        raise RuntimeError("fio: %s" % out.stderr[-500:])
    job = json.loads(out.stdout[out.stdout.index("{"):])["jobs"][0]["read"]
    ctx.add("rand_read", tool.name, job["iops"])
    ctx.finish("rand_read", m, mark, job["io_bytes"], rnd)
    ctx.drop(cache)


def random_read_limit(ctx, rnd):
    """The same 4 KiB ranges as ranged GETs, one after another on one
    connection; and curl's time to first byte of a 4 KiB range."""
    s, z = ctx.server, ctx.sizes
    auth, url = s.curl_auth(), s.url("data/big.bin")
    blocks = [auth + 'url = "%s"\nrange = "%d-%d"\noutput = "/dev/null"\n' % (url, off, off + 4095)
              for off in random_offsets(ctx, rnd)]
    dt, _ = s.curl("next\n".join(blocks))
    ctx.add("rand_cold", "curl", z.rand_n / dt)
    _, out = s.curl(auth + 'url = "%s"\nrange = "0-4095"\noutput = "/dev/null"\n'
                    'write-out = "%%{time_starttransfer}"\n' % url)
    ctx.add("ttfb", "curl", float(out) * 1000)


WORKLOADS = [
    (seq_read, seq_read_limit),
    (seq_write, seq_write_limit),
    (small_write, small_write_limit),
    (listing, listing_limit),
    (random_read, random_read_limit),
    (migrate, migrate_limit),
    (tree_walk, tree_walk_limit),
    (small_read, small_read_limit),
    (listing_meta, listing_meta_limit),
    (listing_remount, listing_remount_limit),
    (small_reread, small_reread_limit),
    (server_copy, server_copy_limit),
    (parallel_read, parallel_read_limit),
]


def metrics(z):
    """(key, label, unit, higher is better), in table order."""
    return [
        ("read_cold", "1. Sequential read, cold: dd of a %s object" % human(z.big), "MB/s", True),
        ("read_warm", "2. Sequential read, warm: the same after a remount (cache kept)", "MB/s", True),
        ("write_seq", "3. Sequential write: cp of a %s file, until in the server" % human(z.big), "MB/s", True),
        ("small_write", "4. Small files: cp -r of %d × 16 KiB, until in the server" % z.small_n, "s", False),
        ("list", "5. Listing: ls -l of %d objects, cold" % z.list_n, "s", False),
        ("list_requests", "5. … requests sent for that ls -l", "requests", False),
        ("ttfb", "6. Time to first byte of a %s object (open, read), fresh mount" % human(z.big),
         "ms", False),
        ("rand_cold", "6. Random 4 KiB reads, cold: the first %d preads after that" % z.rand_n,
         "reads/s", True),
        ("rand_read", "6. Random 4 KiB reads, fio for %d s on a fresh mount (the cache fills meanwhile)"
         % z.fio_s, "IOPS", True),
        ("rsync", "7. Migration: rsync -a of %d files (1 KiB–%d MiB, %.0f MiB), until in the server"
         % (z.mig_n, z.mig_max // MiB, sum(z.mig_sizes()) / MiB), "s", False),
        ("find", "8. Tree walk: find -name '*.csv' over %d files in %d directories, cold"
         % (z.tree_n, z.tree_dirs), "s", False),
        ("find_requests", "8. … requests sent for that find", "requests", False),
        ("small_read", "9. Small-file reads: cat of %d × 16 KiB files, cold" % z.small_n, "s", False),
        ("small_read_requests", "9. … requests sent for that cat", "requests", False),
        ("small_reread", "12. Small-file reads again: 9's cat on the same mount 2 s later (cached)",
         "s", False),
        ("small_reread_requests", "12. … requests sent for that cat", "requests", False),
        ("server_copy", "13. Copy inside the mount: cp of the %s object to another name, until "
         "in the server" % human(z.big), "s", False),
        ("server_copy_gets", "13. … GETs sent for it", "requests", False),
        ("par_read", "14. Parallel reads: %d readers at once, each dd of its own %s object, cold"
         % (z.par_n, human(z.par_size)), "MB/s", True),
        ("list_meta", "10. Listing with metadata: ls -l of %d objects carrying s3fs metadata, cold"
         % z.list_n, "s", False),
        ("list_meta_requests", "10. … requests sent for that ls -l", "requests", False),
        ("list_remount", "11. Listing again after a remount (cache kept): 5's ls -l, the second time",
         "s", False),
        ("list_remount_requests", "11. … requests sent for that ls -l", "requests", False),
        ("list_meta_remount", "11. The same for 10's objects with metadata", "s", False),
        ("list_meta_remount_requests", "11. … requests sent for that ls -l", "requests", False),
    ]


# ---------------------------------------------------------------- report

def median(v):
    v = [x for x in v or () if x is not None]
    return statistics.median(v) if v else None


def fmt(v, unit):
    if v is None:
        return "—"
    if unit in ("requests", "IOPS") or v >= 100:
        return "%.0f" % v
    return "%.1f" % v if v >= 10 else "%.2f" % v


def ratio(bfs, other, higher):
    """How many times better bucketfs is (> 1: better, < 1: behind)."""
    if bfs is None or other is None or bfs == 0 or other == 0:
        return None
    return bfs / other if higher else other / bfs


def environment(ctx):
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
    ver = lambda cmd: (subprocess.run(cmd, capture_output=True, text=True).stdout or "?").splitlines()[0]
    return {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "machine": "%d cores, %.0f GiB RAM, Linux %s" % (os.cpu_count(), mem / 1024 / 1024,
                                                              platform.release()),
            "server": ctx.server.kind, "runs": ctx.args.runs, "bucketfs": ctx.rev,
            "bucketfs_settle": "bucketfs sync" if ctx.bfs_sync else "fsync of each file",
            "s3fs": "s3fs " + re.sub(r".*File System (V\S+).*", r"\1", ver(["/usr/bin/s3fs", "--version"])),
            "rclone": ver(["/usr/bin/rclone", "version"]),
            "curl": ver(["curl", "--version"]), "fio": ver(["fio", "--version"])}


def usage_table(ctx):
    """Per workload and tool: median peak RSS, CPU seconds, CPU s per GiB moved."""
    rows, seen = [], []
    for rec in ctx.extra:
        if rec["usage"] and rec["metric"] not in seen:
            seen.append(rec["metric"])
    lines = ["| Workload | " + " | ".join("%s RSS MiB / CPU s / CPU s per GiB" % t.name for t in ctx.tools) + " |",
             "| --- |" + " --- |" * len(ctx.tools)]
    for metric in seen:
        cells = []
        for t in ctx.tools:
            recs = [r for r in ctx.extra if r["metric"] == metric and r["tool"] == t.name and r["usage"]]
            if not recs:
                cells.append("—")
                continue
            rss = median([r["usage"]["rss_mib"] for r in recs])
            cpu = median([r["usage"]["cpu_s"] for r in recs])
            moved = median([r["bytes"] for r in recs])
            per = "%.2f" % (cpu / (moved / GiB)) if moved >= 64 * MiB else "—"
            cells.append("%.0f / %.2f / %s" % (rss, cpu, per))
        rows.append("| %s | %s |" % (metric, " | ".join(cells)))
    return lines + rows


def report(ctx, env):
    z = ctx.sizes
    names = [t.name for t in ctx.tools]
    out = ["# bucketfs benchmark%s" % (" (quick)" if z.quick else ""), "",
           "%s on %s; server: %s on loopback; median of %d run%s. bucketfs %s; %s; %s; %s."
           % (env["date"], env["machine"], env["server"], env["runs"], "s" if env["runs"] > 1 else "",
              env["bucketfs"], env["s3fs"], env["rclone"],
              env["curl"].split(" (")[0]),
           "Measured on a shared, noisy machine (2 cores shared with the server and with other "
           "people's tests): read ratios, not absolute figures.", "",
           "Options: bucketfs defaults (`-o cache_dir=DIR`); s3fs `-o use_cache=DIR,use_path_request_style`; "
           "rclone `mount --vfs-cache-mode full --cache-dir DIR --vfs-write-back %s`. Each workload runs "
           "on a fresh mount with an empty cache (2 and 11: remounted on the kept cache); writes are "
           "timed until the server lists every byte (bucketfs: %s first)."
           % (RCLONE_WRITE_BACK, env["bucketfs_settle"]), "",
           "Ratios: how many times better bucketfs is (above 1: bucketfs ahead; below 1: behind); "
           "the limit is curl moving the same bytes with plain S3 requests.", "",
           "| Workload | Unit | " + " | ".join(names) + " | curl limit | bucketfs vs best peer | bucketfs vs limit |",
           "| --- | --- |" + " ---: |" * (len(names) + 3)]
    chart = []
    for key, label, unit, higher in metrics(z):
        vals = {n: median(ctx.samples.get(key, {}).get(n)) for n in names + ["curl"]}
        peers = [vals[n] for n in names[1:] if vals[n] is not None and not n.startswith("bucketfs")]
        best = (max(peers) if higher else min(peers)) if peers else None
        r_peer, r_lim = ratio(vals["bucketfs"], best, higher), ratio(vals["bucketfs"], vals["curl"], higher)
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            label, unit, " | ".join(fmt(vals[n], unit) for n in names), fmt(vals["curl"], unit),
            "%.2f" % r_peer if r_peer else "—", "%.2f" % r_lim if r_lim else "—"))
        chart.append((key, r_peer, r_lim))
    out += ["", "Daemon peak RSS (VmHWM, MiB), CPU seconds (utime+stime) and CPU seconds per GiB "
            "moved, per workload (medians):", ""] + usage_table(ctx)
    failures = [r for r in ctx.extra if r.get("error")]
    if failures:
        out += ["", "Failures:", ""] + ["- %s %s run %d: %s" % (r["tool"], r["metric"], r["run"], r["error"])
                                       for r in failures]
    return "\n".join(out) + "\n", chart


def plot(chart, path):
    """A bar chart of the ratios, when gnuplot is installed."""
    if not shutil.which("gnuplot"):
        return False
    data = path + ".dat"
    with open(data, "w") as f:
        for key, rp, rl in chart:
            f.write('"%s" %s %s\n' % (key, rp if rp else "NaN", rl if rl else "NaN"))
    script = """set terminal pngcairo size 1100,500 noenhanced
set output '%s'
set title 'bucketfs: how many times better than the best peer and than the curl limit (1 = equal)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y 2
set grid ytics
set xtics rotate by -30
set rmargin 10
set bmargin 7
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2
plot '%s' using 2:xtic(1) title 'vs best peer', '' using 3 title 'vs curl limit'
""" % (path, data)
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    os.unlink(data)
    if r.returncode != 0:
        log("gnuplot failed: %s", r.stderr.strip()[-300:])
        return False
    return True


# ---------------------------------------------------------------- main

def measure(ctx, fn, *args):
    """Runs one measurement; a failure is recorded, not fatal."""
    try:
        fn(ctx, *args)
    except Exception as e:  # noqa: BLE001 - one tool failing must not end the run
        tool = args[0].name if args and isinstance(args[0], Tool) else "curl"
        log("FAILED %s %s: %s", fn.__name__, tool, e)
        ctx.extra.append({"metric": fn.__name__, "tool": tool, "run": args[-1], "error": str(e)[:300],
                          "usage": None, "bytes": 0})
        for m in list(ctx.live):
            m.stop(timeout=60)
            ctx.live.remove(m)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, one run (under 5 minutes)")
    ap.add_argument("--out", default="bench-results.md")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--bucketfs", default=os.path.join(TOP, "build", "bucketfs"))
    ap.add_argument("--baseline", default="", help="another bucketfs binary measured beside "
                    "(before/after a change); not counted as a peer")
    ap.add_argument("--only", default="", help="comma-separated workload functions (for development)")
    args = ap.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # unmount on the way out
    ctx = Ctx(args)
    t0 = time.monotonic()
    try:
        setup(ctx)
        todo = [w for w in WORKLOADS if not args.only or w[0].__name__ in args.only.split(",")]
        for fn, limit in todo:
            for rnd in range(args.runs):
                for tool in ctx.rotated(rnd):
                    t1 = time.monotonic()
                    measure(ctx, fn, tool, rnd)
                    log("%s %s run %d: %.0fs", fn.__name__, tool.name, rnd + 1, time.monotonic() - t1)
                measure(ctx, limit, rnd)
        env = environment(ctx)
        text, chart = report(ctx, env)
        with open(args.out, "w") as f:
            f.write(text)
        base = os.path.splitext(args.out)[0]
        with open(base + ".json", "w") as f:
            json.dump({"env": env, "samples": ctx.samples, "records": ctx.extra}, f, indent=1)
        log("wrote %s, %s.json%s in %.0fs", args.out, base,
            (", %s.png" % base) if plot(chart, base + ".png") else "", time.monotonic() - t0)
        print(text)
    finally:
        for m in list(ctx.live):
            m.stop(timeout=60)
        shutil.rmtree(ctx.work, ignore_errors=True)


if __name__ == "__main__":
    main()
