"""What evaluations within epochs cost: sweep-cpu's training (small CNN, 5,000 training images,
batch 128) with ``evals_per_epoch`` 4 on ``eval_images`` 256 test images against the same run
without them, alternating order, on this machine in this run. Prints the ratio of wall-clock
seconds (target <= 1.05: time-to-target between epochs must cost at most 5% of training).

Run: python benchmarks/bench_eval_every.py [--repeats 3] [--epochs 2] [--data-path CIFAR]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beta_core.config import plan_runs  # noqa: E402
from beta_core.data import load_splits  # noqa: E402
from beta_core.engine import Training  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--evals", type=int, default=4)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--data-path", default=None)
    args = ap.parse_args()
    data = {"dataset": "folder", "data_path": args.data_path} if args.data_path else {
        "dataset": "synthetic", "synthetic_train": 5600, "synthetic_test": 2000}
    over = {**data, "epochs": args.epochs, "device": "cpu"}
    base = plan_runs(["sgd-beta"], [0], "sweep-cpu", over)[0]
    evals = plan_runs(["sgd-beta"], [0], "sweep-cpu", {**over, "evals_per_epoch": args.evals,
                                                        "eval_images": args.images})[0]
    splits = load_splits(base.data, "data")
    times = {"off": [], "on": []}
    for k in range(args.repeats):
        for name, cfg in (("off", base), ("on", evals)) if k % 2 == 0 else (("on", evals), ("off", base)):
            t = Training(cfg, splits=splits)
            for _ in t.run():
                pass
            times[name].append(t.summary["wall_seconds"])
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"{len(splits.train_y)} training images, {args.epochs} epochs, {args.evals} evaluations per epoch on "
          f"{args.images} test images; {args.repeats} runs each, median wall-clock")
    print(f"without: {off:.2f} s   with: {on:.2f} s   ratio with / without: {on / off:.3f}   target <= 1.05 -> "
          f"{'MET' if on / off <= 1.05 else 'NOT MET'}")


if __name__ == "__main__":
    main()
