"""Verdicts over any runs: the sweep's statistics on arms of hand-made, engine or tracked runs."""
import json

import pytest

from beta_core.cli import main
from beta_core.records import EPOCH
from beta_core.store import Store
from beta_core.sweeps import SweepPlan, analyse
from beta_core.verdicts import analyse_runs, run_arms

# final test accuracies per (method, seed): beta a little higher and faster on every seed
ACC = {("sgd-constant", 0): [0.40, 0.55, 0.62], ("sgd-constant", 1): [0.42, 0.54, 0.63],
       ("sgd-constant", 2): [0.39, 0.56, 0.61], ("sgd-beta", 0): [0.50, 0.60, 0.64],
       ("sgd-beta", 1): [0.51, 0.61, 0.66], ("sgd-beta", 2): [0.49, 0.59, 0.65]}
PLAN = SweepPlan(methods=("sgd-constant", "sgd-beta"), seeds=(0, 1, 2), targets=(0.5, 0.6),
                 overrides={"dataset": "synthetic"}, evals_per_epoch=0)


def _hand_made(store: Store, kind: str = "train") -> list[tuple]:
    """One finished run per cell of PLAN, with three epochs of the accuracies above."""
    members = []
    for cell in PLAN.cells("test"):
        cfg = PLAN.config(cell).to_dict()
        rid = store.create_run(cfg, kind=kind, label=cell.key(), status="running")
        accs = ACC[(cell.method, cell.seed)]
        for e, a in enumerate(accs):
            store.add_epoch(rid, {"kind": EPOCH, "epoch": e, "step": 10 * (e + 1), "time": 2.0 * (e + 1),
                                  "train_loss": 1.0, "train_acc": a, "test_loss": 1.0, "test_acc": a,
                                  "regime": "critical", "zeta_median": 1.0, "lr": 0.1, "momentum": 0.9,
                                  "val_loss": 1.0, "val_acc": a - 0.01})
        store.finish(rid, "done", {"final_test_acc": accs[-1], "best_test_acc": max(accs),
                                   "final_val_acc": accs[-1] - 0.01})
        members.append((cell, store.get_run(rid)))
    return members


def _same(a: dict, b: dict) -> None:
    keys = ("claim", "figure", "verdict", "verdict_holm", "n", "p", "p_holm")
    assert [{k: c[k] for k in keys} for c in a["claims"]] == [{k: c[k] for k in keys} for c in b["claims"]]
    for m in a["methods"]:
        assert a["methods"][m]["final_test_acc"] == b["methods"][m]["final_test_acc"]
        assert a["methods"][m]["time_to_target"] == b["methods"][m]["time_to_target"]


def test_verdict_over_hand_made_runs_equals_the_sweep_analysis(tmp_path):
    store = Store(tmp_path)
    members = _hand_made(store)
    epochs = store.epoch_records(*[r["id"] for _, r in members])
    sweep = analyse(PLAN, members, epochs)
    any_runs = analyse_runs(run_arms([r for _, r in members]), epochs, "sgd-constant", [0.5, 0.6])
    _same(sweep, any_runs)
    assert any(c["verdict"] == "higher" for c in any_runs["claims"])  # the data above is a clear win


def test_cli_verdict_by_group_and_by_ids_agree_with_the_sweep(tmp_path, capsys):
    store = Store(tmp_path / "runs")
    members = _hand_made(store, kind="external")  # logged from a user's loop: the same statistics
    sweep = analyse(PLAN, members, store.epoch_records(*[r["id"] for _, r in members]))
    base = ["--runs-dir", str(tmp_path / "runs"), "verdict", "--target", "0.5,0.6"]
    assert main([*base, "--group-by", "method", "--baseline", "sgd-constant", "--where", "dataset=synthetic",
                 "--json", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert "verdicts vs sgd-constant" in out and "sgd-beta ends with higher test accuracy" in out
    _same(sweep, json.loads((tmp_path / "a.json").read_text()))
    beta = ",".join(r["id"] for c, r in members if c.method == "sgd-beta")
    const = ",".join(r["id"] for c, r in members if c.method == "sgd-constant")
    assert main([*base, "--runs", beta, "--against", const, "--json", str(tmp_path / "b.json")]) == 0
    _same(sweep, json.loads((tmp_path / "b.json").read_text()))


@pytest.mark.parametrize("argv, fragment", [
    ([], "none chose runs"),
    (["--group-by", "method"], "--group-by without --baseline (expected one of"),
    (["--group-by", "method", "--baseline", "adam"], "Invalid baseline: 'adam'"),
    (["--group-by", "method", "--baseline", "sgd-constant", "--where", "nofield"], "expected FIELD=VALUE"),
    (["--group-by", "method", "--baseline", "sgd-constant", "--where", "dataset=cifar10"], "No finished runs match"),
])
def test_bad_verdict_requests_are_one_line(tmp_path, capsys, argv, fragment):
    _hand_made(Store(tmp_path / "runs"))
    assert main(["--runs-dir", str(tmp_path / "runs"), "verdict", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_one_arm_with_two_runs_of_a_seed_is_refused(tmp_path):
    store = Store(tmp_path)
    members = _hand_made(store)
    runs = [r for _, r in members] + [members[0][1]]
    with pytest.raises(ValueError, match="expected one run per seed in each arm"):
        run_arms(runs)


# ------------------------------------------------------------------ questions that were not asked (issue 29)
def test_the_same_runs_on_both_sides_get_no_verdict(tmp_path, capsys):
    store = Store(tmp_path)
    members = _hand_made(store)
    a = ",".join(r["id"] for c, r in members if c.method == "sgd-beta")
    b = ",".join(r["id"] for c, r in members if c.method == "sgd-constant")
    assert main(["--runs-dir", str(tmp_path), "verdict", "--runs", a, "--against", a]) == 2
    err = capsys.readouterr().err
    assert "is in both arms" in err and "no verdict" in err and "1.00x" not in err
    # overlapping: one run of each side on the other
    a2 = ",".join(r["id"] for c, r in members if (c.method == "sgd-beta") != (c.seed == 0))
    assert main(["--runs-dir", str(tmp_path), "verdict", "--runs", a2, "--against", b]) == 2
    assert "is in both arms" in capsys.readouterr().err
    assert main(["--runs-dir", str(tmp_path), "verdict", "--runs", a, "--against", b]) == 0  # the real question


def test_an_arm_that_only_diverged_gets_no_verdict(tmp_path):
    store = Store(tmp_path)
    members = _hand_made(store)
    runs = [{**r, "status": "diverged" if c.method == "sgd-beta" else r["status"]} for c, r in members]
    arms = run_arms(runs)
    with pytest.raises(ValueError, match=r"No verdict: every run of sgd-beta diverged \(3 runs"):
        analyse_runs(arms, store.epoch_records(*[r["id"] for r in runs]), "sgd-constant", [0.5])


# ------------------------------------------------------------------ numbers a careful reader would sign (issue 31)
def test_a_target_no_run_reached_is_not_testable_and_not_in_the_family(tmp_path):
    store = Store(tmp_path)
    runs = [r for _, r in _hand_made(store)]
    arms = run_arms(runs)
    rep = analyse_runs(arms, store.epoch_records(*[r["id"] for r in runs]), "sgd-constant", [0.5, 0.99])
    speed = {c["target"]: c for c in rep["claims"] if c["kind"] == "speed"}
    assert speed[0.99]["verdict"] == "not testable: no run reached 99%" and speed[0.99]["p"] is None
    assert speed[0.99]["figure"].startswith("—") and "1.00x" not in speed[0.99]["figure"]
    assert speed[0.99]["p_holm"] is None and speed[0.5]["p"] is not None
    sp = rep["comparisons"]["sgd-beta"]["speedup"]["0.99"]
    assert sp["steps"]["ratio"] is None and sp["seconds"]["verdict"].startswith("not testable")
    from beta_core.reports import verdict_summary
    text = verdict_summary(rep)
    assert "**Not testable**: 2 claims at 99%" not in text and "**Not testable**: 1 claim at 99%" in text


def test_accuracy_intervals_stay_in_zero_to_one(tmp_path):
    from beta_core.verdicts import arm_summary
    runs = {s: {"status": "done", "summary": {"final_test_acc": a, "best_test_acc": a}} for s, a in
            enumerate([0.02, 0.30])}
    row = arm_summary(runs, {0: {}, 1: {}}, [], "m")
    assert row["final_test_acc"]["ci_low"] == 0.0 and row["final_test_acc"]["clipped"]
    assert row["final_test_acc"]["ci_high"] <= 1.0
