#!/usr/bin/env python3
"""Tables of docs/experiments/diloco.md from several seeds of experiments/diloco.

  python3 experiments/diloco/summarize.py results/diloco/seed1 results/diloco/seed2 ...

Each folder holds the trace.csv and summary.csv of one run of the program
(one seed; extra folders such as seed1_h100 may add runs to a seed: give
them as seed1+seed1_h100). Per run: mean and range over seeds of the final
and best test accuracy, virtual seconds to the target (the synchronous
baseline's best accuracy minus 1 point, per seed), total and peak bytes.
"""
import csv
import statistics
import sys
from collections import defaultdict


def read_seed(folders):
    runs = {}
    for folder in folders:
        with open(f"{folder}/summary.csv") as f:
            for row in csv.DictReader(f):
                runs[row["run"]] = {"summary": row, "trace": []}
        with open(f"{folder}/trace.csv") as f:
            for row in csv.DictReader(f):
                if row["run"] in runs:
                    runs[row["run"]]["trace"].append(
                        (float(row["time_s"]), float(row["accuracy"])))
    return runs


def fmt(values, scale=1.0, digits=2):
    if not values:
        return "-"
    if any(v is None for v in values):
        reached = [v for v in values if v is not None]
        return f"{len(reached)}/{len(values)} seeds" if reached else "-"
    vs = [v * scale for v in values]
    m = statistics.mean(vs)
    if len(vs) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ({min(vs):.{digits}f}-{max(vs):.{digits}f})"


def main():
    seeds = [read_seed(arg.split("+")) for arg in sys.argv[1:]]
    if not seeds:
        sys.exit(__doc__)
    order = list(seeds[0].keys())
    for s in seeds[1:]:
        order += [r for r in s if r not in order]
    stats = defaultdict(lambda: defaultdict(list))
    for s in seeds:
        sync = s.get("sync")
        target = max(a for _, a in sync["trace"]) - 0.01 if sync else None
        for name, run in s.items():
            row = run["summary"]
            st = stats[name]
            st["final"].append(float(row["final_accuracy"]))
            st["best"].append(float(row["best_accuracy"]))
            st["mb"].append(float(row["total_bytes"]) / 1e6)
            st["peak"].append(float(row["peak_round_bytes"]) / 1e6)
            st["end"].append(float(row["end_time_s"]))
            if target is not None:
                hit = next((t for t, a in sorted(run["trace"]) if a >= target), None)
                st["to_target"].append(hit)
    print(f"{len(seeds)} seed(s); mean (min-max); target = sync's best - 1 point, per seed\n")
    print("| run | final acc % | best acc % | virtual s to target | end s | MB, all workers | peak MB per round |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in order:
        st = stats[name]
        print(f"| {name} | {fmt(st['final'], 100)} | {fmt(st['best'], 100)} | "
              f"{fmt(st['to_target'], 1, 1)} | {fmt(st['end'], 1, 1)} | {fmt(st['mb'], 1, 1)} | "
              f"{fmt(st['peak'], 1, 3)} |")


if __name__ == "__main__":
    main()
