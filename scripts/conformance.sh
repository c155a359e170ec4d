#!/usr/bin/env bash
# conformance.sh: bucketfs's POSIX conformance as a number (issue 13), measured
# with pjdfstest on a throw-away Ceph RGW.
#
#   scripts/conformance.sh [OPTIONS] [BUILD_DIR]      (BUILD_DIR: build)
#
# 1. Builds pjdfstest 85a8aea from its tarball (third_party, see
#    PJDFSTEST_TARBALL below) into .deps/pjdfstest-85a8aea (git ignored):
#    autoreconf -ifs && ./configure && make pjdfstest, once per tarball.
#    The built copy's tests/conf takes the file system type from PJDFSTEST_FS
#    when that is set (pjdfstest itself reads it from `df -PT .`).
# 2. Starts Ceph RGW with scripts/with-server.sh rgw (which stops it).
# 3. Mounts BUILD_DIR/bucketfs in the foreground with
#    -o allow_other,default_permissions,cache_dir=<fresh> and one mapping
#    c=s3://bfs-test/conformance-<random>, and, as root, from a scratch
#    directory of the mount (one per test directory), runs one
#    `prove -r -v` per directory of pjdfstest's tests/ (chmod, chown, ...),
#    each .t under a time limit (--file-timeout) and each directory under
#    another (--dir-timeout): what a killed test did not run counts as failed.
# 4. Unmounts (waits for the upload journal to drain, then kills the daemon if
#    it does not exit) on every path, also on errors, Ctrl-C and SIGTERM.
# 5. Prints a table (per directory: files, subtests planned, run, passed,
#    failed, seconds), a TOTAL line and the failing subtests by file.
#    "failed" is planned - passed: a subtest that never ran is a failure.
#    "passed" counts as prove does: a "not ok # TODO" (behaviour pjdfstest
#    itself marks as expected on Linux) passes; the TOTAL line counts them.
#
# The type pjdfstest is told decides which groups run (tests/misc.sh skips
# link(2) for FUSE.S3FS and FUSE.GCSFUSE, runs rename ctime checks only for
# EXT4, UFS and ZFS). The default, FUSE.GENERIC, is the type under which
# issue 13's figures were measured; the report names the type used and the
# one df reports.
#
# Options:
#   --floor N          exit 1 (saying why) when fewer than N subtests pass
#   --out FILE         also write the report to FILE
#   --fs-type TYPE     type pjdfstest is told (default FUSE.GENERIC);
#                      "detect" keeps what df -PT says (FUSE.BUCKETFS)
#   --only D1,D2       only these directories of tests/ (default: all)
#   --file-timeout S   time limit of one .t file (default 300)
#   --dir-timeout S    time limit of one directory (default 600)
#   --total-timeout S  time limit of all directories together (default 1800):
#                      directories not started by then count as failed
#   --logs DIR         keep prove's verbose output, its stderr, the daemon's
#                      log and every "not ok" line in DIR
# Environment: PJDFSTEST_TARBALL (the tarball), KEEP_SERVER_DIR=1 (RGW's
# state and logs, see with-server.sh).
#
# Exit status: 0 the run completed (at or above the floor when one is given);
# 1 below the floor, the daemon died or did not exit after unmount, or the run
# could not be made (no root, build, server or mount failed); 2 usage.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
self="$top/scripts/conformance.sh"
PJD_REV=85a8aea
PJD_SHA256=376cca71b9a08a6a5b6060a450fb9f12fab13f41950a5c444b749573a5b783f7
PJD_DIR="$top/.deps/pjdfstest-$PJD_REV"
BUCKET="bfs-test"

say() { printf '[conformance] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
usage() { sed -n '2,/^set -uo/p' "$self" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# ------------------------------------------------------------------ options
floor="" out="" fs_type=FUSE.GENERIC only="" file_timeout=300 dir_timeout=600 total_timeout=1800
logs=""
inner_work=""
build="build"
while [ $# -gt 0 ]; do
  case "$1" in
    --floor) floor=${2:-}; shift 2 || usage ;;
    --out) out=${2:-}; shift 2 || usage ;;
    --fs-type) fs_type=${2:-}; shift 2 || usage ;;
    --only) only=${2:-}; shift 2 || usage ;;
    --file-timeout) file_timeout=${2:-}; shift 2 || usage ;;
    --dir-timeout) dir_timeout=${2:-}; shift 2 || usage ;;
    --total-timeout) total_timeout=${2:-}; shift 2 || usage ;;
    --logs) logs=${2:-}; shift 2 || usage ;;
    --inner) inner_work=${2:-}; shift 2 || usage ;;   # internal: under with-server.sh
    -h|--help) usage ;;
    -*) say "unknown option $1"; usage ;;
    *) build=$1; shift ;;
  esac
done
for v in "$file_timeout" "$dir_timeout" "$total_timeout" ${floor:+"$floor"}; do
  [[ "$v" =~ ^[0-9]+$ ]] || { say "not a number: $v"; usage; }
done
[ -n "$fs_type" ] || usage
case "$build" in /*) ;; *) build="$top/$build" ;; esac

# ------------------------------------------------------- shared helpers
is_mounted() { # path: is it a mount point (no stat: a hung mount would hang)
  awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# ===================================================================== inner
# Runs under with-server.sh rgw: mount, run every directory, unmount.
# Writes into the work dir: meta (key=value), dirs.tsv (dir status seconds),
# logs/DIR.prove (prove -v), logs/DIR.stderr, logs/bucketfs.log.
inner() {
  local work=$1
  local L="$work/logs"
  local mnt="$work/mnt" bfs="$work/bucketfs"
  local daemon="" prove_pid="" n_mount=0 prefix="" cache=""
  local problems="$work/problems"
  : >"$problems"; : >"$work/notes"
  mkdir -p "$L" "$mnt" "$work/perl"
  printf 'package bfs_autoflush;\nSTDOUT->autoflush(1);\n1;\n' >"$work/perl/bfs_autoflush.pm"

  problem() { say "PROBLEM: $*"; printf '%s\n' "$*" >>"$problems"; }
  note() { say "$*"; printf '%s\n' "$*" >>"$work/notes"; }

  sweep() { # kill what is left of the tests: processes whose cwd is in the mount
    local p c
    for p in /proc/[0-9]*; do
      c=$(readlink "$p/cwd" 2>/dev/null) || continue
      case "$c" in "$mnt"|"$mnt"/*) ;; *) continue ;; esac
      p=${p#/proc/}
      [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] || kill -KILL "$p" 2>/dev/null
    done
  }

  stop_prove() {
    if [ -n "$prove_pid" ]; then
      kill -TERM -- "-$prove_pid" 2>/dev/null || kill -TERM "$prove_pid" 2>/dev/null
      sleep 1
      kill -KILL -- "-$prove_pid" 2>/dev/null
      wait "$prove_pid" 2>/dev/null
      prove_pid=""
    fi
    sweep
  }

  unmount() { # wait up to 300 s for the daemon to drain its journal and exit
    [ -n "$daemon" ] || return 0
    local t
    if is_mounted "$mnt"; then
      timeout -k 5 60 fusermount3 -u "$mnt" 2>>"$L/bucketfs.log" ||
        { sweep; timeout -k 5 60 fusermount3 -u "$mnt" 2>>"$L/bucketfs.log"; } ||
        problem "fusermount3 -u $mnt failed"
    fi
    for ((t = 0; t < 3000; t++)); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$daemon" 2>/dev/null; then
      problem "bucketfs (pid $daemon) still running 300 s after fusermount3 -u: killed"
      kill -TERM "$daemon" 2>/dev/null; sleep 2   # a second signal stops waiting for uploads
      kill -TERM "$daemon" 2>/dev/null; sleep 3
      kill -KILL "$daemon" 2>/dev/null
    fi
    wait "$daemon" 2>/dev/null
    local rc=$?
    case "$rc" in 0|143) ;; *) [ "$rc" -gt 128 ] && problem "bucketfs exited on signal $((rc - 128))" ;; esac
    is_mounted "$mnt" && { fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null; }
    daemon=""
  }

  # shellcheck disable=SC2317  # reached through the EXIT trap
  cleanup_inner() {
    local rc=$?
    trap - EXIT INT TERM HUP
    stop_prove
    unmount
    exit "$rc"
  }
  trap cleanup_inner EXIT
  trap 'say "interrupted"; exit 143' TERM
  trap 'say "interrupted"; exit 130' INT
  trap 'exit 129' HUP

  mount_fs() {
    n_mount=$((n_mount + 1))
    prefix="conformance-$(date +%s)-$RANDOM$RANDOM"
    cache=$(mktemp -d "$work/cache.XXXXXX")
    printf '=== mount %d: %s\n' "$n_mount" "$prefix" >>"$L/bucketfs.log"
    "$bfs" -f --map "c=s3://$BUCKET/$prefix" \
      -o "allow_other,default_permissions,cache_dir=$cache" "$mnt" \
      </dev/null >>"$L/bucketfs.log" 2>&1 &
    daemon=$!
    local t
    for ((t = 0; t < 300; t++)); do
      is_mounted "$mnt" && break
      kill -0 "$daemon" 2>/dev/null || break
      sleep 0.1
    done
    if ! is_mounted "$mnt"; then
      tail -n 20 "$L/bucketfs.log" >&2
      die "bucketfs did not mount $mnt (log above)"
    fi
    timeout -k 5 30 mkdir "$mnt/c/pjd" || die "mkdir $mnt/c/pjd failed"
  }

  healthy() {
    kill -0 "$daemon" 2>/dev/null && is_mounted "$mnt" && timeout -k 5 20 stat "$mnt/c/pjd" >/dev/null 2>&1
  }

  mount_fs
  local detected
  detected=$(timeout -k 5 30 df -PT "$mnt/c/pjd" | tail -1 | awk '{print toupper($2)}')
  local used=$fs_type
  [ "$used" = detect ] && used=$detected
  {
    echo "fs_detected=$detected"
    echo "fs_used=$used"
    echo "bucketfs=$("$bfs" -V 2>&1 | head -1)"
    echo "endpoint=$AWS_ENDPOINT_URL"
  } >"$work/meta"
  say "mounted s3://$BUCKET/$prefix on $mnt; df -PT type $detected, pjdfstest told $used"

  local d t0 rc status scratch limit prev="(mount)"
  local deadline=$(( $(date +%s) + total_timeout ))
  : >"$work/dirs.tsv"
  for d in $dirs; do
    limit=$(( deadline - $(date +%s) ))
    if [ "$limit" -le 0 ]; then
      note "$d: not started, the run used up --total-timeout ($total_timeout s)"
      printf '%s\tNOT STARTED\t0\n' "$d" >>"$work/dirs.tsv"
      continue
    fi
    [ "$limit" -le "$dir_timeout" ] || limit=$dir_timeout
    if ! healthy; then
      problem "bucketfs died or hung during $prev (mount dead before $d): remounted on a new prefix"
      stop_prove; unmount; mount_fs
    fi
    scratch="$mnt/c/pjd/$d"
    timeout -k 5 30 mkdir "$scratch" || { problem "mkdir $scratch failed"; printf '%s\tERROR\t0\n' "$d" >>"$work/dirs.tsv"; continue; }
    say "$d ..."
    t0=$(date +%s)
    # timeout runs prove in a process group of its own; each .t runs under
    # its own timeout (in a group of its own too: stop_prove's sweep kills
    # what a killed prove leaves behind)
    # PERL5OPT: prove flushes every line, so that a killed run keeps them
    ( cd "$scratch" && PJDFSTEST_FS=$used PERL5LIB="$work/perl" PERL5OPT=-Mbfs_autoflush \
        exec timeout -k 30 "$limit" \
        prove -r -v --exec "timeout -k 10 $file_timeout /bin/sh" "$PJD_DIR/tests/$d" ) \
      >"$L/$d.prove" 2>"$L/$d.stderr" </dev/null &
    prove_pid=$!
    wait "$prove_pid"; rc=$?
    prove_pid=""
    case "$rc" in
      124|137) status=TIMEOUT; note "$d: killed after its time limit of $limit s"; sweep ;;
      0|1) status=ok ;;
      *) status="rc=$rc" ;;
    esac
    printf '%s\t%s\t%s\n' "$d" "$status" "$(( $(date +%s) - t0 ))" >>"$work/dirs.tsv"
    say "$d: $status, $(( $(date +%s) - t0 )) s"
    prev=$d
  done
  healthy || problem "bucketfs died or hung during $prev (mount dead at the end of the run)"
  timeout -k 5 60 rm -rf "$mnt/c/pjd" 2>/dev/null   # less to upload before exit
  stop_prove
  unmount
  trap - EXIT
  return 0
}

# --------------------------------------------------------------- the report
report() { # work → the report on stdout
  /usr/bin/python3 - "$1" "$PJD_DIR/tests" "$PJD_REV" <<'PY'
import os, re, sys
work, tests, rev = sys.argv[1:4]
meta = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(work, "meta")) if "=" in l)
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(work, "dirs.tsv")) if l.strip()]

def literal_plan(path):
    try:
        for l in open(path, errors="replace"):
            m = re.match(r'^echo "1\.\.(\d+)"\s*$', l)
            if m:
                return int(m.group(1))
    except OSError:
        pass
    return 1

def ranges(nums):
    nums = sorted(nums)
    out, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else "%d-%d" % (nums[i], nums[j]))
        i = j + 1
    return ",".join(out)

table, fails, notok = [], [], []
tot = dict(files=0, planned=0, run=0, passed=0, failed=0, secs=0, todo=0)
for d, status, secs in rows:
    files = {}
    order = []
    cur = None
    path = os.path.join(work, "logs", d + ".prove")
    prove_tests = None
    for line in open(path, errors="replace") if os.path.exists(path) else ():
        line = line.rstrip("\n")
        m = re.match(r'^(/\S+\.t) \.+ ?$', line)
        if m:
            cur = m.group(1)
            files.setdefault(cur, dict(plan=None, ok=set(), todo=set(), bad={}, rc=None))
            order.append(cur)
            continue
        m = re.match(r'^Files=\d+, Tests=(\d+)', line)
        if m:
            prove_tests = int(m.group(1))
            continue
        if cur is None:
            continue
        f = files[cur]
        m = re.match(r'^1\.\.(\d+)', line)
        if m and f["plan"] is None:
            f["plan"] = int(m.group(1))
            continue
        m = re.match(r'^(not )?ok (\d+)(.*)$', line)
        if m:
            n, rest = int(m.group(2)), m.group(3)
            if not m.group(1) or re.search(r'#\s*skip', rest, re.I):
                f["ok"].add(n)
            elif re.search(r'#\s*todo', rest, re.I):
                f["todo"].add(n)
            else:
                f["bad"][n] = rest.lstrip(" -")
            continue
        m = re.match(r'^Dubious, test returned (\d+)', line)
        if m:
            f["rc"] = int(m.group(1))
    # files that never started (a directory killed by its time limit)
    all_t = []
    for root, _, names in os.walk(os.path.join(tests, d)):
        all_t += [os.path.join(root, n) for n in names if n.endswith(".t")]
    for t in sorted(all_t):
        if t not in files:
            files[t] = dict(plan=literal_plan(t), ok=set(), todo=set(), bad={}, rc="not started")
    r = dict(files=len(files), planned=0, run=0, passed=0, failed=0, secs=int(secs), todo=0)
    for t in sorted(files):
        f = files[t]
        ran = f["ok"] | f["todo"] | set(f["bad"])
        plan = f["plan"] if f["plan"] is not None else max(ran | {1})
        passed = len(f["ok"] | f["todo"])
        missing = [n for n in range(1, plan + 1) if n not in ran]
        r["planned"] += plan
        r["run"] += len(ran)
        r["passed"] += passed
        r["todo"] += len(f["todo"])
        r["failed"] += plan - passed
        rel = os.path.relpath(t, tests)
        if f["bad"] or missing:
            why = []
            if f["bad"]:
                why.append(ranges(f["bad"]))
            if missing:
                why.append("not run %s" % ranges(missing))
            if f["rc"] == 124 or f["rc"] == 137:
                why.append("killed after --file-timeout")
            elif f["rc"] == "not started":
                why.append("not started")
            fails.append("  %-16s %s (of %d)" % (rel, "; ".join(why), plan))
            for n in sorted(f["bad"]):
                notok.append("%s %d: %s" % (rel, n, f["bad"][n]))
    if prove_tests is not None and prove_tests != r["run"] and status == "ok":
        status = "ok (prove said Tests=%d)" % prove_tests
    r["status"] = status
    table.append((d, r))
    for k in tot:
        tot[k] += r[k]

print("pjdfstest %s on %s, Ceph RGW (%s), -o allow_other,default_permissions"
      % (rev, meta.get("bucketfs", "bucketfs"), meta.get("endpoint", "?")))
print("file system type told to pjdfstest: %s (df -PT says %s)"
      % (meta.get("fs_used", "?"), meta.get("fs_detected", "?")))
hdr = "%-16s %6s %8s %8s %8s %8s %7s  %s"
print(hdr % ("directory", "files", "planned", "run", "passed", "failed", "secs", "status"))
for d, r in table:
    print(hdr % (d, r["files"], r["planned"], r["run"], r["passed"], r["failed"], r["secs"], r["status"]))
pct = 100.0 * tot["passed"] / tot["planned"] if tot["planned"] else 0.0
print(hdr % ("TOTAL", tot["files"], tot["planned"], tot["run"], tot["passed"], tot["failed"],
             tot["secs"], "%.1f%% passed (%d of them not ok # TODO)" % (pct, tot["todo"])))
if fails:
    print("failing subtests (file: test numbers):")
    print("\n".join(fails))
with open(os.path.join(work, "notok.txt"), "w") as o:
    o.write("".join(l + "\n" for l in notok))
with open(os.path.join(work, "passed"), "w") as o:
    o.write("%d\n" % tot["passed"])
PY
}

# ===================================================================== outer
if [ -n "$inner_work" ]; then
  dirs=$(cat "$inner_work/dirs")
  [ -n "${AWS_ENDPOINT_URL:-}" ] || die "--inner runs under scripts/with-server.sh"
  inner "$inner_work"
  exit $?
fi

[ "$(id -u)" = 0 ] || die "run as root: pjdfstest changes owners and runs subtests as other users"
for c in prove autoreconf make gcc fusermount3 timeout; do
  command -v "$c" >/dev/null || die "$c is missing: run scripts/setup-deps.sh"
done

# ---- build pjdfstest (once per tarball)
build_pjdfstest() {
  local tarball="${PJDFSTEST_TARBALL:-}" c
  if [ -z "$tarball" ]; then
    for c in "$top/third_party" "$top/../shared/third_party" /work/shared/third_party; do
      [ -f "$c/pjdfstest-$PJD_REV.tar.gz" ] && { tarball="$c/pjdfstest-$PJD_REV.tar.gz"; break; }
    done
  fi
  if [ -z "$tarball" ] || [ ! -f "$tarball" ]; then
    die "pjdfstest-$PJD_REV.tar.gz not found (set PJDFSTEST_TARBALL)"
  fi
  local sum
  sum=$(sha256sum "$tarball" | awk '{print $1}')
  [ "$sum" = "$PJD_SHA256" ] || die "$tarball: sha256 $sum, expected $PJD_SHA256"
  if [ -x "$PJD_DIR/pjdfstest" ] && [ "$(cat "$PJD_DIR/.bucketfs-stamp" 2>/dev/null)" = "$sum" ]; then
    return 0
  fi
  say "building pjdfstest $PJD_REV into ${PJD_DIR#"$top"/}"
  mkdir -p "$top/.deps"
  local tmp
  tmp=$(mktemp -d "$top/.deps/pjdfstest-build.XXXXXX") || die "mktemp failed"
  tar xzf "$tarball" -C "$tmp" || { rm -rf "$tmp"; die "cannot unpack $tarball"; }
  local src
  src=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -1)
  if ! (cd "$src" && autoreconf -ifs && ./configure && make pjdfstest) >"$tmp/build.log" 2>&1; then
    tail -n 30 "$tmp/build.log" >&2; rm -rf "$tmp"; die "building pjdfstest failed"
  fi
  # the type comes from PJDFSTEST_FS when set, else from df -PT . as before
  grep -q '^#fs="UFS"$' "$src/tests/conf" || { rm -rf "$tmp"; die "tests/conf changed: review"; }
  # shellcheck disable=SC2016  # the conf expands it, not us
  sed -i 's|^#fs="UFS"$|# bucketfs scripts/conformance.sh: PJDFSTEST_FS forces the type\n[ -n "${PJDFSTEST_FS:-}" ] \&\& fs="${PJDFSTEST_FS}"|' \
    "$src/tests/conf"
  echo "$sum" >"$src/.bucketfs-stamp"
  rm -rf "$PJD_DIR"
  mv "$src" "$PJD_DIR" && rm -rf "$tmp"
}
build_pjdfstest

all_dirs=$(cd "$PJD_DIR/tests" && for d in */; do d=${d%/}; ls "$d"/*.t >/dev/null 2>&1 && echo "$d"; done)
if [ -n "$only" ]; then
  dirs=""
  for d in ${only//,/ }; do
    grep -qx -- "$d" <<<"$all_dirs" || die "no test directory $d (have: ${all_dirs//$'\n'/ })"
    dirs+="$d "
  done
else
  dirs=$all_dirs
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bfs-conformance.XXXXXX") || die "mktemp failed"
ws=""
# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup_outer() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$ws" ] && kill -0 "$ws" 2>/dev/null; then
    # interrupted: with-server.sh stops the run (which unmounts), then RGW
    kill -TERM "$ws" 2>/dev/null
    wait "$ws" 2>/dev/null
  fi
  if [ -n "$logs" ] && [ -d "$work/logs" ]; then
    mkdir -p "$logs" && cp -a "$work/logs/." "$logs/" &&
      { [ ! -f "$work/notok.txt" ] || cp "$work/notok.txt" "$logs/"; }
  fi
  if is_mounted "$work/mnt"; then
    say "$work/mnt is still mounted: not removing $work"
  else
    rm -rf --one-file-system "$work"
  fi
  exit "$rc"
}
trap cleanup_outer EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
echo "$dirs" >"$work/dirs"
# a copy, so that a rebuild during the run changes nothing (a remount too)
[ -x "$build/bucketfs" ] || die "no $build/bucketfs: build first (meson setup $build && ninja -C $build)"
cp "$build/bucketfs" "$work/bucketfs" || die "cannot copy $build/bucketfs"

t0=$(date +%s)
inner_args=(--inner "$work" --fs-type "$fs_type" --file-timeout "$file_timeout"
            --dir-timeout "$dir_timeout" --total-timeout "$total_timeout" "$build")
# with-server.sh runs us in the background and forwards TERM; wait so that
# our traps run at once
"$top/scripts/with-server.sh" rgw "$self" "${inner_args[@]}" &
ws=$!
wait "$ws"; rc=$?
ws=""
[ -s "$work/dirs.tsv" ] || die "the run did not start (exit status $rc)"
wall=$(( $(date +%s) - t0 ))

text=$(report "$work") || die "cannot make the report"
text+=$'\n'"wall time ${wall} s (RGW start and stop included)"
notes=$(cat "$work/notes" 2>/dev/null)
[ -z "$notes" ] || text+=$'\n'"notes:"$'\n'"$(sed 's/^/  /' <<<"$notes")"
problems=$(cat "$work/problems" 2>/dev/null)
[ -z "$problems" ] || text+=$'\n'"problems:"$'\n'"$(sed 's/^/  /' <<<"$problems")"
passed=$(cat "$work/passed")
verdict=0
if [ -n "$floor" ]; then
  if [ "$passed" -lt "$floor" ]; then
    text+=$'\n'"FAILED: $passed subtests passed, below the floor of $floor"
    verdict=1
  else
    text+=$'\n'"ok: $passed subtests passed, floor $floor"
  fi
fi
if [ -n "$problems" ] || [ "$rc" != 0 ]; then
  text+=$'\n'"FAILED: the run had problems (with-server.sh exit status $rc)"
  verdict=1
fi
printf '%s\n' "$text"
[ -z "$out" ] || printf '%s\n' "$text" >"$out" || die "cannot write $out"
exit "$verdict"
