#!/usr/bin/env bash
# with-server.sh SERVER CMD [ARGS...]
#
# Start a throw-away S3 server on a free loopback port, run CMD against it,
# then stop the server and delete its state, whatever happens (normal exit,
# failure, Ctrl-C, SIGTERM).  Exits with CMD's status; a server that cannot
# start is an error (exit 1), never a skip.
#
# SERVER:
#   s3rver  s3rver 3.7.1 from .deps/ (scripts/s3rver.sh); keys S3RVER/S3RVER
#   rgw     Ceph radosgw on a fresh one-node cluster (scripts/rgw-start.sh);
#           keys bucketfs/bucketfs-secret; ~7 s to bootstrap
# Buckets raw, processed, models and bfs-test exist on both.
#
# CMD sees:
#   AWS_ENDPOINT_URL=http://127.0.0.1:PORT  AWS_ACCESS_KEY_ID  AWS_SECRET_ACCESS_KEY
#   AWS_REGION=us-east-1  AWS_DEFAULT_REGION=us-east-1
#   TEST_SERVER=SERVER  TEST_SERVER_DIR=<state dir>  TEST_SERVER_LOG=<request log>
# and none of AWS_PROFILE, AWS_CA_BUNDLE, AWS_SESSION_TOKEN, AWS_SECURITY_TOKEN,
# AWS_ENDPOINT_URL_S3 (they would point clients elsewhere or break signatures).
#
# Environment: KEEP_SERVER_DIR=1 keeps the state dir (logs) after the run;
# TEST_TMPDIR chooses where the state dir is made (default /tmp).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
usage() { echo "usage: $0 s3rver|rgw CMD [ARGS...]" >&2; exit 2; }
log() { printf '[with-server] %s\n' "$*" >&2; }
[ $# -ge 2 ] || usage
SERVER=$1; shift
case "$SERVER" in s3rver|rgw) ;; *) usage ;; esac

port_free() { # no TCP socket has local port $1 (a listener, or a connection:
  # the mon port may fall in the ephemeral range, where clients' sockets are)
  [ -z "$(ss -Htan "sport = :$1" 2>/dev/null)" ] &&
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
pick_port() {
  # 20000-29999: away from the OSD's 6800-7300 and the ephemeral range
  # (32768+); for rgw the mon takes PORT+10000 (30000-39999), checked too
  local p
  for _ in $(seq 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 10000 ))
    port_free "$p" || continue
    if [ "$SERVER" = rgw ]; then port_free $(( p + 10000 )) || continue; fi
    echo "$p"; return 0
  done
  return 1
}

STATE=""
child=""
started=0
# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  if [ "$started" = 1 ] && [ -n "$STATE" ]; then
    case "$SERVER" in
      s3rver) "$here/s3rver.sh" stop "$STATE" >/dev/null 2>&1 || log "stopping s3rver failed" ;;
      rgw)    "$here/rgw-stop.sh" "$STATE" >/dev/null 2>&1 || log "stopping rgw failed" ;;
    esac
  fi
  if [ -n "$STATE" ] && [ -d "$STATE" ]; then
    if [ "${KEEP_SERVER_DIR:-0}" = 1 ]; then log "kept $STATE"; else rm -rf "$STATE"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

command -v curl >/dev/null || { log "curl is missing: run scripts/setup-deps.sh"; exit 1; }
command -v ss >/dev/null || { log "ss (iproute2) is missing"; exit 1; }
PORT=$(pick_port) || { log "no free loopback port found"; exit 1; }
STATE=$(mktemp -d "${TEST_TMPDIR:-/tmp}/bfs-$SERVER.XXXXXX") || { log "mktemp failed"; exit 1; }
ENDPOINT="http://127.0.0.1:$PORT"

started=1   # from here on, cleanup stops whatever part of the server came up
case "$SERVER" in
  s3rver)
    S3RVER_BUCKETS="raw processed models bfs-test" "$here/s3rver.sh" start "$STATE" "$PORT" >/dev/null \
      || { log "FAILED to start s3rver on port $PORT (log: $STATE/s3rver.log)"; tail -n 20 "$STATE/s3rver.log" >&2 2>/dev/null; exit 1; }
    AK=S3RVER SK=S3RVER
    SLOG="$STATE/s3rver.log"
    ;;
  rgw)
    AK=bucketfs SK=bucketfs-secret
    S3_ACCESS_KEY=$AK S3_SECRET_KEY=$SK S3_BUCKETS="raw processed models bfs-test" \
    START_TIMEOUT=${START_TIMEOUT:-120} \
      "$here/rgw-start.sh" "$STATE" "$PORT" >/dev/null 2>"$STATE/start.log" \
      || { log "FAILED to start radosgw on port $PORT (state $STATE):"; tail -n 20 "$STATE/start.log" >&2; exit 1; }
    SLOG="$STATE/log/client.rgw.a.log"
    ;;
esac

# the bucket every test uses must exist and be reachable with these keys
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 --aws-sigv4 "aws:amz:us-east-1:s3" \
         --user "$AK:$SK" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$ENDPOINT/bfs-test") || code=000
case "$code" in
  200) ;;
  404) code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 --aws-sigv4 "aws:amz:us-east-1:s3" \
                --user "$AK:$SK" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT "$ENDPOINT/bfs-test") || code=000
       [ "$code" = 200 ] || { log "FAILED to create bucket bfs-test: HTTP $code"; exit 1; } ;;
  *) log "FAILED: ListObjects on bfs-test at $ENDPOINT gave HTTP $code"; exit 1 ;;
esac
log "$SERVER ready at $ENDPOINT (state $STATE)"

unset AWS_PROFILE AWS_CA_BUNDLE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL_S3
export AWS_ENDPOINT_URL="$ENDPOINT" AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY="$SK" \
       AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       TEST_SERVER="$SERVER" TEST_SERVER_DIR="$STATE" TEST_SERVER_LOG="$SLOG"

# CMD runs in the background so that INT/TERM reach the trap at once (a
# foreground child would delay the trap until it exits); it keeps our stdin.
"$@" <&0 &
child=$!
wait "$child"
rc=$?
child=""
exit "$rc"
