import math

import pytest
import torch

from beta_core.schedules import (
    LRSchedule,
    MomentumRule,
    MomentumScheduler,
    beta_momentum,
    cosine_lr,
    effective_lr,
    exact_momentum,
    hybrid_switch_lr,
    linear_lr,
    lr_at,
    momentum_at,
    momentum_sequence,
    onecycle_lr,
    onecycle_momentum,
    step_decay_lr,
)

# ------------------------------------------------------------------ hand-computed tables
BETA_TABLE = [  # lr, 1 - 2*sqrt(lr) computed by hand, clamped to [0, 0.99]
    (0.25, 0.0),
    (0.1, 0.367544467966324),
    (0.04, 0.6),
    (0.01, 0.8),
    (0.0025, 0.9),
    (0.0001, 0.98),
    (1e-6, 0.99),   # raw 0.998 -> mu_max
    (0.5, 0.0),     # raw -0.414 -> mu_min
]


@pytest.mark.parametrize("lr,expected", BETA_TABLE)
def test_beta_table(lr, expected):
    assert beta_momentum(lr) == pytest.approx(expected, abs=1e-12)


def test_beta_lam_and_custom_clamp():
    assert beta_momentum(0.01, lam=4.0) == pytest.approx(0.6)
    assert beta_momentum(1e-8, mu_max=0.999) == pytest.approx(0.999)
    assert beta_momentum(1e-6, mu_max=0.999) == pytest.approx(0.998)
    assert beta_momentum(0.2, mu_min=0.1) == pytest.approx(1 - 2 * 0.2 ** 0.5)  # not clamped
    assert beta_momentum(0.24, mu_min=0.1) == pytest.approx(0.1)  # raw 0.0202 -> 0.1


def test_exact_table():
    assert exact_momentum(0.01) == pytest.approx(0.81)
    assert exact_momentum(0.0025) == pytest.approx(0.9025)
    assert exact_momentum(0.04, lam=0.25) == pytest.approx(0.81)
    assert exact_momentum(2.0) == 0.0  # sqrt(lr) > 1: no stable momentum
    # first-order agreement with the beta rule for small lr
    assert abs(exact_momentum(1e-4) - beta_momentum(1e-4)) < 1e-3


def test_effective_lr():
    assert effective_lr(0.1, 0.9) == pytest.approx(1.0)
    lr = 0.01
    assert effective_lr(lr, beta_momentum(lr)) == pytest.approx(math.sqrt(lr) / 2)


def test_lr_schedules_tables():
    assert step_decay_lr(0, 0.1, 30) == 0.1
    assert step_decay_lr(30, 0.1, 30) == pytest.approx(0.01)
    assert step_decay_lr(65, 0.1, 30, gamma=0.5) == pytest.approx(0.025)
    assert cosine_lr(0, 0.1, 100) == pytest.approx(0.1)
    assert cosine_lr(50, 0.1, 100) == pytest.approx(0.05)
    assert cosine_lr(100, 0.1, 100) == pytest.approx(0.0)
    assert cosine_lr(200, 0.1, 100, min_lr=0.001) == pytest.approx(0.001)
    # warm-up: 10 steps rising to base, then cosine over the remaining 90
    assert cosine_lr(0, 0.1, 100, warmup_steps=10) == pytest.approx(0.01)
    assert cosine_lr(9, 0.1, 100, warmup_steps=10) == pytest.approx(0.1)
    assert cosine_lr(55, 0.1, 100, warmup_steps=10) == pytest.approx(0.05)
    assert linear_lr(25, 0.1, 100) == pytest.approx(0.075)
    assert linear_lr(25, 0.1, 100, final_lr=0.02) == pytest.approx(0.08)


def test_onecycle_matches_torch():
    total, max_lr = 100, 0.5
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total)
    for step in range(total):
        group = opt.param_groups[0]
        assert lr_at(LRSchedule("onecycle", max_lr, total), step) == pytest.approx(group["lr"], rel=1e-9)
        assert onecycle_momentum(step, total) == pytest.approx(group["momentum"], rel=1e-9)
        opt.step(), ref.step()


def test_onecycle_shape():
    total = 200
    mus = [onecycle_momentum(s, total) for s in range(total)]
    lrs = [onecycle_lr(s, 1.0, total) for s in range(total)]
    low = mus.index(min(mus))
    assert mus[0] == pytest.approx(0.95) and min(mus) == pytest.approx(0.85)
    assert mus[-1] == pytest.approx(0.95)
    assert low == lrs.index(max(lrs))  # momentum lowest exactly where LR peaks
    assert all(a >= b for a, b in zip(mus[:low], mus[1:low + 1]))
    assert all(a <= b for a, b in zip(mus[low:-1], mus[low + 1:]))


# ------------------------------------------------------------------ hybrid
def _cosine_lrs(total=1000, base=0.1, warmup=0):
    return [cosine_lr(s, base, total, warmup) for s in range(total)]


@pytest.mark.parametrize("warmup", [0, 50])
def test_hybrid_auto_switch_is_continuous(warmup):
    lrs = _cosine_lrs(warmup=warmup)
    mus = momentum_sequence(MomentumRule("hybrid", mu=0.9), lrs)
    beta = momentum_sequence(MomentumRule("beta"), lrs)
    switch = next(i for i in range(len(mus)) if i > warmup and mus[i] == 0.9 and beta[i] != 0.9)
    # before the switch the rule is beta; after it, the constant
    assert mus[:switch] == beta[:switch]
    assert all(m == 0.9 for m in mus[switch:])
    # the LR at the switch is the analytic 0.0025 (to one step), and mu jumps by < 0.01
    assert lrs[switch] <= hybrid_switch_lr(0.9) < lrs[switch - 1]
    assert abs(mus[switch] - mus[switch - 1]) < 0.01
    # warm-up starts at a tiny LR (beta value >= 0.9): it must not switch there
    assert mus[0] == beta[0]


def test_hybrid_fraction_switch():
    lrs = _cosine_lrs(total=100)
    rule = MomentumRule("hybrid", mu=0.9, switch=0.25, total_steps=100)
    mus = momentum_sequence(rule, lrs)
    assert mus[24] == beta_momentum(lrs[24]) and all(m == 0.9 for m in mus[25:])
    assert all(m == 0.9 for m in momentum_sequence(MomentumRule("hybrid", switch=0.0, total_steps=100), lrs))


def test_hybrid_never_high_lr_stays_beta():
    lrs = [0.001] * 20
    assert momentum_sequence(MomentumRule("hybrid"), lrs) == [beta_momentum(0.001)] * 20


def test_switch_lr():
    assert hybrid_switch_lr(0.9) == pytest.approx(0.0025)
    assert beta_momentum(hybrid_switch_lr(0.8)) == pytest.approx(0.8)


# ------------------------------------------------------------------ scheduler with torch
def _run(opt_cls, rule, steps=60, torch_sched=True, **kw):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = opt_cls(model.parameters(), lr=0.1, **kw)
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if torch_sched else None
    mom = MomentumScheduler(opt, rule)
    written = []
    for _ in range(steps):
        group = opt.param_groups[0]
        value = group["momentum"] if "momentum" in group else group["betas"][0]
        written.append((group["lr"], value))
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step(), opt.zero_grad()
        if lr_sched:
            lr_sched.step()
        mom.step()
    return written, mom


@pytest.mark.parametrize("opt_cls,kw", [(torch.optim.SGD, {"momentum": 0.9}),
                                         (torch.optim.SGD, {"momentum": 0.5, "nesterov": True}),
                                         (torch.optim.Adam, {}), (torch.optim.AdamW, {})])
@pytest.mark.parametrize("rule_name", ["beta", "exact", "hybrid"])
def test_scheduler_writes_closed_form(opt_cls, kw, rule_name):
    rule = MomentumRule(rule_name, lam=3.0)
    written, _ = _run(opt_cls, rule, **kw)
    lrs = [lr for lr, _ in written]
    assert len(set(lrs)) > 50  # really driven by CosineAnnealingLR
    assert [mu for _, mu in written] == pytest.approx(momentum_sequence(rule, lrs), abs=1e-15)


def test_scheduler_adam_keeps_beta2():
    torch.manual_seed(0)
    opt = torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=0.01, betas=(0.9, 0.95))
    MomentumScheduler(opt, MomentumRule("beta"))
    assert opt.param_groups[0]["betas"] == (pytest.approx(0.8), 0.95)


def test_scheduler_with_our_lr_schedule_and_onecycle():
    total = 40
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = LRSchedule("onecycle", 0.5, total)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: sched.lr(min(s, total - 1)) / 0.5)
    mom = MomentumScheduler(opt, MomentumRule("onecycle", total_steps=total))
    for step in range(total):
        assert mom.get_last_momentum() == [pytest.approx(onecycle_momentum(step, total))]
        opt.step(), lr_sched.step(), mom.step()


def test_state_dict_round_trip_resumes_exactly():
    rule = MomentumRule("hybrid", mu=0.9)
    lrs = _cosine_lrs(total=400)
    model = torch.nn.Linear(2, 1)

    def fresh():
        opt = torch.optim.SGD(model.parameters(), lr=lrs[0], momentum=0.0)
        return opt, MomentumScheduler(opt, rule)

    def drive(opt, mom, steps, start):
        out = []
        for s in range(start, start + steps):
            out.append(mom.get_last_momentum()[0])
            opt.param_groups[0]["lr"] = lrs[s + 1]
            mom.step()
        return out

    opt, mom = fresh()
    full = drive(opt, mom, 399, 0)
    opt, mom = fresh()
    first = drive(opt, mom, 300, 0)  # past the switch (about step 330? checked below)
    state = mom.state_dict()
    opt2, mom2 = fresh()
    opt2.param_groups[0]["lr"] = lrs[300]
    mom2.load_state_dict(state)
    rest = drive(opt2, mom2, 99, 300)
    assert first + rest == full
    assert mom2.last_step == 399
    # and the switch happened in the resumed half, so the latch state mattered
    assert 0.9 not in first and rest[-1] == 0.9


def test_state_dict_after_switch():
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.0)
    mom = MomentumScheduler(opt, MomentumRule("hybrid"))
    for lr in (0.1, 0.01, 0.001):
        opt.param_groups[0]["lr"] = lr
        mom.step()
    assert mom.get_last_momentum() == [0.9]
    opt.param_groups[0]["lr"] = 0.1  # a fresh LR rise would give beta again without the latch
    mom.load_state_dict(mom.state_dict())
    assert mom.get_last_momentum() == [0.9]


def test_clamped_flag():
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.5, momentum=0.0)
    mom = MomentumScheduler(opt, MomentumRule("beta"))
    assert mom.last_clamped and mom.get_last_momentum() == [0.0]
    opt.param_groups[0]["lr"] = 0.01
    mom.step()
    assert not mom.last_clamped


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call,fragment", [
    (lambda: beta_momentum(0.0), "lr: 0.0"),
    (lambda: beta_momentum(-0.1), "lr: -0.1"),
    (lambda: beta_momentum(float("nan")), "lr: nan"),
    (lambda: beta_momentum(float("inf")), "lr: inf"),
    (lambda: beta_momentum(0.1, lam=0), "lam: 0"),
    (lambda: beta_momentum(0.1, lam=-1.0), "lam: -1.0"),
    (lambda: MomentumRule("constant", mu=1.0), "mu: 1.0"),
    (lambda: MomentumRule("constant", mu=-0.1), "mu: -0.1"),
    (lambda: MomentumRule("bogus"), "Unknown momentum rule: 'bogus'"),
    (lambda: LRSchedule("bogus"), "Unknown LR schedule: 'bogus'"),
    (lambda: LRSchedule("cosine", base_lr=0.0), "base_lr: 0.0"),
    (lambda: MomentumRule("hybrid", switch=1.5, total_steps=10), "switch: 1.5"),
    (lambda: MomentumRule("hybrid", switch=-0.1, total_steps=10), "switch: -0.1"),
    (lambda: MomentumRule("hybrid", switch="late"), "switch: 'late'"),
    (lambda: MomentumRule("hybrid", switch=0.5), "total_steps: None"),
    (lambda: MomentumRule("onecycle"), "total_steps: None"),
    (lambda: MomentumRule("beta", mu_min=0.9, mu_max=0.5), "mu_min/mu_max"),
    (lambda: effective_lr(0.1, 1.0), "mu: 1.0"),
    (lambda: cosine_lr(0, 0.1, 0), "total_steps: 0"),
    (lambda: cosine_lr(-1, 0.1, 10), "step: -1"),
])
def test_bad_input_names_parameter_value_and_range(call, fragment):
    with pytest.raises(ValueError) as err:
        call()
    msg = str(err.value)
    assert fragment in msg and "expected" in msg


def test_optimizer_without_momentum_is_refused():
    opt = torch.optim.Adagrad(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(TypeError, match="expected 'momentum'.*or 'betas'"):
        MomentumScheduler(opt, MomentumRule("beta"))
    with pytest.raises(TypeError, match="expected a torch.optim.Optimizer"):
        MomentumScheduler(object(), MomentumRule("beta"))


def test_lr_zero_is_the_limit():
    for name in ("beta", "exact", "hybrid"):
        assert momentum_at(MomentumRule(name), 5, 0.0) == 0.99
    with pytest.raises(ValueError, match="lr: 0.0"):
        beta_momentum(0.0)


def test_momentum_at_rejects_bad_lr():
    with pytest.raises(ValueError, match="lr"):
        momentum_at(MomentumRule("constant"), 0, -1.0)
