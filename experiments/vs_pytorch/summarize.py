#!/usr/bin/python3
"""Summarizes a vs_pytorch run: wall time to a target test accuracy per method,
as ratios to plain DDP measured in the same run, with the seeds' spread.

  summarize.py DIR [--target ACC] [--budget SECONDS] [--baseline torch_ddp]

Reads DIR/seed*/**/trace.csv (run, round, step, time_s, bytes, loss, accuracy)
and DIR/bytes.csv (run, seed, wire_bytes); writes DIR/table.md and
DIR/accuracy_vs_time.png, and prints the table. Without --target, the target
is the lowest best accuracy of the baseline over the seeds, rounded down to
half a point: an accuracy the baseline reaches in every seed. Without
--budget, the accuracy column "at T" reads each run at T = the fastest
PyTorch method's median time to the target; "run s" is the time of the last
evaluation (at the last step).
"""
import argparse
import csv
import glob
import math
import os
import statistics
import sys


def read_traces(folder):
    runs = {}  # (run, seed) -> [(time_s, accuracy)]
    for path in sorted(glob.glob(os.path.join(folder, "seed*", "**", "trace.csv"), recursive=True)):
        seed = os.path.relpath(path, folder).split(os.sep)[0][len("seed"):]
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                name = row["run"] if row["run"].startswith("torch_") else "loco_" + row["run"]
                runs.setdefault((name, seed), []).append(
                    (float(row["time_s"]), float(row["accuracy"])))
    return runs


def read_bytes(folder):
    wire = {}
    path = os.path.join(folder, "bytes.csv")
    if os.path.exists(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                name = row["run"] if row["run"].startswith("torch_") else "loco_" + row["run"]
                wire[(name, row["seed"])] = int(row["wire_bytes"])
    return wire


def time_to(points, target):
    for t, acc in sorted(points):
        if acc >= target:
            return t
    return math.nan


def accuracy_at(points, budget):
    seen = [acc for t, acc in sorted(points) if t <= budget]
    return 100 * seen[-1] if seen else math.nan


def natural(name):
    head = name.rstrip("0123456789")
    return (not name.startswith("torch_"), head, int(name[len(head):] or 0))


def spread(values):
    ok = [v for v in values if not math.isnan(v)]
    if not ok:
        return "not reached"
    text = f"{statistics.median(ok):.1f}"
    if len(ok) > 1:
        text += f" [{min(ok):.1f}, {max(ok):.1f}]"
    if len(ok) < len(values):
        text += f" ({len(values) - len(ok)} of {len(values)} seeds not reached)"
    return text


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--budget", type=float, default=None)
    p.add_argument("--baseline", default="torch_ddp")
    a = p.parse_args()
    runs = read_traces(a.folder)
    if not runs:
        print(f"summarize.py: no traces under {a.folder}/seed*/", file=sys.stderr)
        return 1
    wire = read_bytes(a.folder)
    names = sorted({n for n, _ in runs}, key=natural)
    seeds = sorted({s for _, s in runs})
    base = [runs[(a.baseline, s)] for s in seeds if (a.baseline, s) in runs]
    target = a.target
    if target is None:
        if not base:
            print(f"summarize.py: no {a.baseline} runs to pick a target from", file=sys.stderr)
            return 1
        target = math.floor(min(max(acc for _, acc in pts) for pts in base) * 200) / 200
    base_time = {s: time_to(runs[(a.baseline, s)], target) for s in seeds
                 if (a.baseline, s) in runs}

    budget = a.budget
    if budget is None:
        medians = [statistics.median([time_to(runs[(n, s)], target) for s in seeds
                                      if (n, s) in runs]) for n in names if n.startswith("torch_")]
        medians = [m for m in medians if not math.isnan(m)]
        budget = min(medians) if medians else math.inf

    lines = [f"Target test accuracy {100 * target:.1f}%; T = {budget:.1f} s; seeds "
             f"{', '.join(seeds)}; median [min, max] over seeds.", "",
             f"| method | s to target | speed-up vs {a.baseline} | acc % at T | final acc % "
             "| run s | wire MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        times, ratios, finals, mb, at, ends = [], [], [], [], [], []
        for s in seeds:
            if (n, s) not in runs:
                continue
            t = time_to(runs[(n, s)], target)
            times.append(t)
            b = base_time.get(s, math.nan)
            ratios.append(b / t if t > 0 and not math.isnan(b) else math.nan)
            finals.append(100 * sorted(runs[(n, s)])[-1][1])
            ends.append(sorted(runs[(n, s)])[-1][0])
            at.append(accuracy_at(runs[(n, s)], budget))
            if (n, s) in wire:
                mb.append(wire[(n, s)] / 1e6)
        ratio = [r for r in ratios if not math.isnan(r)]
        ratio_text = (f"{statistics.median(ratio):.2f}x" +
                      (f" [{min(ratio):.2f}, {max(ratio):.2f}]" if len(ratio) > 1 else "")
                      if ratio else "-")
        lines.append(f"| {n} | {spread(times)} | {ratio_text} | {spread(at)} | {spread(finals)} | {spread(ends)} | "
                     f"{spread(mb) if mb else '-'} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(a.folder, "table.md"), "w") as f:
        f.write(table + "\n")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("summarize.py: no matplotlib, no plot", file=sys.stderr)
        return 0
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, n in enumerate(names):
        for j, s in enumerate(seeds):
            if (n, s) in runs:
                t, acc = zip(*sorted(runs[(n, s)]))
                ax.plot(t, acc, color=f"C{i % 10}", linestyle="-" if n.startswith("loco_") else "--",
                        label=n if j == 0 else None, alpha=0.8)
    ax.axhline(target, color="grey", linewidth=0.8)
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(a.folder, "accuracy_vs_time.png"), dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
