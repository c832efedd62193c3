"""Attribution cost against one evaluation pass, and per-epoch attribution against an epoch.

1. Attribution over all test-split errors (default config, and the core: errors only, true-class
   breakdown) vs one evaluation pass over the test split. Target: core <= 2x.
2. ``epoch_scores`` (what ``attribution_every_epoch`` adds) vs one training epoch of the
   small CPU model. Target: <= 10%.

Run: python benchmarks/bench_attribution.py [--data-path X] [--epochs 3]
"""
from __future__ import annotations

import argparse
import time

from beta_core.attribution import AttributionConfig, attribute, epoch_scores
from beta_core.config import resolve_config
from beta_core.data import DataConfig, eval_loaders, load_splits, make_synthetic
from beta_core.engine import Training
from beta_core.models import evaluate
from beta_core.records import EPOCH


def best(fn, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-path", default=None)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    splits = (load_splits(DataConfig("folder", args.data_path, train_subset=8000)) if args.data_path
              else make_synthetic(8000, 2000))
    t = Training(resolve_config("sgd-beta", epochs=args.epochs, dataset="synthetic"), splits=splits)
    recs = list(t.run())
    ep = [r for r in recs if r["kind"] == EPOCH]
    model = t.model
    loader = eval_loaders(splits, t.device, t.channels_last)["test"]
    ev = best(lambda: evaluate(model, loader))
    core_cfg = AttributionConfig(by_predicted=False, contrast=False, score="grad_relative")
    core = best(lambda: attribute(model, loader, core_cfg))
    full = best(lambda: attribute(model, loader, AttributionConfig(score="grad_relative")))
    r = attribute(model, loader, core_cfg)
    epoch_time = t.step_seconds / args.epochs
    es = best(lambda: epoch_scores(model, t.test_loader))
    print(f"model small_cnn, {len(splits.train_y)} train / {len(loader.y)} test images, test acc "
          f"{ep[-1]['test_acc']:.3f} ({r['n_errors']} errors)")
    print(f"evaluation pass over the test split : {ev:7.3f} s")
    print(f"attribution, core (errors, by class): {core:7.3f} s  ratio {core / ev:5.2f}x  target <= 2 -> "
          f"{'MET' if core / ev <= 2 else 'NOT MET'}")
    print(f"attribution, default (+pred, +correct): {full:5.3f} s  ratio {full / ev:5.2f}x")
    print(f"per-epoch scores (512 test images)  : {es:7.3f} s  = {es / epoch_time:.1%} of a {epoch_time:.2f} s "
          f"epoch  target <= 10% -> {'MET' if es / epoch_time <= 0.10 else 'NOT MET'}")


if __name__ == "__main__":
    main()
