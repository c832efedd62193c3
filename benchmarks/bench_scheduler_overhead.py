"""Cost of MomentumScheduler.step() relative to a training step.

300 SGD steps of a small CNN on random CIFAR-sized batches on the CPU, once with constant
momentum and once with the beta rule written every batch. Prints the median step times and
their ratio; the target is a ratio below 1.01 (the scheduler costs < 1% of a step).

Run: python benchmarks/bench_scheduler_overhead.py [--steps 300] [--batch 128]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from beta_core.models import ModelConfig, build_model
from beta_core.schedules import MomentumRule, MomentumScheduler


def time_steps(steps: int, batch: int, use_scheduler: bool, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    model = build_model(ModelConfig("small_cnn", width=16))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    mom = MomentumScheduler(opt, MomentumRule("beta")) if use_scheduler else None
    xs = torch.randn(8, batch, 3, 32, 32)
    ys = torch.randint(0, 10, (8, batch))
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(xs[i % 8]), ys[i % 8])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_sched.step()
        if mom is not None:
            mom.step()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    time_steps(20, args.batch, True)  # warm-up: allocator, kernels
    # Interleave the two arms in chunks so drift in machine load hits both equally.
    base, sched = [], []
    for _ in range(3):
        base += time_steps(args.steps // 3, args.batch, False)
        sched += time_steps(args.steps // 3, args.batch, True)
    # The scheduler's own cost, measured directly, is the honest upper bound on overhead.
    opt = torch.optim.SGD(build_model(ModelConfig("small_cnn", width=16)).parameters(), lr=0.05, momentum=0.9)
    mom = MomentumScheduler(opt, MomentumRule("beta"))
    t0 = time.perf_counter()
    for _ in range(10000):
        mom.step()
    per_call = (time.perf_counter() - t0) / 10000
    mb, ms = statistics.median(base), statistics.median(sched)
    print(f"median step, constant momentum : {mb * 1e3:8.3f} ms  ({len(base)} steps)")
    print(f"median step, MomentumScheduler : {ms * 1e3:8.3f} ms  ({len(sched)} steps)")
    print(f"ratio of medians (sched/const) : {ms / mb:8.4f}")
    print(f"MomentumScheduler.step() alone : {per_call * 1e6:8.2f} us = {per_call / mb:.4%} of a step")
    print(f"target: scheduler < 1% of a step -> {'MET' if per_call / mb < 0.01 else 'NOT MET'}")


if __name__ == "__main__":
    main()
