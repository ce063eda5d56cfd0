#!/usr/bin/env bash
# chorus-bench --coll X beside Open MPI (TCP BTL, and shared memory for
# reference) for broadcast, reduce, all-gather, reduce-scatter and all-to-all,
# in one run, same sizes and conventions (tools/peers/mpi_colls.c).
#
#   ./scripts/bench-colls-vs-mpi.sh              # N = 4, 2 launches
#   NS="2 4" REPS=3 ./scripts/bench-colls-vs-mpi.sh
# Output: build/bench-colls/{raw.csv,tables.md}
set -euo pipefail
cd "$(dirname "$0")/.."
CHORUS_WITH_PEERS=1 ./scripts/install-deps.sh
./scripts/build.sh >/dev/null
mkdir -p build/peers-bin
mpicc -O3 -Wall -o build/peers-bin/mpi_colls tools/peers/mpi_colls.c -lm

SIZES=${SIZES:-4096,65536,1048576,16777216,67108864}
NS=${NS:-4}
TARGET=${TARGET:-1.0}
REPS=${REPS:-2}
COLLS=${COLLS:-"broadcast reduce allgather reducescatter alltoall"}
out=${OUT:-build/bench-colls}
mkdir -p "$out"
raw=$out/raw.csv
echo "system,variant,N,bytes,iters,time_us,algbw_GBps,busbw_GBps,min_us,median_us,max_us,tag" > "$raw"
MPIRUN=(timeout 900 mpirun --allow-run-as-root --oversubscribe --mca plm_rsh_agent false
        --mca oob_tcp_if_include lo --mca btl_tcp_if_include lo)
rec() { grep -E '^(chorus|mpi),' | sed "s/\$/,rep$1/" | tee -a "$raw"; }
for ((rep = 1; rep <= REPS; rep++)); do
  for N in $NS; do
    for c in $COLLS; do
      echo "[rep $rep] $c N=$N" >&2
      CHORUS_SHM=0 build/tools/chorus-bench --peers "$N" --coll "$c" --sizes "$SIZES" \
        --target-sec "$TARGET" \
        --csv "$c-tcp" | rec "$rep"
      "${MPIRUN[@]}" -np "$N" --mca pml ob1 --mca btl tcp,self build/peers-bin/mpi_colls "$c" \
        "$c-tcp" "$SIZES" "$TARGET" 5 2000 2>/dev/null | rec "$rep"
      "${MPIRUN[@]}" -np "$N" build/peers-bin/mpi_colls "$c" "$c-sm" "$SIZES" "$TARGET" 5 2000 \
        2>/dev/null | rec "$rep"
    done
  done
done
python3 scripts/bench_colls_table.py "$raw" > "$out/tables.md"
cat "$out/tables.md"
