#!/usr/bin/env python3
"""The table of docs/experiments/powersgd.md from seeds of experiments/powersgd.

  python3 experiments/powersgd/summarize.py results/powersgd/seed1 results/powersgd/h1_seed2 ...

Each folder holds the summary.csv of one run of the program. Runs are
grouped by name over the folders: mean and range of the final test
accuracy, then the virtual end time and the bytes (the same for every seed).
"""
import csv
import statistics
import sys
from collections import defaultdict


def main():
    runs = defaultdict(list)
    order = []
    for folder in sys.argv[1:]:
        with open(f"{folder}/summary.csv") as f:
            for row in csv.DictReader(f):
                if row["run"] not in runs:
                    order.append(row["run"])
                runs[row["run"]].append(row)
    print("| run | seeds | final accuracy % (range) | end time s | MB (all workers) | KB per round per worker |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in order:
        rows = runs[name]
        acc = [100 * float(r["final_accuracy"]) for r in rows]
        spread = f" ({min(acc):.2f}-{max(acc):.2f})" if len(acc) > 1 else ""
        r = rows[0]
        print(f"| {name} | {len(rows)} | {statistics.mean(acc):.2f}{spread} | "
              f"{float(r['end_time_s']):.1f} | {float(r['total_bytes']) / 1e6:.1f} | "
              f"{float(r['peak_round_bytes']) / 1e3:.2f} |")


if __name__ == "__main__":
    main()
