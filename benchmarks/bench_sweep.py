"""A sweep of N tiny runs against the same N runs launched one by one through the CLI.

Both sides train the same configs (3 methods x 4 seeds of a tiny synthetic run by default),
on this machine, in this run, alternating order to cancel drift. Prints the wall-clock
ratio sweep / one-by-one (target <= 1.05: a sweep must not cost more than running its runs
by hand) and the ratio of summed optimizer-step seconds (the training itself, which should
be ~1.0: the difference is orchestration, not compute).

Run: python benchmarks/bench_sweep.py [--seeds 4] [--epochs 2]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beta_core.store import Store  # noqa: E402

METHODS = ["sgd-constant", "sgd-beta", "sgd-hybrid"]


def flags(epochs: int) -> list[str]:
    return ["--dataset", "synthetic", "--set", "synthetic_train=1000", "--set", "synthetic_test=200", "--width", "8",
            "--epochs", str(epochs), "--batch-size", "50", "--device", "cpu", "--lr", "0.05", "--quiet"]


def cli(runs: Path, data: Path, *argv) -> None:
    subprocess.run([sys.executable, "-m", "beta_core", "--runs-dir", str(runs), "--data-dir", str(data), *argv],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_by_one(tmp: Path, seeds: int, epochs: int) -> tuple[float, float]:
    runs = tmp / f"single-{time.monotonic_ns()}"
    t0 = time.perf_counter()
    for s in range(seeds):
        for m in METHODS:
            cli(runs, tmp / "data", "train", "--method", m, "--seed", str(s), *flags(epochs))
    wall = time.perf_counter() - t0
    return wall, sum(r["summary"]["step_seconds"] for r in Store(runs).runs(kind="train"))


def as_sweep(tmp: Path, seeds: int, epochs: int) -> tuple[float, float]:
    runs = tmp / f"sweep-{time.monotonic_ns()}"
    t0 = time.perf_counter()
    cli(runs, tmp / "data", "sweep", "--methods", ",".join(METHODS), "--seeds", ",".join(map(str, range(seeds))),
        *flags(epochs))
    wall = time.perf_counter() - t0
    return wall, sum(r["summary"]["step_seconds"] for r in Store(runs).runs(kind="train"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    n = len(METHODS) * args.seeds
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cli(tmp / "warm", tmp / "data", "train", *flags(1))  # the data cache, made once for both sides
        a1, a1s = one_by_one(tmp, args.seeds, args.epochs)
        b1, b1s = as_sweep(tmp, args.seeds, args.epochs)
        b2, b2s = as_sweep(tmp, args.seeds, args.epochs)
        a2, a2s = one_by_one(tmp, args.seeds, args.epochs)
    one, sweep = (a1 + a2) / 2, (b1 + b2) / 2
    print(f"{n} tiny runs ({args.epochs} epochs, 1,000 synthetic images, width-8 CNN), mean of 2 alternating passes:")
    print(f"  one by one through the CLI : {one:7.2f} s wall   {(a1s + a2s) / 2:6.2f} s in optimizer steps")
    print(f"  one sweep                  : {sweep:7.2f} s wall   {(b1s + b2s) / 2:6.2f} s in optimizer steps")
    ratio = sweep / one
    met = "MET" if ratio <= 1.05 else "NOT MET"
    print(f"wall-clock ratio sweep / one-by-one : {ratio:.3f}   target <= 1.05 -> {met}")
    print(f"step-seconds ratio (same training)  : {(b1s + b2s) / (a1s + a2s):.3f}")
    print(f"per-run orchestration: one-by-one {(one - (a1s + a2s) / 2) / n:.2f} s, sweep "
          f"{(sweep - (b1s + b2s) / 2) / n:.2f} s (process start, data load, evaluation, store)")


if __name__ == "__main__":
    main()
