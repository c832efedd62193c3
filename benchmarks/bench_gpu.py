"""The GPU benchmark, one prepared script (about 8 minutes on one H200). Installs nothing.

Prints, each against a baseline measured in the same run:
1. engine vs pure compute (forward+backward+step over batches made in advance), img/s and
   ratio, for ResNet-18 (batch 128) and the fast model (airnet, batch 1024);
2. the ``fast`` preset's time to 94% test accuracy (sgd-constant, the recipe's baseline), mean
   over seeds, and its ratio to airbench94's 3.83 s on an A100 (uncompiled), with the mean
   final accuracy (target 94%, n >= 5);
3. a 3-method x 3-seed ``fast`` comparison's wall clock;
4. peak GPU memory of one fast run;
5. throughput (images/s over all runs) with 1, 2 and 4 fast runs at once on the GPU.

Run: python benchmarks/bench_gpu.py --data-path cifar10-jpeg.tar.gz [--seeds 5] [--compile]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beta_core.config import plan_runs  # noqa: E402
from beta_core.data import load_splits  # noqa: E402
from beta_core.engine import Training, sync  # noqa: E402
from beta_core.records import EPOCH  # noqa: E402

REFERENCE_SECONDS = 3.83  # airbench94.py, uncompiled, A100: mean time to 94.01% (n = 1000)


def pure_compute(t: Training, steps: int) -> float:
    """img/s of forward+backward+step over batches prepared in advance (the engine's ceiling)."""
    model, cfg = t.model, t.cfg
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    batches = [b for _, b in zip(range(steps), t.train_loader.epoch(0))]
    model.train()
    for _ in range(2):  # warm-up pass, then the timed pass
        sync(t.device)
        t0 = time.perf_counter()
        for xb, yb in batches:
            with torch.autocast("cuda", torch.bfloat16):
                loss = F.cross_entropy(t.forward(xb).float(), yb, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(t.device)
    return sum(len(y) for _, y in batches) / (time.perf_counter() - t0)


def engine_rate(cfg, splits) -> tuple[float, Training]:
    t = Training(cfg, splits=splits)
    list(t.run())
    return t.cfg.epochs * len(t.splits.train_y) / t.step_seconds, t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-path", help="ImageFolder tree or .tar.gz of CIFAR-10 (else torchvision's in data/)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="torch.compile the fast runs")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA GPU here (bench_gpu.py measures the GPU path; run it on a GPU machine)", file=sys.stderr)
        sys.exit(2)
    dev = torch.cuda.get_device_name(0)
    over = {"dataset": "folder" if args.data_path else "cifar10", "data_path": args.data_path, "device": "cuda",
            "compile": args.compile}
    fast = plan_runs(["sgd-constant"], [0], "fast", over)[0]
    splits = load_splits(fast.data)
    print(f"{dev}; torch {torch.__version__}; data {splits.name} ({len(splits.train_y)} train / {len(splits.test_y)} "
          f"test); compile {args.compile}")

    # 1. engine vs pure compute
    for name, cfg in (("resnet18, batch 128", plan_runs(["sgd-beta"], [0], "paper", {**over, "epochs": 1})[0]),
                      ("airnet, batch 1024", plan_runs(["sgd-constant"], [0], "fast", {**over, "epochs": 2})[0])):
        s = load_splits(cfg.data)
        eng, t = engine_rate(cfg, s)
        pure = pure_compute(t, min(100, t.steps_per_epoch))
        print(f"{name:<20}: engine {eng:9,.0f} img/s, pure compute {pure:9,.0f} img/s, ratio {eng / pure:.3f}")

    # 2. the fast preset's time to 94%
    torch.cuda.reset_peak_memory_stats()
    times, steps_s, finals = [], [], []
    for seed in range(args.seeds):
        t = Training(plan_runs(["sgd-constant"], [seed], "fast", over)[0], splits=splits)
        eps = [r for r in t.run() if r["kind"] == EPOCH]
        hit = t.summary["time_to_accuracy"].get("0.94")
        times.append(None if hit is None else hit["time"])
        steps_s.append(t.step_seconds)
        finals.append(eps[-1]["test_acc"])
    peak = torch.cuda.max_memory_allocated() / 2 ** 30
    reached = [x for x in times if x is not None]
    print(f"fast preset, sgd-constant, {args.seeds} seeds: final test acc mean {statistics.mean(finals):.4f} "
          f"(min {min(finals):.4f}); reached 94% in {len(reached)}/{args.seeds}")
    if reached:
        m = statistics.mean(reached)
        print(f"  time to 94% (wall, evaluation included): mean {m:.2f} s -> ratio to airbench94's "
              f"{REFERENCE_SECONDS} s: {m / REFERENCE_SECONDS:.2f} (target <= 2)")
    print(f"  training-step seconds per run: mean {statistics.mean(steps_s):.2f} s")
    print(f"peak GPU memory of a fast run: {peak:.2f} GiB")

    # 3. a 3 x 3 comparison
    t0 = time.perf_counter()
    for c in plan_runs(["sgd-constant", "sgd-beta", "sgd-hybrid"], [0, 1, 2], "fast", over):
        list(Training(c, splits=splits).run())
    print(f"fast comparison, 3 methods x 3 seeds, one after another: {time.perf_counter() - t0:.1f} s")

    # 5. several runs at once
    base = [sys.executable, "-m", "beta_core", "--runs-dir", str(ROOT / "runs-bench-gpu"), "train", "--preset",
            "fast", "--epochs", "3", "--quiet", "--device", "cuda"]
    base += ["--dataset", "folder", "--data-path", args.data_path] if args.data_path else ["--dataset", "cifar10"]
    for n in (1, 2, 4):
        t0 = time.perf_counter()
        procs = [subprocess.Popen(base + ["--seed", str(i)], cwd=ROOT, stdout=subprocess.DEVNULL) for i in range(n)]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - t0
        print(f"{n} concurrent fast runs (3 epochs): {wall:.1f} s wall, {n * 3 * len(splits.train_y) / wall:,.0f} "
              f"img/s over all runs" + ("" if all(c == 0 for c in codes) else f" (exit codes {codes})"))


if __name__ == "__main__":
    main()
