#!/usr/bin/env python3
"""The chaos table of docs/fault_tolerance.md: experiments/chaos as processes.

For each seed: a fault-free run, then the same run with a fault every
--every rounds, cycling kill -9, SIGSTOP (3 s) and kill-and-restart over
ranks 1..n-1 (rank 0 leads). A restarted rank's replacement starts with
LOCO_REJOIN=1 as soon as the killed process is gone. Prints, per seed and
in total, the wall time and test accuracy of both runs, the throughput
retained (fault-free seconds / faulted seconds, same rounds) and the
accuracy difference; writes chaos.csv.

  python3 experiments/chaos/run.py --binary build/dev/experiments/chaos/chaos \\
      --ranks 8 --rounds 300 --every 50 --seeds 3 --out results/chaos
"""
import argparse
import csv
import os
import re
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def schedule(ranks, rounds, every):
    kinds = ["restart", "kill", "stop"]  # a restart first: a replacement needs time to load
    faults, victim = [], 1
    for k, at in enumerate(range(every, rounds - every // 2, every)):
        kind = kinds[k % 3]
        faults.append((kind, at, victim))
        victim = victim % (ranks - 1) + 1
    return faults


def run_world(args, seed, faults, log_dir, label):
    port = free_port()
    spec = ",".join(f"{kind}:{at}:{rank}" for kind, at, rank in faults)
    restarts = {}
    for kind, _, rank in faults:
        if kind == "restart":
            restarts[rank] = restarts.get(rank, 0) + 1
    base = [args.binary, "--rounds", str(args.rounds), "--local-steps", str(args.local_steps),
            "--step-ms", str(args.step_ms),
            "--seed", str(seed), "--out", log_dir]
    if spec:
        base += ["--faults", spec]
    os.makedirs(log_dir, exist_ok=True)
    procs, logs = {}, []

    def spawn(rank, rejoin):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCO_")}
        env.update(LOCO_RANK=str(rank), LOCO_WORLD_SIZE=str(args.ranks),
                   LOCO_COORDINATOR=f"127.0.0.1:{port}", LOCO_TOKEN=f"chaos-{port}",
                   LOCO_TIMEOUT_MS=str(args.timeout_ms),
                   LOCO_HEARTBEAT_MS=str(args.heartbeat_ms),
                   LOCO_HEARTBEAT_MISSES=str(args.heartbeat_misses))
        if rejoin:
            env["LOCO_REJOIN"] = "1"
        log = open(os.path.join(log_dir, f"{label}_rank{rank}{'_rejoin' if rejoin else ''}.log"),
                   "w")
        logs.append(log)
        out = subprocess.PIPE if rank == 0 else log
        procs[rank] = subprocess.Popen(base, env=env, stdout=out, stderr=log, text=True)

    start = time.monotonic()
    for r in range(args.ranks):
        spawn(r, False)
    deadline = start + args.run_timeout
    while procs[0].poll() is None and time.monotonic() < deadline:
        for rank, left in list(restarts.items()):
            p = procs[rank]
            if left > 0 and p.poll() is not None and p.returncode == -9:
                restarts[rank] = left - 1
                spawn(rank, True)
        time.sleep(0.005)
    hung = procs[0].poll() is None
    stdout = "" if hung else procs[0].stdout.read()
    for rank, p in procs.items():  # the others end with rank 0; bounded
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            hung = hung or rank == 0
    for log in logs:
        log.close()
    m = re.search(r"RESULT seconds=(\S+) rounds=(\d+) accuracy=(\S+) lost=(\d+) joined=(\d+) "
                  r"contributions=(\d+)", stdout)
    if hung or m is None or procs[0].returncode != 0:
        sys.exit(f"{label}: rank 0 did not finish (see {log_dir})")
    changes = [line for line in stdout.splitlines() if line.startswith("CHANGE")]
    return {"seconds": float(m[1]), "rounds": int(m[2]), "accuracy": float(m[3]),
            "lost": int(m[4]), "joined": int(m[5]), "contributions": int(m[6]),
            "changes": changes}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--local-steps", type=int, default=10)
    ap.add_argument("--step-ms", type=float, default=5.0,
                    help="each local step also waits this long (an accelerator's step)")
    ap.add_argument("--every", type=int, default=50, help="a fault every this many rounds")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--heartbeat-ms", type=int, default=100)
    ap.add_argument("--heartbeat-misses", type=int, default=10)
    ap.add_argument("--timeout-ms", type=int, default=30000)
    ap.add_argument("--run-timeout", type=float, default=600)
    ap.add_argument("--out", default="results/chaos")
    args = ap.parse_args()
    faults = schedule(args.ranks, args.rounds, args.every)
    print("schedule:", ", ".join(f"{k} rank {q} after round {r}" for k, r, q in faults))
    rows = []
    for seed in range(1, args.seeds + 1):
        free = run_world(args, seed, [], args.out, f"seed{seed}_free")
        hit = run_world(args, seed, faults, args.out, f"seed{seed}_faults")
        retained = free["seconds"] / hit["seconds"]
        work = (hit["contributions"] / hit["seconds"]) / (free["contributions"] / free["seconds"])
        rows.append({"seed": seed, "free_s": free["seconds"], "faults_s": hit["seconds"],
                     "retained": retained, "worker_rounds_retained": work,
                     "free_acc": free["accuracy"],
                     "faults_acc": hit["accuracy"],
                     "acc_diff_points": 100 * (hit["accuracy"] - free["accuracy"]),
                     "lost": hit["lost"], "joined": hit["joined"]})
        print(f"seed {seed}: fault-free {free['seconds']:.2f} s acc {free['accuracy']:.4f}; "
              f"{len(faults)} faults {hit['seconds']:.2f} s acc {hit['accuracy']:.4f}; "
              f"throughput retained {100 * retained:.1f}% (worker-rounds per second "
              f"{100 * work:.1f}%); lost {hit['lost']}, "
              f"joined {hit['joined']}")
        for line in hit["changes"]:
            print("   ", line)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "chaos.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    free_total = sum(r["free_s"] for r in rows)
    hit_total = sum(r["faults_s"] for r in rows)
    worst = min(r["acc_diff_points"] for r in rows)
    print(f"total: throughput retained {100 * free_total / hit_total:.1f}% "
          f"({free_total:.1f} s fault-free, {hit_total:.1f} s with faults), worker-rounds per "
          f"second {100 * sum(r['worker_rounds_retained'] for r in rows) / len(rows):.1f}% "
          f"(mean); "
          f"accuracy difference {min(r['acc_diff_points'] for r in rows):+.2f} to "
          f"{max(r['acc_diff_points'] for r in rows):+.2f} points (worst {worst:+.2f})")


if __name__ == "__main__":
    main()
