#!/usr/bin/env python3
"""The compressor kernels in a user's default build against the native one.

    bench/compress/compare_builds.py BUILD_DIR [--reps 3] [--sizes 1000000,10000000]

BUILD_DIR holds bench_compress (-march=native) and bench_compress_portable
(no -march flags: what a user's default build gets, its kernels dispatched to
AVX2 at run time). Three configurations run in turn, each repetition in the
same order, so they share the machine's state:

  native     bench_compress
  default    bench_compress_portable (runtime dispatch)
  baseline   bench_compress_portable with LOCO_KERNEL_ISA=baseline: the
             default build without dispatch (baseline x86-64, SSE2)

and the table gives each kernel's median throughput (input GB/s) with the
ratios default/native and baseline/native, and each kernel's default-build
throughput against the streaming read of the same run (read/<d>).
docs/compressors.md#dispatch
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

KERNELS = ["identity", "fp16", "bf16", "qsgd@s=1", "qsgd@s=15", "scaled_sign", "natural",
           "top_k@1%", "random_k@1%"]


def run(binary, env_isa, sizes, min_time):
    sizes_re = "|".join(sizes)
    kernels_re = "|".join(KERNELS)
    flt = f"^read/({sizes_re})$|^(en|de)code/({kernels_re})/({sizes_re})$"
    env = dict(os.environ)
    env.pop("LOCO_KERNEL_ISA", None)
    if env_isa:
        env["LOCO_KERNEL_ISA"] = env_isa
    out = subprocess.run([binary, f"--benchmark_filter={flt}", f"--benchmark_min_time={min_time}",
                          "--benchmark_format=json"], env=env, check=True, capture_output=True,
                         text=True).stdout
    data = json.loads(out)
    isa = data["context"].get("kernel_isa", "?")
    return isa, {b["name"]: b["bytes_per_second"] for b in data["benchmarks"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("build")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--min-time", type=float, default=0.2)
    a = ap.parse_args()
    native = os.path.join(a.build, "bench", "compress", "bench_compress")
    portable = os.path.join(a.build, "bench", "compress", "bench_compress_portable")
    for b in (native, portable):
        if not os.access(b, os.X_OK):
            sys.exit(f"compare_builds.py: {b} not found (build with -DLOCO_BUILD_BENCHMARKS=ON "
                     "and LOCO_BENCH_NATIVE=ON)")
    sizes = a.sizes.split(",")
    configs = [("native", native, None), ("default", portable, None),
               ("baseline", portable, "baseline")]
    results = {name: {} for name, _, _ in configs}
    isas = {}
    for rep in range(a.reps):
        for name, binary, env_isa in configs:
            isa, r = run(binary, env_isa, sizes, a.min_time)
            isas[name] = isa
            for k, v in r.items():
                results[name].setdefault(k, []).append(v)
            print(f"rep {rep + 1}/{a.reps}: {name} done", file=sys.stderr)
    med = {c: {k: statistics.median(v) for k, v in r.items()} for c, r in results.items()}
    print(f"kernel ISA: native {isas['native']}, default {isas['default']}, "
          f"baseline {isas['baseline']}; median of {a.reps} repetitions, input GB/s\n")
    print("| kernel | d | native | default | baseline | default / native | "
          "baseline / native | default / read |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for d in sizes:
        read = med["default"].get(f"read/{d}")
        rows = [f"read/{d}"] + [f"{op}/{k}/{d}" for k in KERNELS for op in ("encode", "decode")]
        for name in rows:
            if name not in med["native"]:
                continue
            n, p, b = med["native"][name], med["default"][name], med["baseline"][name]
            label = name.rsplit("/", 1)[0]
            print(f"| {label} | {d} | {n / 1e9:.2f} | {p / 1e9:.2f} | {b / 1e9:.2f} | "
                  f"{p / n:.2f} | {b / n:.2f} | {p / read:.2f} |")


if __name__ == "__main__":
    main()
