#!/usr/bin/python3
"""Plots loco trace CSVs (columns run,round,step,time_s,bytes,loss,accuracy,...).

Usage:
  python3 tools/plot.py results/trace.csv [more.csv ...] -o plots/ [--prefix NAME]
      [--x round,bytes,time_s] [--y accuracy,loss] [--title TEXT]
      [--log bytes,loss] [--match REGEX]

Writes one PNG per (y, x) pair, e.g. plots/NAME_accuracy_vs_bytes.png, with one
line per value of the `run` column (across all files). The --log columns
(default bytes and loss) are drawn on log axes; --match keeps only the runs
whose name matches the regular expression. Rows with an empty or 'nan' cell in
x or y are skipped.
Needs Debian's python3-matplotlib.
"""
import argparse
import csv
import math
import os
import re
import sys

LOG_AXES = {"bytes", "loss"}
LABELS = {
    "round": "round",
    "step": "local step",
    "time_s": "time (s; virtual on the simulator)",
    "bytes": "bytes sent (all workers)",
    "loss": "training loss",
    "accuracy": "test accuracy",
}


def read_runs(paths):
    runs = {}
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "run" not in reader.fieldnames:
                sys.exit(f"plot.py: {path} has no 'run' column (not a loco trace CSV)")
            for row in reader:
                runs.setdefault(row["run"], []).append(row)
    return runs


def number(text):
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+")
    parser.add_argument("-o", "--out", default="plots")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--x", default="round,bytes,time_s")
    parser.add_argument("--y", default="accuracy,loss")
    parser.add_argument("--title", default="")
    parser.add_argument("--log", default=",".join(sorted(LOG_AXES)),
                        help="columns drawn on log axes")
    parser.add_argument("--match", default="", help="keep runs whose name matches this regex")
    args = parser.parse_args()
    log_axes = {c for c in args.log.split(",") if c}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = read_runs(args.csv)
    if args.match:
        runs = {name: rows for name, rows in runs.items() if re.search(args.match, name)}
    os.makedirs(args.out, exist_ok=True)
    prefix = args.prefix or os.path.splitext(os.path.basename(args.csv[0]))[0]
    written = []
    for y in args.y.split(","):
        for x in args.x.split(","):
            fig, ax = plt.subplots(figsize=(6, 4), dpi=90)
            drawn = 0
            for name, rows in runs.items():
                points = [(number(r.get(x)), number(r.get(y))) for r in rows]
                points = [(a, b) for a, b in points if a is not None and b is not None]
                if x in log_axes:
                    points = [(a, b) for a, b in points if a > 0]
                if y in log_axes:
                    points = [(a, b) for a, b in points if b > 0]
                if not points:
                    continue
                points.sort()
                ax.plot([a for a, _ in points], [b for _, b in points], label=name,
                        marker="." if len(points) < 30 else None)
                drawn += 1
            if drawn == 0:
                plt.close(fig)
                continue
            if x in log_axes:
                ax.set_xscale("log")
            if y in log_axes:
                ax.set_yscale("log")
            ax.set_xlabel(LABELS.get(x, x))
            ax.set_ylabel(LABELS.get(y, y))
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
            if args.title:
                ax.set_title(args.title)
            fig.tight_layout()
            path = os.path.join(args.out, f"{prefix}_{y}_vs_{x}.png")
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    if not written:
        sys.exit("plot.py: nothing to plot (no rows with both x and y)")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
