#!/usr/bin/env bash
# chorus-bench (over TCP, and over its shared-memory transport) beside the
# peers (Gloo, Open MPI over TCP and over shared memory) on this machine, in
# one run, with the methodology of
# ../shared/bench/peers (float32 sum, same sizes, ~TARGET s per size,
# several launches, best launch per cell).
#
#   ./scripts/bench-vs-peers.sh                 # N = 2 and 4, 2 launches
#   NS="2 4 8" REPS=2 ./scripts/bench-vs-peers.sh
# Output: build/bench-results/{raw.csv,tables.md}
set -euo pipefail
cd "$(dirname "$0")/.."
CHORUS_WITH_PEERS=1 ./scripts/install-deps.sh
./scripts/build.sh >/dev/null
PEERS_SRC=${PEERS_SRC:-../shared/bench/peers}
work=build/peers
rm -rf "$work"
cp -r "$PEERS_SRC" "$work"
rm -rf "$work/bin" "$work/results"
(cd "$work" && ./build.sh >/dev/null)

SIZES=${SIZES:-4,4096,65536,1048576,16777216,67108864,268435456}
NS=${NS:-"2 4"}
TARGET=${TARGET:-2.0}
REPS=${REPS:-2}
GLOO_ALGOS=${GLOO_ALGOS:-"new_ring new_bcube ring ring_chunked hd bcube"}
out=${OUT:-build/bench-results}
mkdir -p "$out"
raw=$out/raw.csv
echo "system,variant,N,bytes,iters,time_us,algbw_GBps,busbw_GBps,min_us,median_us,max_us,tag" > "$raw"
MPIRUN=(timeout 900 mpirun --allow-run-as-root --oversubscribe --mca plm_rsh_agent false
        --mca oob_tcp_if_include lo --mca btl_tcp_if_include lo)
export LAUNCH_TIMEOUT=900
rec() { grep -E '^(chorus|gloo|mpi),' | sed "s/\$/,rep$1/" | tee -a "$raw"; }
{ uname -a; lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | cut -c1-200; date -u +%FT%TZ; } > "$out/env.txt"

for ((rep = 1; rep <= REPS; rep++)); do
  for N in $NS; do
    echo "[rep $rep] chorus N=$N" >&2
    CHORUS_SHM=0 build/tools/chorus-bench --peers "$N" --sizes "$SIZES" --target-sec "$TARGET" \
      --max-iters 2000 \
      --csv tcp | rec "$rep"
    echo "[rep $rep] chorus shm N=$N" >&2
    CHORUS_SHM=1 build/tools/chorus-bench --peers "$N" --sizes "$SIZES" --target-sec "$TARGET" \
      --max-iters 2000 --csv shm | rec "$rep"
    echo "[rep $rep] mpi tcp N=$N" >&2
    "${MPIRUN[@]}" -np "$N" --mca pml ob1 --mca btl tcp,self "$work/bin/mpi_bench" tcp "$SIZES" \
      "$TARGET" 5 2000 2>/dev/null | rec "$rep"
    echo "[rep $rep] mpi sm N=$N" >&2
    "${MPIRUN[@]}" -np "$N" "$work/bin/mpi_bench" sm "$SIZES" "$TARGET" 5 2000 2>/dev/null | rec "$rep"
    for algo in $GLOO_ALGOS; do
      echo "[rep $rep] gloo $algo N=$N" >&2
      "$work/gloo_launch.sh" "$N" "$algo" "$SIZES" "$TARGET" 5 2000 2>/dev/null | rec "$rep"
    done
  done
done
python3 scripts/bench_table.py "$raw" > "$out/tables.md"
cat "$out/tables.md"
