#!/usr/bin/env bash
# rgw-stop.sh [DIR]  -- stop the daemons that rgw-start.sh DIR started.
# (bucketfs's copy of shared/tools/radosgw/stop.sh)
# Only PIDs recorded in DIR/run/pids/*.pid are signalled, and only if that
# process's command line still names DIR/ceph.conf (guards against PID reuse).
# Order: radosgw, ceph-osd, ceph-mon.  SIGTERM, then SIGKILL after a timeout.
# Data under DIR is kept (pass WIPE=1 to delete DIR afterwards).
set -uo pipefail
DIR=${1:-/tmp/reals3}
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
DIR=${DIR%/}
CONF="$DIR/ceph.conf"
PIDDIR="$DIR/run/pids"
STOP_TIMEOUT=${STOP_TIMEOUT:-30}

ours() { # pid -> 0 if it is alive and was started with our ceph.conf
  [ -d "/proc/$1" ] && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$CONF"
}
running() { # pid -> 0 while the process exists and is not yet a zombie
  local st
  st=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

stop_one() {
  local name=$1 f="$PIDDIR/$1.pid" pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  # identity check once (PID reuse guard), then wait for that PID to exit
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! ours "$pid"; then
    echo "[realS3] $name: not running"; rm -f "$f"; return 0
  fi
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq $(( STOP_TIMEOUT * 10 ))); do running "$pid" || break; sleep 0.1; done
  if running "$pid"; then
    echo "[realS3] $name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
  fi
  echo "[realS3] stopped $name (pid $pid)"
  rm -f "$f"
}

if [ -d "$PIDDIR" ]; then
  stop_one rgw.a
  stop_one osd.0
  stop_one mon.a
  # anything else recorded (future daemons)
  for f in "$PIDDIR"/*.pid; do [ -e "$f" ] && stop_one "$(basename "$f" .pid)"; done
else
  echo "[realS3] nothing to stop in $DIR"
fi
if [ "${WIPE:-0}" = 1 ] && [ -n "$DIR" ] && [ "$DIR" != / ]; then rm -rf "$DIR"; echo "[realS3] wiped $DIR"; fi
exit 0
