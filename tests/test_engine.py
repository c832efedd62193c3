import math

import pytest
import torch
from helpers import tiny_config

from beta_core.config import METHODS, TrainConfig, resolve_config
from beta_core.engine import Training, pick_device
from beta_core.records import EPOCH, EPOCH_FIELDS, STEP, STEP_FIELDS, time_to_accuracy
from beta_core.schedules import beta_momentum


def _records(cfg, splits):
    t = Training(cfg, splits=splits)
    recs = list(t.run())
    return t, [r for r in recs if r["kind"] == STEP], [r for r in recs if r["kind"] == EPOCH]


def test_record_schema_and_values(tiny_splits):
    t, steps, epochs = _records(tiny_config(epochs=2), tiny_splits)
    assert t.status == "done"
    assert len(steps) == 2 * t.steps_per_epoch == 16 and len(epochs) == 2
    assert all(set(r) == {"kind", *STEP_FIELDS} for r in steps)
    assert all(set(EPOCH_FIELDS) <= set(r) for r in epochs)
    assert [r["step"] for r in steps] == list(range(16))
    for r in steps:  # the momentum used at each step is the beta rule of that step's LR
        assert r["momentum"] == pytest.approx(beta_momentum(r["lr"])) if r["lr"] > 0 else True
        assert r["zeta"] is None or r["zeta"] == pytest.approx(1.0) or r["momentum"] in (0.0, 0.99)
        assert math.isfinite(r["loss"]) and 0 <= r["acc"] <= 1
    assert epochs[0]["regime"] in ("underdamped", "critical", "overdamped")
    assert 0 <= epochs[-1]["test_acc"] <= 1
    assert set(t.summary) >= {"final_test_acc", "best_test_acc", "time_to_accuracy", "wall_seconds",
                            "step_seconds", "regimes"}
    assert 0 < t.summary["step_seconds"] < t.summary["wall_seconds"]


def test_learns_synthetic(tiny_splits):
    t, _, epochs = _records(tiny_config(epochs=4, lr=0.05, width=8), tiny_splits)
    assert epochs[-1]["test_acc"] > 0.3  # chance is 0.1


def test_paired_seeds_same_init_and_batches(tiny_splits):
    inits, firsts = [], []
    for method in ("sgd-constant", "sgd-beta", "adam"):
        t = Training(tiny_config(method=method, seed=7), splits=tiny_splits)
        t.setup()
        inits.append({k: v.clone() for k, v in t.model.state_dict().items()})
        firsts.append(next(t.train_loader.epoch(0)))
    for other, batch in zip(inits[1:], firsts[1:]):
        assert all(torch.equal(inits[0][k], other[k]) for k in other)
        assert torch.equal(firsts[0][0], batch[0]) and torch.equal(firsts[0][1], batch[1])
    t = Training(tiny_config(seed=8), splits=tiny_splits)
    t.setup()
    assert not torch.equal(t.model.state_dict()["conv1.weight"], inits[0]["conv1.weight"])


def test_methods_resolve():
    assert resolve_config("sgd-constant").momentum_rule == "constant"
    adam = resolve_config("adam")
    assert adam.optimizer == "adam" and adam.lr == 1e-3
    assert resolve_config("adam", lr=3e-4).lr == 3e-4  # explicit values win
    assert resolve_config("sgd-onecycle").lr_schedule == "onecycle"
    assert set(METHODS) == {"sgd-constant", "sgd-beta", "sgd-hybrid", "sgd-onecycle", "adam", "adam-beta",
                            "sgd-beta-measured"}


@pytest.mark.parametrize("method", ["adam-beta", "sgd-hybrid", "sgd-onecycle"])
def test_other_methods_run(tiny_splits, method):
    t, steps, _ = _records(tiny_config(method=method), tiny_splits)
    assert t.status == "done"
    if method == "adam-beta":
        assert steps[0]["momentum"] == pytest.approx(beta_momentum(steps[0]["lr"]))


def test_divergence_is_a_status_not_an_exception(tiny_splits):
    t, steps, epochs = _records(tiny_config(method="sgd-constant", lr=1e6, epochs=3), tiny_splits)
    assert t.status == "diverged"
    assert epochs == [] or len(epochs) < 3
    assert any(not math.isfinite(r["loss"]) for r in steps)


def test_divergence_caught_in_a_run_shorter_than_two_windows(tiny_splits):
    """Adam at lr 1e6 for 8 steps (one window) never yields a NaN and ends ~1e13: diverged, not done."""
    t, steps, _ = _records(tiny_config(method="adam", lr=1e6, epochs=1), tiny_splits)
    assert len(steps) < 20 and max(r["loss"] for r in steps) > 100 * steps[0]["loss"]
    assert t.status == "diverged"


def test_cancellation_checked_every_step(tiny_splits):
    calls = []
    t = Training(tiny_config(epochs=3), splits=tiny_splits, should_stop=lambda: len(calls) > 5 or calls.append(1))
    steps = [r for r in t.run() if r["kind"] == STEP]
    assert t.status == "cancelled" and len(steps) == 6


def test_time_to_accuracy():
    eps = [{"epoch": 0, "step": 10, "time": 1.0, "test_acc": 0.4},
           {"epoch": 1, "step": 20, "time": 2.0, "test_acc": 0.65},
           {"epoch": 2, "step": 30, "time": 3.0, "test_acc": 0.6}]
    tta = time_to_accuracy(eps, (0.5, 0.6, 0.9))
    assert tta["0.5"] == {"epoch": 1, "step": 20, "time": 2.0} and tta["0.6"]["epoch"] == 1 and tta["0.9"] is None


def test_config_round_trip():
    cfg = tiny_config(thresholds=(0.5, 0.7))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="Unknown config fields"):
        TrainConfig.from_dict({"nonsense": 1})


@pytest.mark.parametrize("kw,fragment", [
    ({"method": "sgd-fancy"}, "Unknown method: 'sgd-fancy'"),
    ({"model": "vgg"}, "Unknown model: 'vgg'"),
    ({"dataset": "mnist"}, "Unknown dataset: 'mnist'"),
    ({"epochs": 0}, "Invalid epochs: 0"),
    ({"batch_size": 0}, "Invalid batch_size: 0"),
    ({"thresholds": (0.0,)}, "Invalid thresholds"),
    ({"thresholds": (1.5,)}, "Invalid thresholds"),
    ({"optimizer": "lion"}, "Unknown optimizer: 'lion'"),
    ({"lr": -0.1}, "Invalid lr: -0.1"),  # the field the user typed, not the schedule's base_lr
    ({"lr": 0.0}, "Invalid lr: 0.0"),
    ({"mu": 1.0}, "mu: 1.0"),
    ({"device": "tpu"}, "Unknown device: 'tpu'"),
])
def test_bad_config(kw, fragment):
    method = kw.pop("method", "sgd-beta")
    with pytest.raises(ValueError, match="expected") as err:
        resolve_config(method, **kw)
    assert fragment in str(err.value)


def test_batch_larger_than_data(tiny_splits):
    with pytest.raises(ValueError, match="batch_size: 1000.*400 training images"):
        Training(tiny_config(batch_size=1000), splits=tiny_splits).setup()


def test_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="Invalid device 'cuda': no CUDA device here"):
            pick_device("cuda")


def test_hooks_are_called_in_order(tiny_splits):
    from beta_core.engine import Hook

    calls = []

    class Spy(Hook):
        def setup(self, t):
            calls.append("setup")

        def epoch_start(self, t, epoch):
            calls.append(f"start{epoch}")

        def after_step(self, t):
            calls.append("step")

        def after_epoch(self, t, rec):
            calls.append(f"end{rec['epoch']}")
            rec["spy"] = True

    t = Training(tiny_config(epochs=2), splits=tiny_splits, hooks=[Spy()])
    epochs = [r for r in t.run() if r["kind"] == EPOCH]
    per_epoch = ["step"] * t.steps_per_epoch
    assert calls == ["setup", "start0", *per_epoch, "end0", "start1", *per_epoch, "end1"]
    assert all(r["spy"] for r in epochs)


def test_fast_preset_lr_mapping_is_what_the_optimizer_applies(tiny_splits):
    """airbench's lr 11.5 per 1024 examples (summed loss, decoupled) is 1.5 on a mean loss; biases
    at 64x; the LR the optimizer applies at each step is the schedule of those values."""
    from beta_core.config import plan_runs
    from beta_core.presets import AIRBENCH_LR, AIRBENCH_WD, KILOSTEP_SCALE

    assert AIRBENCH_LR == pytest.approx(11.5 / KILOSTEP_SCALE * 1024) == pytest.approx(1.5)
    assert AIRBENCH_WD == pytest.approx((0.0153 * 1024 / KILOSTEP_SCALE) / (11.5 / KILOSTEP_SCALE) / 1024)
    cfg = plan_runs(["sgd-constant"], [0], "fast-cpu", {"widths": (8, 8, 8), "epochs": 2, "batch_size": 50,
                                                          "dataset": "synthetic", "synthetic_train": 400,
                                                          "synthetic_test": 200, "warmup_epochs": 0.5})[0]
    t = Training(cfg, splits=tiny_splits)
    t.setup()
    seen = []
    recs = t.run()
    while len(seen) < 10:
        rec = next(recs)
        if rec["kind"] == STEP:
            seen.append((rec["lr"], [g["lr"] for g in t.optimizer.param_groups]))
    sched = cfg.lr_schedule_for(t.total_steps)  # linear warm-up to 1.5 over a quarter of the run, then to 0
    assert (sched.name, sched.base_lr, sched.warmup_steps) == ("linear", AIRBENCH_LR, round(t.total_steps / 4))
    for step, (lr, _) in enumerate(seen):
        assert lr == pytest.approx(sched.lr(step))
    assert all(b == pytest.approx(64 * w) for _, (w, b) in seen)  # biases and BN shifts at 64x, every step
    assert t.optimizer.param_groups[1]["weight_decay"] == pytest.approx(AIRBENCH_WD / 64)
    assert t.optimizer.param_groups[0]["nesterov"] and t.optimizer.param_groups[0]["momentum"] == 0.85


def test_fast_model_trains_one_step_and_sync_only_on_cuda(tiny_splits, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: calls.append(a))
    t = Training(tiny_config(model="airnet", widths=(8, 8, 8), tta=True), splits=tiny_splits)
    recs = list(t.run())
    assert t.status == "done" and recs[0]["loss"] > 0 and calls == []  # CPU: nothing to wait for


def test_compile_gives_the_same_loss(tiny_splits):
    if not hasattr(torch, "compile"):
        pytest.skip("this torch has no torch.compile")
    try:
        torch.compile(torch.nn.Linear(2, 2))(torch.zeros(1, 2))
    except Exception as e:  # noqa: BLE001 - no C++ toolchain or an unsupported platform
        pytest.skip(f"torch.compile cannot compile on this CPU: {type(e).__name__}")
    a = Training(tiny_config(epochs=1), splits=tiny_splits)
    b = Training(tiny_config(epochs=1, compile=True), splits=tiny_splits)
    la = [r["loss"] for r in a.run() if r["kind"] == STEP][:3]
    lb = [r["loss"] for r in b.run() if r["kind"] == STEP][:3]
    assert la == pytest.approx(lb, rel=1e-3)


def test_deterministic_mode_repeats_exactly(tiny_splits):
    runs = [[r["loss"] for r in Training(tiny_config(deterministic=True), splits=tiny_splits).run()
             if r["kind"] == STEP] for _ in range(2)]
    torch.use_deterministic_algorithms(False)
    assert runs[0] == runs[1]


def test_evaluations_within_epochs(tiny_splits):
    """evals_per_epoch = 4: each epoch record lists 4 subset evaluations, the last at its end."""
    t, steps, epochs = _records(tiny_config(epochs=2, evals_per_epoch=4, eval_images=100), tiny_splits)
    assert t.status == "done" and t.steps_per_epoch == 8
    for e in epochs:
        ev = e["evals"]
        assert [s for s, _, _ in ev] == [e["step"] - 6, e["step"] - 4, e["step"] - 2, e["step"]]
        assert all(0 <= a <= 1 for _, _, a in ev) and ev == sorted(ev)
    assert "evals" not in _records(tiny_config(epochs=1), tiny_splits)[2][0]  # off by default


def test_a_planted_fault_damages_one_group_after_training(tiny_splits):
    """planted_fault: the same training as the clean run (same records), then noise into one
    group; the run's model and final accuracies are the damaged ones, the summary says both."""
    clean = Training(tiny_config(epochs=2), splits=tiny_splits)
    clean_recs = list(clean.run())
    hurt = Training(tiny_config(epochs=2, planted_fault="block2:3"), splits=tiny_splits)
    hurt_recs = list(hurt.run())
    assert [r.get("loss") for r in hurt_recs] == [r.get("loss") for r in clean_recs]  # the fault comes after
    f = hurt.summary["planted_fault"]
    assert f["group"] == "block2" and f["strength"] == 3.0
    assert f["test_acc_before"] == clean.summary["final_test_acc"] == hurt.summary["best_test_acc"]
    assert hurt.summary["final_test_acc"] == f["test_acc_after"]
    changed = {n.split(".")[0] for n, p in hurt.model.state_dict().items()
               if p.is_floating_point() and not torch.equal(p, clean.model.state_dict()[n])}
    assert changed == {"block2"}  # only that group's weights differ from the clean run's
    with pytest.raises(ValueError, match="Unknown layer group in planted_fault: 'block9'"):
        Training(tiny_config(planted_fault="block9"), splits=tiny_splits).setup()
    from beta_core.engine import check_data

    with pytest.raises(ValueError, match="planted_fault: 'block9' .*no run was created"):  # before a run exists
        check_data([tiny_config(planted_fault="block9")])
    for bad in ("block2:x", ":1", "block2:0", "block2:1e9"):
        with pytest.raises(ValueError, match="Invalid planted_fault"):
            tiny_config(planted_fault=bad)


def test_asking_for_more_training_images_than_the_data_has_is_refused_before_a_run(tmp_path):
    """The new user's walk: 30,000 training images asked of a synthetic set trained on 9,000 and
    stored train_subset 30000 beside n_train 9000, without a word."""
    from beta_core.engine import check_data

    check_data([tiny_config(train_subset=360)], str(tmp_path))  # 400 images, 40 of them validation
    with pytest.raises(ValueError, match=r"^Invalid train_subset: 1,000 \(expected at most the 360 training images "
                                         r"this data gives after the validation split, or none for all; no run"):
        check_data([tiny_config(train_subset=1000)], str(tmp_path))
