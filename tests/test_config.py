import pytest

from beta_core.cli import build_parser
from beta_core.config import TrainConfig, coerce_field, config_fields, plan_runs, resolve_config


def test_planner_adam_keeps_its_own_lr():
    cfgs = plan_runs(["sgd-beta", "adam"], [0, 1], "quick-cpu", sgd_overrides={"lr": 0.05})
    assert [(c.method, c.seed) for c in cfgs] == [("sgd-beta", 0), ("adam", 0), ("sgd-beta", 1), ("adam", 1)]
    assert [c.lr for c in cfgs] == [0.05, 1e-3, 0.05, 1e-3]
    assert all(c.data.train_subset == 6000 for c in cfgs)  # the preset reaches every method


def test_planner_overrides_for_all_methods_win():
    cfgs = plan_runs(["sgd-constant", "adam"], [3], "quick-cpu", {"lr": 0.02, "epochs": 2})
    assert [c.lr for c in cfgs] == [0.02, 0.02] and all(c.epochs == 2 and c.seed == 3 for c in cfgs)


@pytest.mark.parametrize("kw,fragment", [({"methods": []}, "Invalid methods"), ({"seeds": []}, "Invalid seeds"),
                                         ({"methods": ["sgd-x"]}, "Unknown method: 'sgd-x'")])
def test_planner_refuses_empty_or_unknown(kw, fragment):
    args = {"methods": ["sgd-beta"], "seeds": [0], **kw}
    with pytest.raises(ValueError, match=fragment):
        plan_runs(args["methods"], args["seeds"])


def test_cli_flags_are_generated_from_the_config():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {o for a in train._actions for o in a.option_strings}
    for f in config_fields():
        if f.name != "method":
            assert "--" + f.name.replace("_", "-") in flags, f.name


@pytest.mark.parametrize("name,text,value", [
    ("epochs", "3", 3), ("lr", "0.05", 0.05), ("nesterov", "true", True), ("nesterov", "False", False),
    ("train_subset", "none", None), ("thresholds", "0.5,0.6", (0.5, 0.6)), ("hybrid_switch", "auto", "auto"),
    ("hybrid_switch", "0.7", 0.7), ("data_path", "x.tar.gz", "x.tar.gz"), ("width", "8", 8),
])
def test_coerce_field_by_declared_type(name, text, value):
    assert coerce_field(name, text) == value


@pytest.mark.parametrize("name,text", [
    ("nesterov", "yes"), ("attribution_every_epoch", "no"), ("epochs", "true"), ("seed", "x"),
    ("label_smoothing", "nan"), ("beta2", "NaN"), ("min_lr", "inf"), ("epochs", "1.5"), ("width", "wide"),
])
def test_coerce_field_refuses_what_does_not_parse(name, text):
    with pytest.raises(ValueError, match=name):
        coerce_field(name, text)


def test_config_checks_types():
    with pytest.raises(ValueError, match="Invalid epochs: True"):
        resolve_config("sgd-beta", epochs=True)
    with pytest.raises(ValueError, match="Invalid label_smoothing: nan"):
        resolve_config("sgd-beta", label_smoothing=float("nan"))
    assert TrainConfig.from_dict(resolve_config("sgd-beta").to_dict()) == resolve_config("sgd-beta")


def test_sub_configs_are_the_one_home_of_their_fields():
    """A run's data and model fields are declared once, in DataConfig/ModelConfig: the flat
    config a store keeps and the CLI's flags come from them, with their defaults and help."""
    from dataclasses import fields

    from beta_core.subconfigs import DataConfig, ModelConfig
    flat = {f.name: f for f in config_fields()}
    for sub, renamed in ((DataConfig, {}), (ModelConfig, {"name": "model"})):
        for g in fields(sub):
            if g.name == "num_classes":  # set from the data, not by the user
                assert g.name not in flat
                continue
            f = flat[renamed.get(g.name, g.name)]
            assert (f.default, f.help) == (g.default, g.metadata["help"]) and f.help, g.name
    assert not {f.name for f in fields(TrainConfig)} & {"dataset", "train_subset", "width", "resize"}
    cfg = resolve_config("sgd-beta", dataset="synthetic", train_subset=500, width=8, widths=None)
    assert cfg.data == DataConfig("synthetic", train_subset=500) and cfg.model == ModelConfig(width=8)
    d = cfg.to_dict()  # stored flat, every field, as before
    assert d["dataset"] == "synthetic" and d["model"] == "small_cnn" and d["width"] == 8 and "data" not in d
    assert list(d) == [f.name for f in config_fields()] and TrainConfig.from_dict(d) == cfg


@pytest.mark.parametrize("field,value,message", [
    ("train_subset", "many", "Invalid train_subset: 'many' (expected an integer or none)"),
    ("train_subset", 5, "Invalid train_subset: 5 (expected an integer in [10, 10,000,000]"),
    ("test_subset", 10 ** 8, "Invalid test_subset: 100000000"),
    ("dataset", 3, "Invalid dataset: 3 (expected text)"),
    ("data_seed", -1, "Invalid data_seed: -1"),
    ("model", None, "Invalid model: None (expected text)"),
    ("width", 2.5, "Invalid width: 2.5 (expected an integer or none)"),
    ("widths", (64.5, 256, 256), "Invalid widths"),
    ("resize", 4, "Invalid resize: 4"),
])
def test_a_bad_data_or_model_field_is_named_as_the_user_wrote_it(field, value, message):
    with pytest.raises(ValueError) as e:
        TrainConfig.from_fields({field: value})
    assert str(e.value).startswith(message)


def test_widths_from_a_flag_are_whole_channel_counts():
    cfg = resolve_config("sgd-beta", model="airnet", widths=coerce_field("widths", "32,64,64"))
    assert cfg.model.widths == (32, 64, 64) and all(type(w) is int for w in cfg.to_dict()["widths"])
    old = TrainConfig.from_dict({**cfg.to_dict(), "widths": [32.0, 64.0, 64.0]})  # as older stores kept a flag's
    assert old == cfg and TrainConfig.from_dict({"model": "airnet", "widths": []}).model.widths is None

    from beta_core.reports import config_arms
    runs = [{"kind": "train", "method": "sgd-beta", "config": {**c, "seed": s}}
            for s, c in enumerate((old.to_dict(), {**cfg.to_dict(), "widths": [32.0, 64.0, 64.0]}))]
    assert list(config_arms(runs)) == ["sgd-beta"]  # 64 and 64.0 are one arm, not two


def test_a_presets_schedule_does_not_replace_a_methods_own():
    # Found while adding the Train form's Advanced fields: under every preset with a cosine
    # schedule (quick-cpu, paper, sweeps), sgd-onecycle trained cosine LR with one-cycle momentum.
    from beta_core.config import plan_runs
    for preset in ("quick-cpu", "paper", "fast"):
        (cfg,) = plan_runs(["sgd-onecycle"], [0], preset)
        assert cfg.lr_schedule == "onecycle" and cfg.momentum_rule == "onecycle"
    (cfg,) = plan_runs(["sgd-onecycle"], [0], "quick-cpu", {"lr_schedule": "linear"})
    assert cfg.lr_schedule == "linear"  # asked for explicitly: the user's choice wins
    (cfg,) = plan_runs(["sgd-constant"], [0], "fast")
    assert cfg.mu == 0.85 and cfg.lr_schedule == "linear"  # a preset still tunes what a method leaves open
