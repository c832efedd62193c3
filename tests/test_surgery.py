import pytest
import torch
from helpers import tiny_config

from beta_core.data import make_synthetic
from beta_core.engine import Training
from beta_core.surgery import SurgeryConfig, random_groups_like, run_surgery, top_gradient_masks, verify


@pytest.fixture(scope="module")
def parent():
    splits = make_synthetic(600, 300, seed=0)
    cfg = tiny_config(width=8, epochs=2, batch_size=100, lr=0.05, synthetic_train=600, synthetic_test=300)
    t = Training(cfg, splits=splits)
    list(t.run())
    return cfg, splits, {k: v.clone() for k, v in t.model.state_dict().items()}


def test_frozen_bit_identical_trained_changed(parent):
    cfg, splits, state = parent
    out = run_surgery(cfg, state, SurgeryConfig(groups=("block3", "fc"), epochs=1), splits=splits)
    new = out["state"]
    for k, v in state.items():
        group = k.split(".")[0]
        if group in ("block3", "fc"):
            if v.dtype.is_floating_point and "running" not in k:
                assert not torch.equal(v, new[k]), k
        else:  # weights and BN running statistics of frozen groups
            assert torch.equal(v, new[k]), k
    s = out["summary"]
    assert s["groups"] == ["block3", "fc"] and 0 < s["param_fraction"] < 1 and not s["leaky"]
    assert s["savings_param_proxy"] == pytest.approx(1 - s["param_fraction"])
    assert s["surgery_seconds"] > 0 and s["full_seconds"] > 0
    rep = out["report"]
    assert set(rep) == {"surgery", "full"}
    assert rep["full"]["param_fraction"] == 1.0


def test_surgery_of_a_planted_fault_does_not_plant_it_again(parent):
    """The parent's config carries its planted fault; the repair trains without it (else the
    fine-tune would end by damaging the group it repaired)."""
    from dataclasses import replace

    cfg, splits, state = parent
    out = run_surgery(replace(cfg, planted_fault="block3:50"), state, SurgeryConfig(groups=("block3",), epochs=1),
                      splits=splits)
    assert out["summary"]["acc_after"] > 0.3 and out["train_config"].planted_fault is None  # 50x noise: chance


def test_controls_and_auto(parent):
    cfg, splits, state = parent
    out = run_surgery(cfg, state, SurgeryConfig(groups="auto", k=2, epochs=1, controls=True), splits=splits)
    rep = out["report"]
    assert set(rep) == {"surgery", "full", "random", "per_parameter"}
    assert len(out["summary"]["groups"]) == 2 and out["attribution"]["config"]["split"] == "train"
    assert rep["random"]["groups"] != out["summary"]["groups"]
    assert rep["per_parameter"]["param_fraction"] == pytest.approx(out["summary"]["param_fraction"])


def test_verify_adds_up():
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    before = torch.tensor([0, 0, 2, 1, 1, 0])  # right: 0, 2, 4
    after = torch.tensor([0, 1, 1, 0, 1, 0])   # right: 0, 1, 3, 4
    v = verify(before, after, y, 3)
    assert (v["fixed"], v["broken"], v["net"]) == (2, 1, 1)
    assert v["acc_after"] - v["acc_before"] == pytest.approx(v["net"] / len(y))
    diff = torch.tensor(v["confusion_diff"])
    assert diff.sum() == 0 and diff.trace() == v["net"]


def test_per_parameter_masks_count():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    masks = top_gradient_masks(model, torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,)), 7)
    assert sum(int(m.sum()) for m in masks.values()) == 7


def test_random_groups_like():
    counts = {"a": 10, "b": 10, "c": 30, "d": 50}
    pick = random_groups_like(counts, 0.2, {"a", "b"}, seed=0)
    assert set(pick) != {"a", "b"} and pick


def test_leakage_guard():
    with pytest.raises(ValueError, match="Refused: surgery would train on the 'test' split"):
        SurgeryConfig(train_split="test")
    assert SurgeryConfig(train_split="test", allow_leaky=True).leaky


@pytest.mark.parametrize("kw,fragment", [
    ({"epochs": 0}, "Invalid surgery epochs: 0"),
    ({"groups": ()}, "Invalid groups: empty"),
    ({"groups": "some"}, "Invalid groups: 'some'"),
])
def test_bad_config(kw, fragment):
    with pytest.raises(ValueError, match="expected") as err:
        SurgeryConfig(**kw)
    assert fragment in str(err.value)


def test_unknown_groups(parent):
    cfg, splits, state = parent
    with pytest.raises(ValueError, match="Unknown layer groups: \\['layer9'\\]"):
        run_surgery(cfg, state, SurgeryConfig(groups=("layer9",), epochs=1), splits=splits)
