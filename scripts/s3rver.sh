#!/usr/bin/env bash
# s3rver.sh start DIR PORT   start s3rver (pinned 3.7.1, from .deps/) on 127.0.0.1:PORT
# s3rver.sh stop  DIR        stop the s3rver started with DIR
#
# State under DIR: data/ (objects), s3rver.log (request log: s3rver's stdout
# and stderr), pid.  The server runs in its own session (setsid), so a Ctrl-C
# in the calling shell does not reach it; stop it with `s3rver.sh stop DIR`.
# Buckets created at startup: raw processed models bfs-test
# (override with S3RVER_BUCKETS="a b c").  Credentials are s3rver's defaults,
# access key S3RVER, secret S3RVER; signatures are checked.
# S3RVER_KEY=KEY.pem S3RVER_CERT=CERT.pem serve HTTPS with that key and
# certificate instead of HTTP.
# On success `start` prints the endpoint (http://127.0.0.1:PORT) on stdout.
# Install s3rver with scripts/setup-deps.sh.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
S3RVER=${S3RVER:-$top/.deps/s3rver/node_modules/.bin/s3rver}
BUCKETS=${S3RVER_BUCKETS:-raw processed models bfs-test}
START_TIMEOUT=${START_TIMEOUT:-30}
STOP_TIMEOUT=${STOP_TIMEOUT:-10}

log() { printf '[s3rver] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }

[ $# -ge 2 ] || usage
cmd=$1 DIR=$2
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
DIR=${DIR%/}
[ -n "$DIR" ] && [ "$DIR" != / ] || die "refusing to use / as DIR"
PIDFILE="$DIR/pid"
DATA="$DIR/data"

ours() { # pid -> 0 if alive and it is the s3rver serving our data dir
  [ -d "/proc/$1" ] && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$DATA"
}
running() { # pid -> 0 while the process exists and is not a zombie
  local st
  st=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

do_stop() {
  local pid
  if [ ! -s "$PIDFILE" ]; then log "nothing to stop in $DIR"; return 0; fi
  pid=$(cat "$PIDFILE")
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! ours "$pid"; then
    log "not running (stale pid file)"; rm -f "$PIDFILE"; return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $(( STOP_TIMEOUT * 10 ))); do running "$pid" || break; sleep 0.1; done
  if running "$pid"; then
    log "pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
  fi
  log "stopped (pid $pid)"
  rm -f "$PIDFILE"
}

SCHEME=http
[ -n "${S3RVER_KEY:-}" ] && SCHEME=https

http_answers() { # any HTTP status (s3rver answers 403 to an anonymous GET /)
  local code
  code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 3 "$SCHEME://127.0.0.1:$PORT/" 2>/dev/null) || true
  [ -n "$code" ] && [ "$code" != 000 ]
}

do_start() {
  [[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "bad PORT '$PORT'"
  [ -x "$S3RVER" ] || die "s3rver not found at $S3RVER: run scripts/setup-deps.sh"
  command -v node >/dev/null || die "node not found: run scripts/setup-deps.sh"
  command -v curl >/dev/null || die "curl not found: run scripts/setup-deps.sh"
  mkdir -p "$DATA"
  if [ -s "$PIDFILE" ] && ours "$(cat "$PIDFILE")"; then
    die "an s3rver for $DIR is already running (pid $(cat "$PIDFILE"))"
  fi
  rm -f "$PIDFILE"
  if http_answers || [ -n "$(ss -Htln "sport = :$PORT" 2>/dev/null)" ]; then
    die "something already listens on 127.0.0.1:$PORT"
  fi
  local args=(-d "$DATA" -a 127.0.0.1 -p "$PORT") b nodeopts=${NODE_OPTIONS:-}
  # s3rver makes ListObjectsV2 continuation tokens with DES, which the
  # OpenSSL 3 of Node >= 17 only has in its legacy provider: without it every
  # truncated listing (more than max-keys keys) fails with 500 InternalError
  if node --openssl-legacy-provider -e 0 >/dev/null 2>&1; then
    nodeopts="${nodeopts:+$nodeopts }--openssl-legacy-provider"
  fi
  for b in $BUCKETS; do args+=(--configure-bucket "$b"); done
  if [ -n "${S3RVER_KEY:-}" ]; then args+=(--key "$S3RVER_KEY" --cert "${S3RVER_CERT:?S3RVER_CERT too}"); fi
  # s3rver's request log (koa-logger through winston) cuts the first 16
  # characters of each line, which without colours eats the method, URL and
  # status ("  --> GET / 200 " is 16 characters).  With FORCE_COLOR=1 the cut
  # removes only the coloured "-->", and sed strips the colour codes again.
  # The inner bash writes its own PID, then exec()s s3rver (same PID, so the
  # pid file names the node process itself); sed lives in the same session.
  # shellcheck disable=SC2016
  FORCE_COLOR=1 NODE_OPTIONS=$nodeopts setsid bash -c '
    log=$1 pidf=$2; shift 2
    exec > >(exec sed -u -e "s/\x1b\[[0-9;]*m//g" >>"$log") 2>&1
    echo $$ > "$pidf"
    exec "$@"' s3rver-wrapper "$DIR/s3rver.log" "$PIDFILE" "$S3RVER" "${args[@]}" \
    </dev/null >/dev/null 2>&1 &
  local pid end
  for _ in $(seq 50); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
  [ -s "$PIDFILE" ] || die "s3rver did not start (see $DIR/s3rver.log)"
  pid=$(cat "$PIDFILE")
  end=$(( $(date +%s) + START_TIMEOUT ))
  until http_answers; do
    if ! running "$pid"; then
      tail -n 20 "$DIR/s3rver.log" >&2 || true
      rm -f "$PIDFILE"
      die "s3rver exited during startup (log: $DIR/s3rver.log)"
    fi
    if [ "$(date +%s)" -ge "$end" ]; then
      tail -n 20 "$DIR/s3rver.log" >&2 || true
      do_stop
      die "s3rver did not answer on 127.0.0.1:$PORT within ${START_TIMEOUT}s"
    fi
    sleep 0.1
  done
  log "ready: $SCHEME://127.0.0.1:$PORT pid $pid data $DATA log $DIR/s3rver.log buckets: $BUCKETS (S3RVER/S3RVER)"
  echo "$SCHEME://127.0.0.1:$PORT"
}

case "$cmd" in
  start) [ $# -eq 3 ] || usage; PORT=$3; do_start ;;
  stop)  [ $# -eq 2 ] || usage; do_stop ;;
  *) usage ;;
esac
