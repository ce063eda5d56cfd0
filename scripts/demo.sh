#!/usr/bin/env bash
# Install, build, and run the main job: a local data-parallel training loop on
# 4 peers (peer 0 embeds the coordinator), printing all-reduce throughput.
# Extra arguments go to chorus-demo, e.g. ./scripts/demo.sh --peers 8 --size 64M
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
exec "${BUILD_DIR:-build}"/tools/chorus-demo --peers 4 --size 16M --steps 50 "$@"
