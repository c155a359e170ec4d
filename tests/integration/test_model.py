#!/usr/bin/python3
"""Model-based random operations on a bucketfs mount against a local reference tree.

Run inside scripts/with-server.sh, which provides the server and the
AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / TEST_SERVER
environment:

    scripts/with-server.sh rgw /usr/bin/python3 tests/integration/test_model.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args]

For each of several seeds (issue 13, item 2: a seeded sequence of this kind
found a race between a running upload and a writer reopening the file), a
fresh mount on its own key prefix gets 50-80 random operations, each applied
to a local directory first and then to the mount, in lockstep: create,
O_TRUNC rewrite, O_APPEND write, pwrite inside and past the end (sparse),
truncate up and down, read, stat, chmod, utime (explicit mtime), rename of
files (over files, into other directories) and of directories, unlink,
mkdir, rmdir, symlink and mkfifo.  Every operation must give the same result
on both (success and its value, or the same errno).  Between operations the
test sometimes sleeps 0-0.4 s, so that operations land before, during and
after the background upload of a closed file (upload_delay is 200 ms).
Every few operations and at the end the whole trees are compared: names,
types, sizes, content hashes, permission bits, owners, symlink targets, and
the mtimes that utime set.  Then the mount is unmounted (the daemon drains
its upload journal first), the journal and staging/ must be empty, the keys
in S3 must be the tree's (a marker per directory), and a fresh mount with an
empty cache, walked listing first, must show the same tree (mtimes to the
second, as the first mount showed them).

Operations are drawn from the state of the local tree only, so a seed
replays the same operations and sleeps (not their timing against the
uploads).  The seeds are printed; on a failure the seed and the tail of the
operation log are in the message.  Environment:

    BFS_SEED=N[,M...]   run these seeds only (a replay)
    BFS_MODEL_SEEDS=K   number of random seeds (default 12)
    BFS_MODEL_OPS=N     operations per seed (default: 50-80, drawn per seed)

Left out on purpose: hard links (EPERM by contract, test_write.py checks
that), chown (test_meta.py's random sequence covers owners), permission bits
that take the owner's rwx away (the tests run as root, which such bits do not
stop, on either tree), file content operations through symlinks (a target
such as /etc/hostname is outside both trees), and utime on directories
(a local directory's mtime moves with every entry added or removed).
"""
import errno
import os
import posixpath
import random
import shutil
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import BUCKET, KiB, MiB, SERVER, md5hex, note, read_all  # noqa: E402
from test_write import WriteTestCase, journal, write_file  # noqa: E402

DIRS = ["a", "b", "a/c", "b/c"]           # directory names (mkdir, rmdir, rename)
PARENTS = [""] + DIRS
FILES = ["f0", "f1", "f2", "f3"]          # regular file names, in every directory
LINKS = ["l0", "l1"]                      # symlink names
FIFOS = ["p0"]                            # FIFO names
TARGETS = ["f0", "../f1", "c/f2", "nowhere/x", "/etc/hostname", "l1", ".", "a"]
FILE_MODES = [0o644, 0o600, 0o640, 0o755, 0o700]   # creation: unchanged by umask 022
CHMOD_FILE = [0o644, 0o600, 0o640, 0o755, 0o700, 0o664, 0o666, 0o751, 0o604]
DIR_MODES = [0o755, 0o750, 0o700, 0o711]
FIFO_MODES = [0o644, 0o600, 0o640]

KINDS = {  # kind: weight
    "create": 8, "rewrite": 12, "append": 10, "pwrite": 8, "pwrite_past": 5, "truncate": 7,
    "read": 8, "stat": 3, "chmod": 7, "utime": 6, "rename": 8, "rename_dir": 2, "unlink": 5,
    "mkdir": 5, "rmdir": 3, "symlink": 4, "mkfifo": 2,
}
CONTENT_KINDS = ("create", "rewrite", "append", "pwrite", "pwrite_past", "truncate")


def j(d, n):
    return posixpath.join(d, n) if d else n


def kind_of(mode):
    return ("dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else
            "symlink" if stat.S_ISLNK(mode) else "fifo" if stat.S_ISFIFO(mode) else
            "other %o" % stat.S_IFMT(mode))


def scan(root):
    """{rel: (kind, size, md5 or target, perm, uid, gid, mtime_ns)}, walked
    listing first (os.walk), never following a symlink; files are read."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            k = kind_of(st.st_mode)
            size, extra = None, None
            if k == "file":
                data = read_all(p)
                size = len(data) if len(data) == st.st_size else \
                    "st_size %d but %d bytes read" % (st.st_size, len(data))
                extra = md5hex(data)
            elif k == "symlink":
                size, extra = st.st_size, os.readlink(p)
            out[rel] = (k, size, extra, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_mtime_ns)
    return out


def fmt_entry(e):
    if e is None:
        return "MISSING"
    k, size, extra, perm, uid, gid, mt = e
    return "%s%s%s 0%o %d:%d mtime %d.%09d" % (
        k, " %s bytes" % size if k == "file" else "",
        " md5 %s" % extra if k == "file" else " -> %r" % extra if k == "symlink" else "",
        perm, uid, gid, mt // 10**9, mt % 10**9)


def compare(got, want, mtimes, what, mtime_to_second=False):
    """Lines naming every path where got (a scan of the mount) differs from
    want (a scan of the reference): all fields but the mtime, which is
    compared only for the paths in mtimes (rel -> ns set by utime)."""
    bad = []
    for rel in sorted(set(got) | set(want)):
        g, w = got.get(rel), want.get(rel)
        same = g is not None and w is not None and g[:6] == w[:6]
        if same and rel in mtimes:
            same = (g[6] // 10**9 == mtimes[rel] // 10**9 if mtime_to_second
                    else g[6] == mtimes[rel])
        if not same:
            bad.append("  %s: %s %s, expected %s%s" % (
                rel, what, fmt_entry(g), fmt_entry(w),
                " (utime set mtime %d.%09d)" % divmod(mtimes[rel], 10**9) if rel in mtimes
                else ""))
    return bad


class Model:
    """Draws operations from the state of the local reference tree and runs
    one on a tree."""

    def __init__(self, rnd, local):
        self.rnd = rnd
        self.local = local

    def lkind(self, rel):
        try:
            return kind_of(os.lstat(os.path.join(self.local, rel)).st_mode)
        except OSError:
            return None

    def size(self, rel):
        try:
            return os.lstat(os.path.join(self.local, rel)).st_size
        except OSError:
            return 0

    def existing(self, kinds):
        snap = {}
        for dirpath, dirnames, filenames in os.walk(self.local):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                snap[os.path.relpath(p, self.local)] = kind_of(os.lstat(p).st_mode)
        return sorted(r for r, k in snap.items() if k in kinds)

    def data(self):
        r = self.rnd
        n = r.choice([r.randrange(0, 100), r.randrange(1, 8 * KiB), r.randrange(1, 8 * KiB),
                      r.randrange(1, 8 * KiB), r.randrange(8 * KiB, 300 * KiB),
                      r.randrange(MiB - 100, MiB + 100 * KiB) if r.random() < 0.2 else 1])
        return r.randbytes(n)

    def some_file(self):
        """Mostly an existing regular file; sometimes any file name that is
        not a symlink or a FIFO (it may not exist, or its directory not)."""
        files = self.existing({"file"})
        if files and self.rnd.random() < 0.9:
            return self.rnd.choice(files)
        while True:
            rel = j(self.rnd.choice(PARENTS), self.rnd.choice(FILES))
            if self.lkind(rel) not in ("symlink", "fifo"):
                return rel

    def new_name(self, pool):
        parents = [d for d in PARENTS if d == "" or self.lkind(d) == "dir"]
        if self.rnd.random() < 0.08:
            parents = PARENTS  # sometimes in a directory that does not exist
        return j(self.rnd.choice(parents), self.rnd.choice(pool))

    def draw(self):
        r = self.rnd
        kind = r.choices(list(KINDS), weights=list(KINDS.values()))[0]
        if len(self.existing({"file"})) < 6 and r.random() < 0.3:
            kind = "create"  # keep a few files around to work on
        if kind == "create":
            return ("create", self.new_name(FILES), self.data(), r.choice(FILE_MODES))
        if kind == "rewrite":
            f = self.some_file() if r.random() < 0.8 else self.new_name(FILES)
            if self.lkind(f) in ("symlink", "fifo"):
                f = self.some_file()
            return ("rewrite", f, self.data(), r.choice(FILE_MODES))
        if kind == "append":
            return ("append", self.some_file(), self.data(), r.random() < 0.4)
        if kind == "pwrite":
            f = self.some_file()
            return ("pwrite", f, r.randrange(0, self.size(f) + 1), self.data() or b"x")
        if kind == "pwrite_past":
            f = self.some_file()
            return ("pwrite", f, self.size(f) + r.choice([1, r.randrange(1, 5000),
                                                          r.randrange(1, 3 * MiB // 2)]),
                    self.data() or b"x")
        if kind == "truncate":
            f = self.some_file()
            cur = self.size(f)
            return ("truncate", f, r.choice([0, r.randrange(0, cur + 1), r.randrange(0, cur + 1),
                                             cur + r.randrange(1, 5000),
                                             cur + r.randrange(1, 3 * MiB // 2)]))
        if kind == "read":
            return ("read", self.some_file())
        if kind == "stat":
            some = self.existing({"file", "dir", "symlink", "fifo"})
            return ("stat", r.choice(some) if some and r.random() < 0.9
                    else self.new_name(FILES + LINKS))
        if kind == "chmod":
            some = self.existing({"file", "dir", "fifo"})  # chmod follows symlinks
            if not some:
                return ("chmod", self.new_name(FILES), r.choice(CHMOD_FILE))
            rel = r.choice(some)
            return ("chmod", rel, r.choice(DIR_MODES if self.lkind(rel) == "dir" else CHMOD_FILE))
        if kind == "utime":
            some = self.existing({"file", "fifo"})  # utime follows symlinks
            rel = r.choice(some) if some else self.new_name(FILES)
            ns = r.randrange(10**9, 17 * 10**8) * 10**9 + r.choice(
                [0, 500000000, r.randrange(10**9)])
            return ("utime", rel, ns)
        if kind == "rename":
            some = self.existing({"file", "symlink", "fifo"})
            src = r.choice(some) if some and r.random() < 0.92 else self.new_name(FILES)
            k = self.lkind(src)
            pool = LINKS if k == "symlink" else FIFOS if k == "fifo" else FILES
            if r.random() < 0.05:
                dst = r.choice(DIRS)  # over a directory: EISDIR
            else:
                existing = [x for x in self.existing({k or "file"}) if x != src]
                dst = (r.choice(existing) if existing and r.random() < 0.4
                       else self.new_name(pool))
            return ("rename", src, dst)
        if kind == "rename_dir":
            some = self.existing({"dir"})
            return ("rename", r.choice(some) if some else r.choice(DIRS), r.choice(DIRS))
        if kind == "unlink":
            some = self.existing({"file", "symlink", "fifo"})
            if some and r.random() < 0.9:
                return ("unlink", r.choice(some))
            return ("unlink", r.choice(DIRS + [self.new_name(FILES)]))
        if kind == "mkdir":
            dirs = [d for d in DIRS if self.lkind(posixpath.dirname(d) or ".") == "dir"]
            return ("mkdir", r.choice(dirs if r.random() < 0.85 else DIRS), r.choice(DIR_MODES))
        if kind == "rmdir":
            return ("rmdir", r.choice(DIRS))
        if kind == "symlink":
            return ("symlink", self.new_name(LINKS), r.choice(TARGETS))
        return ("mkfifo", self.new_name(FIFOS), r.choice(FIFO_MODES))

    def pause(self):
        """Seconds to sleep after an operation (0 most of the time): short,
        around upload_delay (200 ms) and past it."""
        r = self.rnd
        if r.random() < 0.7:
            return 0
        return r.choice([r.uniform(0, 0.05), r.uniform(0.15, 0.26), r.uniform(0.26, 0.4),
                         r.uniform(0, 0.4)])

    @staticmethod
    def apply(root, op):
        """Runs op under root: ("ok", value) or ("err", errno name)."""
        p = lambda rel: os.path.join(root, rel)  # noqa: E731
        k = op[0]
        try:
            if k == "create":
                fd = os.open(p(op[1]), os.O_WRONLY | os.O_CREAT | os.O_EXCL, op[3])
                try:
                    n = os.write(fd, op[2]) if op[2] else 0
                finally:
                    os.close(fd)
                return ("ok", n)
            if k == "rewrite":
                write_file(p(op[1]), op[2], mode=op[3])
                return ("ok", None)
            if k == "append":
                flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT if op[3] else 0)
                fd = os.open(p(op[1]), flags, 0o644)
                try:
                    n = os.write(fd, op[2]) if op[2] else 0
                    size = os.fstat(fd).st_size
                finally:
                    os.close(fd)
                return ("ok", (n, size))
            if k == "pwrite":
                fd = os.open(p(op[1]), os.O_WRONLY)
                try:
                    n = os.pwrite(fd, op[3], op[2])
                    size = os.fstat(fd).st_size
                finally:
                    os.close(fd)
                return ("ok", (n, size))
            if k == "truncate":
                os.truncate(p(op[1]), op[2])
                return ("ok", os.stat(p(op[1])).st_size)
            if k == "read":
                b = read_all(p(op[1]))
                return ("ok", (len(b), md5hex(b)))
            if k == "stat":
                st = os.lstat(p(op[1]))
                return ("ok", (kind_of(st.st_mode), stat.S_IMODE(st.st_mode),
                               st.st_size if not stat.S_ISDIR(st.st_mode) else None))
            if k == "chmod":
                os.chmod(p(op[1]), op[2])
                return ("ok", stat.S_IMODE(os.stat(p(op[1])).st_mode))
            if k == "utime":
                os.utime(p(op[1]), ns=(op[2], op[2]))
                return ("ok", os.stat(p(op[1])).st_mtime_ns)
            if k == "rename":
                os.rename(p(op[1]), p(op[2]))
                return ("ok", None)
            if k == "unlink":
                os.unlink(p(op[1]))
                return ("ok", None)
            if k == "mkdir":
                os.mkdir(p(op[1]), op[2])
                return ("ok", stat.S_IMODE(os.stat(p(op[1])).st_mode))
            if k == "rmdir":
                os.rmdir(p(op[1]))
                return ("ok", None)
            if k == "symlink":
                os.symlink(op[2], p(op[1]))
                return ("ok", os.readlink(p(op[1])))
            if k == "mkfifo":
                os.mkfifo(p(op[1]), op[2])
                return ("ok", kind_of(os.lstat(p(op[1])).st_mode))
            raise ValueError(k)
        except OSError as e:
            return ("err", errno.errorcode.get(e.errno, e.errno))

    @staticmethod
    def show(op):
        def one(x):
            if isinstance(x, bytes):
                return "<%d bytes>" % len(x)
            if isinstance(x, int) and not isinstance(x, bool) and 0 < x < 0o10000 and \
                    op[0] in ("create", "rewrite", "chmod", "mkdir", "mkfifo"):
                return "0o%o" % x
            return repr(x)
        return "(%s)" % ", ".join(one(x) for x in op)


def ino_of(path):
    """The inode number of path (not followed), or None."""
    try:
        return os.lstat(path).st_ino
    except OSError:
        return None


def track_mtimes(mtimes, op, result):
    """Keeps rel -> ns for the paths whose mtime a utime set last."""
    if result[0] != "ok":
        return
    k = op[0]
    if k == "utime":
        mtimes[op[1]] = op[2]
    elif k in CONTENT_KINDS or k in ("unlink", "rmdir", "mkdir", "symlink", "mkfifo"):
        mtimes.pop(op[1], None)
    elif k == "rename":
        src, dst = op[1], op[2]
        if src == dst:
            return
        moved = {}
        for rel in list(mtimes):
            if rel == dst or rel.startswith(dst + "/"):
                del mtimes[rel]  # replaced
        for rel in list(mtimes):
            if rel == src or rel.startswith(src + "/"):
                moved[dst + rel[len(src):]] = mtimes.pop(rel)
        mtimes.update(moved)


class ModelTest(WriteTestCase):
    CHECK_EVERY = 10

    def seeds(self):
        if os.environ.get("BFS_SEED"):
            return [int(s) for s in os.environ["BFS_SEED"].split(",") if s.strip()]
        sysrnd = random.SystemRandom()
        return [sysrnd.randrange(1 << 31)
                for _ in range(int(os.environ.get("BFS_MODEL_SEEDS") or 12))]

    def keys_under(self, prefix):
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                      Prefix=prefix):
            out += [o["Key"][len(prefix):] for o in page.get("Contents", [])]
        return sorted(out)

    @staticmethod
    def ops_of(history, paths_of, staging_names):
        """The log lines of the operations on the inodes that staging files
        are named after, and of later ones naming the same paths."""
        inos = {int(n.split("-")[0]) for n in staging_names if n.split("-")[0].isdigit()}
        out, paths = [], set()
        for h, (ino, names) in zip(history, paths_of):
            if ino in inos:
                paths.update(names)
            elif not paths & set(names):
                continue
            out.append("%3d %6.2fs %s -> %r%s" % h)
        return out

    def test_random_model(self):
        seeds = self.seeds()
        note("model seeds on %s: %s (BFS_SEED=N replays one)", SERVER,
             ",".join(map(str, seeds)))
        t0 = time.monotonic()
        for seed in seeds:
            with self.subTest(seed=seed):
                self.run_seed(seed)
        note("%d seeds in %.1fs", len(seeds), time.monotonic() - t0)

    def run_seed(self, seed):
        rnd = random.Random(seed)
        nops = int(os.environ.get("BFS_MODEL_OPS") or rnd.randrange(50, 81))
        base = os.path.join(self.tmp, "s%d" % seed)
        local, cache = os.path.join(base, "local"), os.path.join(base, "cache")
        os.makedirs(local)
        prefix = "%ss%d/" % (self.p, seed)
        model = Model(rnd, local)
        mtimes = {}
        history = []
        paths_of = []  # per operation: (inode number on the mount, the paths it names)
        t_start = time.monotonic()

        def ctx(tail=40):
            return ("\n[seed %d on %s: replay with BFS_SEED=%d]\nlast operations (of %d; "
                    "seconds since the first):\n  %s" % (
                        seed, SERVER, seed, len(history),
                        "\n  ".join("%3d %6.2fs %s -> %r%s" % h for h in history[-tail:])))

        t0 = time.monotonic()
        with self.mount(maps=[("t", "s3://%s/%s" % (BUCKET, prefix.rstrip("/")))],
                        opts={"cache_dir": cache, "upload_delay": "200ms"},
                        watchdog=240, exit_wait=60) as m:
            mnt = m.path("t")
            for i in range(1, nops + 1):
                op = model.draw()
                want = model.apply(local, op)
                got = model.apply(mnt, op)
                pause = model.pause()
                # the inode number on the mount names its staging files (INO-GEN)
                ino = ino_of(os.path.join(mnt, op[2] if op[0] == "rename" else op[1]))
                history.append((i, time.monotonic() - t_start, Model.show(op), want,
                                ("" if ino is None else "; ino %d" % ino) +
                                ("" if not pause else "; sleep %.2fs" % pause)))
                paths_of.append((ino, [x for x in op[1:3] if isinstance(x, str)]))
                if got != want:
                    self.fail("operation %d %s: the mount gave %r, the local tree %r; journal: "
                              "%r%s" % (i, Model.show(op), got, want, journal(m.cache_dir)[:5],
                                        ctx()))
                track_mtimes(mtimes, op, want)
                if i % self.CHECK_EVERY == 0 or i == nops:
                    bad = compare(scan(mnt), scan(local), mtimes, "mount")
                    if bad:
                        self.fail("trees differ after operation %d:\n%s%s"
                                  % (i, "\n".join(bad), ctx()))
                if pause:
                    time.sleep(pause)
            on_a = scan(mnt)
            want_tree = scan(local)
            t1 = time.monotonic()
            try:
                drain = m.unmount_wait()
            except AssertionError as e:
                self.fail("unmount did not finish: %s%s" % (e, ctx()))
        problems = []
        rows = journal(cache)
        if rows:
            problems.append("journal not empty after the daemon exited: %r" % rows[:10])
        left = sorted(os.listdir(os.path.join(cache, "staging")))
        if left:
            problems.append("staging files (INO-GEN) left after a clean unmount: %r; the "
                            "operations on those inodes and on their paths after them:\n  %s"
                            % (left[:20], "\n  ".join(self.ops_of(history, paths_of, left))))
        want_keys = sorted(rel + "/" if v[0] == "dir" else rel for rel, v in want_tree.items())
        keys = self.keys_under(prefix)
        if keys != want_keys:
            problems.append("keys in S3 after unmount: missing %r, extra %r"
                            % (sorted(set(want_keys) - set(keys)),
                               sorted(set(keys) - set(want_keys))))
        # a fresh mount with an empty cache, walked listing first
        with self.mount(maps=[("t", "s3://%s/%s" % (BUCKET, prefix.rstrip("/")))],
                        watchdog=120, exit_wait=60) as m:
            on_b = scan(m.path("t"))
        bad = compare(on_b, want_tree, mtimes, "fresh mount", mtime_to_second=True)
        for rel in sorted(set(on_a) & set(on_b)):
            a, b = on_a[rel], on_b[rel]
            if a[0] != "dir" and a[0] == b[0] and a[6] // 10**9 != b[6] // 10**9:
                bad.append("  %s: fresh mount mtime %d.%09d, the first mount showed %d.%09d"
                           % ((rel,) + divmod(b[6], 10**9) + divmod(a[6], 10**9)))
        if bad:
            problems.append("a fresh mount (empty cache, listed first) differs from the "
                            "reference:\n%s" % "\n".join(bad))
        if problems:
            self.fail("\n".join(problems) + ctx())
        note("seed %d: %d operations in %.1fs, %d paths, unmount waited %.1fs, fresh mount "
             "checked in %.1fs", seed, nops, t1 - t0, len(want_tree), drain,
             time.monotonic() - t1 - drain)
        shutil.rmtree(base, ignore_errors=True)


def main():
    return tm.suite_main(__doc__)


if __name__ == "__main__":
    sys.exit(main())
