#!/usr/bin/env bash
# run.sh BUILD_DIR [SUITE...]: the integration suites (every one, or those
# named, e.g. test_write test_model), against the server that
# scripts/with-server.sh started (endpoint and keys in the environment).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR [SUITE...]}" && pwd)
shift
rc=0
# suite and its arguments, in the order they run
suites=(
  "test_s3_client --cli $build/tests/tools/bfs-s3"
  "test_mount --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_write --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_meta --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_coherence --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_conflicts --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_wstate --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_times --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_model --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_s3_faults --cli $build/tests/tools/bfs-s3"
  "test_system --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_transport --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_ops --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_prefetch --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_versions --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_outage --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_fullcache --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
  "test_creds --bucketfs $build/bucketfs --cli $build/tests/tools/bfs-s3"
)
for entry in "${suites[@]}"; do
  name=${entry%% *}
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then
    continue
  fi
  read -ra args <<< "${entry#* }"
  /usr/bin/python3 "$here/$name.py" "${args[@]}" || rc=1
done
exit $rc
