#!/usr/bin/env bash
# Install, build, and run the whole test suite (unit, integration, fault),
# then the fault tests again with same-host links on TCP (CHORUS_SHM=0): the
# suite's peers share this host, so by default their links are shared memory.
# Extra arguments go to ctest (and skip the second pass), e.g.
# ./scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest -j2 --output-on-failure --timeout 900 "$@"
if [ $# -eq 0 ]; then
  echo "== fault tests again over TCP (CHORUS_SHM=0)"
  CHORUS_SHM=0 ctest -j2 --output-on-failure --timeout 900 -L fault
fi
