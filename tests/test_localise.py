import copy

import pytest
import torch
from helpers import tiny_config

from beta_core.attribution import SCORES, score_groups
from beta_core.data import eval_loaders
from beta_core.engine import Training
from beta_core.localise import FAULTS, apply_fault, fault_applies, localisation_benchmark, summarise
from beta_core.models import group_parameters


@pytest.fixture(scope="module")
def trained(tiny_splits):
    t = Training(tiny_config(width=8, epochs=3), splits=tiny_splits)
    list(t.run())
    return t.model.eval(), eval_loaders(t.splits, "cpu", True)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_changes_only_its_group(trained, fault):
    model, _ = trained
    for group in group_parameters(model):
        if not fault_applies(model, group, fault):
            continue
        m = copy.deepcopy(model)
        before = _state(m)
        apply_fault(m, group, fault, 0.5 if fault in ("zero", "signflip") else 1.0, seed=3)
        after = m.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert changed and all(k.startswith(group + ".") for k in changed), (fault, group, changed)
        again = copy.deepcopy(model)
        apply_fault(again, group, fault, 0.5 if fault in ("zero", "signflip") else 1.0, seed=3)
        assert all(torch.equal(again.state_dict()[k], after[k]) for k in after)  # seeded


def test_fault_errors(trained):
    model, _ = trained
    with pytest.raises(ValueError, match="no BatchNorm"):
        apply_fault(copy.deepcopy(model), "fc", "bn_stats", 1.0)
    with pytest.raises(ValueError, match="fraction"):
        apply_fault(copy.deepcopy(model), "fc", "zero", 2.0)
    with pytest.raises(ValueError, match="Unknown fault"):
        apply_fault(copy.deepcopy(model), "fc", "melt", 1.0)


def test_oracle_finds_every_fault_and_random_is_the_floor(trained):
    model, loaders = trained
    ref = _state(model)

    def oracle(m):  # the group whose weights differ most from the undamaged model
        return {g: sum(float((p.detach() - ref[n]).abs().sum()) for n, p in ps) +
                sum(float((b - ref[f"{g}.{n}"].to(b)).abs().sum()) for n, b in getattr(m, g).named_buffers()
                    if b.is_floating_point())
                for g, ps in group_parameters(m).items()}

    r = localisation_benchmark(model, loaders["test"], loaders["train"], scores=("random",),
                               severities={"noise": (1.0,), "reinit": (1.0,)}, seeds=(0, 1, 2),
                               custom={"oracle": oracle})
    assert r["n_cases"] == 2 * 6 * 3 and r["scores"]["oracle"]["top1"]["rate"] == 1.0
    assert r["best"] == "oracle"
    # the random ranking over many trials: about 1/G first
    hits = sum(score_groups("random", model, loaders["test"], seed=s)["ranking"][0] == "block2" for s in range(600))
    assert abs(hits / 600 - 1 / 6) < 0.05


def test_accounting_on_a_constructed_case():
    cases = [{"fault": "noise", "severity": 1.0, "group": "a", "acc_drop": 0.1, "ranks": {"s": r},
              "seconds": {"s": 1.0}, "passes": {"s": 2}} for r in (1, 1, 2, 4)]
    out = summarise(cases, 0.9, ["a", "b", "c", "d"], ["s"])
    s = out["scores"]["s"]
    assert s["top1"]["k"] == 2 and s["top1"]["n"] == 4 and s["top3"]["k"] == 3
    assert s["mean_rank"]["mean"] == 2.0 and 0 < s["top1"]["ci_low"] < 0.5 < s["top1"]["ci_high"] < 1
    assert out["floor_top1"] == 0.25 and out["accuracy_drop"]["noise 1"]["mean"] == pytest.approx(0.1)


def test_every_score_returns_a_ranking_and_a_cost(trained):
    model, loaders = trained
    for name in SCORES:
        r = score_groups(name, model, loaders["test"], loaders["train"], probe_steps=2)
        assert sorted(r["ranking"]) == sorted(group_parameters(model)) and r["seconds"] >= 0 and r["passes"] >= 0
