#!/usr/bin/python3
"""Integration tests of bucketfs as the system runs it: an /etc/fstab line
mounted with mount(8), `mount -t fuse.bucketfs`, umount(8), and the log of a
daemonized mount reaching syslog.

Run as root inside scripts/with-server.sh (FUSE and both servers are always
there on the project's machines; nothing here skips):

    scripts/with-server.sh s3rver /usr/bin/python3 tests/integration/test_system.py \
        --bucketfs build/bucketfs --cli build/tests/tools/bfs-s3 [unittest args, e.g. -k Fstab]

How mount(8) reaches bucketfs (util-linux 2.38, fuse3 3.14, measured with
strace): for type fuse.bucketfs it runs /sbin/mount.fuse3 SOURCE DIR -o OPTS
-t fuse.bucketfs with PATH, HOME and SHELL removed from the environment;
mount.fuse3 drops _netdev, nofail, user, users, auto, noauto, adds dev,suid
unless told nodev/nosuid, and runs `/bin/sh -c "'bucketfs' SOURCE DIR -o
OPTS"`.  With PATH unset, sh searches its default path
/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin.  So the binary
under test is copied to a temporary directory and symlinked as
/usr/local/sbin/bucketfs for the run (first on that path).  The symlink, the
lines added to /etc/fstab and a temporary /dev/log socket are undone in
finally blocks, and a lock file serializes concurrent runs of this suite,
since all three are machine-wide.

Credentials and the endpoint come from a config file (mode 0600) written by
each test; the AWS_* variables are removed from mount's environment, so a
mount that works proves the file carried them.
"""
import argparse
import contextlib
import errno
import fcntl
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_mount as tm  # noqa: E402  (shared Mount machinery, not its tests)
from test_mount import (BUCKET, Mount, MountTestCase, alive, daemon_pids,  # noqa: E402
                        mounted, read_all)

LOCK = "/run/lock/bucketfs-test-system.lock"
SHIM = "/usr/local/sbin/bucketfs"   # first directory of sh's default PATH
SHIM_DIR_PREFIX = "bfs-sys-bin-"
FSTAB = "/etc/fstab"
DEVLOG = "/dev/log"
UID, GID = 4321, 4322


def mountinfo(path):
    """(fstype, source, super options) of every mount at path, in order."""
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.rstrip("\n").split(" - ", 1)
            mp = left.split(" ")[4].encode().decode("unicode_escape")
            if mp == path:
                fstype, source, sopts = right.split(" ", 2)
                found.append((fstype, source.encode().decode("unicode_escape"), sopts))
    return found


def clean_env():
    """mount's environment without the AWS_* variables (the config has them)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def run(cmd, env=None, timeout=90):
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=env, timeout=timeout)


@contextlib.contextmanager
def suite_lock():
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def installed_binary(binary):
    """The binary under test as `bucketfs` on sh's default PATH, for the run."""
    if os.path.lexists(SHIM):
        target = os.readlink(SHIM) if os.path.islink(SHIM) else ""
        if SHIM_DIR_PREFIX not in target:
            raise RuntimeError("%s exists and is not this suite's symlink: remove it or run the "
                               "suite elsewhere (mount(8) would run it instead of the build)"
                               % SHIM)
        os.unlink(SHIM)   # left by a run that was killed (we hold the lock)
    d = tempfile.mkdtemp(prefix=SHIM_DIR_PREFIX)
    copy = os.path.join(d, "bucketfs")
    shutil.copy2(binary, copy)
    os.chmod(d, 0o755)
    os.symlink(copy, SHIM)
    try:
        yield copy
    finally:
        with contextlib.suppress(FileNotFoundError):
            if os.readlink(SHIM) == copy:
                os.unlink(SHIM)
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def fstab_lines(*lines):
    """/etc/fstab with lines appended; the exact old bytes come back after."""
    with open(FSTAB, "rb") as f:
        old = f.read()
    st = os.stat(FSTAB)
    try:
        with open(FSTAB, "ab") as f:
            if old and not old.endswith(b"\n"):
                f.write(b"\n")
            for line in lines:
                f.write(line.encode() + b"\n")
        yield
    finally:
        tmp = FSTAB + ".bfs-restore"
        with open(tmp, "wb") as f:
            f.write(old)
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, FSTAB)


def stale_socket(path):
    """True when path is a unix socket nobody listens on (left by a killed run)."""
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(path)
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


@contextlib.contextmanager
def syslog_socket():
    """A datagram socket at /dev/log while no syslog daemon or journald runs
    (this machine has neither); the socket is removed afterwards."""
    if os.path.lexists(DEVLOG):
        if not stale_socket(DEVLOG):
            raise RuntimeError("%s exists (a syslog daemon?): this test needs to own it to "
                               "read what bucketfs sends; look in that daemon's log instead"
                               % DEVLOG)
        os.unlink(DEVLOG)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.bind(DEVLOG)
        ino = os.lstat(DEVLOG).st_ino
        os.chmod(DEVLOG, 0o666)
        s.setblocking(False)
        yield s
    finally:
        s.close()
        with contextlib.suppress(FileNotFoundError):
            if os.lstat(DEVLOG).st_ino == ino:
                os.unlink(DEVLOG)


def drain(sock):
    msgs = []
    while True:
        try:
            msgs.append(sock.recv(65536).decode("utf-8", "replace"))
        except BlockingIOError:
            return msgs


class SystemTestCase(MountTestCase):
    """Writes a 0600 config for mapping "t" (this test's prefix) and cleans
    up any mount left on the test's mountpoint."""

    def setUp(self):
        super().setUp()
        self.mnt = os.path.join(self.tmp, "mnt-" + uuid.uuid4().hex[:8])
        os.mkdir(self.mnt)
        self.cache = os.path.join(self.tmp, "cache")
        self.addCleanup(self.force_unmount)

    def force_unmount(self):
        if mounted(self.mnt):
            run(["umount", self.mnt])
        deadline = time.monotonic() + 30
        while daemon_pids(self.mnt) and time.monotonic() < deadline:
            time.sleep(0.1)
        for p in daemon_pids(self.mnt):
            os.kill(p, 9)
        if mounted(self.mnt):
            run(["umount", "-l", self.mnt])

    def write_config(self, mode=0o600, extra_global=""):
        path = os.path.join(self.tmp, "climate.conf")
        text = ("[global]\n"
                "endpoint = %s\n"
                "region = %s\n"
                "path_style = true\n"
                "access_key = %s\n"
                "secret_key = %s\n"
                "cache_dir = %s\n%s"
                "\n[t]\nbucket = %s\nprefix = %s\n"
                % (os.environ["AWS_ENDPOINT_URL"], os.environ.get("AWS_REGION", "us-east-1"),
                   os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                   self.cache, extra_global, BUCKET, self.p))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def assertMountOk(self, r, what):
        if r.returncode != 0:
            self.fail("%s failed (%d)\nstdout: %s\nstderr: %s"
                      % (what, r.returncode, r.stdout, r.stderr))
        deadline = time.monotonic() + 10
        while not mounted(self.mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(mounted(self.mnt), "%s returned 0 but nothing is mounted" % what)

    def umount_and_wait(self):
        """umount(8), then wait for the daemon to finish its uploads and exit."""
        pids = daemon_pids(self.mnt)
        self.assertEqual(len(pids), 1, "one bucketfs daemon for %s: %r" % (self.mnt, pids))
        r = run(["umount", self.mnt])
        self.assertEqual(r.returncode, 0, "umount: %s" % r.stderr)
        self.assertFalse(mounted(self.mnt))
        deadline = time.monotonic() + 60
        while alive(pids[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(alive(pids[0]), "the daemon still runs 60 s after umount")


class FstabTest(SystemTestCase):

    def test_fstab_line_mounts_with_mount_dir(self):
        """The SPEC.md fstab line (plus noauto, nofail, uid=, gid=, an
        x-systemd option) mounts with `mount DIR`; umount uploads and ends it."""
        body = b"year,temp\n2024,15.3\n"
        self.put("raw/climate_data.csv", body)
        conf = self.write_config()
        line = ("%s %s fuse.bucketfs _netdev,allow_other,noauto,nofail,uid=%d,gid=%d,"
                "x-systemd.requires=network-online.target 0 0" % (conf, self.mnt, UID, GID))
        with fstab_lines("# bucketfs test " + self.p, line):
            r = run(["mount", self.mnt], env=clean_env())
            self.assertMountOk(r, "mount " + self.mnt)
            info = mountinfo(self.mnt)
            self.assertEqual(len(info), 1, info)
            fstype, source, sopts = info[0]
            self.assertEqual((fstype, source), ("fuse.bucketfs", conf),
                             "findmnt shows the fstab line's type and source")
            self.assertIn("allow_other", sopts.split(","))
            path = os.path.join(self.mnt, "t", "raw", "climate_data.csv")
            self.assertEqual(read_all(path), body)
            st = os.stat(path)
            self.assertEqual((st.st_uid, st.st_gid), (UID, GID), "uid=/gid= apply")
            # allow_other: another user reads it (default_permissions: mode 0644)
            os.chmod(self.tmp, 0o755)   # mkdtemp's 0700 would stop nobody before the mount
            nobody = pwd.getpwnam("nobody")
            r = run(["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                     "--clear-groups", "cat", path])
            self.assertEqual((r.returncode, r.stdout), (0, body.decode()),
                             "user nobody reads through allow_other: %s" % r.stderr)
            # `mount DIR` again would stack a second FUSE mount: the second
            # bucketfs finds the cache directory locked and refuses
            r = run(["mount", self.mnt], env=clean_env())
            self.assertNotEqual(r.returncode, 0, "a second mount of the same line succeeded")
            self.assertIn("is in use by another bucketfs mount", r.stderr)
            self.assertEqual(len(mountinfo(self.mnt)), 1)
            self.assertEqual(len(daemon_pids(self.mnt)), 1)
            with open(os.path.join(self.mnt, "t", "processed.csv"), "wb") as f:
                f.write(b"written through fstab\n")
            self.umount_and_wait()
        got = self.s3.get_object(Bucket=BUCKET, Key=self.p + "processed.csv")
        self.assertEqual(got["Body"].read(), b"written through fstab\n")

    def test_mount_all_mounts_once(self):
        """`mount -a` mounts an auto line, and a second `mount -a` sees it is
        mounted (the source is the fsname), as at boot and on re-runs."""
        self.put("a.txt", b"auto\n")
        conf = self.write_config()
        with fstab_lines("%s %s fuse.bucketfs _netdev 0 0" % (conf, self.mnt)):
            for i in range(2):
                r = run(["mount", "-a", "-t", "fuse.bucketfs"], env=clean_env())
                self.assertMountOk(r, "mount -a (%d)" % (i + 1))
            self.assertEqual(len(mountinfo(self.mnt)), 1, "mount -a twice stacked two mounts")
            self.assertEqual(len(daemon_pids(self.mnt)), 1)
            self.assertEqual(read_all(os.path.join(self.mnt, "t", "a.txt")), b"auto\n")
            self.umount_and_wait()


class MountTypeTest(SystemTestCase):

    def test_mount_t_with_options(self):
        """mount -t fuse.bucketfs CONFIG DIR -o ...: options after the
        positional arguments (as mount.fuse3 passes them), generic ones
        ignored, ro honoured."""
        self.put("d/x.json", b'{"a": 1}\n')
        conf = self.write_config()
        r = run(["mount", "-t", "fuse.bucketfs", conf, self.mnt, "-o",
                 "ro,noatime,nodiratime,relatime,nosuid,nodev,noexec,uid=%d,metadata_ttl=5s"
                 % UID], env=clean_env())
        self.assertMountOk(r, "mount -t fuse.bucketfs")
        self.assertEqual(read_all(os.path.join(self.mnt, "t", "d", "x.json")), b'{"a": 1}\n')
        self.assertEqual(os.stat(os.path.join(self.mnt, "t", "d", "x.json")).st_uid, UID)
        opts = mountinfo(self.mnt)[0]
        with self.assertRaises(OSError) as cm:
            open(os.path.join(self.mnt, "t", "new.txt"), "wb").close()
        self.assertEqual(cm.exception.errno, errno.EROFS, opts)
        self.umount_and_wait()

    def test_s3_url_source(self):
        """An fstab source s3://BUCKET/PREFIX needs no config file: one
        mapping named after the bucket (credentials from the environment)."""
        self.put("u.txt", b"by url\n")
        r = run(["mount", "-t", "fuse.bucketfs", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")),
                 self.mnt, "-o", "path_style=true,cache_dir=%s" % self.cache])
        self.assertMountOk(r, "mount -t fuse.bucketfs s3://...")
        self.assertEqual(os.listdir(self.mnt), [BUCKET])
        self.assertEqual(read_all(os.path.join(self.mnt, BUCKET, "u.txt")), b"by url\n")
        self.umount_and_wait()

    def test_unknown_key_fails_clearly(self):
        conf = self.write_config()
        r = run(["mount", "-t", "fuse.bucketfs", conf, self.mnt, "-o", "cache_sise=1G"],
                env=clean_env())
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown key 'cache_sise'", r.stderr)
        self.assertFalse(mounted(self.mnt))

    def test_readable_secret_refused(self):
        conf = self.write_config(mode=0o644)
        r = run(["mount", "-t", "fuse.bucketfs", conf, self.mnt], env=clean_env())
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("group or others may access it (mode 0644): chmod 600", r.stderr)
        self.assertNotIn(os.environ["AWS_SECRET_ACCESS_KEY"], r.stderr)
        self.assertFalse(mounted(self.mnt))


class SyslogTest(SystemTestCase):

    def test_daemon_logs_to_syslog(self):
        """A daemonized mount logs to syslog (facility daemon, tag
        bucketfs[PID]); in the foreground phase messages go to stderr."""
        self.put("s.txt", b"syslog\n")
        with syslog_socket() as sock:
            with Mount(maps=[("t", "s3://%s/%s" % (BUCKET, self.p.rstrip("/")))],
                       opts={"cache_dir": self.cache}) as m:
                pid = m.pid
                self.assertEqual(read_all(m.path("t", "s.txt")), b"syslog\n")
            deadline = time.monotonic() + 30
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            msgs = [x for x in drain(sock) if "bucketfs[%d]:" % pid in x]
        self.assertNotIn("mounted", m.stderr, "the daemon's messages must not go to stderr")
        tag = "bucketfs[%d]: " % pid
        mounted_msg = [x for x in msgs if tag + "mounted 1 mapping(s) on " + m.mnt in x]
        self.assertEqual(len(mounted_msg), 1, "syslog got %r" % msgs)
        # <30> = facility daemon (3) * 8 + info (6)
        self.assertTrue(mounted_msg[0].startswith("<30>"), mounted_msg[0])
        self.assertTrue(any(tag + "unmounting " + m.mnt in x for x in msgs), msgs)
        for x in msgs:
            self.assertNotIn("secret", x.lower())

    def test_foreground_logs_to_stderr(self):
        """With -f nothing goes to syslog: the lines are on stderr."""
        with syslog_socket() as sock:
            errf = os.path.join(self.tmp, "stderr")
            with open(errf, "wb") as err:
                p = subprocess.Popen([tm.BUCKETFS, "-f", "--map",
                                      "t=s3://%s/%s" % (BUCKET, self.p.rstrip("/")),
                                      "-o", "cache_dir=" + self.cache, self.mnt],
                                     stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            try:
                deadline = time.monotonic() + 30
                while not mounted(self.mnt) and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertTrue(mounted(self.mnt))
            finally:
                run(["umount", self.mnt])
                p.wait(timeout=60)
            msgs = [x for x in drain(sock) if "bucketfs[%d]:" % p.pid in x]
        self.assertEqual(msgs, [])
        with open(errf, encoding="utf-8", errors="replace") as f:
            text = f.read()
        self.assertIn("info: mounted 1 mapping(s) on " + self.mnt, text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bucketfs", required=True, help="path of the bucketfs binary")
    ap.add_argument("--cli", required=True, help="path of the bfs-s3 binary")
    args, rest = ap.parse_known_args()
    binary = os.path.abspath(args.bucketfs)
    tm.CLI = os.path.abspath(args.cli)
    if os.geteuid() != 0:
        print("error: test_system.py mounts through mount(8) and edits /etc/fstab: run it as "
              "root", file=sys.stderr)
        return 2
    missing = [v for v in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
               if not os.environ.get(v)]
    if missing:
        print("error: %s not set: run this under scripts/with-server.sh" % ", ".join(missing),
              file=sys.stderr)
        return 2
    for prog in ("mount", "umount", "setpriv"):
        if not shutil.which(prog):
            print("error: %s is missing" % prog, file=sys.stderr)
            return 2
    if not os.path.exists("/sbin/mount.fuse3"):
        print("error: /sbin/mount.fuse3 (package fuse3) is missing", file=sys.stderr)
        return 2
    with suite_lock(), installed_binary(binary) as copy:
        tm.BUCKETFS = copy
        print("bucketfs %s as %s against %s at %s" % (binary, SHIM, tm.SERVER,
                                                     os.environ["AWS_ENDPOINT_URL"]),
              file=sys.stderr)
        prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
