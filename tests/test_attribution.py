import pytest
import torch
from helpers import tiny_config

from beta_core.attribution import (
    AttributionConfig,
    NoErrorsError,
    attribute,
    epoch_scores,
    overlap,
    plant_fault,
    select_groups,
)
from beta_core.data import eval_loaders, make_synthetic
from beta_core.engine import Training


@pytest.fixture(scope="module")
def trained():
    """A width-8 CNN trained 8 epochs on 2,000 synthetic images (about 8 s, test accuracy ~0.5)."""
    splits = make_synthetic(2000, 500, seed=0)
    t = Training(tiny_config(width=8, epochs=8, batch_size=100, lr=0.1, synthetic_train=2000, synthetic_test=500),
                 splits=splits)
    list(t.run())
    state = {k: v.clone() for k, v in t.model.state_dict().items()}
    return t, splits, state


def _model(trained, which="test"):
    t, splits, state = trained
    t.model.load_state_dict(state)
    t.model.eval()
    return t.model, eval_loaders(splits, "cpu", True)[which], splits


@pytest.mark.parametrize("group", ["block2", "block3"])
def test_planted_fault_probe_ranks_damaged_group_first(trained, group):
    """The diagnostic's own correctness check, with the retrain-one-group probe: damage a group
    with noise (RMS = its weights' RMS, fixed seed), and the probe must rank it first."""
    model, loader, splits = _model(trained)
    train = eval_loaders(splits, "cpu", True)["train"]
    r = plant_fault(model, loader, group, strength=1.0, seed=0, method="probe", train_loader=train)
    assert r["acc_after"] < r["acc_before"] - 0.05  # the damage is real
    assert r["ranking"][0] == group, r


def test_scores_finite_and_shaped(trained):
    model, loader, splits = _model(trained)
    r = attribute(model, loader, AttributionConfig(score="grad_relative"), splits.classes)
    groups = ["conv1", "bn1", "block1", "block2", "block3", "fc"]
    assert r["groups"] == groups and 0 < r["n_errors"] < r["n_samples"] == 500
    assert all(torch.isfinite(torch.tensor(r["scores"][g])) and r["scores"][g] > 0 for g in groups)
    for key in ("by_true_class", "by_pred_class"):
        m = r[key]
        assert len(m) == 6 and all(len(row) == 10 for row in m)
    assert sum(r["errors_per_true_class"]) == r["n_errors"]
    assert all(r["ratio"][g] > 0 for g in groups) and r["correct_scores"] is not None


def test_class_breakdown_adds_up_to_total(trained):
    # gradients add: the squared norm of the total is consistent with the per-class parts
    model, loader, splits = _model(trained)
    cfg = AttributionConfig(score="grad_relative", normalization="raw", contrast=False)
    r = attribute(model, loader, cfg, splits.classes)
    for gi, g in enumerate(r["groups"]):
        parts = [v for v in r["by_true_class"][gi] if v is not None]
        assert r["scores"][g] <= sum(parts) + 1e-9  # triangle inequality on the summed gradients


def test_selection_and_param_fraction(trained):
    model, loader, splits = _model(trained)
    r = attribute(model, loader, AttributionConfig(score="grad_relative", k=2), splits.classes)
    assert len(r["flagged"]) == 2 and r["flagged"] == r["ranking"][:2]
    total = sum(r["param_counts"].values())
    assert r["param_fraction"] == pytest.approx(sum(r["param_counts"][g] for g in r["flagged"]) / total)
    z = select_groups({"a": 10.0, "b": 1.0, "c": 1.2, "d": 0.9}, {"a": 1, "b": 1, "c": 1, "d": 2},
                      AttributionConfig(score="grad_relative", select="zscore", z=1.0))
    assert z["flagged"] == ["a"] and z["param_fraction"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="Invalid k: 9 .*6 layer groups"):
        attribute(model, loader, AttributionConfig(score="grad_relative", k=9))


def test_normalisations_differ(trained):
    model, loader, splits = _model(trained)
    cfgs = [AttributionConfig(score="grad_relative", normalization=n, by_predicted=False, contrast=False)
            for n in ("raw", "per_param", "relative")]
    raw, pp, rel = (attribute(model, loader, c)["scores"] for c in cfgs)
    n_fc = 8 * 8 * 10 + 10
    assert pp["fc"] == pytest.approx(raw["fc"] / n_fc ** 0.5)
    w = torch.cat([p.detach().flatten() for p in model.fc.parameters()]).norm()
    assert rel["fc"] == pytest.approx(raw["fc"] / float(w), rel=1e-5)


def test_overlap():
    assert overlap(["a", "b", "c"], ["c", "b", "a"])["jaccard"] == 1.0
    assert overlap(["a"], ["b"])["jaccard"] == 0.0
    o = overlap(["a", "b"], ["b", "c"])
    assert o["jaccard"] == pytest.approx(1 / 3) and o["shared"] == ["b"]


def test_no_errors_is_a_clear_error(trained):
    model, loader, splits = _model(trained)
    with torch.no_grad():
        pred = torch.cat([model(x).argmax(1) for x, _ in loader.epoch(0)])
    loader.y = pred  # pretend the model is always right
    with pytest.raises(NoErrorsError, match="No misclassified samples"):
        attribute(model, loader)


def test_epoch_scores(trained):
    model, loader, _ = _model(trained)
    s = epoch_scores(model, loader, n=200)
    assert set(s) == {"conv1", "bn1", "block1", "block2", "block3", "fc"} and not model.training


@pytest.mark.xfail(strict=True, reason="finding (issue 4): the paper's error-gradient norms do not localise a "
                   "noise-damaged group on this model (the probe above does); see docs/decisions.md. "
                   "strict: if a change makes this pass, the suite says so")
@pytest.mark.parametrize("group", ["block2", "block3"])
def test_planted_fault_gradient_ranks_damaged_group_first(trained, group):
    """The same check with the paper's gradient attribution (relative normalisation)."""
    model, loader, splits = _model(trained)
    r = plant_fault(model, loader, group, strength=1.0, seed=0)
    assert r["acc_after"] < r["acc_before"] - 0.02  # the damage is real
    assert r["ranking"][0] == group, r


def test_plant_fault_bad_group(trained):
    model, loader, _ = _model(trained)
    with pytest.raises(ValueError, match="Unknown layer group: 'layer9'"):
        plant_fault(model, loader, "layer9")


def test_probe_scores_leave_model_untouched(trained):
    model, loader, splits = _model(trained)
    train = eval_loaders(splits, "cpu", True)["train"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from beta_core.attribution import probe_scores

    s = probe_scores(model, train, loader, steps=3)
    assert set(s) == set(before_groups := ["conv1", "bn1", "block1", "block2", "block3", "fc"]) and before_groups
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="Invalid steps: 0"):
        probe_scores(model, train, loader, steps=0)


def test_config_errors():
    with pytest.raises(ValueError, match="Unknown normalization"):
        AttributionConfig(score="grad_relative", normalization="l1")
    with pytest.raises(ValueError, match="Invalid k: 0"):
        AttributionConfig(score="grad_relative", k=0)
    with pytest.raises(ValueError, match="Invalid split"):
        AttributionConfig(score="grad_relative", split="val")


def test_probe_flags_only_groups_that_stand_out(trained):
    """Two probe runs: a damaged group's drop stands out above their disagreement and is
    flagged; near-equal tiny drops (a converged model) flag nothing: "no group stands out"."""
    from beta_core.attribution import PROBE_NOISE_Z, add_weight_noise, select_groups

    model, loader, splits = _model(trained)
    train = eval_loaders(splits, "cpu", True)["train"]
    with torch.no_grad():
        for p in model.block3.parameters():
            add_weight_noise(p, 1.0, torch.Generator().manual_seed(0))
    r = attribute(model, loader, AttributionConfig(score="probe", k=3, probe_steps=20), splits.classes,
                  train_loader=train)
    assert r["stands_out"] and "block3" in r["flagged"], (r["score_values"], r["score_noise"])
    assert all(r["score_values"][g] > PROBE_NOISE_Z * r["score_noise"][g] for g in r["flagged"])
    # the MNIST case: drops of ~0.001 that two runs do not agree on, one large negative drop
    drops = {"conv1": 0.0011, "bn1": 0.0012, "block1": -0.05, "block2": 0.0009, "block3": 0.001, "fc": 0.0011}
    noise = {g: 0.0008 for g in drops}
    sel = select_groups(drops, {g: 1 for g in drops}, AttributionConfig(score="probe", k=3), noise)
    assert sel["flagged"] == [] and not sel["stands_out"] and sel["param_fraction"] == 0


@pytest.mark.slow
def test_no_group_stands_out_on_a_converged_tiny_model():
    """40 epochs on 400 synthetic images: retraining any one group alone on training batches only
    makes the held-out loss worse (every drop below zero, measured 45 s here): nothing flagged."""
    splits = make_synthetic(400, 200, seed=0)
    t = Training(tiny_config(width=8, epochs=40, batch_size=50, lr=0.05, synthetic_train=400), splits=splits)
    list(t.run())
    loaders = eval_loaders(splits, "cpu", True)
    r = attribute(t.model.eval(), loaders["test"], AttributionConfig(score="probe", k=3, probe_steps=20),
                  splits.classes, train_loader=loaders["train"])
    assert r["flagged"] == [] and not r["stands_out"], (r["score_values"], r["score_noise"])
