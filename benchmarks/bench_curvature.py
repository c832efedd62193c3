"""Cost of measured curvature, against the training it measures, in the same run.

1. Per-epoch measurement (``curvature_every_epoch``, default settings: 128 fixed images,
   Lanczos budget 24 Hessian-vector products, warm-started) against the epoch's training time,
   for the quick-cpu epoch size and a full CIFAR-10-sized epoch (45,000 images).
   Target: <= 10% of an epoch on the small CNN (at which size: printed for both).
2. The ``beta-measured`` rule (one product every ``curvature_every`` = 100 steps, plus one
   Lanczos measurement before the first step) against ``sgd-beta`` on the same data: per-step
   overhead in steady state (target <= 5%) and the one-time start-up cost.
3. torch.func products against curvlinops-for-pytorch's HessianLinearOperator (when it is
   installed): seconds per Hessian-vector product on the same model and batch.

Run: python benchmarks/bench_curvature.py [--images 6000]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from beta_core.config import resolve_config
from beta_core.curvature import HessianOperator, top_hessian_eigenvalues
from beta_core.data import make_synthetic
from beta_core.engine import Training
from beta_core.records import EPOCH


def epoch_and_measurement(n_images: int, epochs: int = 3) -> tuple[float, float, int, float]:
    splits = make_synthetic(n_images, 1000, seed=0)
    cfg = resolve_config("sgd-beta", dataset="synthetic", epochs=epochs, curvature_every_epoch=True, device="cpu",
                         val_fraction=0.0)
    t = Training(cfg, splits=splits)
    eps = [r for r in t.run() if r["kind"] == EPOCH]
    step = t.step_seconds / epochs
    meas = statistics.median(r["curvature_seconds"] for r in eps[1:])  # warm-started epochs
    # accuracy of the cheap default: the last epoch's value against a converged Lanczos (tol 1e-8)
    loader, n = t.train_loader, cfg.curvature_images
    ref = top_hessian_eigenvalues(t.model, F.cross_entropy, [(loader.normalise(loader.x[:n]), loader.y[:n])],
                                  max_hvps=400, tol=1e-8)[0]
    return step, meas, int(statistics.median(r["curvature_hvps"] for r in eps[1:])), eps[-1]["lam_max"] / ref - 1


def rule_overhead(n_images: int, epochs: int = 3) -> tuple[float, float, float]:
    splits = make_synthetic(n_images, 1000, seed=0)
    times = {}
    for method in ("sgd-beta", "sgd-beta-measured", "sgd-beta", "sgd-beta-measured"):
        cfg = resolve_config(method, dataset="synthetic", epochs=epochs, device="cpu", val_fraction=0.0)
        t = Training(cfg, splits=splits)
        recs = list(t.run())
        steps = [r for r in recs if r["kind"] == "step"]
        # steady state: step-loop seconds of the epochs after the first (the start-up Lanczos is in epoch 0)
        per_epoch = t.step_seconds
        first = next(r for r in recs if r["kind"] == EPOCH)
        times.setdefault(method, []).append((per_epoch, first["time"], len(steps)))
    base = statistics.mean(p for p, _, _ in times["sgd-beta"])
    meas = statistics.mean(p for p, _, _ in times["sgd-beta-measured"])
    start = (statistics.mean(f for _, f, _ in times["sgd-beta-measured"])
             - statistics.mean(f for _, f, _ in times["sgd-beta"]))
    return base, meas, start


def products(n: int = 128, reps: int = 10) -> dict[str, float]:
    from beta_core.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig("small_cnn")).eval()
    x, y = torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,))
    op = HessianOperator(model, F.cross_entropy, [(x, y)])
    v = torch.randn(op.dim)
    op.matvec(v)
    t0 = time.perf_counter()
    for _ in range(reps):
        op.matvec(v)
    out = {"torch.func (jvp of grad)": (time.perf_counter() - t0) / reps}
    try:
        from curvlinops import HessianLinearOperator
    except ImportError:
        out["curvlinops"] = None
        return out
    params = [p for p in model.parameters()]
    H = HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), params, [(x, y)])
    H @ v
    t0 = time.perf_counter()
    for _ in range(reps):
        H @ v
    out["curvlinops HessianLinearOperator"] = (time.perf_counter() - t0) / reps
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=6000, help="the small epoch (quick-cpu: 6,000)")
    args = ap.parse_args()
    print(f"small CNN (width 16), CPU, {torch.get_num_threads()} threads; curvature on 128 fixed images")
    for n in (args.images, 45000):
        step, meas, hvps, err = epoch_and_measurement(n)
        r = meas / step
        print(f"epoch of {n:>6} images: training {step:6.2f} s, measurement {meas:5.2f} s ({hvps} products, "
              f"{err:+.2%} vs converged) -> {r:6.1%} of the epoch  target <= 10% -> "
              f"{'MET' if r <= 0.10 else 'NOT MET'}")
    base, meas, _ = rule_overhead(args.images)
    r = meas / base - 1
    print(f"beta-measured vs sgd-beta, {args.images} images x 3 epochs: step loops {meas:.2f} s vs {base:.2f} s -> "
          f"overhead {r:+.1%} per step in steady state (target <= 5%)")
    for name, sec in products().items():
        print(f"Hessian-vector product, {name:<34}: " + ("not installed" if sec is None else f"{1000 * sec:7.1f} ms"))


if __name__ == "__main__":
    main()
