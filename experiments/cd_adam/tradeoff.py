#!/usr/bin/env python3
"""Draws the CD-Adam trade-off: final test accuracy (mean over seeds, bars = min..max)
against total bytes sent, one panel per model, from the experiment's summary.csv.
Dashed: 1 point below AMSGrad; dotted: 20x fewer bytes than AMSGrad (the target
region is above the dashed line and left of the dotted one).

Usage:
  python3 experiments/cd_adam/tradeoff.py results/cd_adam/summary.csv -o docs/img/cd_adam_tradeoff.png
      [--configs amsgrad,sign,...]     (default: every configuration in the file)
Needs Debian's python3-matplotlib.
"""
import argparse
import csv
import math
import statistics
import sys

STYLE = {  # strategy -> marker, colour, legend
    "-": ("*", "black", "plain AMSGrad"),
    "difference": ("o", "tab:blue", "CD-Adam (difference)"),
    "error_feedback": ("s", "tab:orange", "error feedback"),
    "naive": ("^", "tab:green", "naive"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary")
    parser.add_argument("-o", "--out", default="cd_adam_tradeoff.png")
    parser.add_argument("--configs", default="")
    args = parser.parse_args()
    wanted = [c for c in args.configs.split(",") if c]

    groups = {}  # (model, config) -> rows
    models = []
    with open(args.summary, newline="") as f:
        for row in csv.DictReader(f):
            if wanted and row["config"] not in wanted:
                continue
            if row["model"] not in models:
                models.append(row["model"])
            groups.setdefault((row["model"], row["config"]), []).append(row)
    if not groups:
        sys.exit("tradeoff.py: no rows to draw")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.2), dpi=80,
                             squeeze=False)
    for ax, model in zip(axes[0], models):
        seen = set()
        placed = []  # (log10 bytes, accuracy) of the labels drawn so far
        for (m, config), rows in groups.items():
            if m != model:
                continue
            acc = [100 * float(r["test_accuracy"]) for r in rows]
            total = statistics.mean(float(r["bytes_total"]) for r in rows)
            strategy = rows[0]["strategy"]
            marker, colour, name = STYLE.get(strategy, ("x", "grey", strategy))
            mean = statistics.mean(acc)
            label = name if strategy not in seen else None
            seen.add(strategy)
            ax.errorbar([total], [mean], yerr=[[mean - min(acc)], [max(acc) - mean]], fmt=marker,
                        color=colour, label=label, capsize=2, markersize=6)
            # Move a label down when another one sits almost on the same spot.
            here = (math.log10(total), mean)
            clashes = sum(1 for x, y in placed if abs(x - here[0]) < 0.06 and abs(y - here[1]) < 0.35)
            placed.append(here)
            ax.annotate(config, (total, mean), textcoords="offset points",
                        xytext=(4, 3 - 8 * clashes), fontsize=6.5)
        reference = groups.get((model, "amsgrad"))
        if reference:
            # The target region: within 1 point of AMSGrad with >= 20x fewer bytes.
            ref_acc = statistics.mean(100 * float(r["test_accuracy"]) for r in reference)
            ref_bytes = statistics.mean(float(r["bytes_total"]) for r in reference)
            ax.axhline(ref_acc - 1, color="grey", linestyle="--", linewidth=0.8)
            ax.axvline(ref_bytes / 20, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("total bytes sent, both directions (all workers)")
        ax.set_ylabel("test accuracy after equal epochs (%)")
        ax.set_title(model)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
