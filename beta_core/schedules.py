"""Learning-rate schedules and momentum rules as pure functions of the step.

Everything here is a closed form of ``step`` (and, for momentum, of the current
learning rate), plus one thin stateful wrapper, :class:`MomentumScheduler`, that
follows the torch scheduler protocol.

Momentum rules (``lr`` is the current learning rate, ``lam`` the curvature):

==========  ===============================================  ==================
rule        value                                            source
==========  ===============================================  ==================
constant    ``mu``                                           convention (0.9)
beta        ``clip(1 - 2*sqrt(lam*lr), mu_min, mu_max)``     the paper (lam=1)
exact       ``clip((1 - sqrt(lam*lr))**2, mu_min, mu_max)``  Polyak / Qian
hybrid      beta until a switch, then ``mu_c``               the paper; switch is ours
onecycle    0.95 -> 0.85 -> 0.95 mirroring the LR cycle      fastai / OneCycleLR
beta-       beta with ``lam`` = the measured top Hessian     ours (the engine
measured    eigenvalue, refreshed during training            refreshes ``lam``)
==========  ===============================================  ==================

Worked values of the beta rule (lam = 1)::

    lr      raw 1-2*sqrt(lr)   beta (clamped to [0, 0.99])
    0.25    0.000              0.000
    0.1     0.36754            0.36754
    0.01    0.8                0.8
    0.0025  0.9                0.9
    1e-6    0.998              0.99

Our decisions (the paper does not fix them), all configurable:

* ``lam`` defaults to 1, the paper's formula. A curvature estimate can be passed.
* Clamping: ``mu_min = 0.0`` because heavy-ball with negative momentum is not a
  damped oscillator any more (lr > 0.25 gives a negative raw value);
  ``mu_max = 0.99`` because lr -> 0 at the end of a cosine schedule gives mu -> 1,
  an effective step lr/(1-mu) that no longer shrinks with lr. The library does
  not warn on clamping (it never prints); :meth:`MomentumScheduler.last_clamped`
  reports it.
* Hybrid switch, default ``"auto"``: the first step, after the beta value has
  been below ``mu_c`` (the high-LR phase), at which it comes back up to ``mu_c``.
  At that step beta equals ``mu_c`` to first order, so mu is continuous. With
  lr never above ((1-mu_c)/2)**2 / lam there is no high-LR phase and the rule stays
  beta throughout. A float in [0, 1] switches at that fraction of ``total_steps``.
* Adam-like optimizers get the same formula on ``beta1``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

__all__ = [
    "LR_SCHEDULES", "WARMUP_SCHEDULES", "MOMENTUM_RULES", "LRSchedule", "MomentumRule", "MomentumScheduler",
    "constant_lr", "step_decay_lr", "cosine_lr", "linear_lr", "onecycle_lr", "lr_at",
    "beta_momentum", "exact_momentum", "onecycle_momentum", "hybrid_switch_lr",
    "momentum_at", "momentum_sequence", "effective_lr", "check_finite_positive", "check_momentum",
]

LR_SCHEDULES = ("constant", "step", "cosine", "linear", "onecycle")
WARMUP_SCHEDULES = ("cosine", "linear")  # the schedules that take a linear warm-up (one-cycle has its own ramp)
MOMENTUM_RULES = ("constant", "beta", "exact", "hybrid", "onecycle", "beta-measured")


# ---------------------------------------------------------------- validation
def check_finite_positive(name: str, value: float) -> float:
    """``value`` as a float if it is a finite number > 0, else a ValueError naming ``name``."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"Invalid {name}: {value!r} (expected a finite number > 0)")
    return float(value)


def check_momentum(name: str, value: float) -> float:
    """``value`` as a float if it is a momentum in [0, 1), else a ValueError naming ``name``."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value < 1:
        raise ValueError(f"Invalid {name}: {value!r} (expected a momentum in [0, 1))")
    return float(value)


def _step(step: int) -> int:
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"Invalid step: {step!r} (expected an integer >= 0)")
    return step


def _total(total_steps: int) -> int:
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"Invalid total_steps: {total_steps!r} (expected an integer >= 1)")
    return total_steps


def _fraction(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"Invalid {name}: {value!r} (expected a fraction in [0, 1])")
    return float(value)


# ---------------------------------------------------------------- LR schedules
def constant_lr(step: int, base_lr: float) -> float:
    """The same LR at every step."""
    _step(step)
    return check_finite_positive("base_lr", base_lr)


def step_decay_lr(step: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """``base_lr * gamma ** (step // step_size)`` (torch StepLR)."""
    _step(step)
    if not isinstance(step_size, int) or step_size < 1:
        raise ValueError(f"Invalid step_size: {step_size!r} (expected an integer >= 1)")
    if not 0 < gamma <= 1:
        raise ValueError(f"Invalid gamma: {gamma!r} (expected a factor in (0, 1])")
    return check_finite_positive("base_lr", base_lr) * gamma ** (step // step_size)


def _warmup(step: int, base_lr: float, warmup_steps: int) -> float | None:
    # 1. linear warm-up from base_lr/warmup_steps, so the LR is never exactly zero
    if warmup_steps < 0:
        raise ValueError(f"Invalid warmup_steps: {warmup_steps!r} (expected an integer >= 0)")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    return None


def _decay(step: int, base_lr: float, total_steps: int, warmup_steps: int, end_lr: float, shape: str) -> float:
    """Warm-up, then ``base_lr`` -> ``end_lr`` over the remaining steps along ``shape``
    (cosine or linear: one implementation, tinygrad's habit); held at ``end_lr`` past the end."""
    _step(step), _total(total_steps), check_finite_positive("base_lr", base_lr)
    warm = _warmup(step, base_lr, warmup_steps)
    if warm is not None:
        return warm
    span = max(1, total_steps - warmup_steps)
    t = min(step - warmup_steps, span) / span
    return _cos_interp(base_lr, end_lr, t) if shape == "cosine" else base_lr + (end_lr - base_lr) * t


def cosine_lr(step: int, base_lr: float, total_steps: int, warmup_steps: int = 0,
              min_lr: float = 0.0) -> float:
    """Optional linear warm-up, then cosine from ``base_lr`` to ``min_lr`` at ``total_steps``.

    The LR is held at ``min_lr`` past the end. With ``min_lr = 0`` the last steps
    approach zero, which is where the beta rule's ``mu_max`` clamp matters.

    >>> [round(cosine_lr(s, 0.1, 4), 4) for s in range(5)]
    [0.1, 0.0854, 0.05, 0.0146, 0.0]
    """
    if not 0 <= min_lr < base_lr:
        raise ValueError(f"Invalid min_lr: {min_lr!r} (expected 0 <= min_lr < base_lr={base_lr})")
    return _decay(step, base_lr, total_steps, warmup_steps, min_lr, "cosine")


def linear_lr(step: int, base_lr: float, total_steps: int, final_lr: float = 0.0,
              warmup_steps: int = 0) -> float:
    """Optional warm-up, then a straight line from ``base_lr`` to ``final_lr``.

    >>> [linear_lr(s, 0.1, 4, warmup_steps=2) for s in range(5)]
    [0.05, 0.1, 0.1, 0.05, 0.0]
    """
    if final_lr < 0:
        raise ValueError(f"Invalid final_lr: {final_lr!r} (expected >= 0)")
    return _decay(step, base_lr, total_steps, warmup_steps, final_lr, "linear")


def _cos_interp(start: float, end: float, t: float) -> float:
    return end + (start - end) / 2 * (1 + math.cos(math.pi * t))


def _onecycle_phase(step: int, total_steps: int, pct_start: float) -> tuple[int, float]:
    """(phase 0 or 1, progress within it), as torch OneCycleLR (two-phase)."""
    peak = max(1, round(pct_start * total_steps) - 1)
    if step <= peak:
        return 0, step / peak
    return 1, min(1.0, (step - peak) / max(1, total_steps - 1 - peak))


def onecycle_lr(step: int, max_lr: float, total_steps: int, pct_start: float = 0.3,
                div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """One-cycle LR: cosine up from ``max_lr/div_factor`` to ``max_lr``, then down to
    ``max_lr/(div_factor*final_div_factor)`` (torch OneCycleLR, anneal_strategy='cos')."""
    _step(step), _total(total_steps), check_finite_positive("max_lr", max_lr)
    _fraction("pct_start", pct_start)
    initial = max_lr / div_factor
    phase, t = _onecycle_phase(step, total_steps, pct_start)
    if phase == 0:
        return _cos_interp(initial, max_lr, t)
    return _cos_interp(max_lr, initial / final_div_factor, t)


@dataclass(frozen=True)
class LRSchedule:
    """A learning-rate schedule, resolved to closed form by :meth:`lr`."""

    name: str = "cosine"        # one of LR_SCHEDULES
    base_lr: float = 0.1        # peak LR (SGD on CIFAR-10 with batch 128: 0.1)
    total_steps: int = 1000     # optimizer steps in the whole run
    warmup_steps: int = 0       # linear warm-up steps (cosine, linear)
    min_lr: float = 0.0         # cosine floor; linear end value
    step_size: int = 1000       # steps between decays (step)
    gamma: float = 0.1          # decay factor (step)
    pct_start: float = 0.3      # rising fraction of the cycle (onecycle)

    def __post_init__(self) -> None:
        if self.name not in LR_SCHEDULES:
            raise ValueError(f"Unknown LR schedule: {self.name!r} (expected one of {', '.join(LR_SCHEDULES)})")
        check_finite_positive("base_lr", self.base_lr)
        _total(self.total_steps)
        self.lr(0)  # validates the remaining fields through the closed form

    def lr(self, step: int) -> float:
        """LR at ``step`` (0-based)."""
        return lr_at(self, step)


def lr_at(s: LRSchedule, step: int) -> float:
    """Closed form of an :class:`LRSchedule` at ``step``."""
    if s.name == "constant":
        return constant_lr(step, s.base_lr)
    if s.name == "step":
        return step_decay_lr(step, s.base_lr, s.step_size, s.gamma)
    if s.name == "cosine":
        return cosine_lr(step, s.base_lr, s.total_steps, s.warmup_steps, s.min_lr)
    if s.name == "linear":
        return linear_lr(step, s.base_lr, s.total_steps, s.min_lr, s.warmup_steps)
    return onecycle_lr(step, s.base_lr, s.total_steps, s.pct_start)


# ---------------------------------------------------------------- momentum rules
def beta_momentum(lr: float, lam: float = 1.0, mu_min: float = 0.0, mu_max: float = 0.99) -> float:
    """The paper's rule, ``clip(1 - 2*sqrt(lam*lr), mu_min, mu_max)``.

    >>> round(beta_momentum(0.1), 5), beta_momentum(0.0025), beta_momentum(0.5)
    (0.36754, 0.9, 0.0)
    """
    check_finite_positive("lr", lr), check_finite_positive("lam", lam)
    return min(mu_max, max(mu_min, 1.0 - 2.0 * math.sqrt(lam * lr)))


def exact_momentum(lr: float, lam: float = 1.0, mu_min: float = 0.0, mu_max: float = 0.99) -> float:
    """Exact discrete critical damping for curvature ``lam``: ``(1 - sqrt(lam*lr))**2``.

    Past ``lam*lr = 1`` the root ``sqrt(lam*lr)`` exceeds 1 and the square grows
    again, so the raw value is taken as 0 there (no momentum can make that stable).
    """
    check_finite_positive("lr", lr), check_finite_positive("lam", lam)
    root = math.sqrt(lam * lr)
    raw = (1.0 - root) ** 2 if root < 1 else 0.0
    return min(mu_max, max(mu_min, raw))


def onecycle_momentum(step: int, total_steps: int, pct_start: float = 0.3,
                      base_momentum: float = 0.85, max_momentum: float = 0.95) -> float:
    """Momentum mirroring the one-cycle LR: ``max -> base`` while the LR rises, back after."""
    _step(step), _total(total_steps)
    phase, t = _onecycle_phase(step, total_steps, _fraction("pct_start", pct_start))
    if phase == 0:
        return _cos_interp(max_momentum, base_momentum, t)
    return _cos_interp(base_momentum, max_momentum, t)


def hybrid_switch_lr(mu_c: float, lam: float = 1.0) -> float:
    """The LR at which the beta value equals ``mu_c``: ``((1-mu_c)/2)**2 / lam`` (0.0025 for 0.9)."""
    return ((1.0 - check_momentum("mu_c", mu_c)) / 2.0) ** 2 / check_finite_positive("lam", lam)


@dataclass(frozen=True)
class MomentumRule:
    """A momentum rule; :func:`momentum_at` evaluates it."""

    name: str = "beta"              # one of MOMENTUM_RULES
    mu: float = 0.9                 # constant value; hybrid's mu_c after the switch
    lam: float = 1.0                # curvature in the critical-damping formula (paper: 1)
    mu_min: float = 0.0             # clamp floor: negative momentum is not heavy ball
    mu_max: float = 0.99            # clamp ceiling: lr -> 0 would give mu -> 1
    switch: str | float = "auto"    # hybrid: "auto" (beta reaches mu) or fraction of training
    total_steps: int | None = None  # needed by onecycle and by a fractional hybrid switch
    pct_start: float = 0.3          # onecycle: rising fraction of the LR cycle
    base_momentum: float = 0.85     # onecycle: momentum at the LR peak
    max_momentum: float = 0.95      # onecycle: momentum at both ends

    def __post_init__(self) -> None:
        if self.name not in MOMENTUM_RULES:
            raise ValueError(f"Unknown momentum rule: {self.name!r} (expected one of {', '.join(MOMENTUM_RULES)})")
        check_momentum("mu", self.mu), check_finite_positive("lam", self.lam)
        check_momentum("mu_min", self.mu_min), check_momentum("mu_max", self.mu_max)
        if self.mu_min > self.mu_max:
            raise ValueError(f"Invalid mu_min/mu_max: {self.mu_min} > {self.mu_max} (expected mu_min <= mu_max)")
        check_momentum("base_momentum", self.base_momentum), check_momentum("max_momentum", self.max_momentum)
        if self.switch != "auto":
            if isinstance(self.switch, str) or isinstance(self.switch, bool):
                raise ValueError(f"Invalid switch: {self.switch!r} (expected 'auto' or a fraction in [0, 1])")
            _fraction("switch", self.switch)
        needs_total = self.name == "onecycle" or (self.name == "hybrid" and self.switch != "auto")
        if needs_total:
            if self.total_steps is None:
                raise ValueError(f"Invalid total_steps: None (expected an integer >= 1: the {self.name!r} rule "
                                 f"with switch={self.switch!r} needs the length of training)")
            _total(self.total_steps)

    def to_dict(self) -> dict:
        return asdict(self)


def _beta(rule: MomentumRule, lr: float) -> float:
    # lr == 0 happens at the end of torch's CosineAnnealingLR: use the limit, mu_max.
    return rule.mu_max if lr == 0 else beta_momentum(lr, rule.lam, rule.mu_min, rule.mu_max)


def momentum_at(rule: MomentumRule, step: int, lr: float, switched: bool = False) -> float:
    """Value of ``rule`` at ``step`` with current LR ``lr``.

    For a hybrid with ``switch="auto"`` the switch depends on the LR history, so the
    caller passes ``switched`` (see :func:`momentum_sequence` and
    :class:`MomentumScheduler`, which track it). ``lr == 0`` (the last step of a
    cosine schedule that ends at zero) gives the rules' limit, ``mu_max``.
    """
    _step(step)
    if lr != 0:
        check_finite_positive("lr", lr)
    if rule.name == "constant":
        return rule.mu
    if rule.name in ("beta", "beta-measured"):  # beta-measured: lam is the run's measured sharpness
        return _beta(rule, lr)
    if rule.name == "exact":
        return rule.mu_max if lr == 0 else exact_momentum(lr, rule.lam, rule.mu_min, rule.mu_max)
    if rule.name == "onecycle":
        return onecycle_momentum(step, rule.total_steps, rule.pct_start, rule.base_momentum, rule.max_momentum)
    if rule.switch != "auto":
        switched = step >= rule.switch * rule.total_steps
    return rule.mu if switched else _beta(rule, lr)


class _HybridLatch:
    """Tracks the "auto" switch: armed once beta < mu_c, fires when beta >= mu_c again."""

    def __init__(self) -> None:
        self.armed = False
        self.switched = False

    def update(self, rule: MomentumRule, lr: float) -> bool:
        if rule.name == "hybrid" and rule.switch == "auto" and not self.switched:
            below = _beta(rule, lr) < rule.mu
            self.armed = self.armed or below
            self.switched = self.armed and not below
        return self.switched


def momentum_sequence(rule: MomentumRule, lrs: Sequence[float]) -> list[float]:
    """Momentum at every step for a whole LR sequence (handles the hybrid switch)."""
    latch = _HybridLatch()
    return [momentum_at(rule, i, lr, latch.update(rule, lr)) for i, lr in enumerate(lrs)]


def effective_lr(lr: float, mu: float) -> float:
    """Steady-state step size of heavy ball, ``lr / (1 - mu)``.

    Under the beta rule this is ``sqrt(lr)/2``; with mu = 0.9 it is ``10*lr``.
    """
    return check_finite_positive("lr", lr) / (1.0 - check_momentum("mu", mu))


# ---------------------------------------------------------------- torch wrapper
def _momentum_key(group: dict) -> str:
    if "momentum" in group:
        return "momentum"
    if "betas" in group:
        return "betas"
    raise TypeError(f"Invalid optimizer: param group has keys {sorted(group)} "
                    "(expected 'momentum' (SGD-like) or 'betas' (Adam-like))")


class MomentumScheduler:
    """Writes a momentum rule into a torch optimizer, one value per batch.

    Call :meth:`step` once per batch *after* ``optimizer.step()`` and after any LR
    scheduler's ``step()``: it reads the current LR from each param group, so it
    composes with any torch LR scheduler. SGD-like groups get ``group["momentum"]``,
    Adam-like groups ``group["betas"][0]``.

    Example::

        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        lrs = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
        mom = MomentumScheduler(opt, MomentumRule("beta"))
        for batch in batches:
            ...; opt.step(); lrs.step(); mom.step()
    """

    def __init__(self, optimizer, rule: MomentumRule) -> None:
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"Invalid optimizer: {type(optimizer).__name__} (expected a torch.optim.Optimizer)")
        self.keys = [_momentum_key(g) for g in optimizer.param_groups]
        self.optimizer = optimizer
        self.rule = rule
        self.last_step = 0
        self._latches = [_HybridLatch() for _ in optimizer.param_groups]
        self._last: list[float] = []
        self.last_clamped = False
        self._apply()

    def _apply(self) -> None:
        self._last, clamped = [], False
        for group, key, latch in zip(self.optimizer.param_groups, self.keys, self._latches):
            lr = float(group["lr"])
            mu = momentum_at(self.rule, self.last_step, lr, latch.update(self.rule, lr))
            if self.rule.name in ("beta", "exact", "hybrid", "beta-measured") and mu in (self.rule.mu_min,
                                                                                          self.rule.mu_max):
                clamped = True
            if key == "momentum":
                group["momentum"] = mu
            else:
                group["betas"] = (mu, *tuple(group["betas"])[1:])
            self._last.append(mu)
        self.last_clamped = clamped

    def step(self) -> None:
        """Advance one batch and write the next momentum value."""
        self.last_step += 1
        self._apply()

    def set_lam(self, lam: float) -> None:
        """Change the rule's curvature (the ``beta-measured`` rule's refresh) and rewrite the
        current step's momentum with it."""
        self.rule = replace(self.rule, lam=check_finite_positive("lam", lam))
        self._apply()

    def get_last_momentum(self) -> list[float]:
        """The values written by the last step, one per param group."""
        return list(self._last)

    def state_dict(self) -> dict:
        return {"last_step": self.last_step, "rule": self.rule.to_dict(),
                "latches": [(latch.armed, latch.switched) for latch in self._latches]}

    def load_state_dict(self, state: dict) -> None:
        self.rule = MomentumRule(**state["rule"])
        self.last_step = int(state["last_step"])
        for latch, (armed, switched) in zip(self._latches, state["latches"]):
            latch.armed, latch.switched = bool(armed), bool(switched)
        # Writing again is idempotent for the latch (same LR, same answer), so a
        # fresh optimizer gets the exact value it had when the state was saved.
        self._apply()

