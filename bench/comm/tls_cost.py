#!/usr/bin/env python3
"""What TLS costs comm::tcp: allreduce between 2 ranks on loopback, plain
TCP against TLS, measured by the same bench_comm runs.

    tls_cost.py BUILD_DIR [--min-time 0.5] [--repeat 3] [--sizes 4096,40960000]

Runs BUILD_DIR/bench/comm/bench_comm --repeat times (each run measures both),
keeps the best time per cell and prints time per allreduce, throughput
(vector bytes per second) and the ratio TLS time / plain time.
"""
import argparse
import json
import os
import subprocess
import sys


def run(build, min_time, sizes):
    exe = os.path.join(build, "bench", "comm", "bench_comm")
    pattern = "allreduce/(tcp|tls)/(%s)/" % "|".join(str(s) for s in sizes)
    out = subprocess.run([exe, "--benchmark_format=json", "--benchmark_filter=" + pattern,
                          "--benchmark_min_time=%g" % min_time],
                         check=True, capture_output=True, text=True).stdout
    times = {}
    for b in json.loads(out)["benchmarks"]:
        parts = b["name"].split("/")  # allreduce/<comm>/<bytes>/real_time
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        times[(parts[1], int(parts[2]))] = b["real_time"] * scale
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build")
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=3, help="take the best of this many runs")
    p.add_argument("--sizes", default="4096,409600,40960000", help="bytes, comma separated")
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    best = {}
    for _ in range(a.repeat):
        for k, t in run(a.build, a.min_time, sizes).items():
            best[k] = min(t, best.get(k, t))
    print("%-10s%12s%12s%12s%12s%10s" % ("bytes", "tcp", "tls", "tcp MB/s", "tls MB/s",
                                         "tls/tcp"))
    for s in sizes:
        tcp, tls = best.get(("tcp", s)), best.get(("tls", s))
        if not tcp or not tls:
            continue
        print("%-10d%10.3f ms%10.3f ms%12.0f%12.0f%9.2fx" % (
            s, tcp * 1e3, tls * 1e3, s / tcp / 1e6, s / tls / 1e6, tls / tcp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
