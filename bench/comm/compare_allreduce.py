#!/usr/bin/env python3
"""Allreduce with 2 ranks, every size from 4 B to 40 MB: loco's in_process
and tcp against MPI_Allreduce (shared memory, and --mca btl self,tcp on
loopback), all measured in one run, each call timed on its own.

    compare_allreduce.py BUILD_DIR [--seconds 0.5]

BUILD_DIR holds bench/comm/allreduce_latency and
bench/comm/mpi_allreduce_baseline. MPI runs twice: with glibc's default
allocator, and with its mmap threshold off ("fair": MPI's large temporary
buffers are otherwise freshly mapped, and page-faulted, on every call);
the ratios use the fair run. For each size it prints the median and p99
time per allreduce, the CPU time per allreduce (both ranks), and
  in_process vs MPI-shm   (MPI median / in_process median: > 1 means loco is faster)
  tcp vs MPI-tcp          (MPI median / tcp median; tcp busy-polls 50 us, its default)
  tcp-nopoll vs MPI-tcp   (the same with busy_poll = 0: every message wakes a thread)
"""
import argparse
import os
import subprocess
import sys

FAIR = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2000000000"


def parse(out):
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 6 and f[1].isdigit():
            rows[(f[0], int(f[1]))] = {"median": float(f[2]), "p99": float(f[3]),
                                       "cpu": float(f[4]), "n": int(f[5])}
    return rows


def run_loco(build, seconds):
    exe = os.path.join(build, "bench", "comm", "allreduce_latency")
    return parse(subprocess.run([exe, str(seconds)], check=True, capture_output=True,
                                text=True).stdout)


def run_mpi(build, btl, seconds, fair):
    exe = os.path.join(build, "bench", "comm", "mpi_allreduce_baseline")
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", "--mca", "btl", btl]
    if "tcp" in btl:
        cmd += ["--mca", "btl_tcp_if_include", "lo"]
    if fair:
        cmd += ["-x", "GLIBC_TUNABLES=" + FAIR]
    return parse(subprocess.run(cmd + [exe, str(seconds)], check=True, capture_output=True,
                                text=True).stdout)


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
    p.add_argument("--seconds", type=float, default=0.5, help="time per size and communicator")
    a = p.parse_args()
    results = {}
    for (comm, size), r in run_loco(a.build, a.seconds).items():
        results[(comm, size)] = r
    for name, btl in (("mpi-shm", "self,vader"), ("mpi-tcp", "self,tcp")):
        for fair in (False, True):
            for (_, size), r in run_mpi(a.build, btl, a.seconds, fair).items():
                results[(name + ("" if fair else "-default"), size)] = r
    sizes = sorted({s for _, s in results})

    def get(comm, size, key="median"):
        r = results.get((comm, size))
        return r[key] if r else None

    def ratio(baseline, mine):
        return "%.2fx" % (baseline / mine) if baseline and mine else "-"

    for local, mpi in (("in_process", "mpi-shm"), ("tcp", "mpi-tcp"), ("tcp-nopoll", "mpi-tcp")):
        print("%s against %s (fair allocator; the default allocator's median beside it)" %
              (local, mpi))
        head = ("bytes", local + " med", "p99", "cpu/op", mpi + " med", "p99", "cpu/op",
                "default med", "ratio", "ratio (default)")
        print("%-9s" % head[0] + "".join("%14s" % h for h in head[1:-1]) + "%17s" % head[-1])
        for s in sizes:
            row = [get(local, s), get(local, s, "p99"), get(local, s, "cpu"), get(mpi, s),
                   get(mpi, s, "p99"), get(mpi, s, "cpu"), get(mpi + "-default", s)]
            print("%-9d" % s + "".join("%14s" % fmt(t) for t in row) +
                  "%14s%17s" % (ratio(row[3], row[0]), ratio(row[6], row[0])))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
