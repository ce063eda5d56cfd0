#!/usr/bin/env bash
# Install, build, and run the whole test suite (unit, integration, fault).
# Extra arguments go to ctest, e.g. ./scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest -j2 --output-on-failure --timeout 900 "$@"
