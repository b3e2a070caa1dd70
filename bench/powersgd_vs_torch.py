#!/usr/bin/env python3
"""PowerSGD's round in loco next to the same arithmetic in PyTorch.

Runs bench_compress's powersgd benchmarks (--benchmark_format=json, one
thread: OPENBLAS_NUM_THREADS=1) and times, with torch.set_num_threads(1) on
the same layouts, what torch's DDP PowerSGD hook computes per round for one
worker (its allreduces aside): M = grad + error; P = M Q; orthogonalize P
(Gram-Schmidt at rank <= 2, torch.linalg.qr above, as the hook does);
Q = M^T P; M ~ P Q^T; error = M - P Q^T. Prints, per layout and rank:

  loco / torch        time ratio of the rounds (< 1: loco is faster); loco
                      orthogonalizes as the hook does (powersgd_blas: QR at r > 2)
  loco / torch's products   against torch's three matmuls and orthogonalization
                      alone, without the hook's copies of the bucket
  GEMM rate           BLAS's time for the round's three products alone over
                      loco's whole round (>= 100%: the round beats BLAS's GEMM)

Usage: python3 bench/powersgd_vs_torch.py [--binary build/dev/bench/compress/bench_compress]
                                          [--min-time 0.2] [--markdown FILE]
"""
import argparse
import glob
import json
import os
import subprocess
import sys

try:
    import torch
except ImportError:
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath(
        "/usr/bin/python3"
    ):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("powersgd_vs_torch.py: torch is not installed (apt-get install python3-torch)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_torch import cpu_ms  # noqa: E402  the same timer as the compressor comparison

# The layouts of bench_compress's powersgd_models(): (name, shape) per tensor.
MODELS = {
    "mlp": [(128, 784), (128,), (10, 128), (10,)],
    "cnn": [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 9216), (128,), (10, 128), (10,)],
    "4096x4096": [(4096, 4096)],
}
RANKS = (1, 2, 4)


def find_binary():
    for pattern in ("build/dev/bench/compress/bench_compress", "build*/bench/compress/bench_compress",
                    "build/*/bench/compress/bench_compress"):
        hits = sorted(glob.glob(os.path.join(ROOT, pattern)))
        if hits:
            return hits[0]
    return None


def run_loco(binary, min_time):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([binary, "--benchmark_filter=^powersgd", "--benchmark_format=json",
                          f"--benchmark_min_time={min_time}"],
                         check=True, capture_output=True, text=True, env=env)
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    return {b["name"]: b["cpu_time"] * scale[b.get("time_unit", "ns")]
            for b in json.loads(out.stdout)["benchmarks"]}


def gram_schmidt(p):
    # As the hook's _orthogonalize_gram_schmidt (epsilon 0).
    for i in range(p.shape[1]):
        col = p[:, i:i + 1]
        col /= torch.norm(col)
        if i + 1 < p.shape[1]:
            rest = p[:, i + 1:]
            rest -= torch.sum(col * rest, dim=0) * col


def orthogonalize(p):
    if p.shape[1] <= 2:
        gram_schmidt(p)
    else:
        p.copy_(torch.linalg.qr(p).Q)


def make_round(shapes, r):
    """One worker's round of the hook's arithmetic on a flat bucket, with the
    hook's in-place products and its two copies (input_tensor_cp, error)."""
    torch.manual_seed(0)
    sizes = [int(torch.tensor(s).prod()) for s in shapes]
    bucket = torch.randn(sum(sizes))
    state = {"error": torch.zeros_like(bucket)}
    mats, dense, at = [], [], 0
    for s, n in zip(shapes, sizes):
        view = bucket[at:at + n]
        at += n
        rows, cols = s[0], n // s[0]
        if len(s) < 2 or rows * cols <= 2 * (rows + cols) * r:  # loco's min_compression_rate 2
            dense.append(view)
            continue
        mats.append((view.view(rows, cols), torch.empty(rows, r), torch.randn(cols, r)))

    def products():
        for m, p, q in mats:
            torch.matmul(m, q, out=p)
            orthogonalize(p)
            torch.matmul(m.t(), p, out=q)
            torch.matmul(p, q.t(), out=m)

    def run():
        bucket.add_(state["error"])
        bucket_cp = torch.clone(bucket)
        flat = torch.cat(dense) if dense else None  # the rank-1 tensors, allreduced as they are
        for m, p, q in mats:
            torch.matmul(m, q, out=p)
            orthogonalize(p)
            torch.matmul(m.t(), p, out=q)
            torch.matmul(p, q.t(), out=m)
        if flat is not None:
            at = 0
            for view in dense:
                view.copy_(flat[at:at + view.numel()])
                at += view.numel()
        state["error"] = bucket_cp - bucket

    return run, products


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=None)
    ap.add_argument("--min-time", default="0.2")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    binary = args.binary or find_binary()
    if not binary or not os.path.exists(binary):
        sys.exit("powersgd_vs_torch.py: bench_compress not found; build it or pass --binary")
    loco = run_loco(binary, args.min_time)
    if not any(k.startswith("powersgd_blas/") for k in loco):
        sys.exit("powersgd_vs_torch.py: bench_compress was built without loco::blas")

    torch.set_num_threads(1)
    lines = ["| layout | rank | torch hook ms | torch products ms | loco ms | loco / torch hook | "
             "loco / torch products | GEMM rate |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, shapes in MODELS.items():
        for r in RANKS:
            run, products = make_round(shapes, r)
            run()
            repeats = 5 if name == "4096x4096" else 30
            tt = cpu_ms(run, repeats)
            tp = cpu_ms(products, repeats)
            mine = loco[f"powersgd_blas/{name}/r{r}"]
            gemm = loco[f"powersgd_gemm/{name}/r{r}"]
            lines.append(f"| {name} | {r} | {tt:.3f} | {tp:.3f} | {mine:.3f} | {mine / tt:.2f} | "
                         f"{mine / tp:.2f} | {100 * gemm / mine:.0f}% |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
