import numpy as np
import pytest

from beta_core.damping import (
    classify,
    epoch_regimes,
    overshoots,
    regime_summary,
    settling_step,
    simulate_heavy_ball,
    zeta,
)
from beta_core.schedules import beta_momentum


@pytest.mark.parametrize("lr,mu,expected", [
    (0.1, 0.9, 0.158113883008419),
    (0.01, 0.9, 0.5),
    (0.0025, 0.9, 1.0),
    (0.001, 0.9, 1.58113883008419),
    (0.25, 0.9, 0.1),
])
def test_zeta_table(lr, mu, expected):
    assert zeta(lr, mu) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("lr", [0.1, 0.01, 0.0025, 1e-3])
def test_beta_rule_is_critical(lr):
    assert zeta(lr, beta_momentum(lr)) == pytest.approx(1.0)
    assert zeta(lr, beta_momentum(lr, lam=2.0), lam=2.0) == pytest.approx(1.0)


def test_classify_band():
    assert classify(0.5) == "underdamped"
    assert classify(0.95) == "critical" and classify(1.1) == "critical"
    assert classify(1.11) == "overdamped"
    assert classify(0.95, tol=0.01) == "underdamped"


def test_epoch_regimes():
    pairs = [(0.1, 0.9)] * 4 + [(0.0025, 0.9)] * 4 + [(0.001, 0.9)] * 3 + [(0.1, 0.9)]
    regs = epoch_regimes(pairs, steps_per_epoch=4)
    assert [r.regime for r in regs] == ["underdamped", "critical", "overdamped"]
    assert regs[2].fractions == {"underdamped": 0.25, "critical": 0.0, "overdamped": 0.75}
    med, reg, fr = regime_summary([(0.0025, 0.9)])
    assert med == pytest.approx(1.0) and reg == "critical" and fr["critical"] == 1.0


def test_critical_settles_fastest_and_without_overshoot():
    lr = 0.01
    crit = simulate_heavy_ball([1.0], lr, beta_momentum(lr), steps=2000)
    under = simulate_heavy_ball([1.0], lr, 0.9, steps=2000)
    over = simulate_heavy_ball([1.0], lr, 0.3, steps=2000)
    s_crit, s_under, s_over = (settling_step(t) for t in (crit, under, over))
    assert s_crit is not None and s_crit < s_under and s_crit < s_over
    assert overshoots(under) and not overshoots(crit)


def test_simulator_2d_and_rule():
    traj = simulate_heavy_ball([1.0, 10.0], 0.01, lambda step, lr: beta_momentum(lr), 50, x0=[1.0, -2.0])
    assert traj.shape == (51, 2) and np.all(traj[0] == [1.0, -2.0])
    # heavy ball with mu = 0 is gradient descent: x <- (1 - lr*lam) x
    gd = simulate_heavy_ball([2.0], 0.1, 0.0, steps=3)
    assert gd[:, 0] == pytest.approx([1, 0.8, 0.64, 0.512])


def test_settling_helpers():
    assert settling_step(np.array([[1.0], [0.1], [1e-4], [1e-5]])) == 2
    assert settling_step(np.array([[1.0], [1.0]])) is None


@pytest.mark.parametrize("call,fragment", [
    (lambda: zeta(0.0, 0.9), "lr: 0.0"),
    (lambda: zeta(0.1, 1.2), "mu: 1.2"),
    (lambda: zeta(0.1, 0.9, lam=0.0), "lam: 0.0"),
    (lambda: simulate_heavy_ball([0.0], 0.1, 0.9, 10), "curvature: 0.0"),
    (lambda: simulate_heavy_ball([1.0], 0.1, 0.9, 0), "steps: 0"),
    (lambda: simulate_heavy_ball([1.0], 0.1, 0.9, 5, x0=[1.0, 2.0]), "x0"),
    (lambda: epoch_regimes([(0.1, 0.9)], 0), "steps_per_epoch: 0"),
    (lambda: regime_summary([]), "pairs"),
    (lambda: classify(1.0, tol=1.0), "tol: 1.0"),
])
def test_bad_input(call, fragment):
    with pytest.raises(ValueError, match="expected") as err:
        call()
    assert fragment in str(err.value)
