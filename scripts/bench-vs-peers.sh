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
# On this VM the memory a launch freed (gigabytes, at 256 MiB and N=8) comes
# back to MemFree over about 20 s, and a launch started meanwhile saw 30-45
# ms stalls (a 4 B all-reduce at N=8 right after a 256 MiB one: 33-45 ms
# laps; 30 s later: none over 3.1 ms). So before every launch, of every
# system alike, wait until free memory holds still for 2 s (60 s at most).
settle() {
  local prev cur still=0 i
  prev=$(awk '/MemFree/{print $2}' /proc/meminfo)
  for ((i = 0; i < 60 && still < 2; i++)); do
    sleep 1
    cur=$(awk '/MemFree/{print $2}' /proc/meminfo)
    if ((cur - prev < 4096 && prev - cur < 4096)); then still=$((still + 1)); else still=0; fi
    prev=$cur
  done
}
{ uname -a; lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | cut -c1-200; date -u +%FT%TZ; } > "$out/env.txt"

for ((rep = 1; rep <= REPS; rep++)); do
  for N in $NS; do
    echo "[rep $rep] chorus N=$N" >&2
    settle
    CHORUS_SHM=0 build/tools/chorus-bench --peers "$N" --sizes "$SIZES" --target-sec "$TARGET" \
      --max-iters 2000 \
      --csv tcp | rec "$rep"
    echo "[rep $rep] chorus shm N=$N" >&2
    settle
    CHORUS_SHM=1 build/tools/chorus-bench --peers "$N" --sizes "$SIZES" --target-sec "$TARGET" \
      --max-iters 2000 --csv shm | rec "$rep"
    echo "[rep $rep] mpi tcp N=$N" >&2
    settle
    "${MPIRUN[@]}" -np "$N" --mca pml ob1 --mca btl tcp,self "$work/bin/mpi_bench" tcp "$SIZES" \
      "$TARGET" 5 2000 2>/dev/null | rec "$rep"
    echo "[rep $rep] mpi sm N=$N" >&2
    settle
    "${MPIRUN[@]}" -np "$N" "$work/bin/mpi_bench" sm "$SIZES" "$TARGET" 5 2000 2>/dev/null | rec "$rep"
    for algo in $GLOO_ALGOS; do
      echo "[rep $rep] gloo $algo N=$N" >&2
      settle
      "$work/gloo_launch.sh" "$N" "$algo" "$SIZES" "$TARGET" 5 2000 2>/dev/null | rec "$rep"
    done
  done
done
python3 scripts/bench_table.py "$raw" > "$out/tables.md"
cat "$out/tables.md"
