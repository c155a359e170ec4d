#!/usr/bin/python3
"""Integration tests of issue 12, "what the mount shows is what the bucket
holds": on a fresh mount with an empty cache directory, the attributes shown
(type, permission bits, uid, gid, mtime, symlink target) equal what the
objects carry, whether a listing, a lookup or an open came first.

Run as root inside scripts/with-server.sh:

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_meta.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Order]

Objects carry s3fs-compatible metadata: x-amz-meta-mode (decimal st_mode:
41471 = S_IFLNK|0777 for a symlink whose body is the target, 4516 =
S_IFIFO|0644 for a FIFO stored as a zero-byte object; s3fs writes a
directory marker's mode without the type bits, bucketfs with them),
x-amz-meta-uid, -gid and -mtime (seconds, maybe with a fraction).  What a
test expects is read back from the objects with boto3 (head_object of every
key under the test's prefix), after checking that each writer stored what it
was asked to store; where an object carries no metadata the mount's defaults
apply (0644/0755, the mounting user, LastModified within 2 s).

Three independent writers fill the trees: a first bucketfs mount (unmounted,
which waits for its uploads, before the checks), s3fs (the Debian package,
mounted on the same prefix with -o url=...,use_path_request_style,passwd_file=...)
and boto3.  Every check then runs on a new mount with an empty cache
directory and the default list_meta, and compares in this order: ls -lR,
readdir's d_type and lstat after listing, find -type l, readlink, stat, and
the copies made by `rsync -a --numeric-ids` and `cp -a` (types, modes,
owners, mtimes to the nanosecond, content).  rsync 3.x does not set the times
of FIFOs it creates, so their mtime is not compared in the rsync copy; and it
compares a time without a fraction (s3fs writes whole seconds) to the second
only, so it leaves a copy made within that second with its creation time:
those mtimes are compared to the second in the rsync copy.

The random test prints its seed; BFS_SEED=N replays a sequence.  The Mount
machinery and the boto3 client are those of test_mount.py and test_write.py
(imported from this directory).  Request counters come from the mount
root's xattr user.bucketfs.stats ("requests" and "by_op": list, head, get...).
The binary given with --bucketfs is copied at the start, so that a rebuild
of build/ during the run cannot break later mounts.  A directory's mtime is
compared where a marker object carries one; not for implicit directories,
and not in the random test, where the writing mount shows the time of the
last change inside the directory, which no object keeps.
"""
import concurrent.futures
import contextlib
import errno
import os
import posixpath
import random
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import BUCKET, alive, mounted, note, read_all, run_bucketfs  # noqa: E402
from test_write import WriteTestCase, write_file  # noqa: E402

S3FS = "/usr/bin/s3fs"
S_LNK = stat.S_IFLNK | 0o777        # 41471
S_FIFO = stat.S_IFIFO | 0o644       # 4516
UID_A, GID_A = 1234, 2345           # owners other than the mounting user (root)
KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
         stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "chardev",
         stat.S_IFBLK: "blockdev"}
LS_KINDS = {"-": "file", "d": "dir", "l": "symlink", "p": "fifo", "s": "socket",
            "c": "chardev", "b": "blockdev"}
MAX_LINES = 25                      # mismatches shown per phase


def parse_mtime_ns(s):
    """x-amz-meta-mtime ("1500000000", "1500000000.25") in ns, or None."""
    try:
        s = s.strip()
        whole, _, frac = s.partition(".")
        if not whole.isdigit() or (frac and not frac.isdigit()):
            return None
        return int(whole) * 10**9 + int((frac + "0" * 9)[:9])
    except (AttributeError, ValueError):
        return None


def fmt_ns(ns):
    return "None" if ns is None else "%d.%09d" % divmod(ns, 10**9)


def kind_of(mode):
    return KINDS.get(stat.S_IFMT(mode), "type 0o%o" % stat.S_IFMT(mode))


def attrs(st):
    return {"kind": kind_of(st.st_mode), "perm": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
            "gid": st.st_gid, "mtime_ns": st.st_mtime_ns, "size": st.st_size}


def describe(a):
    """One entry's attributes in one short line."""
    if a is None:
        return "MISSING"
    s = "%s %04o %d:%d mtime %s" % (a["kind"], a["perm"], a["uid"], a["gid"],
                                    fmt_ns(a.get("mtime_ns")) if a.get("mtime_ns") is not None
                                    else "~%.3f" % a["mtime_approx"] if a.get("mtime_approx")
                                    else "(any)")
    if a.get("size") is not None and a["kind"] != "dir":
        s += " size %d" % a["size"]
    if a.get("target") is not None:
        s += " -> %r" % a["target"]
    return s


def ls_mode(perms):
    """(kind, permission bits) of an ls -l mode string such as -rwsr-x--T."""
    kind = LS_KINDS.get(perms[0], "?" + perms[0])
    bits = 0
    for i, (r, w, x, special) in enumerate(((8, 7, 6, 0o4000), (5, 4, 3, 0o2000),
                                            (2, 1, 0, 0o1000))):
        c = perms[1 + 3 * i: 4 + 3 * i]
        bits |= (1 << r if c[0] == "r" else 0) | (1 << w if c[1] == "w" else 0)
        if c[2] in "xst":
            bits |= 1 << x
        if c[2] in "sStT":
            bits |= special
    return kind, bits


def parse_ls_lR(text, root):
    """{path relative to root: attrs} from `ls -lRn --time-style=+%s ROOT`."""
    out, cur = {}, None
    for line in text.splitlines():
        if not line.strip() or line.startswith("total "):
            continue
        if line.endswith(":") and line[:-1].startswith(root):
            cur = os.path.relpath(line[:-1], root)
            cur = "" if cur == "." else cur
            continue
        f = line.split(None, 6)
        if len(f) < 7 or cur is None:
            raise AssertionError("unexpected ls -lR line %r" % line)
        kind, perm = ls_mode(f[0])
        name, target = f[6], None
        if kind == "symlink" and " -> " in name:
            name, target = name.split(" -> ", 1)
        rel = posixpath.join(cur, name) if cur else name
        out[rel] = {"kind": kind, "perm": perm, "uid": int(f[2]), "gid": int(f[3]),
                    "size": int(f[4]) if f[4].isdigit() else None, "mtime_s": int(f[5]),
                    "target": target}
    return out


def diff_attrs(rel, got, want, mtime="ns", size=True, target=True, perm=True):
    """A line saying what differs between got (what was shown) and want
    (what the objects carry), or None.  mtime: "ns", "s" (whole seconds) or
    None (not compared)."""
    if got is None:
        return "%s: expected %s, but it is MISSING" % (rel, describe(want))
    bad = []
    if got["kind"] != want["kind"]:
        bad.append("type")
    if perm and got["perm"] != want["perm"]:
        bad.append("mode")
    if (got["uid"], got["gid"]) != (want["uid"], want["gid"]):
        bad.append("owner")
    if mtime and want["kind"] == got["kind"]:
        g_ns = got.get("mtime_ns")
        g_s = got["mtime_s"] if g_ns is None else g_ns // 10**9
        if want.get("mtime_ns") is not None:
            if mtime == "ns" and g_ns is not None:
                if g_ns != want["mtime_ns"]:
                    bad.append("mtime")
            elif g_s != want["mtime_ns"] // 10**9:
                bad.append("mtime")
        elif want.get("mtime_approx") is not None:
            g = g_ns / 1e9 if g_ns is not None else g_s
            if abs(g - want["mtime_approx"]) > 2.0:
                bad.append("mtime (LastModified)")
    if size and want.get("size") is not None and got.get("size") is not None and \
            want["kind"] in ("file", "symlink", "fifo") and got["size"] != want["size"]:
        bad.append("size")
    if target and want.get("target") is not None and got.get("target", want["target"]) \
            != want["target"]:
        bad.append("target")
    if not bad:
        return None
    shown = dict(got)
    if shown.get("mtime_ns") is None and "mtime_s" in shown:
        shown["mtime_ns"] = shown["mtime_s"] * 10**9
    return "%s: %s differ: expected %s, shown %s" % (rel, ", ".join(bad), describe(want),
                                                      describe(shown))


def section(title, lines):
    lines = [l for l in lines if l]
    if not lines:
        return None
    more = len(lines) - MAX_LINES
    return "%s: %d mismatch(es)\n    %s%s" % (title, len(lines), "\n    ".join(lines[:MAX_LINES]),
                                              "\n    ... and %d more" % more if more > 0 else "")


def run(cmd, timeout=300, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


# ------------------------------------------------------------------ s3fs
def s3fs_pids(mountpoint):
    mountpoint = os.path.realpath(mountpoint)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"s3fs" and alive(int(d)) and any(
                os.path.realpath(a.decode(errors="replace")) == mountpoint for a in argv[1:] if a):
            pids.append(int(d))
    return pids


class S3fsMount:
    """s3fs-fuse (Debian's /usr/bin/s3fs) on BUCKET:/prefix at a fresh
    mountpoint, as a context manager: the independent writer.  s3fs uploads
    a file when it is flushed, so what it wrote is in S3 once close returned;
    leaving unmounts and waits for the daemon to exit (or kills it)."""

    def __init__(self, prefix, tmp):
        self.prefix = prefix.rstrip("/")
        self.mnt = tempfile.mkdtemp(prefix="bfs-s3fs-")
        self.passwd = os.path.join(tmp, "s3fs.passwd")
        self.cmd = None
        self.pids = []

    def __enter__(self):
        fd = os.open(self.passwd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, ("%s:%s\n" % (os.environ["AWS_ACCESS_KEY_ID"],
                                   os.environ["AWS_SECRET_ACCESS_KEY"])).encode())
        os.close(fd)
        self.cmd = [S3FS, "%s:/%s" % (BUCKET, self.prefix), self.mnt, "-o",
                    "url=%s,use_path_request_style,passwd_file=%s,endpoint=%s"
                    % (os.environ["AWS_ENDPOINT_URL"], self.passwd,
                       os.environ.get("AWS_REGION", "us-east-1"))]
        try:
            rc, err, _ = run_bucketfs(self.cmd, timeout=60)
            deadline = time.monotonic() + 10
            while rc == 0 and not mounted(self.mnt) and time.monotonic() < deadline:
                time.sleep(0.05)
            if rc != 0 or not mounted(self.mnt):
                raise AssertionError("s3fs did not mount (exit status %s)\n$ %s\n%s"
                                     % (rc, shlex.join(self.cmd), err))
            self.pids = s3fs_pids(self.mnt)
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        problems = self.cleanup()
        if problems and exc[0] is None:
            raise AssertionError("unmounting s3fs: %s" % "; ".join(problems))
        return False

    def cleanup(self):
        problems = []
        if mounted(self.mnt):
            r = run(["fusermount3", "-u", self.mnt], timeout=60)
            if r.returncode != 0:
                problems.append("fusermount3 -u %s: %s" % (self.mnt, r.stderr.strip()))
        pids = set(self.pids) | set(s3fs_pids(self.mnt))
        deadline = time.monotonic() + 30
        while any(alive(p) for p in pids) and time.monotonic() < deadline and not problems:
            time.sleep(0.05)
        if any(alive(p) for p in pids):
            problems.append("s3fs still running after fusermount3 -u: killed")
            for p in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        if mounted(self.mnt):
            run(["fusermount3", "-uz", self.mnt], timeout=30)
        if not mounted(self.mnt):
            with contextlib.suppress(OSError):
                os.rmdir(self.mnt)
        return problems

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)


# ------------------------------------------------------------ test case
class MetaTestCase(WriteTestCase):
    """Helpers: expected attributes read from the objects, the comparisons."""

    def setUp(self):
        super().setUp()
        self.p = "tx-%s-%s/" % (self._testMethodName[5:][:40], os.urandom(4).hex())

    # ---- what the objects carry
    def expected_tree(self, under=""):
        """{path under t: expected attrs} for every key under self.p + under,
        from its metadata (HEAD), with the bodies of symlinks and files;
        implicit directories get the defaults and an mtime not compared."""
        objs = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=BUCKET, Prefix=self.p + under):
            for o in page.get("Contents", []):
                objs[o["Key"][len(self.p):]] = o

        def one(rel):
            h = self.s3.head_object(Bucket=BUCKET, Key=self.p + rel)
            meta = h.get("Metadata", {})
            body = None
            mode = int(meta["mode"]) if meta.get("mode", "").isdigit() else None
            if not rel.endswith("/") and (mode is None or stat.S_IFMT(mode) in (
                    0, stat.S_IFREG, stat.S_IFLNK)):
                body = self.s3.get_object(Bucket=BUCKET, Key=self.p + rel)["Body"].read()
            return rel, h, meta, mode, body

        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            results = list(ex.map(one, sorted(objs)))
        want = {}
        for rel, h, meta, mode, body in results:
            w = {"key": rel, "meta": meta,
                 "uid": int(meta["uid"]) if meta.get("uid", "").isdigit() else os.getuid(),
                 "gid": int(meta["gid"]) if meta.get("gid", "").isdigit() else os.getgid(),
                 "mtime_ns": parse_mtime_ns(meta["mtime"]) if "mtime" in meta else None,
                 "mtime_approx": None, "size": h["ContentLength"], "target": None, "data": None}
            if w["mtime_ns"] is None:
                w["mtime_approx"] = objs[rel]["LastModified"].timestamp()
            if rel.endswith("/"):
                rel = rel[:-1]
                w.update(kind="dir", perm=mode & 0o7777 if mode is not None else 0o755)
            else:
                w.update(kind=kind_of(mode) if mode is not None and stat.S_IFMT(mode) else "file",
                         perm=mode & 0o7777 if mode is not None else 0o644)
                if w["kind"] == "symlink":
                    w["target"] = body.decode("utf-8", "surrogateescape")
                elif w["kind"] == "file":
                    w["data"] = body
            want[rel] = w
        for rel in list(want):
            d = posixpath.dirname(rel)
            while d and d not in want:
                want[d] = {"kind": "dir", "perm": 0o755, "uid": os.getuid(), "gid": os.getgid(),
                           "mtime_ns": None, "mtime_approx": None, "size": None, "target": None,
                           "data": None, "key": None, "meta": {}}
                d = posixpath.dirname(d)
        return want

    def assertStored(self, rel, mode=None, uid=None, gid=None, mtime=None, body=None, who=""):
        """Precondition: the writer stored what it was asked to (else the
        reader cannot be judged).  mode may be a tuple of accepted values."""
        h = self.head(rel)
        self.assertIsNotNone(h, "precondition: %s did not store %s (keys: %r)"
                             % (who, rel, self.rel_keys()[:40]))
        meta = h.get("Metadata", {})
        bad = []
        modes = mode if isinstance(mode, tuple) else (mode,)
        if mode is not None and meta.get("mode") not in [str(m) for m in modes]:
            bad.append("x-amz-meta-mode %r, want %s" % (meta.get("mode"), " or ".join(
                "%d (0%o)" % (m, m) for m in modes)))
        for name, v in (("uid", uid), ("gid", gid)):
            if v is not None and meta.get(name) != str(v):
                bad.append("x-amz-meta-%s %r, want %r" % (name, meta.get(name), str(v)))
        if mtime is not None and parse_mtime_ns(meta.get("mtime", "")) != mtime:
            bad.append("x-amz-meta-mtime %r, want %s" % (meta.get("mtime"), fmt_ns(mtime)))
        if body is not None:
            got = self.get(rel)
            if got != body:
                bad.append("body %r, want %r" % (got[:80], body[:80]))
        if bad:
            self.fail("precondition: the object %s written by %s: %s (metadata %r)"
                      % (rel, who, "; ".join(bad), meta))

    # ---- writers
    def write_with_boto3(self, base):
        """Objects with s3fs metadata written by boto3 under base (e.g. "b3/"):
        owners other than ours, a symlink, a dangling and an absolute one, a
        FIFO, a 0700 marker with the type bits and a 0750 one without (as
        s3fs writes them), fractional mtimes, and a file with no metadata."""
        def m(mode, uid=UID_A, gid=GID_A, mtime=None):
            d = {"mode": str(mode), "uid": str(uid), "gid": str(gid)}
            if mtime is not None:
                d["mtime"] = mtime
            return d
        items = [
            ("owned.csv", b"a,b\n1,2\n", m(stat.S_IFREG | 0o640, mtime="1500000000.25")),
            ("exec.sh", b"#!/bin/sh\necho hi\n", m(stat.S_IFREG | 0o755, 0, 0, "1234567890")),
            ("link", b"owned.csv", m(S_LNK, mtime="1500000001.5")),
            ("abslink", b"/etc/hostname", m(S_LNK, 0, 0, "1500000002")),
            ("dangling", b"no/such/file", m(S_LNK, 4321, 4321, "1500000003.000000007")),
            ("fifo", b"", m(S_FIFO, mtime="1500000004.75")),
            ("priv/", b"", m(stat.S_IFDIR | 0o700, mtime="1500000005")),
            ("priv/inside.txt", b"private\n", m(stat.S_IFREG | 0o600, mtime="1500000006.125")),
            ("s3fsdir/", b"", m(0o750, 0, 0, "1500000007")),
            ("s3fsdir/x.txt", b"x\n", m(stat.S_IFREG | 0o444, 0, 0, "1500000008")),
            ("sub/deeper/up", b"../../owned.csv", m(S_LNK, mtime="1500000009")),
            ("plain.txt", b"no metadata at all\n", None),
        ]
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda it: self.put(base + it[0], it[1], **(
                {"Metadata": it[2]} if it[2] else {})), items))

    # ---- the checks on a fresh mount
    def check_ls_lR(self, m, want):
        r = run(["ls", "-lRn", "--time-style=+%s", m.path("t")], timeout=300)
        if r.returncode != 0:
            return ["ls -lRn exited %d: %s" % (r.returncode, r.stderr[-2000:])]
        got = parse_ls_lR(r.stdout, m.path("t"))
        lines = [diff_attrs(rel, got.get(rel), w, mtime="s") for rel, w in sorted(want.items())]
        lines += ["%s: listed by ls but not expected (%r)" % (rel, got[rel])
                  for rel in sorted(set(got) - set(want))]
        return lines

    def walk_listing_first(self, root):
        """{rel: attrs (lstat) + "dtype"} listing each directory before
        looking at its entries (scandir: the type readdir reported)."""
        out = {}
        stack = [""]
        while stack:
            d = stack.pop()
            with os.scandir(os.path.join(root, d)) as it:
                ents = list(it)
            for e in ents:
                rel = posixpath.join(d, e.name) if d else e.name
                dtype = ("symlink" if e.is_symlink() else "dir" if e.is_dir(follow_symlinks=False)
                         else "file" if e.is_file(follow_symlinks=False) else "other")
                try:
                    a = attrs(os.lstat(e.path))
                except OSError as ex:
                    out[rel] = {"error": "lstat: %s" % ex, "dtype": dtype}
                    continue
                a["dtype"] = dtype
                if a["kind"] == "symlink":
                    try:
                        a["target"] = os.readlink(e.path)
                    except OSError as ex:
                        a["target"] = "readlink: %s" % ex
                out[rel] = a
                if a["kind"] == "dir":
                    stack.append(rel)
        return out

    def check_listing_attrs(self, seen, want, mtime="ns"):
        lines = []
        for rel, w in sorted(want.items()):
            g = seen.get(rel)
            if g is not None and "error" in g:
                lines.append("%s: expected %s, %s" % (rel, describe(w), g["error"]))
                continue
            line = diff_attrs(rel, g, w, mtime=mtime, target=False)
            if line:
                lines.append(line)
            if g is not None:
                dt = {"fifo": "other"}.get(w["kind"], w["kind"])
                if g.get("dtype") != dt:
                    lines.append("%s: readdir reported type %s, expected %s"
                                 % (rel, g.get("dtype"), dt))
        lines += ["%s: listed but not expected (%s)" % (rel, describe(seen[rel]) if "kind" in
                                                         seen[rel] else seen[rel])
                  for rel in sorted(set(seen) - set(want))]
        return lines

    def check_readlinks(self, root, want):
        lines = []
        for rel, w in sorted(want.items()):
            if w["kind"] != "symlink":
                continue
            try:
                got = os.readlink(os.path.join(root, rel))
            except OSError as e:
                lines.append("%s: readlink failed (%s), expected %r" % (rel, e, w["target"]))
                continue
            if got != w["target"]:
                lines.append("%s: readlink gave %r, expected %r" % (rel, got, w["target"]))
        return lines

    @staticmethod
    def resolve(rel, want, depth=0):
        """What stat(rel) should show: ("want", rel), ("local", abs path),
        ("enoent", None) or None (outside the tree: not checked)."""
        w = want.get(rel)
        if w is None:
            return ("enoent", None)
        if w["kind"] != "symlink":
            return ("want", rel)
        if depth > 8:
            return None
        t = w["target"]
        if t.startswith("/"):
            return ("local", t)
        dest = posixpath.normpath(posixpath.join(posixpath.dirname(rel), t))
        if dest == ".." or dest.startswith("../"):
            return None
        return MetaTestCase.resolve(dest, want, depth + 1)

    def check_stats(self, root, want):
        lines = []
        for rel in sorted(want):
            r = self.resolve(rel, want)
            if r is None:
                continue
            try:
                got = attrs(os.stat(os.path.join(root, rel)))
            except FileNotFoundError:
                if r[0] != "enoent":
                    lines.append("%s: stat failed with ENOENT, expected it to reach %s" % (rel, r))
                continue
            except OSError as e:
                lines.append("%s: stat failed: %s" % (rel, e))
                continue
            if r[0] == "enoent":
                lines.append("%s: stat succeeded (%s), expected ENOENT (dangling link)"
                             % (rel, describe(got)))
            elif r[0] == "local":
                exp = attrs(os.stat(r[1]))
                if got != exp:
                    lines.append("%s: stat shows %s, expected %s (%s)" % (rel, describe(got),
                                                                       describe(exp), r[1]))
            else:
                line = diff_attrs(rel + " (stat, through %s)" % r[1] if r[1] != rel else rel,
                                  got, want[r[1]], target=False)
                if line:
                    lines.append(line)
        return lines

    def check_copy(self, copy, want, tool):
        """The local copy made by tool: same entries, types, modes, owners,
        mtimes (ns) and contents as the objects."""
        lines = []
        seen = set()
        for dirpath, dirnames, filenames in os.walk(copy):
            for n in dirnames + filenames:
                seen.add(os.path.relpath(os.path.join(dirpath, n), copy))
        for rel, w in sorted(want.items()):
            p = os.path.join(copy, rel)
            try:
                g = attrs(os.lstat(p))
            except FileNotFoundError:
                lines.append("%s: missing from the %s copy (expected %s)" % (rel, tool, describe(w)))
                continue
            if g["kind"] == "symlink":
                g["target"] = os.readlink(p)
            mtime = "ns"
            if tool.startswith("rsync") and w["kind"] == "fifo":
                mtime = None  # rsync does not set the times of the FIFOs it makes
            elif tool.startswith("rsync") and (w["mtime_ns"] or 1) % 10**9 == 0:
                # rsync takes a time without a fraction as whole seconds: it
                # leaves a copy made within that second with its own time
                mtime = "s"
            line = diff_attrs(rel, g, w, mtime=mtime)
            if line:
                lines.append(line)
            if w["kind"] == "file" and g["kind"] == "file" and w["data"] is not None:
                data = read_all(p)
                if data != w["data"]:
                    lines.append("%s: content in the %s copy differs: %d bytes (md5 %s), "
                                 "expected %d bytes (md5 %s)"
                                 % (rel, tool, len(data), tm.md5hex(data), len(w["data"]),
                                    tm.md5hex(w["data"])))
        lines += ["%s: in the %s copy but not expected" % (rel, tool)
                  for rel in sorted(seen - set(want))]
        return lines

    def check_fresh_mount(self, m, want, problems, steps=("ls", "walk", "find", "readlink",
                                                         "stat", "rsync", "cp")):
        """The checks of a fresh mount, in order, each adding a section of
        problems (one line per mismatching entry)."""
        t = m.path("t")
        nlinks = sum(1 for w in want.values() if w["kind"] == "symlink")
        if "ls" in steps:
            problems.append(section("ls -lRn on the fresh mount (listing first)",
                                    self.check_ls_lR(m, want)))
        if "walk" in steps:
            problems.append(section("readdir type + lstat after listing",
                                    self.check_listing_attrs(self.walk_listing_first(t), want)))
        if "find" in steps:
            r = run(["find", t, "-type", "l"])
            got = sorted(os.path.relpath(l, t) for l in r.stdout.splitlines())
            exp = sorted(rel for rel, w in want.items() if w["kind"] == "symlink")
            if r.returncode != 0 or got != exp:
                problems.append("find -type l: expected the %d symlinks %r, found %r%s"
                                % (nlinks, exp, got, " (exit %d: %s)" % (r.returncode, r.stderr)
                                   if r.returncode else ""))
        if "readlink" in steps:
            problems.append(section("readlink", self.check_readlinks(t, want)))
        if "stat" in steps:
            problems.append(section("stat (following symlinks)", self.check_stats(t, want)))
        for tool in ("rsync", "cp"):
            if tool not in steps:
                continue
            dest = os.path.join(self.tmp, "copy-" + tool)
            shutil.rmtree(dest, ignore_errors=True)
            cmd = (["rsync", "-a", "--numeric-ids", t + "/", dest + "/"] if tool == "rsync"
                   else ["cp", "-a", t, dest])
            r = run(cmd)
            name = " ".join(cmd[:3 if tool == "rsync" else 2])
            if r.returncode != 0:
                problems.append("%s MOUNT/t/ LOCAL/ exited %d: %s"
                                % (name, r.returncode, r.stderr[-2000:]))
            problems.append(section("the %s copy" % name, self.check_copy(dest, want, name)))


# ------------------------------------------------------ three writers
class ThreeWritersTest(MetaTestCase):

    def write_with_bucketfs(self):
        with self.mount() as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            os.mkdir(t("y1"))
            write_file(t("y1", "target.txt"), b"the link's target\n")
            os.mkdir(t("y0"))
            for cmd in (["ln", "-s", "../y1", t("y0", "link")],
                        ["sh", "-c", "printf 'x,y\\n3,4\\n' > %s" % shlex.quote(t("y0", "f.csv"))],
                        ["chmod", "640", t("y0", "f.csv")],
                        ["touch", "-d", "@1500000000", t("y0", "f.csv")],
                        ["mkdir", "-m", "700", t("y0", "priv")],
                        ["mkfifo", t("y0", "pipe")]):
                r = run(cmd, timeout=60)
                self.assertEqual(r.returncode, 0, "on the writing bucketfs mount, %s failed: %s"
                                 % (shlex.join(cmd), r.stderr))
            write_file(t("y0", "priv", "inner.txt"), b"inner\n", mode=0o600)
            write_file(t("y0", "frac.bin"), os.urandom(3000))
            os.utime(t("y0", "frac.bin"), ns=(1600000000250000000, 1600000000250000000))
            write_file(t("y0", "owned.bin"), b"owned\n")
            os.chown(t("y0", "owned.bin"), UID_A, GID_A)
            m.unmount_wait()  # waits until every upload is done
        who = "the first bucketfs mount"
        self.assertStored("y0/link", mode=S_LNK, body=b"../y1", who=who)
        self.assertStored("y0/f.csv", mode=stat.S_IFREG | 0o640, mtime=1500000000 * 10**9,
                          body=b"x,y\n3,4\n", who=who)
        self.assertStored("y0/priv/", mode=stat.S_IFDIR | 0o700, who=who)
        self.assertStored("y0/pipe", mode=S_FIFO, body=b"", who=who)
        self.assertStored("y0/frac.bin", mtime=1600000000250000000, who=who)
        self.assertStored("y0/owned.bin", uid=UID_A, gid=GID_A, who=who)

    def write_with_s3fs(self):
        with S3fsMount(self.p, self.tmp) as s:
            t = s.path
            os.mkdir(t("s3"))
            write_file(t("s3", "secret.txt"), b"s3fs secret\n")
            os.chmod(t("s3", "secret.txt"), 0o600)
            os.symlink("secret.txt", t("s3", "slink"))
            os.symlink("../y0/f.csv", t("s3", "uplink"))
            os.mkdir(t("s3", "sdir"), 0o750)
            write_file(t("s3", "sdir", "in.txt"), b"in sdir\n")
            os.utime(t("s3", "sdir", "in.txt"), ns=(1400000000500000000, 1400000000500000000))
            write_file(t("s3", "owned"), b"owned by s3fs\n")
            os.chown(t("s3", "owned"), 3456, 4567)
            os.mkfifo(t("s3", "fifo"), 0o640)
        who = "s3fs"
        self.assertStored("s3/secret.txt", mode=stat.S_IFREG | 0o600, body=b"s3fs secret\n",
                          who=who)
        self.assertStored("s3/slink", mode=S_LNK, body=b"secret.txt", who=who)
        self.assertStored("s3/sdir/", mode=(0o750, stat.S_IFDIR | 0o750), who=who)
        self.assertStored("s3/sdir/in.txt", mtime=1400000000500000000, who=who)
        self.assertStored("s3/owned", uid=3456, gid=4567, who=who)
        self.assertStored("s3/fifo", mode=stat.S_IFIFO | 0o640, who=who)

    def test_three_writers_fresh_mount(self):
        """Written by a bucketfs mount, by s3fs and by boto3; a new mount with
        an empty cache shows every entry as its object says, listing first
        (ls -lR, readdir + lstat, find), then readlink, stat, rsync -a, cp -a."""
        t0 = time.monotonic()
        self.write_with_bucketfs()
        t1 = time.monotonic()
        self.write_with_s3fs()
        t2 = time.monotonic()
        self.write_with_boto3("b3/")
        want = self.expected_tree()
        note("written by bucketfs in %.1fs, by s3fs in %.1fs; %d entries (%d symlinks, %d FIFOs)",
             t1 - t0, t2 - t1, len(want), sum(w["kind"] == "symlink" for w in want.values()),
             sum(w["kind"] == "fifo" for w in want.values()))
        problems = []
        with self.mount() as m:
            self.check_fresh_mount(m, want, problems)
        problems = [p for p in problems if p]
        if problems:
            self.fail("a fresh mount (empty cache, default list_meta) does not show what the "
                      "objects carry:\n  " + "\n  ".join(problems))


# ----------------------------------------------------- lookup, listing
class OrderTest(MetaTestCase):

    def test_lookup_first_then_listing(self):
        """lstat of every name by path on a fresh mount, then listing and
        lstat again: the same exact answers both times."""
        self.write_with_boto3("")
        want = self.expected_tree()
        problems = []
        with self.mount() as m:
            t = m.path("t")
            first = {}
            for rel in sorted(want):  # parents before children, each by name
                try:
                    a = attrs(os.lstat(os.path.join(t, rel)))
                except OSError as e:
                    first[rel] = None
                    problems.append("%s: lstat by name failed: %s (expected %s)"
                                    % (rel, e, describe(want[rel])))
                    continue
                if a["kind"] == "symlink":
                    a["target"] = os.readlink(os.path.join(t, rel))
                first[rel] = a
            problems.append(section("lstat + readlink by name on a fresh mount (no listing yet)",
                                    [diff_attrs(rel, a, want[rel]) for rel, a in
                                     sorted(first.items()) if a is not None]))
            seen = self.walk_listing_first(t)
            problems.append(section("readdir type + lstat after listing (names looked up first)",
                                    self.check_listing_attrs(seen, want)))
            problems.append(section("readlink after listing", self.check_readlinks(t, want)))
            changed = ["%s: by name %s, after listing %s" % (rel, describe(first[rel]),
                                                             describe(seen.get(rel)))
                       for rel in sorted(first) if first[rel] and seen.get(rel) and
                       {k: seen[rel].get(k) for k in first[rel]} != first[rel]]
            problems.append(section("answers that changed when the directory was listed",
                                    changed))
        problems = [p for p in problems if p]
        if problems:
            self.fail("lookup first, then listing, on a fresh mount:\n  " + "\n  ".join(problems))


# ------------------------------------------------------ cost of ls -l
class CostTest(MetaTestCase):
    N = 300

    def test_ls_of_objects_without_metadata_is_cheap(self):
        """ls -l of 300 objects without metadata (and one with) on a fresh
        mount: at most one request per 20 objects beyond the LIST pages;
        defaults shown; the one with metadata is exact once opened."""
        objs = {"big/obj-%04d.dat" % i: os.urandom(128) for i in range(self.N)}
        self.put_many(objs)
        self.put("big/obj-0150.special", b"special,1\n", Metadata={
            "mode": str(stat.S_IFREG | 0o600), "uid": str(UID_A), "gid": str(GID_A),
            "mtime": "1500000000.5"})
        lm = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                      Prefix=self.p + "big/"):
            for o in page.get("Contents", []):
                lm[o["Key"][len(self.p) + 4:]] = o["LastModified"].timestamp()
        n = len(lm)
        self.assertEqual(n, self.N + 1, "precondition: objects stored under big/")
        with self.mount() as m:
            d = m.path("t", "big")
            s0 = m.stats()
            r = run(["ls", "-ln", "--time-style=+%s", d])
            s1 = m.stats()
            self.assertEqual(r.returncode, 0, "ls -ln: %s" % r.stderr)
            self.assertEqual(len(r.stdout.splitlines()), n + 1,
                             "lines of ls -l (the entries and 'total'): %s" % r.stdout[-500:])
            ops = {k: s1["by_op"][k] - s0["by_op"].get(k, 0) for k in s1["by_op"]}
            lists = ops.get("list", 0)
            others = sum(v for k, v in ops.items() if k != "list")
            pages = (n + 999) // 1000
            budget = (n + 19) // 20 + 2
            note("ls -l of %d objects (one with metadata) on a fresh mount: %d LIST, %d other "
                 "requests %r", n, lists, others, {k: v for k, v in ops.items() if v})
            self.assertLessEqual(others, budget,
                                 "ls -l of %d objects without metadata: expected at most %d "
                                 "requests beyond the LIST pages (1 per 20 objects + 2), saw %d: "
                                 "%r" % (n, budget, others, {k: v for k, v in ops.items() if v}))
            self.assertLessEqual(lists, pages + 2, "LISTs for ls -l of %d objects: expected at "
                                 "most %d (pages + 2), saw %d" % (n, pages + 2, lists))
            bad = []
            for name, when in sorted(lm.items()):
                if name.endswith(".special"):
                    continue
                st = os.lstat(os.path.join(d, name))
                got = (oct(st.st_mode), st.st_uid, st.st_gid)
                exp = (oct(stat.S_IFREG | 0o644), os.getuid(), os.getgid())
                if got != exp or abs(st.st_mtime - when) > 2:
                    bad.append("%s: expected mode %s owner %d:%d mtime ~%.3f (LastModified), "
                               "shown %s %d:%d mtime %.3f" % ((name,) + exp + (when,) + got +
                                                             (st.st_mtime,)))
            if bad:
                self.fail(section("objects without metadata after ls -l (expected the "
                                  "defaults)", bad))
            # the one object with metadata: exact once opened (not required
            # after the listing alone)
            p = os.path.join(d, "obj-0150.special")
            exp = (oct(stat.S_IFREG | 0o600), UID_A, GID_A, 1500000000500000000)
            with open(p, "rb") as f:
                data = f.read()
                fst = os.fstat(f.fileno())
            self.assertEqual(data, b"special,1\n", "content of the object with metadata")
            st = os.stat(p)
            for how, s in (("fstat of the open file", fst), ("stat after open and read", st)):
                got = (oct(s.st_mode), s.st_uid, s.st_gid, s.st_mtime_ns)
                self.assertEqual(got, exp, "obj-0150.special (mode 0600, uid %d, gid %d, mtime "
                                 "1500000000.5 in its metadata), %s after ls -l listed it: "
                                 "expected (mode, uid, gid, mtime_ns) %r, shown %r"
                                 % (UID_A, GID_A, how, exp, got))


# ------------------------------------------------------- type change
class TypeChangeTest(MetaTestCase):

    def test_object_replaced_by_another_type(self):
        """Under a mount (metadata_ttl=2s) that listed them, a file replaced
        by a symlink and a symlink replaced by a file: after the TTL, lstat
        shows the new type (no EIO, no ENOENT) and readlink the target."""
        self.put("target.txt", b"target\n")
        self.put("swap", b"I am a regular file\n")
        self.put("back", b"target.txt", Metadata={"mode": str(S_LNK)})
        ttl = 2
        with self.mount(opts={"metadata_ttl": "%ds" % ttl}) as m:
            t = lambda *a: m.path("t", *a)  # noqa: E731
            self.assertEqual(sorted(os.listdir(t())), ["back", "swap", "target.txt"],
                             "precondition: the listing before the objects are replaced")
            st = os.lstat(t("swap"))
            self.assertTrue(stat.S_ISREG(st.st_mode), "precondition: swap is a regular file "
                            "before it is replaced; shown mode 0o%o" % st.st_mode)
            self.assertEqual(read_all(t("swap")), b"I am a regular file\n",
                             "precondition: swap's content before it is replaced")
            os.lstat(t("back"))
            self.put("swap", b"target.txt", Metadata={"mode": str(S_LNK), "mtime": "1500000000"})
            self.put("back", b"now a file\n", Metadata={"mode": str(stat.S_IFREG | 0o640)})
            time.sleep(ttl + 1.5)
            problems = []
            for name, want in (("swap", "symlink"), ("back", "file")):
                try:
                    st = os.lstat(t(name))
                except OSError as e:
                    problems.append("lstat(%s) %.1f s after it was replaced by a %s (TTL %d s) "
                                    "failed: %s" % (name, ttl + 1.5, want, ttl, e))
                    continue
                if kind_of(st.st_mode) != want:
                    problems.append("lstat(%s) after the TTL: expected a %s, shown a %s (mode 0o%o)"
                                    % (name, want, kind_of(st.st_mode), st.st_mode))
            try:
                target = os.readlink(t("swap"))
                if target != "target.txt":
                    problems.append("readlink(swap) after the TTL: expected 'target.txt', got %r"
                                    % target)
            except OSError as e:
                problems.append("readlink(swap) after the TTL failed: %s" % e)
            try:
                data = read_all(t("back"))
                if data != b"now a file\n":
                    problems.append("back after the TTL reads %r, expected b'now a file\\n'" % data)
            except OSError as e:
                problems.append("reading back (now a file) after the TTL failed: %s" % e)
            try:
                with os.scandir(t()) as it:
                    types = {e.name: "symlink" if e.is_symlink() else "file" for e in it}
                if types.get("swap") != "symlink" or types.get("back") != "file":
                    problems.append("a listing after the TTL reports %r, expected swap a "
                                    "symlink and back a file" % types)
            except OSError as e:
                problems.append("listing after the TTL failed: %s" % e)
            if problems:
                self.fail("\n  ".join(["objects replaced by another type:"] + problems))


# ---------------------------------------------------- cache kept
class RemountTest(MetaTestCase):
    N = 200

    def test_remount_with_cache_lists_without_heads(self):
        """200 objects with s3fs metadata: the first mount's ls -l is exact;
        after a remount with the same cache_dir, ls -l is exact again and
        sends at most LIST pages + 2 requests (metadata kept by ETag)."""
        rnd = random.Random(12)
        items = {}
        for i in range(self.N):
            mode = stat.S_IFREG | rnd.choice([0o600, 0o640, 0o644, 0o755, 0o400])
            items["many/f%03d.csv" % i] = (b"%d\n" % i, {
                "mode": str(mode), "uid": str(1000 + i % 7), "gid": str(2000 + i % 5),
                "mtime": "%d%s" % (1500000000 + i * 61, rnd.choice(["", ".5", ".123456789"]))})
        with concurrent.futures.ThreadPoolExecutor(32) as ex:
            list(ex.map(lambda kv: self.put(kv[0], kv[1][0], Metadata=kv[1][1]), items.items()))
        want = self.expected_tree("many/")
        want.pop("many")
        cache = os.path.join(self.tmp, "cache")
        problems = []
        for mount_no in (1, 2):
            with self.mount(opts={"cache_dir": cache}) as m:
                s0 = m.stats()
                r = run(["ls", "-lRn", "--time-style=+%s", m.path("t", "many")])
                s1 = m.stats()
                if r.returncode != 0:
                    problems.append("mount %d: ls -ln exited %d: %s" % (mount_no, r.returncode,
                                                                        r.stderr))
                got = parse_ls_lR(r.stdout, m.path("t"))
                problems.append(section("mount %d%s: ls -ln" % (
                    mount_no, " (same cache_dir)" if mount_no == 2 else " (empty cache)"),
                    [diff_attrs(rel, got.get(rel), w, mtime="s")
                     for rel, w in sorted(want.items())]))
                problems.append(section("mount %d: lstat after ls -l" % mount_no, [
                    diff_attrs(rel, attrs(os.lstat(m.path("t", rel))), w)
                    for rel, w in sorted(want.items())]))
                ops = {k: s1["by_op"][k] - s0["by_op"].get(k, 0) for k in s1["by_op"]}
                total = s1["requests"] - s0["requests"]
                note("mount %d: ls -l of %d objects with metadata: %d requests %r", mount_no,
                     self.N, total, {k: v for k, v in ops.items() if v})
                if mount_no == 2:
                    pages = (self.N + 999) // 1000
                    if total > pages + 2:
                        problems.append("mount 2 (cache kept): ls -l of %d objects sent %d "
                                        "requests, expected at most %d (LIST pages + 2): %r"
                                        % (self.N, total, pages + 2,
                                           {k: v for k, v in ops.items() if v}))
        problems = [p for p in problems if p]
        if problems:
            self.fail("\n  ".join(problems))


# ------------------------------------------------------- random ops
class RandomMetaTest(MetaTestCase):
    NOPS = 60
    DIRS = ["", "d0", "d1", "d0/d2", "d1/d3"]
    FILE_MODES = [0o600, 0o640, 0o644, 0o755, 0o400, 0o751]
    DIR_MODES = [0o700, 0o750, 0o755, 0o711]
    OWNERS = [(0, 0), (UID_A, GID_A), (1000, 1000), (65534, 65534)]
    TARGETS = ["f0", "../f1", "d0/f2", "/etc/hostname", "no/such/file", "l0", "."]

    @staticmethod
    def scan(root):
        """{rel: (kind, perm, uid, gid, mtime_ns, target or md5)} of a tree,
        walked listing first; regular files are read."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                k = kind_of(st.st_mode)
                extra = (os.readlink(p) if k == "symlink" else
                         tm.md5hex(read_all(p)) if k == "file" else None)
                out[os.path.relpath(p, root)] = (k, stat.S_IMODE(st.st_mode), st.st_uid,
                                                 st.st_gid, st.st_mtime_ns, extra)
        return out

    def draw(self, rnd, local):
        snap = self.scan(local)
        dirs = [d for d in self.DIRS if d == "" or snap.get(d, ("",))[0] == "dir"]
        files = [r for r, v in snap.items() if v[0] == "file"]
        nonlinks = [r for r, v in snap.items() if v[0] != "symlink"]
        kind = rnd.choices(["create", "write", "chmod", "utime", "chown", "symlink", "mkdir",
                            "mkfifo"], weights=[14, 8, 10, 10, 6, 8, 5, 4])[0]
        if kind == "write" and not files:
            kind = "create"
        if kind in ("chmod", "utime", "chown") and not nonlinks:
            kind = "create"
        d = rnd.choice(dirs)
        j = lambda n: posixpath.join(d, n) if d else n  # noqa: E731
        if kind == "create":
            return ("create", j("f%d" % rnd.randrange(5)), rnd.randbytes(rnd.randrange(0, 5000)),
                    rnd.choice(self.FILE_MODES))
        if kind == "write":
            f = rnd.choice(files)
            return ("write", f, rnd.randrange(0, os.path.getsize(os.path.join(local, f)) + 10),
                    rnd.randbytes(rnd.randrange(1, 3000)))
        if kind == "chmod":
            r = rnd.choice(nonlinks)
            return ("chmod", r, rnd.choice(self.DIR_MODES if snap[r][0] == "dir"
                                           else self.FILE_MODES))
        if kind == "utime":
            r = rnd.choice([x for x in nonlinks if snap[x][0] != "dir"] or nonlinks)
            ns = rnd.randrange(10**9, 17 * 10**8) * 10**9 + rnd.choice(
                [0, 500000000, rnd.randrange(10**9)])
            return ("utime", r, ns)
        if kind == "chown":
            return ("chown", rnd.choice(nonlinks)) + rnd.choice(self.OWNERS)
        if kind == "symlink":
            return ("symlink", j("l%d" % rnd.randrange(3)), rnd.choice(self.TARGETS))
        if kind == "mkdir":
            return ("mkdir", rnd.choice(self.DIRS[1:]), rnd.choice(self.DIR_MODES))
        return ("mkfifo", j("p%d" % rnd.randrange(2)), rnd.choice([0o644, 0o600, 0o640]))

    @staticmethod
    def apply(root, op):
        p = os.path.join(root, op[1])
        try:
            k = op[0]
            if k == "create":
                write_file(p, op[2], mode=op[3])
            elif k == "write":
                fd = os.open(p, os.O_WRONLY)
                try:
                    os.pwrite(fd, op[3], op[2])
                finally:
                    os.close(fd)
            elif k == "chmod":
                os.chmod(p, op[2])
            elif k == "utime":
                os.utime(p, ns=(op[2], op[2]))
            elif k == "chown":
                os.chown(p, op[2], op[3])
            elif k == "symlink":
                os.symlink(op[2], p)
            elif k == "mkdir":
                os.mkdir(p, op[2])
            elif k == "mkfifo":
                os.mkfifo(p, op[2])
            return ("ok",)
        except OSError as e:
            return ("err", errno.errorcode.get(e.errno, e.errno))

    @staticmethod
    def show(op):
        return "(%s)" % ", ".join("<%d bytes>" % len(x) if isinstance(x, bytes) else
                                  "0o%o" % x if isinstance(x, int) and 0 < x < 0o10000 and
                                  op[0] in ("chmod", "mkdir", "mkfifo", "create") else repr(x)
                                  for x in op)

    def test_random_sequence_fresh_mount(self):
        """~60 seeded create/write/chmod/utime/chown/symlink/mkdir/mkfifo on a
        bucketfs mount, applied to a local twin too; after unmount a fresh
        mount (empty cache), walked listing first, shows every path as the
        first mount did: type, mode, owner, mtime (s), target, content."""
        seed = int(os.environ.get("BFS_SEED") or random.randrange(1 << 31))
        rnd = random.Random(seed)
        local = os.path.join(self.tmp, "local")
        os.mkdir(local)
        history = []
        set_mtime = {}   # rel -> ns, for paths whose last mtime change was a utime

        def ctx():
            return "\n[seed %d: replay with BFS_SEED=%d]\noperations:\n  %s" % (
                seed, seed, "\n  ".join("%3d %s -> %s" % h for h in history))

        with self.mount(watchdog=120, exit_wait=60) as m:
            mnt = m.path("t")
            for i in range(1, self.NOPS + 1):
                op = self.draw(rnd, local)
                want = self.apply(local, op)
                got = self.apply(mnt, op)
                history.append((i, self.show(op), want))
                if got != want:
                    self.fail("operation %d %s: the bucketfs mount gave %r, a local directory %r%s"
                              % (i, self.show(op), got, want, ctx()))
                if want == ("ok",):
                    if op[0] == "utime":
                        set_mtime[op[1]] = op[2]
                    elif op[0] in ("create", "write"):
                        set_mtime.pop(op[1], None)
                    if op[0] in ("create", "symlink", "mkdir", "mkfifo"):
                        # a name made in a directory changes its mtime (POSIX)
                        set_mtime.pop(os.path.dirname(op[1]), None)
            m.wait_uploads()
            on_a = self.scan(mnt)
            loc = self.scan(local)
            bad = []
            for rel in sorted(set(on_a) | set(loc)):
                a, l = on_a.get(rel), loc.get(rel)
                if a is None or l is None or (a[:4], a[5]) != (l[:4], l[5]) or (
                        rel in set_mtime and a[4] // 10**9 != set_mtime[rel] // 10**9):
                    bad.append("%s: mount A %r, local twin %r" % (rel, a, l))
            if bad:
                self.fail(section("the writing mount differs from its local twin", bad) + ctx())
            m.unmount_wait()
        note("%d random operations (seed %d): %d paths", self.NOPS, seed, len(on_a))
        with self.mount() as m:
            on_b = self.scan(m.path("t"))
        bad = []
        for rel in sorted(set(on_a) | set(on_b)):
            a, b = on_a.get(rel), on_b.get(rel)
            if a is None or b is None:
                bad.append("%s: %s" % (rel, "MISSING on the fresh mount (mount A showed %r)" % (a,)
                                       if b is None else "on the fresh mount %r, not on mount A"
                                       % (b,)))
                continue
            fields = []
            names = ("type", "mode", "uid", "gid")
            for k in range(4):
                if a[k] != b[k]:
                    fields.append("%s %s, expected %s" % (names[k], oct(b[k]) if k == 1 else b[k],
                                                          oct(a[k]) if k == 1 else a[k]))
            if a[0] != "dir" and a[0] == b[0] and a[4] // 10**9 != b[4] // 10**9:
                fields.append("mtime %s, expected %s" % (fmt_ns(b[4]), fmt_ns(a[4])))
            if a[0] == b[0] and a[5] != b[5]:
                fields.append("%s %r, expected %r" % ("target" if a[0] == "symlink" else "md5",
                                                      b[5], a[5]))
            if fields:
                bad.append("%s: %s" % (rel, "; ".join(fields)))
        if bad:
            self.fail(section("a fresh mount (empty cache, listed first) differs from what the "
                              "writing mount showed", bad) + ctx())


def main():
    return tm.suite_main(__doc__, tools=("fusermount3", "rsync", "cp", "find", "ls", "mkfifo", S3FS),
                         root_because="rsync -a and cp -a keep owners only for root, and the "
                                      "writers chown")


if __name__ == "__main__":
    sys.exit(main())
