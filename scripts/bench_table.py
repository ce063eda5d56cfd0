#!/usr/bin/env python3
"""Tables for docs/PERFORMANCE.md from bench-vs-peers.sh's raw.csv.

Best launch (lowest mean time/op) per (system, variant, N, size); for Gloo the
best variant per cell. busbw = size/time * 2(N-1)/N, GB = 1e9 bytes.
"""
import csv
import sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1] if len(sys.argv) > 1 else "raw.csv")))
best = {}
launches = defaultdict(list)
for r in rows:
    k = (r["system"], r["variant"], int(r["N"]), int(r["bytes"]))
    launches[k].append(float(r["time_us"]))
    if k not in best or float(r["time_us"]) < float(best[k]["time_us"]):
        best[k] = r


def human(b):
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB" if b >= 1024 else f"{b} B"


def t(us):
    us = float(us)
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.1f} us"


def cell(r):
    if r is None:
        return "-"
    return f"{t(r['time_us'])} / {float(r['busbw_GBps']):.2f}"


Ns = sorted({k[2] for k in best})
sizes = sorted({k[3] for k in best})
shm = any(k[0] == "chorus" and k[1] == "shm" for k in best)


def ratio(mine, peers):
    peers = [r for r in peers if r]
    if not mine or not peers:
        return "-"
    bp = min(peers, key=lambda r: float(r["time_us"]))
    return f"{float(bp['time_us']) / float(mine['time_us']):.2f}x"


for n in Ns:
    print(f"\n#### N = {n} (mean time per op / busbw GB/s; best of {max(len(v) for v in launches.values())} launches)\n")
    head = "| size | Chorus (TCP) | Open MPI TCP | best Gloo (variant) | Open MPI shm |"
    head += " Chorus busbw vs best TCP peer |"
    if shm:
        head += " Chorus (shm) | Chorus shm vs best peer |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for b in sizes:
        ch = best.get(("chorus", "tcp", n, b))
        cs = best.get(("chorus", "shm", n, b))
        mt = best.get(("mpi", "tcp", n, b))
        ms = best.get(("mpi", "sm", n, b))
        gl = [r for k, r in best.items() if k[0] == "gloo" and k[2] == n and k[3] == b]
        g = min(gl, key=lambda r: float(r["time_us"])) if gl else None
        gtxt = f"{cell(g)} ({g['variant']})" if g else "-"
        line = f"| {human(b)} | {cell(ch)} | {cell(mt)} | {gtxt} | {cell(ms)} | {ratio(ch, (mt, g))} |"
        if shm:
            line += f" {cell(cs)} | {ratio(cs, (mt, g, ms))} |"
        print(line)
