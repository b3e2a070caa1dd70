#!/usr/bin/env python3
"""Allreduce with 2 ranks: loco's in_process and tcp against MPI_Allreduce
(shared memory, and --mca btl self,tcp on loopback), measured in one run.

    compare_allreduce.py BUILD_DIR [--min-time 0.5] [--repeat 1]

BUILD_DIR holds bench/comm/bench_comm and bench/comm/mpi_allreduce_baseline.
Prints one row per size: time per allreduce for each, then
  tcp vs MPI-tcp       (MPI time / tcp time: > 1 means loco is faster)
  in_process vs MPI-shm (MPI time / in_process time)
"""
import argparse
import json
import os
import subprocess
import sys


def run_loco(build, min_time):
    exe = os.path.join(build, "bench", "comm", "bench_comm")
    out = subprocess.run([exe, "--benchmark_format=json",
                          "--benchmark_min_time=%g" % min_time],
                         check=True, capture_output=True, text=True).stdout
    times = {}
    for b in json.loads(out)["benchmarks"]:
        # allreduce/<comm>/<bytes>/real_time
        parts = b["name"].split("/")
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        times[(parts[1], int(parts[2]))] = b["real_time"] * scale
    return times


def run_mpi(build, btl, min_time):
    exe = os.path.join(build, "bench", "comm", "mpi_allreduce_baseline")
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", "--mca", "btl", btl]
    if "tcp" in btl:
        cmd += ["--mca", "btl_tcp_if_include", "lo"]
    out = subprocess.run(cmd + [exe, str(min_time)], check=True, capture_output=True,
                         text=True).stdout
    times = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[0].isdigit():
            times[int(f[0])] = float(f[1])
    return times


def fmt(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return "%.3g %s" % (seconds / scale, unit)
    return "%.3g us" % (seconds / 1e-6)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build")
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=1, help="take the best of this many runs")
    a = p.parse_args()
    best = {}
    for _ in range(a.repeat):
        results = {}
        for (comm, size), t in run_loco(a.build, a.min_time).items():
            results[(comm, size)] = t
        for name, btl in (("mpi-shm", "self,vader"), ("mpi-tcp", "self,tcp")):
            for size, t in run_mpi(a.build, btl, a.min_time).items():
                results[(name, size)] = t
        for k, t in results.items():
            best[k] = min(t, best.get(k, t))
    sizes = sorted({s for _, s in best})
    cols = ["in_process", "tcp", "mpi-shm", "mpi-tcp"]
    print("%-10s" % "bytes" + "".join("%12s" % c for c in cols) +
          "%16s%20s" % ("tcp vs mpi-tcp", "in_proc vs mpi-shm"))
    for s in sizes:
        row = [best.get((c, s)) for c in cols]
        r1 = row[3] / row[1] if row[1] and row[3] else None
        r2 = row[2] / row[0] if row[0] and row[2] else None
        print("%-10d" % s + "".join("%12s" % fmt(t) for t in row) +
              "%16s%20s" % ("%.2fx" % r1 if r1 else "-", "%.2fx" % r2 if r2 else "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
