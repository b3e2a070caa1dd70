#!/usr/bin/python3
"""PyTorch's side of the head-to-head: the CNN of examples/torch_cnn trained
with torch.distributed (gloo) by PyTorch's own data-parallel methods.

  ddp        DistributedDataParallel, dense gradient allreduce every step
  powersgd   DDP with the PowerSGD communication hook (--rank-r; error
             feedback and warm start on; dense for --start-iter steps)
  fp16       DDP with the fp16 compression hook
  localsgd   no DDP: PostLocalSGDOptimizer with a PeriodicModelAverager
             (parameters averaged every --period steps from the first)
  localadamw the same around AdamW (--adam-lr): local AdamW steps with
             periodic averaging, the nearest PyTorch has to DiLoCo

The same network (conv 3x3, conv 3x3, max-pool 2, fc, fc; widths from
--channels/--hidden; weights from torch.manual_seed(--seed)), the same
per-worker batch drawn uniformly with replacement from an iid shard, plain
SGD with the same constant step size, one thread per process. Rank 0
evaluates the model every `steps / evaluations` steps and keeps that time
out of the training clock, as torch_cnn does.

One process per rank, from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (as
torchrun sets them); --spawn N starts N ranks on 127.0.0.1 instead. Rank 0
appends rows (run, round, step, time_s, bytes, loss, accuracy) to
--out/trace.csv; bytes is empty (PyTorch does not count them: run.sh reads
the interfaces' counters).
"""
import argparse
import csv
import gzip
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook
from torch.distributed.algorithms.model_averaging.averagers import PeriodicModelAverager
from torch.distributed.optim import PostLocalSGDOptimizer

DATA = "/usr/share/datasets/fashion-mnist"


class CNN(nn.Module):
    def __init__(self, c1, c2, hidden):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3)
        self.conv2 = nn.Conv2d(c1, c2, 3)
        self.fc1 = nn.Linear(c2 * 12 * 12, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(folder, prefix):
    x = idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), 16)
    y = idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), 8)
    images = torch.from_numpy(x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return images, torch.from_numpy(y.astype(np.int64))


def evaluate(model, x, y):
    model.eval()
    correct, loss = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), 1000):
            out = model(x[i:i + 1000])
            correct += (out.argmax(1) == y[i:i + 1000]).sum().item()
            loss += F.cross_entropy(out, y[i:i + 1000], reduction="sum").item()
    model.train()
    return correct / len(y), loss / len(y)


def run_name(a):
    if a.method == "powersgd":
        return f"torch_powersgd_r{a.rank_r}"
    if a.method in ("localsgd", "localadamw"):
        return f"torch_{a.method}_p{a.period}"
    return f"torch_{a.method}"


def train(a):
    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    train_x, train_y = load(a.data, "train")
    test_x, test_y = load(a.data, "t10k")
    test_x, test_y = test_x[:a.test_rows], test_y[:a.test_rows]
    # An iid shard per rank, then batches drawn uniformly with replacement.
    perm = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(a.seed))
    shard = perm[rank::world]
    draw = torch.Generator().manual_seed(a.seed * 1000 + rank)

    torch.manual_seed(a.seed)  # every rank starts from the same weights
    net = CNN(a.channels[0], a.channels[1], a.hidden)
    model, averager = net, None
    if a.method in ("localsgd", "localadamw"):
        averager = PeriodicModelAverager(period=a.period, warmup_steps=0)
        inner = (torch.optim.SGD(net.parameters(), lr=a.lr) if a.method == "localsgd" else
                 torch.optim.AdamW(net.parameters(), lr=a.adam_lr))
        opt = PostLocalSGDOptimizer(optim=inner, averager=averager)
    else:
        model = nn.parallel.DistributedDataParallel(net)
        if a.method == "powersgd":
            state = powerSGD_hook.PowerSGDState(
                process_group=None, matrix_approximation_rank=a.rank_r,
                start_powerSGD_iter=a.start_iter, use_error_feedback=True, warm_start=True)
            model.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
        elif a.method == "fp16":
            model.register_comm_hook(None, default_hooks.fp16_compress_hook)
        opt = torch.optim.SGD(model.parameters(), lr=a.lr)

    every = max(1, a.steps // a.evaluations)
    if averager is not None:  # evaluate right after an average: replicas agree
        every = max(a.period, every // a.period * a.period)
    trace = None
    if rank == 0:
        os.makedirs(a.out, exist_ok=True)
        path = os.path.join(a.out, "trace.csv")
        new = not os.path.exists(path)
        trace = open(path, "a", newline="")
        writer = csv.writer(trace)
        if new:
            writer.writerow(["run", "round", "step", "time_s", "bytes", "loss", "accuracy"])
    name = run_name(a)
    dist.barrier()  # a common start
    start, evaluating = time.perf_counter(), 0.0
    acc = loss = float("nan")
    for step in range(1, a.steps + 1):
        pick = shard[torch.randint(len(shard), (a.batch,), generator=draw)]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(train_x[pick]), train_y[pick]).backward()
        opt.step()
        if a.straggler_ms > 0 and rank == a.straggler_rank % world:
            time.sleep(a.straggler_ms / 1000.0)
        if step % every == 0 or step == a.steps:
            t0 = time.perf_counter()
            if rank == 0:
                acc, loss = evaluate(net, test_x, test_y)
                writer.writerow([name, step, step, f"{t0 - start - evaluating:.4f}", "",
                                 f"{loss:.6g}", f"{acc:.6g}"])
                trace.flush()
                print(f"{name}  step {step}/{a.steps}  accuracy {acc:.4f}  "
                      f"test loss {loss:.4f}  time {t0 - start - evaluating:.1f} s", flush=True)
            evaluating += time.perf_counter() - t0
    dist.barrier()
    if trace:
        trace.close()
    return acc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawned(rank, a, world, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world))
    main_rank(a)


def main_rank(a):
    dist.init_process_group("gloo", timeout=__import__("datetime").timedelta(seconds=600))
    try:
        train(a)
    finally:
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=["ddp", "powersgd", "fp16", "localsgd", "localadamw"],
                   default="ddp")
    p.add_argument("--rank-r", type=int, default=1, help="PowerSGD's matrix rank")
    p.add_argument("--start-iter", type=int, default=10,
                   help="PowerSGD: dense allreduce before this step (torch's default is 1000)")
    p.add_argument("--period", type=int, default=8, help="localsgd: steps between averages")
    p.add_argument("--steps", type=int, default=600, help="SGD steps per worker")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05, help="SGD's step size")
    p.add_argument("--adam-lr", type=float, default=0.001, help="AdamW's (localadamw)")
    p.add_argument("--channels", type=lambda s: [int(v) for v in s.split(",")], default=[8, 16])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--evaluations", type=int, default=10)
    p.add_argument("--test-rows", type=int, default=10000)
    p.add_argument("--straggler-rank", type=int, default=-1,
                   help="this rank sleeps --straggler-ms after every step (-1: the last)")
    p.add_argument("--straggler-ms", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default=DATA)
    p.add_argument("--out", default="results/vs_pytorch")
    p.add_argument("--spawn", type=int, default=0, help="start this many ranks on loopback")
    a = p.parse_args()
    if len(a.channels) != 2 or min(a.channels) < 1 or a.hidden < 1:
        p.error("--channels takes two widths >= 1, --hidden one >= 1")
    if a.steps < 1 or a.batch < 1 or a.evaluations < 1 or a.period < 1 or a.rank_r < 1:
        p.error("--steps, --batch, --evaluations, --period and --rank-r must be >= 1")
    if a.spawn:
        mp.spawn(spawned, args=(a, a.spawn, free_port()), nprocs=a.spawn, join=True)
    else:
        main_rank(a)


if __name__ == "__main__":
    sys.exit(main())
