import math

import numpy as np
import pytest
from scipy import stats as sps

from beta_core.stats import mean_ci, paired_difference, speedup, verdict

T975_2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2), as printed in any t table (4.303)


def test_mean_ci_hand_example():
    r = mean_ci([1.0, 2.0, 3.0])
    half = T975_2 * 1.0 / math.sqrt(3)  # sd 1, n 3
    assert r["n"] == 3 and r["mean"] == 2.0 and r["std"] == 1.0
    assert r["ci_low"] == pytest.approx(2 - half) and r["ci_high"] == pytest.approx(2 + half)


def test_mean_ci_matches_scipy_and_handles_small_n():
    x = np.random.default_rng(0).normal(0.7, 0.02, 7)
    lo, hi = sps.t.interval(0.95, 6, loc=x.mean(), scale=sps.sem(x))
    r = mean_ci(x.tolist())
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi))
    assert mean_ci([0.5])["ci_low"] is None and mean_ci([])["mean"] is None
    assert mean_ci([0.5, None, float("nan"), 0.7])["n"] == 2


def test_paired_difference_hand_example_and_scipy():
    r = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])  # differences 1, 2, 3
    assert r["mean_diff"] == 2.0 and r["ci_low"] == pytest.approx(2 - T975_2 / math.sqrt(3))
    rng = np.random.default_rng(1)
    b = rng.normal(0.7, 0.02, 6)
    m = b + rng.normal(0.01, 0.01, 6)
    ref = sps.ttest_rel(m, b)
    r = paired_difference(m.tolist(), b.tolist())
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(tuple(ref.confidence_interval(0.95)))
    assert r["p"] == pytest.approx(ref.pvalue)


def test_paired_difference_drops_only_incomplete_pairs():
    r = paired_difference([0.7, None, 0.72], [0.69, 0.7, 0.70])
    assert r["n"] == 2 and r["mean_diff"] == pytest.approx(0.015)


def test_speedup_ratio_of_medians_and_bootstrap_interval():
    base = [100, 120, 110, 105, 115, 108, 112, 118]
    fast = [50, 61, 54, 52, 58, 55, 57, 60]
    r = speedup(base, fast)
    assert r["ratio"] == pytest.approx(np.median(base) / np.median(fast))
    assert 1.8 < r["ci_low"] <= r["ratio"] <= r["ci_high"] < 2.2
    assert verdict(r["ci_low"], r["ci_high"], 1.0, r["n"]) == "faster"


def test_speedup_censoring_is_counted_never_dropped():
    r = speedup([100, None, 110, 90], [60, 70, None, 65])
    assert r["censored_baseline"] == 1 and r["censored_method"] == 1 and r["n"] == 4
    # medians with the censored run as "never": baseline median(90, 100, 110, inf) = 105
    assert r["ratio"] == pytest.approx(105 / 67.5)
    allc = speedup([None, None], [None, None])
    assert allc["ratio"] is None and allc["ci_low"] is None
    assert verdict(allc["ci_low"], allc["ci_high"], 1.0, 2) == "undetermined at n = 2"


@pytest.mark.parametrize("lo,hi,expected", [(1.2, 1.5, "faster"), (0.5, 0.9, "slower"),
                                            (0.8, 1.3, "no detectable difference at n = 5")])
def test_verdict_rule(lo, hi, expected):
    assert verdict(lo, hi, 1.0, 5) == expected


def test_verdict_on_constructed_runs():
    rng = np.random.default_rng(2)
    base = rng.normal(0.70, 0.01, 8)
    assert verdict(**_ci(paired_difference((base + 0.03).tolist(), base.tolist())), null=0, n=8,
                   above="higher", below="lower") == "higher"
    assert verdict(**_ci(paired_difference((base - 0.03).tolist(), base.tolist())), null=0, n=8,
                   above="higher", below="lower") == "lower"
    same = paired_difference((base + rng.normal(0, 0.01, 8)).tolist(), base.tolist())
    assert verdict(**_ci(same), null=0, n=8) == "no detectable difference at n = 8"


def _ci(r):
    return {"ci_low": r["ci_low"], "ci_high": r["ci_high"]}


@pytest.mark.slow
def test_paired_interval_covers_the_true_difference_95_percent():
    rng = np.random.default_rng(3)
    hits, draws = 0, 2000
    for _ in range(draws):
        base = rng.normal(0.7, 0.03, 5)
        meth = base + rng.normal(0.01, 0.02, 5)  # true mean difference 0.01
        r = paired_difference(meth.tolist(), base.tolist())
        hits += r["ci_low"] <= 0.01 <= r["ci_high"]
    assert 0.935 <= hits / draws <= 0.965, hits / draws


# ------------------------------------------------------------------ power, equivalence, families
def test_detectable_difference_against_published_power():
    from beta_core.stats import detectable_difference

    # A paired t test with effect size 1 at n = 10 has 80.31% power (G*Power; Cohen's tables): so
    # the 80% detectable difference for sd 1 lies just below 1.
    assert detectable_difference(1.0, 10) == pytest.approx(0.996, abs=5e-4)
    # Large n: (z_0.975 + z_0.8) * sd / sqrt(n)
    assert detectable_difference(0.02, 400) == pytest.approx((1.95996 + 0.84162) * 0.02 / 20, rel=0.01)
    assert detectable_difference(0.02, 3) > detectable_difference(0.02, 10)  # fewer seeds, coarser
    assert detectable_difference(None, 5) is None and detectable_difference(0.1, 1) is None


def test_equivalence_is_tost_against_scipy():
    from beta_core.stats import equivalence

    d = [0.001, -0.002, 0.0005, 0.0015, -0.001, 0.0]
    r = equivalence(d, 0.005)
    lo = sps.ttest_1samp(d, -0.005, alternative="greater").pvalue
    hi = sps.ttest_1samp(d, 0.005, alternative="less").pvalue
    assert r["p"] == pytest.approx(max(lo, hi)) and r["equivalent"]
    assert -0.005 < r["ci_low"] < r["ci_high"] < 0.005  # the 90% interval inside the margin
    wide = equivalence([0.01, -0.012, 0.02], 0.005)
    assert not wide["equivalent"] and equivalence([0.01], 0.005)["p"] is None


def test_holm_on_a_constructed_family():
    from beta_core.stats import holm

    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([None, 0.2]) == [None, 0.2] and holm([]) == []
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])


def test_speedup_log_t_against_scipy_and_censoring():
    from beta_core.stats import speedup_log_t

    base, meth = [100, 120, 110, 130], [52, 58, 60, 61]
    r = speedup_log_t(base, meth)
    logs = np.log(np.array(base) / np.array(meth))
    ci = sps.ttest_1samp(logs, 0).confidence_interval(0.95)
    assert r["ratio"] == pytest.approx(math.exp(logs.mean()))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert r["p"] == pytest.approx(sps.ttest_1samp(logs, 0).pvalue)
    # a run that never reached the target counts at the end of its training: "at least that long"
    c = speedup_log_t([100, None], [50, 50], [400, 400], [400, 400])
    assert c["censored_baseline"] == 1 and c["ratio"] == pytest.approx(math.sqrt(2 * 8))
    assert speedup_log_t([None], [None])["ratio"] is None


@pytest.mark.slow
def test_speedup_interval_keeps_its_promise_by_simulation():
    """The simulation that chose the speedup interval (benchmarks/sim_speedup_interval.py,
    docs/decisions.md): paired times from one distribution, with ties and censored runs. The
    chosen paired t on log ratios calls 'faster'/'slower' in at most ~5% at n = 3, 5, 10 (the
    allowance covers 400 trials' binomial noise), and the old percentile bootstrap did not."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sim_speedup_interval.py"
    spec = importlib.util.spec_from_file_location("sim", path)
    sim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sim)
    for n in (3, 5, 10):
        false = sim.rates(n, 1.0, 400, 499)
        assert false["paired t on log ratios"] <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 400), (n, false)
        if n == 3:
            assert false["percentile bootstrap"] > 0.08, false
    assert sim.rates(5, 1.5, 200, 499)["paired t on log ratios"] >= 0.8
