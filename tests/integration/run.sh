#!/usr/bin/env bash
# run.sh BUILD_DIR: every integration suite, against the server that
# scripts/with-server.sh started (endpoint and keys in the environment).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
rc=0
/usr/bin/python3 "$here/test_s3_client.py" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_mount.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_write.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_meta.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_coherence.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_conflicts.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_times.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_model.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_s3_faults.py" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_system.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_transport.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_ops.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_prefetch.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_versions.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_outage.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_fullcache.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
/usr/bin/python3 "$here/test_creds.py" --bucketfs "$build/bucketfs" --cli "$build/tests/tools/bfs-s3" || rc=1
exit $rc
