#!/usr/bin/env bash
# Install what is missing (Debian 12), configure and build Chorus into build/.
#   BUILD_DIR=build BUILD_TYPE=Release ./scripts/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}"
cmake --build "$BUILD_DIR" -j"$(nproc)"
