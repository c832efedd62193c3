"""Damping ratio, regime classification and a heavy-ball simulator on quadratics.

Heavy-ball SGD, ``v <- mu*v - lr*g; w <- w + v``, on a quadratic of curvature
``lam`` is, in the continuous limit with time step ``sqrt(lr)``, the damped
oscillator ``x'' + ((1-mu)/sqrt(lr)) x' + lam x = 0``. Its damping ratio is

    zeta = (1 - mu) / (2 * sqrt(lam * lr))

==========  ============  =====================================
regime      zeta          behaviour
==========  ============  =====================================
under       < 1 - tol     oscillates, overshoots the minimum
critical    within tol    fastest settling without overshoot
over        > 1 + tol     sluggish, creeps towards the minimum
==========  ============  =====================================

Worked values: mu = 0.9 at lr = 0.1 gives zeta = 0.15811 (under); at lr = 0.0025,
zeta = 1 (critical); at lr = 0.001, 1.58 (over).

DECISION (ours): the critical band is ``|zeta - 1| <= tol`` with ``tol = 0.1`` by
default. The beta rule sits at zeta = 1 exactly unless clamped; 10% is wide
enough to absorb the first-order vs exact-discrete difference at lr <= 0.01 and
narrow enough that constant 0.9 is only "critical" for lr within about
[0.0021, 0.0031]. An epoch's regime is the regime of its median zeta; the
fractions of steps in each regime are reported too.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .schedules import check_finite_positive, check_momentum

__all__ = ["REGIMES", "zeta", "classify", "EpochRegime", "epoch_regimes", "regime_summary",
           "simulate_heavy_ball", "settling_step", "overshoots"]

REGIMES = ("underdamped", "critical", "overdamped")
DEFAULT_TOL = 0.1  # half-width of the critical band around zeta = 1


def zeta(lr: float, mu: float, lam: float = 1.0) -> float:
    """Damping ratio ``(1 - mu) / (2*sqrt(lam*lr))``.

    >>> round(zeta(0.1, 0.9), 5)
    0.15811
    """
    check_finite_positive("lr", lr), check_finite_positive("lam", lam)
    return (1.0 - check_momentum("mu", mu)) / (2.0 * math.sqrt(lam * lr))


def classify(z: float, tol: float = DEFAULT_TOL) -> str:
    """``"underdamped"``, ``"critical"`` or ``"overdamped"`` for a damping ratio."""
    if not 0 <= tol < 1:
        raise ValueError(f"Invalid tol: {tol!r} (expected a band half-width in [0, 1))")
    if not math.isfinite(z) or z < 0:
        raise ValueError(f"Invalid zeta: {z!r} (expected a finite number >= 0)")
    if z < 1 - tol:
        return "underdamped"
    return "overdamped" if z > 1 + tol else "critical"


@dataclass(frozen=True)
class EpochRegime:
    """Damping summary of one epoch."""

    epoch: int
    zeta_median: float
    regime: str                 # regime of the median zeta
    fractions: dict             # share of steps in each regime


def regime_summary(pairs: Sequence[tuple[float, float]], lam: float = 1.0,
                   tol: float = DEFAULT_TOL) -> tuple[float, str, dict]:
    """(median zeta, its regime, fractions per regime) for a sequence of (lr, mu)."""
    if len(pairs) == 0:
        raise ValueError("Invalid pairs: empty (expected at least one (lr, mu) pair)")
    zs = [zeta(lr, mu, lam) for lr, mu in pairs]
    labels = [classify(z, tol) for z in zs]
    fractions = {r: labels.count(r) / len(labels) for r in REGIMES}
    med = float(np.median(zs))
    return med, classify(med, tol), fractions


def epoch_regimes(pairs: Sequence[tuple[float, float]], steps_per_epoch: int, lam: float = 1.0,
                  tol: float = DEFAULT_TOL) -> list[EpochRegime]:
    """Per-epoch regimes from the (lr, mu) of every step, in step order."""
    if steps_per_epoch < 1:
        raise ValueError(f"Invalid steps_per_epoch: {steps_per_epoch!r} (expected >= 1)")
    out = []
    for e, start in enumerate(range(0, len(pairs), steps_per_epoch)):
        med, reg, fr = regime_summary(pairs[start:start + steps_per_epoch], lam, tol)
        out.append(EpochRegime(e, med, reg, fr))
    return out


MomentumArg = float | Callable[[int, float], float]


def simulate_heavy_ball(curvatures: Sequence[float], lr: float, momentum: MomentumArg,
                        steps: int, x0: Sequence[float] | None = None) -> np.ndarray:
    """Heavy ball on ``f(x) = sum(lam_i * x_i**2) / 2`` from rest at ``x0``.

    ``curvatures`` has one entry per dimension (1-D or 2-D for the teaching page);
    ``momentum`` is a number or a rule ``f(step, lr) -> mu``. Returns the
    trajectory, shape ``(steps + 1, dims)``, starting with ``x0`` (default all ones).
    """
    lams = np.asarray([check_finite_positive("curvature", float(c)) for c in curvatures])
    check_finite_positive("lr", lr)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Invalid steps: {steps!r} (expected an integer >= 1)")
    x = np.ones_like(lams) if x0 is None else np.asarray(x0, dtype=float)
    if x.shape != lams.shape:
        raise ValueError(f"Invalid x0: shape {x.shape} (expected {lams.shape}, one value per curvature)")
    mu = None if callable(momentum) else check_momentum("momentum", momentum)
    rule = momentum if callable(momentum) else (lambda _s, _lr: mu)
    v = np.zeros_like(x)
    traj = np.empty((steps + 1, len(lams)))
    traj[0] = x
    for t in range(steps):
        v = rule(t, lr) * v - lr * lams * x
        x = x + v
        traj[t + 1] = x
    return traj


def settling_step(traj: np.ndarray, tol: float = 1e-3) -> int | None:
    """First step after which every coordinate stays within ``tol`` of 0 (None if never)."""
    inside = np.all(np.abs(np.asarray(traj).reshape(len(traj), -1)) < tol, axis=1)
    outside = np.nonzero(~inside)[0]
    if len(outside) == 0:
        return 0
    last = int(outside[-1])
    return last + 1 if last + 1 < len(inside) else None


def overshoots(traj: np.ndarray) -> bool:
    """Whether any coordinate crosses zero (changes sign from its start)."""
    t = np.asarray(traj).reshape(len(traj), -1)
    return bool(np.any(np.sign(t[1:]) * np.sign(t[0]) < 0))


def simulate_bounded(curvatures: Sequence[float], lr: float, mu: float, steps: int,
                     bound: float = 10.0) -> tuple[np.ndarray, int | None]:
    """A heavy-ball trajectory from x = 1 in every direction, cut before its first step past
    ``bound`` in size: (the steps before it, that step or None). A diverging run overflows to inf
    and nan within a few hundred steps; cut there, no axis ever stretches to 1e133."""
    with np.errstate(over="ignore", invalid="ignore"):
        traj = simulate_heavy_ball(curvatures, lr, mu, steps, x0=[1.0] * len(curvatures))
        past = ~np.all(np.abs(traj) <= bound, axis=1)  # nan counts as past
    if not past.any():
        return traj, None
    k = int(np.argmax(past))
    return traj[:k], k


def velocity(traj: np.ndarray) -> np.ndarray:
    """v(t) = x(t) - x(t-1), the heavy ball's own velocity; the ball starts at rest."""
    return np.diff(traj, axis=0, prepend=traj[:1])
