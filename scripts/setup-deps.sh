#!/usr/bin/env bash
# setup-deps.sh: install, idempotently, everything a fresh Debian 12 machine
# needs to build and test bucketfs.
#
#   scripts/setup-deps.sh            build + test dependencies, s3rver
#   SETUP_RGW=0 scripts/setup-deps.sh   skip the Ceph RGW packages
#   SETUP_PEERS=1 ...                also the benchmark peers (rclone, fio, gnuplot)
#
# s3fs is a test dependency: tests/integration/test_meta.py writes objects
# with it as a writer independent of bucketfs. autoconf, automake and perl
# (prove) build and run pjdfstest for scripts/conformance.sh.
#
# s3rver comes from the npm registry at a pinned version into .deps/ (git
# ignored), so tests never depend on a global npm install.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
S3RVER_VERSION=3.7.1

pkgs=(build-essential meson ninja-build pkg-config
      libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev libxml2-dev libsqlite3-dev
      sqlite3 curl ca-certificates python3-boto3 awscli nodejs npm attr rsync openssl
      groff-base s3fs autoconf automake perl)
[ "${SETUP_RGW:-1}" = 1 ] && pkgs+=(ceph-mon ceph-osd radosgw ceph-common)
[ "${SETUP_PEERS:-0}" = 1 ] && pkgs+=(rclone fio gnuplot-nox)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
# node/npm may come from outside Debian on some images: accept them as found
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do case $p in nodejs|npm) ;; *) tmp+=("$p");; esac; done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup-deps] apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

dest="$top/.deps/s3rver"
if [ ! -x "$dest/node_modules/.bin/s3rver" ] ||
   ! grep -q "\"version\": \"$S3RVER_VERSION\"" "$dest/node_modules/s3rver/package.json" 2>/dev/null; then
  echo "[setup-deps] npm install s3rver@$S3RVER_VERSION into .deps/s3rver"
  mkdir -p "$dest"
  (cd "$dest" && npm install --no-audit --no-fund --loglevel=error --prefix "$dest" "s3rver@$S3RVER_VERSION" >/dev/null)
fi
# s3rver 3.7.1 bug: with a delimiter it does not walk directories below a
# common prefix, so "a/" is missing from a root listing when every key under
# it is deeper ("a/b/c"). One line makes it walk them (slower, correct).
fs_js="$dest/node_modules/s3rver/lib/stores/filesystem.js"
if grep -q '// avoid directories occurring beneath a common prefix' "$fs_js" &&
   ! grep -q 'bucketfs: walk below common prefixes' "$fs_js"; then
  /usr/bin/python3 - "$fs_js" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
old = """          // avoid directories occurring beneath a common prefix
          return false;"""
new = """          // bucketfs: walk below common prefixes, or deeper keys never
          // make their prefix appear
          return true;"""
assert old in s, "s3rver source changed: review the patch in setup-deps.sh"
open(p, "w").write(s.replace(old, new))
PY
  echo "[setup-deps] patched s3rver listing of nested common prefixes"
fi
echo "[setup-deps] ok"
