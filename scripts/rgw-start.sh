#!/usr/bin/env bash
# rgw-start.sh [DIR] [PORT]
#
# bucketfs's copy of shared/tools/radosgw/start.sh, adapted for the test
# harness (scripts/with-server.sh): packages come from scripts/setup-deps.sh
# (never apt from here), both the S3 port and the mon port must be free, and
# the endpoint is printed on stdout when ready.
#
# Bring up a real, production-grade S3-compatible object server on loopback:
# Ceph "Pacific" 16.2 radosgw (Debian packages) on a minimal single-node Ceph
# cluster in the spirit of Ceph's vstart.sh:
#   one ceph-mon, one ceph-osd (BlueStore on a sparse file under DIR, or
#   MemStore), one radosgw (beast frontend) -- no ceph-mgr (not needed by RGW).
# Everything (config, keys, data, logs, pid files) lives under DIR; every
# daemon binds to 127.0.0.1 only.  Re-running on an existing DIR restarts the
# same cluster (data kept, BlueStore only).  rgw-stop.sh DIR stops it.
#
# Arguments:
#   $1  DIR   state directory             (default /tmp/reals3)
#   $2  PORT  S3 (HTTP) port on 127.0.0.1 (default 7480)
# Environment (optional):
#   S3_ACCESS_KEY     (default bucketfs)
#   S3_SECRET_KEY     (default bucketfs-secret)
#   S3_BUCKETS        (default "raw processed models")
#   MON_PORT          ceph-mon msgr2 port on 127.0.0.1 (default PORT+10000, or PORT-10000 if that is > 65535)
#   OBJECTSTORE       bluestore | memstore (default bluestore)
#   OSD_SIZE_GB       size of the sparse BlueStore file / MemStore budget (default 20)
#   OSD_MEMORY_TARGET bytes, ceph-osd memory target (default 1073741824 = 1 GiB)
#   FRESH=1           wipe DIR and bootstrap a new cluster
#   START_TIMEOUT     seconds to wait for each stage (default 180)
set -euo pipefail

DIR=${1:-/tmp/reals3}
PORT=${2:-7480}
AK=${S3_ACCESS_KEY:-bucketfs}
SK=${S3_SECRET_KEY:-bucketfs-secret}
BUCKETS=${S3_BUCKETS:-raw processed models}
OBJECTSTORE=${OBJECTSTORE:-bluestore}
OSD_SIZE_GB=${OSD_SIZE_GB:-20}
OSD_MEMORY_TARGET=${OSD_MEMORY_TARGET:-1073741824}
START_TIMEOUT=${START_TIMEOUT:-180}
T0=$(date +%s%N)

log() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[realS3 %4d.%01ds] %s\n' $((ms/1000)) $((ms%1000/100)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
DIR=${DIR%/}
[ "$DIR" != "" ] && [ "$DIR" != "/" ] || die "refusing to use / as DIR"
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "bad PORT '$PORT'"
case "$OBJECTSTORE" in bluestore|memstore) ;; *) die "OBJECTSTORE must be bluestore or memstore" ;; esac

# ---------------------------------------------------------------- packages
need_pkgs=()
command -v ceph-mon      >/dev/null 2>&1 || need_pkgs+=(ceph-mon)
command -v ceph-osd      >/dev/null 2>&1 || need_pkgs+=(ceph-osd)
command -v radosgw       >/dev/null 2>&1 || need_pkgs+=(radosgw)
command -v radosgw-admin >/dev/null 2>&1 || need_pkgs+=(radosgw)
command -v ceph          >/dev/null 2>&1 || need_pkgs+=(ceph-common)
command -v ceph-authtool >/dev/null 2>&1 || need_pkgs+=(ceph-common)
command -v curl          >/dev/null 2>&1 || need_pkgs+=(curl)
command -v ss            >/dev/null 2>&1 || need_pkgs+=(iproute2)
[ ${#need_pkgs[@]} -eq 0 ] || die "missing ${need_pkgs[*]}: run scripts/setup-deps.sh (SETUP_RGW=1) first"
# curl >= 7.75 is needed for --aws-sigv4 (bookworm has 7.88)

STOP="$(cd "$(dirname "$0")" && pwd)/rgw-stop.sh"
CONF="$DIR/ceph.conf"
PIDDIR="$DIR/run/pids"
CEPH=(ceph -c "$CONF" --connect-timeout 10)

pid_alive() { # name -> 0 if the pid file's process is alive and is ours
  local f="$PIDDIR/$1.pid" pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF"
}

start_daemon() { # name cmd... ; runs in its own session, records its PID
  local name=$1; shift
  mkdir -p "$PIDDIR" "$DIR/log"
  if pid_alive "$name"; then log "$name already running (pid $(cat "$PIDDIR/$name.pid"))"; return 0; fi
  # the inner bash writes its own PID and then exec()s the daemon (same PID)
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$PIDDIR/$name.pid" "$@" \
    >>"$DIR/log/$name.stdout" 2>&1 </dev/null &
  for _ in $(seq 50); do [ -s "$PIDDIR/$name.pid" ] && break; sleep 0.1; done
  log "started $name (pid $(cat "$PIDDIR/$name.pid" 2>/dev/null))"
}

wait_for() { # daemon-name description timeout cmd...   (fails fast if the daemon died)
  local name=$1 what=$2 to=$3; shift 3
  local end=$(( $(date +%s) + to ))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$name"; then
      log "$name exited; last lines of $DIR/log/$name.stdout and its log:"
      tail -n 5 "$DIR/log/$name.stdout" >&2 2>/dev/null || true
      grep -h -- ' -1 ' "$DIR/log/"*"$name".log 2>/dev/null | tail -n 10 >&2 || true
      die "$name died while waiting for $what"
    fi
    [ "$(date +%s)" -lt "$end" ] || die "timed out after ${to}s waiting for $what (logs in $DIR/log)"
    sleep 0.2
  done
  log "$what: ok"
}

write_conf() {
  # shellcheck disable=SC2016
  cat > "$CONF" <<EOF
# generated by start.sh -- single-node Ceph on loopback for radosgw
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid.ceph
# one OSD: size-1 pools, no host-level failure domain, few PGs
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1
mon osd full ratio = .97
mon osd backfillfull ratio = .96
mon osd nearfull ratio = .95

[mon]
mon data = $DIR/mon.\$id
keyring = $DIR/mon.\$id/keyring
mon cluster log file = $DIR/log/cluster.log
# commit map changes every 0.1 s instead of 1 s: radosgw's first start creates
# ~7 pools one after another, this cuts bootstrap from ~20 s to ~7 s
paxos propose interval = 0.1

[osd]
osd data = $DIR/osd.\$id
keyring = $DIR/osd.\$id/keyring
osd objectstore = $OBJECTSTORE
osd memory target = $OSD_MEMORY_TARGET
bluestore block create = true
bluestore fsck on mkfs = false
bluestore block size = $(( OSD_SIZE_GB * 1024 * 1024 * 1024 ))
memstore device bytes = $(( OSD_SIZE_GB * 1024 * 1024 * 1024 ))

[client.rgw.a]
keyring = $DIR/rgw.a/keyring
rgw data = $DIR/rgw.a
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw enable ops log = false
rgw enable usage log = false
# reclaim space of overwritten/deleted objects after ~1 min instead of 2 h
rgw gc obj min wait = 60
rgw gc processor period = 60
# server-side encryption without TLS or a real KMS, for tests only: SSE-C
# over plain HTTP, and SSE-KMS with fixed keys (the "testing" backend)
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = testkey-1=ggohGUmvnxCmQVvD9qCSiHW152AqsIdQYhARCcCr9vU= testkey-2=NoCGZclfKjvOOUDQEpyP56ZQdkrX8l56phHGFOU7+YM=
EOF
}

http_ok() { curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$PORT/"; }

# ---------------------------------------------------------------- state
if [ "${FRESH:-0}" = 1 ] && [ -d "$DIR" ]; then
  # only wipe directories that are empty or were made by this script
  [ -f "$DIR/cluster.env" ] || [ -f "$DIR/ceph.conf" ] || [ -z "$(ls -A "$DIR")" ] \
    || die "FRESH=1: $DIR does not look like a realS3 directory; not wiping it"
  "$STOP" "$DIR" || true
  log "FRESH=1: wiping $DIR"; rm -rf "$DIR"
fi
mkdir -p "$DIR"

EXISTING=0
if [ -f "$DIR/.bootstrapped" ] && [ -s "$DIR/cluster.env" ]; then
  # shellcheck disable=SC1091
  . "$DIR/cluster.env"     # FSID MON_PORT OBJECTSTORE OSD_UUID
  EXISTING=1
  if [ "$OBJECTSTORE" = memstore ] && ! pid_alive osd.0; then
    log "existing cluster uses memstore (not persistent) and is down: re-bootstrapping"
    EXISTING=0; unset FSID MON_PORT OSD_UUID
  fi
fi
if [ "$EXISTING" = 0 ]; then
  # no (complete) cluster here: stop leftovers of an earlier attempt, start clean
  if [ -d "$PIDDIR" ]; then "$STOP" "$DIR" >/dev/null || true; fi
  rm -rf "$DIR/mon.a" "$DIR/osd.0" "$DIR/rgw.a" "$DIR/run" "$DIR/keyring" "$DIR/monmap" \
         "$DIR/cluster.env" "$DIR/s3.env" "$DIR/.bootstrapped"
  FSID=$(cat /proc/sys/kernel/random/uuid)
  OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
  if [ -z "${MON_PORT:-}" ]; then
    MON_PORT=$(( PORT + 10000 )); [ "$MON_PORT" -le 65535 ] || MON_PORT=$(( PORT - 10000 ))
  fi
  printf 'FSID=%s\nMON_PORT=%s\nOBJECTSTORE=%s\nOSD_UUID=%s\n' "$FSID" "$MON_PORT" "$OBJECTSTORE" "$OSD_UUID" > "$DIR/cluster.env"
fi
mkdir -p "$DIR/log" "$DIR/run" "$PIDDIR" "$DIR/mon.a" "$DIR/osd.0" "$DIR/rgw.a"
write_conf
log "DIR=$DIR S3=http://127.0.0.1:$PORT mon=127.0.0.1:$MON_PORT objectstore=$OBJECTSTORE existing=$EXISTING"

# refuse to start if someone else already listens on our ports (S3 and mon)
port_busy() { [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]; }
if ! pid_alive rgw.a && { http_ok || port_busy "$PORT"; }; then die "something already listens on 127.0.0.1:$PORT"; fi
if ! pid_alive mon.a && port_busy "$MON_PORT"; then die "mon port 127.0.0.1:$MON_PORT is already in use (the mon takes PORT+10000)"; fi
case "$PORT" in 68[0-9][0-9]|69[0-9][0-9]|7[0-2][0-9][0-9]|7300) log "warning: PORT $PORT is in the OSD range 6800-7300";; esac

# ---------------------------------------------------------------- monitor
if [ "$EXISTING" = 0 ]; then
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$DIR/keyring" --gen-key -n client.admin \
      --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
      >>"$DIR/log/mkfs.log" 2>&1 || die "ceph-mon --mkfs failed (see $DIR/log/mkfs.log)"
  log "mon.a created"
fi
start_daemon mon.a ceph-mon -c "$CONF" -i a -f
wait_for mon.a "ceph-mon quorum" "$START_TIMEOUT" "${CEPH[@]}" mon stat

# ---------------------------------------------------------------- OSD
if [ "$EXISTING" = 0 ]; then
  OSD_KEY=$(ceph-authtool --gen-print-key)
  printf '{"cephx_secret": "%s"}\n' "$OSD_KEY" > "$DIR/osd.0/new.json"
  OSD_ID=$("${CEPH[@]}" osd new "$OSD_UUID" -i "$DIR/osd.0/new.json")
  rm -f "$DIR/osd.0/new.json"
  [ "$OSD_ID" = 0 ] || die "expected osd id 0, got '$OSD_ID'"
  ceph-authtool --create-keyring "$DIR/osd.0/keyring" --name osd.0 --add-key "$OSD_KEY" >/dev/null
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" \
      >>"$DIR/log/mkfs.log" 2>&1 || die "ceph-osd --mkfs failed (see $DIR/log/mkfs.log)"
  log "osd.0 created ($OBJECTSTORE)"
fi
start_daemon osd.0 ceph-osd -c "$CONF" -i 0 -f
osd_up() { "${CEPH[@]}" osd dump 2>/dev/null | grep -q '^osd\.0 up'; }
wait_for osd.0 "osd.0 up" "$START_TIMEOUT" osd_up

# ---------------------------------------------------------------- radosgw
if [ ! -s "$DIR/rgw.a/keyring" ]; then
  "${CEPH[@]}" auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' \
      -o "$DIR/rgw.a/keyring" >/dev/null 2>&1
fi
start_daemon rgw.a radosgw -c "$CONF" -n client.rgw.a -f
wait_for rgw.a "radosgw HTTP on 127.0.0.1:$PORT" "$START_TIMEOUT" http_ok

# ---------------------------------------------------------------- S3 user
RGWADMIN=(radosgw-admin -c "$CONF" -n client.admin)
if "${RGWADMIN[@]}" user info --uid bucketfs >/dev/null 2>&1; then
  "${RGWADMIN[@]}" key create --uid bucketfs --key-type s3 --access-key "$AK" --secret-key "$SK" >/dev/null
else
  "${RGWADMIN[@]}" user create --uid bucketfs --display-name "bucketfs" \
      --access-key "$AK" --secret-key "$SK" >/dev/null
fi
log "S3 user bucketfs: access key '$AK'"

# ---------------------------------------------------------------- buckets
s3curl() { curl -sS --max-time 60 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
             -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"; }
for b in $BUCKETS; do
  code=$(s3curl -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$PORT/$b") || code=000
  case "$code" in
    200|409) ;;
    *) die "creating bucket $b failed: HTTP $code" ;;
  esac
done
code=$(s3curl -o "$DIR/run/listbuckets.xml" -w '%{http_code}' "http://127.0.0.1:$PORT/") || code=000
[ "$code" = 200 ] || die "authenticated ListBuckets failed: HTTP $code"
for b in $BUCKETS; do grep -q "<Name>$b</Name>" "$DIR/run/listbuckets.xml" || die "bucket $b missing"; done

touch "$DIR/.bootstrapped"
cat > "$DIR/s3.env" <<EOF
export AWS_ACCESS_KEY_ID=$AK
export AWS_SECRET_ACCESS_KEY=$SK
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1
export S3_ENDPOINT=http://127.0.0.1:$PORT
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
EOF
log "ready: endpoint http://127.0.0.1:$PORT  access key $AK  secret $SK  buckets: $BUCKETS"
log "pids: $(cd "$PIDDIR" && for f in *.pid; do printf '%s=%s ' "${f%.pid}" "$(cat "$f")"; done)"
log "credentials for shells: source $DIR/s3.env ; stop with: $STOP $DIR"
echo "http://127.0.0.1:$PORT"
