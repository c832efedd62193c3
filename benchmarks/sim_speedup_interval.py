"""Which speedup interval keeps its promise? A simulation (issue 24).

Paired times-to-target of a baseline and a method, one pair per seed: a shared seed effect
(log-normal, sd 0.15) times each run's own noise (log-normal, sd 0.12), the method faster by
a factor (1: no difference, 1.5: the power check). Times are read on a grid of a quarter epoch
(a sweep's 4 evaluations per epoch; ties happen) and a run slower than 6 epochs never reaches
the target (censored at the end of training, 6 epochs). For n = 3, 5, 10 seeds and each
candidate: how often its 95% interval calls "faster" or "slower" when nothing differs (should
be <= 5%), and how often it calls "faster" at a true 1.5x.

Candidates: the percentile bootstrap of the ratio of medians (what sweeps used), BCa, a
paired t on the log ratios (censored runs at the end of training), an exact sign-flip
permutation test of the log ratios.

Run: python benchmarks/sim_speedup_interval.py [--trials 400] [--resamples 999]
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beta_core.stats import speedup, speedup_log_t, verdict  # noqa: E402

BASE, GRID, CAP = 3.0, 0.25, 6.0  # epochs to target, evaluation grid, end of training (epochs)


def draw(rng, n: int, factor: float) -> tuple[list, list]:
    seed = rng.normal(0, 0.15, n)
    b = BASE * np.exp(seed + rng.normal(0, 0.12, n))
    m = BASE * np.exp(seed + rng.normal(0, 0.12, n)) / factor
    read = lambda t: [None if v > CAP else math.ceil(v / GRID) * GRID for v in t]  # noqa: E731
    return read(b), read(m)


def bootstrap_verdict(b, m, method: str, resamples: int) -> str:
    if method == "percentile":
        s = speedup(b, m, n_resamples=resamples)
        return verdict(s["ci_low"], s["ci_high"], 1.0, s["n"])
    inf = np.array([math.inf if v is None else v for v in b]), np.array([math.inf if v is None else v for v in m])
    if len(set(zip(*inf))) < 2:
        return "undetermined"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = stats.bootstrap(inf, lambda x, y, axis=-1: np.median(x, axis=axis) / np.median(y, axis=axis),
                              paired=True, vectorized=True, n_resamples=resamples, method="BCa", random_state=0)
    lo, hi = res.confidence_interval
    return "undetermined" if math.isnan(lo) or math.isnan(hi) else verdict(lo, hi, 1.0, len(b))


def log_t_verdict(b, m) -> str:
    s = speedup_log_t(b, m, [CAP] * len(b), [CAP] * len(m))
    return verdict(s["ci_low"], s["ci_high"], 1.0, s["n"])


def sign_flip_verdict(b, m) -> str:
    logs = np.array([math.log((x or CAP) / (y or CAP)) for x, y in zip(b, m)])
    obs = abs(logs.mean())
    flips = [abs(np.mean(logs * np.array(s))) for s in itertools.product((1, -1), repeat=len(logs))]
    p = np.mean([f >= obs - 1e-12 for f in flips])
    if p >= 0.05:
        return "no detectable difference"
    return "faster" if logs.mean() > 0 else "slower"


def rates(n: int, factor: float, trials: int, resamples: int) -> dict[str, float]:
    rng = np.random.default_rng(1000 * n + int(10 * factor))
    calls = {"percentile bootstrap": 0, "BCa bootstrap": 0, "paired t on log ratios": 0, "sign-flip permutation": 0}
    want = ("faster", "slower") if factor == 1 else ("faster",)
    for _ in range(trials):
        b, m = draw(rng, n, factor)
        got = {"percentile bootstrap": bootstrap_verdict(b, m, "percentile", resamples),
               "BCa bootstrap": bootstrap_verdict(b, m, "BCa", resamples),
               "paired t on log ratios": log_t_verdict(b, m), "sign-flip permutation": sign_flip_verdict(b, m)}
        for k, v in got.items():
            calls[k] += v in want
    return {k: v / trials for k, v in calls.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--resamples", type=int, default=999)
    args = ap.parse_args()
    print(f"{args.trials} trials per cell; false = 'faster'/'slower' when nothing differs (want <= 5%); "
          "power = 'faster' at a true 1.5x")
    print(f"{'method':<24} " + " ".join(f"{'n=' + str(n) + ' false':>12} {'power':>6}" for n in (3, 5, 10)))
    table = {n: (rates(n, 1.0, args.trials, args.resamples), rates(n, 1.5, args.trials, args.resamples))
             for n in (3, 5, 10)}
    for name in table[3][0]:
        print(f"{name:<24} " + " ".join(f"{table[n][0][name]:>12.1%} {table[n][1][name]:>6.1%}" for n in (3, 5, 10)))


if __name__ == "__main__":
    main()
