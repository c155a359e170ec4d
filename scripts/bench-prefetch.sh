#!/usr/bin/env bash
# bench-prefetch.sh [--server rgw|s3rver] [--files N] [--runs N] [--jobs N] [--out FILE]
#
# Times `bucketfs prefetch` of N files of 1 MiB (default 1,000) against `cat`
# of the same files through a fresh mount and `aws s3 cp --recursive` to a
# local directory, each from a cold start, on a throw-away server (Ceph RGW
# by default), median of 3 rounds; writes FILE (default
# bench/results-rgw-prefetch.md) and the samples beside it as .json.
# See scripts/bench-prefetch.py. Builds build/bucketfs when it is missing.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

server=rgw
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server=${2:?--server needs rgw or s3rver}; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$server" in rgw|s3rver) ;; *) echo "bench-prefetch.sh: --server must be rgw or s3rver" >&2; exit 2 ;; esac
[ -x /usr/bin/aws ] || { echo "bench-prefetch.sh: /usr/bin/aws missing (apt-get install awscli)" >&2; exit 2; }
if [ ! -x "$top/build/bucketfs" ]; then
  [ -f "$top/build/build.ninja" ] || meson setup "$top/build" "$top"
  ninja -C "$top/build"
fi
exec "$top/scripts/with-server.sh" "$server" /usr/bin/python3 "$top/scripts/bench-prefetch.py" \
  --bucketfs "$top/build/bucketfs" ${args[@]+"${args[@]}"}
