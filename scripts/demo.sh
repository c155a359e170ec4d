#!/usr/bin/env bash
# demo.sh: see bucketfs work in a minute, on a local S3 server.
#
#   scripts/demo.sh [MOUNTDIR]        install, build, start s3rver, upload a
#                                     sample data set, mount it on MOUNTDIR
#                                     (default: mnt/climate in the repository)
#                                     and read it with ordinary tools
#   scripts/demo.sh stop [MOUNTDIR]   unmount and stop the server (idempotent)
#   scripts/demo.sh status            what is running
#
# Steps of a start:
#   1. scripts/setup-deps.sh with SETUP_RGW=0 (apt packages, s3rver into .deps/)
#   2. meson + ninja into build/ when build/bucketfs is missing or older than
#      the sources
#   3. s3rver (scripts/s3rver.sh) on 127.0.0.1, port 4568 if free (or the port
#      of the last run, or a free one), state in .demo/ (git-ignored); it keeps
#      running after this script exits
#   4. scripts/demo-data.py writes a small synthetic climate/health data set
#      (fixed seed) and uploads it to the buckets raw, processed and models
#   5. build/bucketfs mounts raw, processed and models/models/ as three
#      directories of MOUNTDIR, with its cache in .demo/cache
#   6. ls, head, a csv-module Python script, awk and pickle read the mount
#
# Running it again while a demo runs reuses the server, remounts (with the
# freshly built binary) and re-checks the data.  The only credentials involved
# are s3rver's well-known demo keys, S3RVER/S3RVER.
#
# Environment: DEMO_PORT=N forces the server port; SKIP_SETUP=1 skips step 1;
# MOUNT_TIMEOUT (default 30 s) and UNMOUNT_TIMEOUT (default 120 s: bucketfs
# finishes its uploads before it exits) bound the waits.
set -eEuo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
DEMO=$top/.demo
SRV=$DEMO/s3rver
CACHE=$DEMO/cache
SAMPLE=$DEMO/sample
BFS=$top/build/bucketfs
PY=/usr/bin/python3
DEFAULT_MNT=$top/mnt/climate
MOUNT_TIMEOUT=${MOUNT_TIMEOUT:-30}
UNMOUNT_TIMEOUT=${UNMOUNT_TIMEOUT:-120}

if [ -t 1 ]; then B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' N=$'\033[0m'; else B='' G='' R='' N=''; fi
log()  { printf '%s[demo]%s %s\n' "$B" "$N" "$*" >&2; }
warn() { printf '%s[demo] warning:%s %s\n' "$R" "$N" "$*" >&2; }
die()  {
  printf '%s[demo] ERROR:%s %s\n' "$R" "$N" "$*" >&2
  if [ -n "${STEP:-}" ]; then
    printf '[demo] (in step %s; whatever runs is left running for inspection: scripts/demo.sh stop cleans up)\n' "$STEP" >&2
  fi
  exit 1
}
section() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
shown() { printf '\n%s$ %s%s\n' "$G" "$*" "$N"; }   # the command about to run

usage() {
  sed -n '2,/^set -eEuo/p' "$0" | sed -e '/^set -eEuo/d' -e 's/^# \{0,1\}//'
  exit "${1:-0}"
}

abspath() { # absolute, symlink-free path, even when the last component is a
            # dead FUSE mount (stat fails with ENOTCONN) or does not exist yet
  local p=$1
  case "$p" in /*) ;; *) p="$PWD/$p" ;; esac
  p=${p%/}
  [ -n "$p" ] || p=/
  if [ "$p" = / ]; then echo /; return; fi
  local parent
  parent=$(realpath -m -- "$(dirname -- "$p")")
  echo "${parent%/}/$(basename -- "$p")"
}

mounted() { # is anything mounted on the absolute path $1 (per mountinfo)?
  local m
  m=$(printf '%s' "$1" | sed -e 's/\\/\\134/g' -e 's/ /\\040/g' -e 's/\t/\\011/g')
  M="$m" awk '$5 == ENVIRON["M"] { f = 1 } END { exit !f }' /proc/self/mountinfo
}

port_free() { # nobody listens on TCP port $1
  [ -z "$(ss -Htln "sport = :$1" 2>/dev/null)" ] &&
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

http_answers() { # the server on port $1 answers HTTP (403 to an anonymous GET /)
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$1/" 2>/dev/null) || true
  [ -n "$code" ] && [ "$code" != 000 ]
}

server_pid() { # pid of the demo's s3rver if it runs, else fails
  local pid cmdline
  [ -s "$SRV/pid" ] || return 1
  pid=$(cat "$SRV/pid")
  [[ "$pid" =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ] || return 1
  cmdline=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmdline" == *"$SRV/data"* ]] || return 1
  echo "$pid"
}

bucketfs_pids() { # pids of build/bucketfs processes serving mount point $1
  local d exe args a
  for d in /proc/[0-9]*; do
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    [ "$exe" = "$BFS" ] || [ "$exe" = "$BFS (deleted)" ] || continue
    mapfile -d '' args < "$d/cmdline" 2>/dev/null || continue
    for a in "${args[@]}"; do
      if [ "$a" = "$1" ] || [ "$a" = "$1/" ]; then echo "${d#/proc/}"; break; fi
    done
  done
  return 0
}

alive() { # pid $1 exists and is not a zombie
  local st
  st=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

demo_env() { # the environment bucketfs and boto3 see: the demo server only
  unset AWS_CA_BUNDLE AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN \
        AWS_SECURITY_TOKEN AWS_ENDPOINT_URL_S3 AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN
  export AWS_ENDPOINT_URL="http://127.0.0.1:$1"
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
}

# ---------------------------------------------------------------- stopping

unmount() { # mount point: unmount it and wait for its bucketfs to exit
  local mnt=$1 pids pid i
  pids=$(bucketfs_pids "$mnt")
  if mounted "$mnt"; then
    log "unmounting $mnt"
    if ! fusermount3 -u "$mnt" 2>/dev/null && ! umount "$mnt" 2>/dev/null; then
      warn "$mnt is busy (a shell or program is using it): lazy unmount (umount -l)"
      umount -l "$mnt" || die "could not unmount $mnt"
    fi
  fi
  mounted "$mnt" && die "$mnt is still mounted"
  for pid in $pids; do
    alive "$pid" || continue
    log "waiting for bucketfs (pid $pid) to finish its uploads and exit"
    for i in $(seq $(( UNMOUNT_TIMEOUT * 10 ))); do
      alive "$pid" || break
      [ $(( i % 100 )) -eq 0 ] && log "  still waiting ($(( i / 10 )) s)"
      sleep 0.1
    done
    if alive "$pid"; then
      warn "bucketfs (pid $pid) still runs after ${UNMOUNT_TIMEOUT}s: SIGTERM; anything" \
           "not uploaded stays in the journal in $CACHE and resumes on the next mount"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$DEMO/bucketfs.pid"
}

stop_server() {
  if server_pid >/dev/null; then log "stopping s3rver"; fi
  "$top/scripts/s3rver.sh" stop "$SRV" 2>&1 | sed 's/^/  /' >&2
}

do_stop() { # [MOUNTDIR]
  local mnt m
  if [ $# -ge 1 ]; then mnt=$(abspath "$1")
  elif [ -s "$DEMO/mountdir" ]; then mnt=$(cat "$DEMO/mountdir")
  else mnt=$DEFAULT_MNT; fi
  unmount "$mnt"
  # a previous run may have used another mount point
  if [ -s "$DEMO/mountdir" ]; then
    m=$(cat "$DEMO/mountdir")
    [ "$m" = "$mnt" ] || unmount "$m"
    rm -f "$DEMO/mountdir"
  fi
  if [ -d "$SRV" ]; then stop_server; fi
  log "stopped (data and cache kept in $DEMO; rm -rf .demo to forget them)"
}

do_status() {
  local mnt port pid pids
  mnt=$(cat "$DEMO/mountdir" 2>/dev/null || echo "$DEFAULT_MNT")
  port=$(cat "$DEMO/port" 2>/dev/null || true)
  if pid=$(server_pid); then
    echo "s3rver:   running, pid $pid, http://127.0.0.1:${port:-?} (keys S3RVER/S3RVER), log $SRV/s3rver.log"
  else
    echo "s3rver:   not running"
  fi
  if mounted "$mnt"; then
    if mountpoint -q "$mnt" 2>/dev/null; then
      pids=$(bucketfs_pids "$mnt" | tr '\n' ' ')
      echo "bucketfs: mounted on $mnt${pids:+ (pid ${pids% })}"
      # only a binary that has the status command (an older one would take
      # "status" for a config file and try to mount again)
      if [ -x "$BFS" ] && "$BFS" --help 2>&1 | grep -q 'status'; then
        "$BFS" status "$mnt" 2>&1 | sed 's/^/  /' || true
      fi
    else
      echo "bucketfs: $mnt is mounted but does not answer (bucketfs died?): scripts/demo.sh stop"
    fi
  else
    echo "bucketfs: not mounted on $mnt"
  fi
}

# ---------------------------------------------------------------- starting

STEP=""
on_error() {
  local rc=$?
  trap - ERR
  printf '%s[demo] FAILED%s in step %s (exit %s; line %s: %s)\n' "$R" "$N" "$STEP" "$rc" \
    "${BASH_LINENO[0]}" "$BASH_COMMAND" >&2
  printf '[demo] whatever runs is left running for inspection: scripts/demo.sh stop cleans up\n' >&2
  exit "$rc"
}

build_needed() {
  [ -x "$BFS" ] || return 0
  [ -n "$(find "$top/meson.build" "$top/meson_options.txt" "$top/src" "$top/include" \
            -type f -newer "$BFS" \( -name '*.[ch]' -o -name meson.build -o -name meson_options.txt \) \
            -print -quit 2>/dev/null)" ]
}

pick_port() {
  local p i last
  if [ -n "${DEMO_PORT:-}" ]; then
    port_free "$DEMO_PORT" || die "DEMO_PORT=$DEMO_PORT is in use"
    echo "$DEMO_PORT"; return
  fi
  last=$(cat "$DEMO/port" 2>/dev/null || true)
  for p in $last 4568; do
    [[ "$p" =~ ^[0-9]+$ ]] && port_free "$p" && { echo "$p"; return; }
  done
  for i in $(seq 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 10000 ))
    port_free "$p" && { echo "$p"; return; }
  done
  die "no free TCP port found"
}

do_start() { # [MOUNTDIR]
  local mnt port pid i endpoint m
  mnt=$(abspath "${1:-$DEFAULT_MNT}")
  case "$mnt" in "$top"|"$top"/.demo|"$top"/.demo/*|/) die "refusing to mount on $mnt" ;; esac
  trap on_error ERR
  mkdir -p "$DEMO"
  # .demo is git-ignored, but say so inside it too in case .gitignore is not
  [ -f "$DEMO/.gitignore" ] || echo '*' > "$DEMO/.gitignore"

  STEP="1/6 dependencies (scripts/setup-deps.sh)"
  section "$STEP"
  if [ "${SKIP_SETUP:-0}" = 1 ]; then log "SKIP_SETUP=1: skipped"
  else SETUP_RGW=0 "$top/scripts/setup-deps.sh"; fi
  command -v fusermount3 >/dev/null || die "fusermount3 missing (apt-get install fuse3)"
  [ -e /dev/fuse ] || die "/dev/fuse missing: this machine (container?) cannot mount FUSE file systems"
  [ -x "$PY" ] || die "$PY missing"

  STEP="2/6 build (meson + ninja into build/)"
  section "$STEP"
  if build_needed; then
    if [ ! -f "$top/build/build.ninja" ]; then (cd "$top" && meson setup build); fi
    ninja -C "$top/build"
    [ -x "$BFS" ] || die "the build did not produce build/bucketfs (this checkout does not build the file system yet?)"
  else
    log "build/bucketfs is up to date"
  fi

  STEP="3/6 local S3 server (s3rver)"
  section "$STEP"
  # a previous demo: remount (the binary may be new) but keep a live server
  for m in "$mnt" "$(cat "$DEMO/mountdir" 2>/dev/null || true)"; do
    [ -n "$m" ] || continue
    if mounted "$m" || [ -n "$(bucketfs_pids "$m")" ]; then
      log "a demo is mounted on $m: unmounting it first"
      unmount "$m"
    fi
  done
  rm -f "$DEMO/mountdir"
  port=""
  if pid=$(server_pid); then
    port=$(cat "$DEMO/port" 2>/dev/null || true)
    if [[ "$port" =~ ^[0-9]+$ ]] && http_answers "$port"; then
      log "reusing the running s3rver (pid $pid) on port $port"
    else
      log "s3rver pid $pid does not answer on port '${port}': restarting it"
      stop_server; port=""
    fi
  fi
  if [ -z "$port" ]; then
    port=$(pick_port)
    "$top/scripts/s3rver.sh" start "$SRV" "$port" >/dev/null
    echo "$port" > "$DEMO/port"
  fi
  demo_env "$port"
  endpoint=$AWS_ENDPOINT_URL
  log "endpoint $endpoint, access key S3RVER, secret S3RVER (s3rver's demo keys)"

  STEP="4/6 sample data (scripts/demo-data.py)"
  section "$STEP"
  log "generating the sample into .demo/sample/"
  rm -rf "$SAMPLE"
  "$PY" "$top/scripts/demo-data.py" "$SAMPLE"
  log "uploading with boto3 and checking what the server holds"
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    "$PY" "$top/scripts/demo-data.py" --upload "$endpoint" "$SAMPLE"

  STEP="5/6 mount (build/bucketfs)"
  section "$STEP"
  mkdir -p "$mnt" "$CACHE"
  chmod 700 "$CACHE"
  local cmd=("$BFS" --map raw=s3://raw --map processed=s3://processed
             --map models=s3://models/models/ -o "cache_dir=$CACHE" "$mnt")
  shown "AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 \\"
  if [ "$PWD" = "$top" ]; then printf '    %s\n' "${cmd[*]#"$top"/}"; else printf '    %s\n' "${cmd[*]}"; fi
  if ! "${cmd[@]}"; then
    die "bucketfs could not mount $mnt (its message is above; for details run the command above with -f -d)"
  fi
  for i in $(seq $(( MOUNT_TIMEOUT * 10 ))); do
    mountpoint -q "$mnt" && break
    sleep 0.1
  done
  mountpoint -q "$mnt" || die "bucketfs returned but $mnt is not a mount point after ${MOUNT_TIMEOUT}s"
  echo "$mnt" > "$DEMO/mountdir"
  bucketfs_pids "$mnt" | head -n 1 > "$DEMO/bucketfs.pid"
  log "mounted on $mnt"

  STEP="6/6 reading the mount with ordinary tools"
  section "$STEP"
  shown "ls -l $mnt $mnt/raw"
  ls -l "$mnt" "$mnt/raw"

  shown "head -5 $mnt/raw/climate_data.csv"
  head -5 "$mnt/raw/climate_data.csv"

  echo
  echo "# a \"legacy\" script that knows nothing about S3: Python's csv module on a path"
  shown "python3 mean_temperature.py $mnt/raw/climate_data.csv"
  "$PY" - "$mnt/raw/climate_data.csv" <<'EOF'
import csv, sys
total, days = {}, {}
with open(sys.argv[1], newline="") as f:
    for row in csv.DictReader(f):
        r = row["region"]
        total[r] = total.get(r, 0.0) + float(row["temperature_c"])
        days[r] = days.get(r, 0) + 1
print(f"{'region':<8} {'mean temperature':>17} {'days':>5}")
for r in sorted(total, key=lambda r: -total[r] / days[r]):
    print(f"{r:<8} {total[r] / days[r]:>15.2f} C {days[r]:>5}")
EOF

  shown "awk -F, 'NR > 1 { a[\$2] += \$3; h[\$2] += \$4 } END { ... }' $mnt/raw/health_data.csv | sort -k3,3nr"
  printf '%-8s %11s %11s\n' region respiratory heat_visits
  awk -F, 'NR > 1 { a[$2] += $3; h[$2] += $4 }
           END { for (r in a) printf "%-8s %11d %11d\n", r, a[r], h[r] }' \
      "$mnt/raw/health_data.csv" | sort -k3,3nr

  shown "ls -l $mnt/models"
  ls -l "$mnt/models"

  shown "python3 -c 'import pickle; m = pickle.load(open(\"$mnt/models/heat_risk_v1.pkl\", \"rb\")); ...'"
  "$PY" -c 'import pickle, sys
m = pickle.load(open(sys.argv[1], "rb"))
print(m["name"], "v%d" % m["version"], "intercept", m["intercept"], "coefficients", m["coefficients"])' \
    "$mnt/models/heat_risk_v1.pkl"

  trap - ERR
  section "the demo is running"
  cat <<EOF
  mount:    $mnt  (raw -> s3://raw, processed -> s3://processed, models -> s3://models/models/)
  server:   $endpoint  (s3rver, keys S3RVER/S3RVER; log .demo/s3rver/s3rver.log)
  cache:    $CACHE

  Try: ls -R $mnt/processed; cp $mnt/raw/climate_data.csv /tmp/
  Stop: scripts/demo.sh stop
EOF
}

case "${1:-}" in
  -h|--help|help) usage ;;
  stop)   shift; [ $# -le 1 ] || usage 2; do_stop "$@" ;;
  status) shift; [ $# -eq 0 ] || usage 2; do_status ;;
  start)  shift; [ $# -le 1 ] || usage 2; do_start "$@" ;;
  -*)     usage 2 ;;
  *)      [ $# -le 1 ] || usage 2; do_start "$@" ;;
esac
