#!/usr/bin/env bash
# test.sh: the one command that checks bucketfs. It installs what it needs
# (scripts/setup-deps.sh), builds, runs the unit tests, runs the integration
# tests against real S3 servers, then does it all again under
# AddressSanitizer + UndefinedBehaviorSanitizer (against one server), and
# the suites that exercise concurrency under ThreadSanitizer.
#
#   scripts/test.sh                     everything (TEST_SERVER=both)
#   TEST_SERVER=s3rver scripts/test.sh  quick: s3rver only
#   TEST_SERVER=rgw scripts/test.sh     Ceph RGW only
#   SKIP_ASAN=1 scripts/test.sh         no ASan/UBSan pass
#   SKIP_TSAN=1 scripts/test.sh         no ThreadSanitizer pass
#
# With rgw selected, a last step runs pjdfstest (scripts/conformance.sh) and
# fails when fewer than CONFORMANCE_FLOOR subtests pass; its table goes to
# build/conformance.txt.
#
# Ends with one line "N passed, N failed" counting the test steps.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# pjdfstest subtests that must pass on RGW (scripts/conformance.sh, type
# FUSE.GENERIC). Measured 2026-12-03: 8,452 of 8,798 in three runs before
# ENAMETOOLONG for keys over 1,024 bytes (8,450 after), 8,478 once a
# directory's mtime changes with its entries; the floor is that less 10 for
# flakiness. Raise it when a fix makes more pass.
CONFORMANCE_FLOOR=${CONFORMANCE_FLOOR:-8536}

servers=${TEST_SERVER:-both}
case "$servers" in both) servers="s3rver rgw" ;; s3rver|rgw) ;; *)
  echo "TEST_SERVER must be s3rver, rgw or both" >&2; exit 2 ;; esac

passed=0 failed=0 failures=()
step() { # name cmd...
  local name=$1; shift
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "=== $name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "=== $name: FAILED ($((SECONDS - t0)) s)"
  fi
}

build() { # dir [meson args]
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then meson setup --reconfigure "$dir" "$@" >/dev/null
  else meson setup "$dir" "$@" >/dev/null; fi && ninja -C "$dir"
}

scripts/setup-deps.sh || { echo "setup-deps failed"; echo "0 passed, 1 failed"; exit 1; }

step "build" build build
step "unit tests" meson test -C build --suite unit --print-errorlogs
for s in $servers; do
  step "integration ($s)" scripts/with-server.sh "$s" tests/integration/run.sh build
done
case " $servers " in *" rgw "*)
  step "conformance (rgw)" scripts/conformance.sh --floor "$CONFORMANCE_FLOOR" \
    --out build/conformance.txt build ;;
esac

# The mount daemon detaches from the terminal, so sanitizer reports go to
# files (log_path), and any report there fails the run.
no_reports() {
  local f found=0
  for f in "$reports"/*; do
    [ -s "$f" ] || continue
    found=1; echo "--- sanitizer report $f"; head -60 "$f"
  done
  [ "$found" = 0 ]
}

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  reports=$(mktemp -d /tmp/bfs-sanitizer.XXXXXX)
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99:log_path=$reports/asan"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98:log_path=$reports/ubsan"
  export BFS_RSS_LIMIT_MIB=1024 # ASan's quarantine holds freed memory
  step "build (asan+ubsan)" build build-asan -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debug
  step "unit tests (asan+ubsan)" meson test -C build-asan --suite unit --print-errorlogs
  step "integration (s3rver, asan+ubsan)" scripts/with-server.sh s3rver tests/integration/run.sh build-asan
  step "no sanitizer reports" no_reports
  unset ASAN_OPTIONS UBSAN_OPTIONS BFS_RSS_LIMIT_MIB
fi

# ThreadSanitizer: the daemon's threads (FUSE requests, uploads, fetches,
# the notifier) on the suites that mix them most, against s3rver. The
# FUSE glue tells TSan how the kernel orders requests (src/fuse/fuse-int.h).
# (not the suites that time themselves: TSan slows the daemon several times)
TSAN_SUITES="test_write test_wstate test_model"
if [ "${SKIP_TSAN:-0}" != 1 ]; then
  reports=$(mktemp -d /tmp/bfs-tsan.XXXXXX)
  export TSAN_OPTIONS="halt_on_error=0:exitcode=97:log_path=$reports/tsan"
  step "build (tsan)" build build-tsan -Db_sanitize=thread -Db_lundef=false
  step "unit tests (tsan)" meson test -C build-tsan --suite unit --print-errorlogs
  # shellcheck disable=SC2086 # the suite names are words
  step "integration (s3rver, tsan: $TSAN_SUITES)" scripts/with-server.sh s3rver \
    tests/integration/run.sh build-tsan $TSAN_SUITES
  step "no tsan reports" no_reports
  unset TSAN_OPTIONS
fi

[ ${#failures[@]} -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
