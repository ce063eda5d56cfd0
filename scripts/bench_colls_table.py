#!/usr/bin/env python3
"""Tables from bench-colls-vs-mpi.sh's raw.csv: per collective and N, the best
launch (lowest mean time per op) of Chorus (TCP), Open MPI over TCP and Open MPI
over shared memory, and Chorus's speed relative to Open MPI TCP."""
import csv
import sys

rows = list(csv.DictReader(open(sys.argv[1] if len(sys.argv) > 1 else "raw.csv")))
best, reps = {}, {}
for r in rows:
    coll, wire = r["variant"].rsplit("-", 1)
    k = (coll, r["system"], wire, int(r["N"]), int(r["bytes"]))
    reps[k] = reps.get(k, 0) + 1
    if k not in best or float(r["time_us"]) < float(best[k]["time_us"]):
        best[k] = r


def human(b):
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB" if b >= 1024 else f"{b} B"


def cell(r):
    if r is None:
        return "-"
    us = float(r["time_us"])
    t = f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.1f} us"
    return f"{t} / {float(r['busbw_GBps']):.2f}"


launches = max(reps.values()) if reps else 0
for coll in dict.fromkeys(k[0] for k in best):
    for n in sorted({k[3] for k in best if k[0] == coll}):
        print(f"\n#### {coll}, N = {n} (mean time per op / busbw GB/s; best of {launches} launches)\n")
        print("| size | Chorus (TCP) | Open MPI TCP | Open MPI shm | Chorus vs MPI TCP |")
        print("|---|---|---|---|---|")
        for b in sorted({k[4] for k in best if k[0] == coll and k[3] == n}):
            ch = best.get((coll, "chorus", "tcp", n, b))
            mt = best.get((coll, "mpi", "tcp", n, b))
            ms = best.get((coll, "mpi", "sm", n, b))
            ratio = f"{float(mt['time_us']) / float(ch['time_us']):.2f}x" if ch and mt else "-"
            print(f"| {human(b)} | {cell(ch)} | {cell(mt)} | {cell(ms)} | {ratio} |")
