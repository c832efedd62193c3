"""Statistics for comparisons, on scipy.stats: intervals, paired differences, speedups, verdicts.

================  ======================================================  =====================
quantity          estimate and 95% interval                               scipy
================  ======================================================  =====================
mean over seeds   mean, Student t interval                                ``stats.t.interval``
paired diff       mean of (method - baseline) per shared seed, paired t   ``stats.ttest_rel``
speedup           geometric mean of paired ratios baseline / method of    ``stats.ttest_1samp``
                  time-to-target, paired t on their logs (sweeps use it;  (on the log ratios)
                  chosen by simulation, docs/decisions.md)
speedup (old)     median(baseline) / median(method), paired percentile    ``stats.bootstrap``
                  bootstrap: the candidate the simulation rejected, kept  (paired, percentile)
                  so ``benchmarks/sim_speedup_interval.py`` can compare
detectable diff   smallest true mean difference a paired t test finds     ``stats.nct``
                  with 80% power, from the observed paired sd and n
equivalence       two one-sided t tests (TOST) against +-margin: the 90%   ``stats.ttest_1samp``
                  interval of the mean difference inside the margin
family            Holm's step-down adjustment of the claims' p-values     (by hand: not in scipy)
================  ======================================================  =====================

Censoring: a run that never reaches the target is never dropped: ``speedup_log_t`` counts it at
the end of its training ("at least that long"); the old bootstrap gives it time ``inf``. An
interval that cannot be computed is reported as ``None`` with the verdict "undetermined".
Verdicts read the interval only: above the null value -> "faster" / "higher", below -> "slower"
/ "lower", containing it -> "no detectable difference at n = k".
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats
from scipy.optimize import brentq

__all__ = ["mean_ci", "paired_difference", "speedup", "verdict", "proportion_ci", "LEVEL", "POWER",
           "detectable_difference", "equivalence", "holm", "speedup_log_t",
           "seeds_needed"]

LEVEL = 0.95
POWER = 0.8


def _clean(values) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def mean_ci(values, level: float = LEVEL, bounds: tuple[float, float] | None = None) -> dict:
    """n, mean, std and the t interval of the mean (None where n < 2). ``bounds``: the range the
    quantity cannot leave (an accuracy: 0 and 1); the interval is cut there and ``clipped`` says so.

    >>> mean_ci([0.02, 0.30], bounds=(0, 1))["ci_low"], mean_ci([0.02, 0.30], bounds=(0, 1))["clipped"]
    (0.0, True)
    """
    x = _clean(values)
    n = len(x)
    out = {"n": n, "mean": float(x.mean()) if n else None, "std": float(x.std(ddof=1)) if n > 1 else None,
           "ci_low": None, "ci_high": None, "clipped": False}
    if n > 1:
        sem = stats.sem(x)
        lo, hi = (x.mean(), x.mean()) if sem == 0 else stats.t.interval(level, n - 1, loc=x.mean(), scale=sem)
        if bounds is not None:
            out["clipped"] = bool(lo < bounds[0] or hi > bounds[1])
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        out.update(ci_low=float(lo), ci_high=float(hi))
    return out


def paired_difference(method, baseline, level: float = LEVEL) -> dict:
    """Mean of ``method - baseline`` over pairs (same seed), paired t interval and p-value.

    Pairs with a missing value on either side are left out (and counted in ``n``)."""
    pairs = [(m, b) for m, b in zip(method, baseline) if m is not None and b is not None
             and math.isfinite(m) and math.isfinite(b)]
    n = len(pairs)
    out = {"n": n, "mean_diff": None, "sd": None, "ci_low": None, "ci_high": None, "p": None, "test": "paired t"}
    if n == 0:
        return out
    m, b = np.array(pairs).T
    d = m - b
    out["mean_diff"] = float(d.mean())
    if n > 1:
        out["sd"] = float(d.std(ddof=1))  # the spread power and --plan-n read
        if np.all(d == d[0]):  # no spread: the interval is the point (scipy would return nan)
            out.update(ci_low=float(d[0]), ci_high=float(d[0]), p=0.0 if d[0] != 0 else 1.0)
        else:
            res = stats.ttest_rel(m, b)
            ci = res.confidence_interval(level)
            out.update(ci_low=float(ci.low), ci_high=float(ci.high), p=float(res.pvalue))
    return out


def _median_ratio(base, meth, axis=-1):
    mb, mm = np.median(base, axis=axis), np.median(meth, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isinf(mb) & np.isinf(mm), np.nan, mb / mm)


def speedup(baseline_times, method_times, level: float = LEVEL, n_resamples: int = 9999, seed: int = 0) -> dict:
    """Speedup of a method over the baseline: median(baseline) / median(method) time-to-target,
    paired by seed; ``None`` entries are censored runs (never reached the target: ``inf``).

    Interval: paired percentile bootstrap over seeds (scipy.stats.bootstrap)."""
    if len(baseline_times) != len(method_times):
        raise ValueError(f"Invalid times: {len(baseline_times)} baseline vs {len(method_times)} method values "
                         "(expected one pair per shared seed)")
    inf = lambda v: math.inf if v is None else float(v)  # noqa: E731
    b = np.array([inf(v) for v in baseline_times])
    m = np.array([inf(v) for v in method_times])
    n = len(b)
    out = {"n": n, "censored_baseline": int(np.isinf(b).sum()), "censored_method": int(np.isinf(m).sum()),
           "ratio": None, "ci_low": None, "ci_high": None, "method": "paired percentile bootstrap of the ratio "
                                                                   "of medians"}
    if n == 0:
        return out
    r = float(_median_ratio(b, m))
    out["ratio"] = None if math.isnan(r) else r
    if n > 1 and math.isfinite(r) and len(set(zip(b, m))) > 1:
        with warnings.catch_warnings(), np.errstate(all="ignore"):  # inf resamples of censored runs
            warnings.simplefilter("ignore")
            res = stats.bootstrap((b, m), _median_ratio, paired=True, vectorized=True, n_resamples=n_resamples,
                                  confidence_level=level, method="percentile", random_state=seed)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if not (math.isnan(lo) or math.isnan(hi)):
            out.update(ci_low=lo, ci_high=hi)
    elif n > 1 and math.isfinite(r):  # every pair identical: the interval is the point
        out.update(ci_low=r, ci_high=r)
    return out


def verdict(ci_low, ci_high, null: float, n: int, above: str = "faster", below: str = "slower") -> str:
    """The verdict an interval supports against the ``null`` value (1 for ratios, 0 for differences)."""
    if ci_low is None or ci_high is None:
        return f"undetermined at n = {n}"
    if ci_low > null:
        return above
    if ci_high < null:
        return below
    return f"no detectable difference at n = {n}"


def proportion_ci(k: int, n: int, level: float = LEVEL) -> dict:
    """A hit rate k/n with its Wilson interval (``scipy.stats.binomtest(...).proportion_ci``)."""
    if n == 0:
        return {"k": 0, "n": 0, "rate": None, "ci_low": None, "ci_high": None}
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return {"k": k, "n": n, "rate": k / n, "ci_low": float(ci.low), "ci_high": float(ci.high)}


def detectable_difference(sd: float | None, n: int, power: float = POWER, level: float = LEVEL) -> float | None:
    """The smallest true mean paired difference that a two-sided paired t test at ``1 - level``
    detects with probability ``power``, for a paired spread ``sd`` over ``n`` pairs (noncentral
    t). None where it cannot be said (n < 2, no spread).

    >>> round(detectable_difference(1.0, 10), 3)  # effect size d = 1 at n = 10 has 80.3% power
    0.996
    """
    if n < 2 or sd is None or not math.isfinite(sd) or sd <= 0:
        return None
    df, crit = n - 1, stats.t.ppf(1 - (1 - level) / 2, n - 1)

    def reach(delta: float) -> float:
        nc = delta * math.sqrt(n) / sd
        p = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
        if math.isnan(p):  # scipy's nct loses precision far in the tail: the normal limit is exact enough there
            p = float(stats.norm.sf(crit - nc) + stats.norm.cdf(-crit - nc))
        return p - power

    hi = sd
    while reach(hi) < 0:
        hi *= 2
    return float(brentq(reach, 0.0, hi))


def equivalence(diffs, margin: float, level: float = LEVEL) -> dict:
    """Two one-sided t tests of paired differences against ``+-margin`` (TOST): equivalent when
    both reject at ``1 - level``, i.e. the ``2 level - 1`` (90%) interval lies inside the margin."""
    d = _clean(diffs)
    out = {"margin": margin, "n": len(d), "p": None, "ci_low": None, "ci_high": None, "equivalent": False}
    if len(d) < 2:
        return out
    if np.all(d == d[0]):  # no spread: the interval is the point
        out.update(ci_low=float(d[0]), ci_high=float(d[0]), p=0.0 if abs(d[0]) < margin else 1.0)
    else:
        lower = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
        upper = stats.ttest_1samp(d, margin, alternative="less").pvalue
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(2 * level - 1)
        out.update(p=float(max(lower, upper)), ci_low=float(ci.low), ci_high=float(ci.high))
    out["equivalent"] = out["p"] < 1 - level
    return out


def holm(pvalues) -> list[float | None]:
    """Holm's step-down adjusted p-values (None entries stay None and are not in the family).

    >>> holm([0.01, 0.04, None, 0.03])
    [0.03, 0.06, None, 0.06]
    """
    idx = sorted((i for i, p in enumerate(pvalues) if p is not None), key=lambda i: pvalues[i])
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (len(idx) - rank) * pvalues[i]))
        out[i] = round(running, 12)
    return out


def speedup_log_t(baseline_times, method_times, baseline_caps=None, method_caps=None,
                  level: float = LEVEL) -> dict:
    """Speedup of a method over the baseline as the geometric mean of the paired ratios
    baseline / method, with the paired t interval of their logs (the method chosen by the
    simulation in docs/decisions.md, "Speedup intervals"). A censored run (``None``: never
    reached the target) counts at its cap, the end of its training: "at least that long", so a
    censored pair can only shrink the speedup it shows."""
    caps_b = baseline_caps or [None] * len(baseline_times)
    caps_m = method_caps or [None] * len(method_times)
    b = [v if v is not None else c for v, c in zip(baseline_times, caps_b)]
    m = [v if v is not None else c for v, c in zip(method_times, caps_m)]
    out = {"n": len(b), "censored_baseline": sum(v is None for v in baseline_times),
           "censored_method": sum(v is None for v in method_times), "ratio": None, "ci_low": None, "ci_high": None,
           "p": None, "method": "geometric mean of paired ratios, paired t on their logs; censored runs at "
                               "their training's end"}
    logs = np.array([math.log(x / y) for x, y in zip(b, m) if x and y and x > 0 and y > 0])
    out["n_used"], out["logs"] = len(logs), logs.tolist()
    out["sd"] = float(logs.std(ddof=1)) if len(logs) > 1 else None
    if len(logs) == 0:
        return out
    out["ratio"] = float(math.exp(logs.mean()))
    if len(logs) > 1:
        if np.all(logs == logs[0]):  # no spread: the interval is the point
            out.update(ci_low=out["ratio"], ci_high=out["ratio"], p=1.0 if logs[0] == 0 else 0.0)
        else:
            res = stats.ttest_1samp(logs, 0.0)
            ci = res.confidence_interval(level)
            out.update(ci_low=float(math.exp(ci.low)), ci_high=float(math.exp(ci.high)), p=float(res.pvalue))
    return out


def seeds_needed(sd: float | None, delta: float, power: float = POWER, level: float = LEVEL,
                 most: int = 1000) -> int | None:
    """The fewest seeds (pairs) whose 80% detectable difference is at most ``delta``, for a
    paired spread ``sd`` measured in a pilot; None without a spread or beyond ``most``.

    >>> seeds_needed(1.0, 1.0)  # effect size 1: n = 10 has 80.3% power, n = 9 less
    10
    """
    if sd is None or not (delta > 0):
        return None
    for n in range(2, most + 1):
        d = detectable_difference(sd, n, power, level)
        if d is not None and d <= delta:
            return n
    return None
