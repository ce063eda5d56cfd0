#!/usr/bin/env bash
# Runs the GPU checks on a machine with a CUDA device: the CUDA tests
# (CPU-vs-GPU bit equality, device-memory state), the GPU codec benchmark at
# two block sizes, and compute-sanitizer (memcheck, racecheck) over the codec
# tests where it is installed.
#
#   ./scripts/gpu-check.sh [BIN_DIR]     (default: build)
#
# BIN_DIR holds chorus_cuda_tests and chorus-codec-bench-gpu (a build tree's
# tests/ and tools/, or one flat folder with the binaries and any shared
# libraries they need). Logs go to $OUT when it is set, else to
# BIN_DIR/gpu-check/. Exits non-zero if a test or a bit check fails.
set -uo pipefail
bin=${1:-build}
out=${OUT:-$bin/gpu-check}
mkdir -p "$out"
find_bin() {
  for c in "$bin/$1" "$bin/tests/$1" "$bin/tools/$1"; do [[ -x $c ]] && { echo "$c"; return; }; done
  echo "gpu-check: $1 not found under $bin" >&2
  exit 2
}
tests=$(find_bin chorus_cuda_tests)
bench=$(find_bin chorus-codec-bench-gpu)
export LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv \
  | tee "$out/gpu.txt"
echo "== CUDA tests"
timeout 600 "$tests" 2>&1 | tee "$out/cuda_tests.log" | grep -E "^\[( +OK|  FAILED|  PASSED|  SKIPPED) |CUDA_" || true
grep -q "^\[  PASSED  \]" "$out/cuda_tests.log" && ! grep -q "^\[  FAILED  \]" "$out/cuda_tests.log" \
  || { echo "gpu-check: CUDA tests failed"; status=1; }
echo "== codec benchmark"
for block in 256 1024; do
  timeout 300 "$bench" --mib 1024 --block "$block" --reps 20 2>&1 | tee "$out/bench_block$block.txt" \
    || { echo "gpu-check: benchmark (block $block) failed or differs from the CPU"; status=1; }
done
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    echo "== compute-sanitizer $tool"
    timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 9 "$tests" \
      --gtest_filter='CudaCodec.BitIdenticalToCpuOnEveryPath*:CudaCodec.Corrupt*:CudaHash.Matches*' \
      >"$out/sanitizer_$tool.log" 2>&1
    rc=$?
    tail -3 "$out/sanitizer_$tool.log"
    [[ $rc == 0 ]] || { echo "gpu-check: compute-sanitizer $tool exit $rc"; status=1; }
  done
fi
exit $status
