#!/usr/bin/python3
"""bench-prefetch.py: how fast `bucketfs prefetch` warms a data set, against
`cat` of the same files through a mount and `aws s3 cp --recursive` to a
local directory. Run by scripts/bench-prefetch.sh under
scripts/with-server.sh (endpoint and keys in the environment).

The data set is N objects of 1 MiB (default 1,000) under one prefix, written
once with boto3. Each round runs the three tools in rotating order, each
from a cold start: bucketfs on a fresh mount with an empty cache directory
(`prefetch --quiet MNT/t`, or `find MNT/t -type f -print0 | xargs -0 cat >
/dev/null`, one reader as a job reading its files in turn would be), and
`aws s3 cp --recursive` (Debian's awscli, its default 10 requests in flight)
into an empty local directory. The times are wall-clock, walks included;
after each prefetch run the whole set is read again and the GETs it sent
are counted (the daemon's counters): it must be 0. The table gives medians
of the rounds and ratios to prefetch's median.
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import boto3

MiB = 1024 * 1024
BUCKET = "bfs-test"
AWS = "/usr/bin/aws"


def log(fmt, *args):
    print("[bench-prefetch] " + (fmt % args if args else fmt), file=sys.stderr, flush=True)


class Mount:
    """bucketfs -f on a fresh mount point with a fresh cache directory."""

    def __init__(self, bucketfs, prefix):
        self.bucketfs = bucketfs
        self.mnt = tempfile.mkdtemp(prefix="bfs-bp-mnt-")
        self.cache = tempfile.mkdtemp(prefix="bfs-bp-cache-")
        self.p = subprocess.Popen(
            [bucketfs, "-f", "--map", "t=s3://%s/%s" % (BUCKET, prefix.rstrip("/")),
             "-o", "cache_dir=%s,cache_size=4G" % self.cache, self.mnt],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not os.path.ismount(self.mnt):
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench-prefetch: bucketfs did not mount %s" % self.mnt)
            time.sleep(0.05)

    def stats(self):
        return json.loads(os.getxattr(self.mnt, "user.bucketfs.stats"))

    def close(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            self.p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        os.rmdir(self.mnt)
        shutil.rmtree(self.cache, ignore_errors=True)


def timed(cmd, **kw):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, **kw)
    return time.monotonic() - t0


def read_back_gets(m):
    """GETs sent by reading every file of the mount again."""
    before = m.stats()["by_op"]["get"]
    subprocess.run("find %s/t -type f -print0 | xargs -0 cat > /dev/null" % m.mnt, shell=True,
                   check=True)
    return m.stats()["by_op"]["get"] - before


def run_prefetch(args, prefix, out):
    m = Mount(args.bucketfs, prefix)
    try:
        secs = timed([args.bucketfs, "prefetch", "--quiet", "--jobs", str(args.jobs),
                      m.mnt + "/t"])
        st = m.stats()
        out["prefetch_gets"].append(st["by_op"]["get"])
        out["cache_bytes"].append(st["cache"]["bytes"])
        out["gets_after"].append(read_back_gets(m))
    finally:
        m.close()
    return secs


def run_cat(args, prefix, out):
    m = Mount(args.bucketfs, prefix)
    try:
        return timed("find %s/t -type f -print0 | xargs -0 cat > /dev/null" % m.mnt, shell=True)
    finally:
        m.close()


def run_aws(args, prefix, out):
    dest = tempfile.mkdtemp(prefix="bfs-bp-aws-")
    try:
        return timed([AWS, "s3", "cp", "--recursive", "--quiet", "--endpoint-url",
                      os.environ["AWS_ENDPOINT_URL"], "s3://%s/%s" % (BUCKET, prefix), dest])
    finally:
        shutil.rmtree(dest, ignore_errors=True)


TOOLS = [("bucketfs prefetch", run_prefetch), ("cat through bucketfs", run_cat),
         ("aws s3 cp --recursive", run_aws)]


def setup(n, prefix):
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    body = os.urandom(MiB)

    def put(i):  # distinct bytes per object: nothing dedups or compresses
        s3.put_object(Bucket=BUCKET, Key="%sd%02d/f%04d.bin" % (prefix, i % 20, i),
                      Body=i.to_bytes(4, "little") + body[4:])
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(put, range(n)))


def write_md(path, args, samples, extra):
    med = {t: statistics.median(v) for t, v in samples.items()}
    base = med["bucketfs prefetch"]
    total = args.files * MiB
    lines = [
        "# bucketfs prefetch on %s" % os.environ.get("TEST_SERVER", "?"),
        "",
        "%s; %d files of 1 MiB (%d MiB) under one prefix; median of %d rounds, tools in "
        "rotating order, each from a cold start (fresh mount and empty cache directory, or an "
        "empty local directory); `prefetch --jobs %d`. Made by `scripts/bench-prefetch.sh`."
        % (datetime.date.today().isoformat(), args.files, args.files, args.runs, args.jobs),
        "",
        "| tool | median s | MiB/s | time / prefetch's | samples (s) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for t, _ in TOOLS:
        lines.append("| %s | %.2f | %.0f | %.2fx | %s |" % (
            t, med[t], total / MiB / med[t], med[t] / base,
            ", ".join("%.2f" % s for s in samples[t])))
    lines += [
        "",
        "prefetch is %.2fx as fast as `cat` of the same files through a fresh mount and "
        "%.2fx as fast as `aws s3 cp --recursive`." % (med["cat through bucketfs"] / base,
                                                      med["aws s3 cp --recursive"] / base),
        "",
        "GETs sent by each prefetch run: %s; bytes cached: %s; GETs sent by reading the "
        "whole set again on that mount afterwards: %s (must be 0)."
        % (extra["prefetch_gets"], extra["cache_bytes"], extra["gets_after"]),
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    log("wrote %s", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bucketfs", required=True)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--out", help="default: bench/results-SERVER-prefetch.md of the checkout")
    args = ap.parse_args()
    args.out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench",
                                        "results-%s-prefetch.md" % os.environ.get("TEST_SERVER"))
    args.bucketfs = os.path.abspath(args.bucketfs)
    prefix = "bench-prefetch-%d/" % os.getpid()
    log("writing %d objects of 1 MiB under %s", args.files, prefix)
    setup(args.files, prefix)
    samples = {t: [] for t, _ in TOOLS}
    extra = {"prefetch_gets": [], "cache_bytes": [], "gets_after": []}
    for rnd in range(args.runs):
        order = TOOLS[rnd % len(TOOLS):] + TOOLS[:rnd % len(TOOLS)]
        for name, fn in order:
            secs = fn(args, prefix, extra)
            samples[name].append(secs)
            log("round %d: %-22s %6.2f s", rnd + 1, name, secs)
    write_md(args.out, args, samples, extra)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"samples": samples, **extra, "files": args.files, "jobs": args.jobs}, f,
                  indent=1)
    return 0 if all(g == 0 for g in extra["gets_after"]) else 1


if __name__ == "__main__":
    sys.exit(main())
