#!/usr/bin/env python3
"""loco's compressor kernels next to what a PyTorch user would write.

Runs bench_compress (the Google Benchmark binary) with --benchmark_format=json,
times torch's equivalents on the same sizes with one thread, and prints a
side-by-side table with ratios (docs/compressors.md#benchmarks):

  top_k        torch.topk(x.abs(), k) and a gather of the values
  random_k     torch.randperm(d)[:k] and a gather, scaled by d/k
  qsgd(s)      norm, floor(y) + (rand < frac), signed int8 levels
  scaled_sign  x.abs().sum() / d and the sign mask
  read         x.sum(): torch's own streaming read, for reference

Both sides report CPU time of the calling thread (best of the repetitions), so
a busy machine disturbs the comparison as little as possible.

Usage: python3 bench/compare_torch.py [--binary build-compress/bench/compress/bench_compress]
                                      [--sizes 100000,1000000,10000000] [--min-time 0.2]
                                      [--loco-json FILE] [--markdown FILE]
Needs Debian's python3-torch; if the python3 on PATH lacks torch, the script
re-runs itself with /usr/bin/python3.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

try:
    import torch
except ImportError:  # e.g. a pyenv python3 first on PATH; Debian's has torch
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath(
        "/usr/bin/python3"
    ):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("compare_torch.py: torch is not installed (apt-get install python3-torch)")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (label, loco benchmark name, k fraction or None, torch kernel name, parameter)
CASES = [
    ("top_k 1%", "top_k@1%", 0.01, "top_k", None),
    ("top_k 0.1%", "top_k@0.1%", 0.001, "top_k", None),
    ("random_k 1%", "random_k@1%", 0.01, "random_k", None),
    ("random_k 0.1%", "random_k@0.1%", 0.001, "random_k", None),
    ("qsgd s=1", "qsgd@s=1", None, "qsgd", 1),
    ("qsgd s=15", "qsgd@s=15", None, "qsgd", 15),
    ("scaled_sign", "scaled_sign", None, "scaled_sign", None),
]


def find_binary():
    for pattern in ("build-compress*/bench/compress/bench_compress", "build*/bench/compress/bench_compress"):
        hits = sorted(glob.glob(os.path.join(ROOT, pattern)))
        if hits:
            return hits[0]
    return None


def run_loco(binary, sizes, min_time):
    names = "|".join(re.escape(c[1]) for c in CASES)
    sizes_re = "|".join(str(d) for d in sizes)
    filt = f"^(read|encode/({names})|peer/top_k_nth_element@[^/]*)/({sizes_re})$"
    out = subprocess.run(
        [binary, f"--benchmark_filter={filt}", "--benchmark_format=json",
         f"--benchmark_min_time={min_time}"],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def loco_times(report):
    """name -> CPU milliseconds per iteration."""
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    times = {}
    for b in report["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        times[b["name"]] = b["cpu_time"] * scale[b.get("time_unit", "ns")]
    return times


def cpu_ms(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        fn()
        best = min(best, (time.thread_time_ns() - t0) * 1e-6)
    return best


# What a torch user writes for each compressor's encode.
def torch_top_k(x, k):
    _, idx = torch.topk(x.abs(), k, sorted=False)
    return idx, x[idx]


def torch_random_k(x, k):
    d = x.numel()
    idx = torch.randperm(d)[:k]
    return idx, x[idx] * (d / k)


def torch_qsgd(x, s):
    norm = x.norm()
    y = x.abs() * (s / norm)
    low = torch.floor(y)
    level = low + (torch.rand_like(y) < (y - low)).to(y.dtype)
    return norm, (level * torch.sign(x)).to(torch.int8 if s < 128 else torch.int16)


def torch_scaled_sign(x):
    return x.abs().sum() / x.numel(), x >= 0


def time_torch(kernel, x, k_fraction, param, repeats):
    d = x.numel()
    if kernel == "top_k":
        k = max(1, round(k_fraction * d))
        return cpu_ms(lambda: torch_top_k(x, k), repeats)
    if kernel == "random_k":
        k = max(1, round(k_fraction * d))
        return cpu_ms(lambda: torch_random_k(x, k), repeats)
    if kernel == "qsgd":
        return cpu_ms(lambda: torch_qsgd(x, param), repeats)
    if kernel == "scaled_sign":
        return cpu_ms(lambda: torch_scaled_sign(x), repeats)
    raise ValueError(kernel)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=None, help="bench_compress (default: build*/bench/compress/)")
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--min-time", default="0.2", help="--benchmark_min_time for loco")
    ap.add_argument("--repeats", type=int, default=0, help="torch repetitions (default by size)")
    ap.add_argument("--loco-json", default=None, help="reuse a saved --benchmark_format=json report")
    ap.add_argument("--markdown", default=None, help="also write the table to this file")
    args = ap.parse_args()

    sizes = [int(float(s)) for s in args.sizes.split(",")]
    if args.loco_json:
        with open(args.loco_json) as f:
            report = json.load(f)
    else:
        binary = args.binary or find_binary()
        if not binary or not os.path.exists(binary):
            sys.exit("compare_torch.py: bench_compress not found; build it or pass --binary")
        report = run_loco(binary, sizes, args.min_time)
    loco = loco_times(report)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    lines = []
    header = ("| compressor | d | loco encode ms | torch ms | torch / loco | loco vs read | "
              "torch vs its read |")
    lines.append(header)
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    peers = []
    for d in sizes:
        x = torch.randn(d, dtype=torch.float32)
        repeats = args.repeats or (50 if d <= 100000 else 15 if d <= 1000000 else 5)
        torch_read = cpu_ms(lambda: x.sum(), repeats)
        loco_read = loco.get(f"read/{d}")
        for label, name, k_fraction, kernel, param in CASES:
            lt = loco.get(f"encode/{name}/{d}")
            if lt is None:
                continue
            tt = time_torch(kernel, x, k_fraction, param, repeats)
            lines.append(
                f"| {label} | {d:.0e} | {lt:.3f} | {tt:.3f} | {tt / lt:.1f}x | "
                f"{100 * loco_read / lt:.0f}% | {100 * torch_read / tt:.0f}% |"
                if loco_read else
                f"| {label} | {d:.0e} | {lt:.3f} | {tt:.3f} | {tt / lt:.1f}x | - | - |")
        for pct in ("1%", "0.1%"):
            peer = loco.get(f"peer/top_k_nth_element@{pct}/{d}")
            mine = loco.get(f"encode/top_k@{pct}/{d}")
            if peer and mine:
                peers.append(f"top_k {pct}, d = {d:.0e}: std::nth_element peer {peer:.3f} ms, "
                             f"loco {mine:.3f} ms ({peer / mine:.0f}x)")
        if loco_read:
            lines.append(f"| read (sum) | {d:.0e} | {loco_read:.3f} | {torch_read:.3f} | "
                         f"{torch_read / loco_read:.1f}x | 100% | 100% |")
    table = "\n".join(lines)
    print(table)
    if peers:
        print()
        print("\n".join(peers))
    rk = [(d, loco.get(f"encode/random_k@1%/{d}"), loco.get(f"encode/top_k@1%/{d}")) for d in sizes]
    for d, r, t in rk:
        if r and t:
            print(f"random_k vs top_k encode at 1%, d = {d:.0e}: {t / r:.1f}x faster")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
            if peers:
                f.write("\n" + "\n".join(peers) + "\n")


if __name__ == "__main__":
    main()
