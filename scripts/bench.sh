#!/usr/bin/env bash
# bench.sh [--server rgw|s3rver] [--quick] [--out FILE] [--runs N]
#
# Measures bucketfs side by side with s3fs-fuse, `rclone mount
# --vfs-cache-mode full` and plain curl (the physical limit), all against the
# same throw-away local S3 server (Ceph RGW by default), and writes a markdown
# table of medians to FILE (default bench-results.md), the raw samples beside
# it (.json instead of .md) and, when gnuplot is installed, a chart of the
# ratios (.png).
# The workloads are described in scripts/bench.py and README.md.
#
# Installs what it needs (s3fs, rclone, fio, gnuplot through
# scripts/setup-deps.sh with SETUP_PEERS=1) and builds build/bucketfs when it
# is missing. --quick: smaller sizes and one run, under 5 minutes.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

server=rgw
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server=${2:?--server needs rgw or s3rver}; shift 2 ;;
    --server=*) server=${1#--server=}; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$server" in rgw|s3rver) ;; *) echo "bench.sh: --server must be rgw or s3rver" >&2; exit 2 ;; esac

need=0
for c in /usr/bin/s3fs /usr/bin/rclone fio curl rsync fusermount3 getfattr; do
  command -v "$c" >/dev/null || need=1
done
[ "$server" = rgw ] && ! command -v radosgw >/dev/null && need=1
[ "$server" = s3rver ] && [ ! -x "$top/.deps/s3rver/node_modules/.bin/s3rver" ] && need=1
if [ "$need" = 1 ]; then
  SETUP_PEERS=1 SETUP_RGW=$([ "$server" = rgw ] && echo 1 || echo 0) "$top/scripts/setup-deps.sh"
fi

if [ ! -x "$top/build/bucketfs" ]; then
  [ -f "$top/build/build.ninja" ] || meson setup "$top/build" "$top"
  ninja -C "$top/build"
fi

# the write workloads leave garbage that RGW collects a minute later: room for it
export OSD_SIZE_GB=${OSD_SIZE_GB:-40}
exec "$top/scripts/with-server.sh" "$server" /usr/bin/python3 "$top/scripts/bench.py" \
  --bucketfs "$top/build/bucketfs" ${args[@]+"${args[@]}"}
