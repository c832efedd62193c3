"""Reports: the tables the CLI prints and the pages show."""
import json

import pandas as pd
import pytest

from beta_core import reports
from beta_core.config import resolve_config


def _cfg(**kw):
    return resolve_config(kw.pop("method", "sgd-beta"), dataset="synthetic", **kw).to_dict()


def test_run_table_has_the_config_columns(store):
    rid = store.create_run(_cfg(seed=3, lr=0.05))
    store.finish(rid, "done", {"best_test_acc": 0.5, "final_test_acc": 0.4, "train_seconds": 2.0})
    row = reports.run_table(store).iloc[0]
    assert list(reports.run_table(store).columns) == reports.RUN_COLUMNS
    assert (row["id"], row["lr"], row["seed"], row["momentum_rule"]) == (rid, 0.05, 3, "beta")
    assert row["wall_seconds"] == 2.0  # stored as train_seconds by older runs


def test_method_summary_and_export(store, tmp_path):
    ids = []
    for method, acc in [("sgd-beta", 0.5), ("sgd-beta", 0.7), ("sgd-constant", 0.4)]:
        rid = store.create_run(_cfg(method=method))
        store.finish(rid, "done", {"final_test_acc": acc, "best_test_acc": acc, "train_seconds": 1.0})
        ids.append(rid)
    table = reports.method_summary(store, ids)
    beta = table[table["method"] == "sgd-beta"].iloc[0]
    assert beta["final_test_acc_mean"] == pytest.approx(0.6) and beta["final_test_acc_count"] == 2
    assert beta["final_test_acc_std"] == pytest.approx(0.1414, abs=1e-3)
    files = reports.export_csv(store, ids[:2], tmp_path / "out")
    assert [f.name for f in files] == ["runs.csv", "steps.csv", "epochs.csv"]
    runs = pd.read_csv(files[0])
    assert len(runs) == 2 and json.loads(runs["config"].iloc[0])["method"] == "sgd-beta"  # config in every CSV


def test_rows_drive_the_text_table():
    summary = {"report": {"surgery": {"name": "surgery (flagged groups)", "fixed": 52, "broken": 59, "net": -7,
                                      "acc_before": 0.584, "acc_after": 0.5805, "param_fraction": 0.76,
                                      "step_seconds": 1.234}}}
    rows = reports.surgery_rows(summary)
    assert list(rows[0]) == ["variant", "fixed", "broken", "net", "acc before", "acc after", "params",
                            "wall-clock s"]
    text = reports.text_table(rows)
    assert "surgery (flagged groups)" in text and "76.0%" in text and "-7" in text
    assert reports.text_table([]) == "(none)"


def test_surgery_outcome_comes_first_in_words():
    s = {"net": -7, "fixed": 52, "broken": 59, "acc_before": 0.584, "acc_after": 0.5805,
         "report": {"full": {"net": 7}, "random": {"name": "random groups", "net": -2}}}
    text = reports.surgery_outcome(s)
    assert text.startswith("The repair **hurt**: net -7 images (52 fixed, 59 broken), accuracy 58.4% → 58.1%.")
    assert "**worse than** a full fine-tune of every group (net +7)" in text
    assert "**no better than** the control random groups (net -2)" in text and "no better a choice than random" in text
    assert "(n = 1)" in text and "not a verdict" in text  # one repair is counted, not generalised


def _run(rid, method, acc, hit_step, updated=100.0, status="done"):
    tta = {"0.5": {"epoch": 1, "step": hit_step, "time": 3.0} if hit_step else None}
    return {"id": rid, "kind": "train", "method": method, "status": status, "updated": updated, "config": {},
            "summary": {"final_test_acc": acc, "time_to_accuracy": tta} if status == "done" else {}}


def test_training_outcome_says_who_ended_highest_who_was_first_and_how_much_it_means():
    from beta_core.reports import training_outcome

    text = training_outcome([_run("a", "sgd-beta", 0.574, 300), _run("b", "sgd-constant", 0.5645, 420),
                             _run("c", "sgd-hybrid", 0.578, None)])
    assert text.startswith("**sgd-hybrid** ended highest: final test accuracy 57.8% (sgd-beta 57.4%, "
                           "sgd-constant 56.5%).")
    assert "First to 50% test accuracy: **sgd-beta** at step 300 (sgd-hybrid never)." in text
    tie = training_outcome([_run("a", "sgd-beta", 0.57, 188), _run("b", "sgd-hybrid", 0.58, 188)])
    assert "First to 50% test accuracy: **sgd-beta** and **sgd-hybrid** (tied) at step 188." in tie
    one = training_outcome([_run("a", "sgd-beta", 0.442, 141)])
    assert one == "**sgd-beta**: final test accuracy 44.2%. It reached 50% test accuracy at step 141."
    assert "One seed per method" in text and "not a verdict" in text
    assert training_outcome([_run("a", "sgd-beta", None, None, status="running")]).startswith("1 run still")
    easy = [_run("a", "sgd-beta", 0.99, 10), _run("b", "sgd-constant", 0.99, 12)]  # MNIST: every target in epoch 1
    for r in easy:
        r["summary"]["time_to_accuracy"]["0.5"]["epoch"] = 0
    assert "Every target was reached in the first epoch" in training_outcome(easy)


def test_timing_note_says_whether_seconds_compare():
    from beta_core.reports import timing_note

    after = [_run("a", "x", 0.5, 1, updated=100.0), _run("b", "y", 0.5, 1, updated=200.0)]
    assert "one after another" in timing_note(after, {"a": 50.0, "b": 60.0})  # [50, 100], [140, 200]
    assert "overlapped" in timing_note(after, {"a": 50.0, "b": 150.0})       # [50, 100], [50, 200]
    assert timing_note(after[:1], {"a": 50.0}) == "wall-clock seconds on this machine"


def test_verdict_summary_names_the_definite_results_and_says_no_difference_plainly():
    def claim(name, verdict, holm=None):
        return {"claim": name, "figure": "1.3x [1.1, 1.5]", "verdict": verdict, "verdict_holm": holm, "n": 3}

    none = {"claims": [claim("a", "no detectable difference at n = 3; could detect ≥ 2.2 pts (80% power)")]}
    assert reports.verdict_summary(none).startswith("**No detectable difference** in any of the 1 claims at n = 3")
    some = {"claims": [claim("b faster", "faster; 1.3x", "faster"), claim("a", "no detectable difference")]}
    assert reports.verdict_summary(some) == ("At n = 3 seeds per method (Holm over the family): b faster: **faster** "
                                             "(1.3x [1.1, 1.5]). The other 1 claim: no detectable difference.")


def test_an_accuracy_difference_reads_in_points_also_in_a_report_stored_before():
    """A difference of 58.5% and 57.7% is +0.8 points, not 0.8%: the verdict sentence said
    "equivalent within ±1 pt (0.2% [-0.6%, 0.9%])". Old stored reports are read in points too."""
    diff = {"mean_diff": 0.0021, "ci_low": -0.0058, "ci_high": 0.0093, "n": 12}
    old = {"claim": "b ends with higher test accuracy than a", "method": "b", "kind": "accuracy", "n": 12,
           "figure": "0.2% [-0.6%, 0.9%]", "verdict": "equivalent within ±1 pt at n = 12"}
    rep = {"comparisons": {"b": {"final_test_acc_diff": diff}}, "claims": [old], "setting": {"baseline": "a"}}
    assert reports.claim_figure(rep, old) == "+0.2 pt [-0.6, +0.9]"
    assert reports.verdict_rows(rep)[0]["measured (95% CI)"] == "+0.2 pt [-0.6, +0.9]"
    assert "(+0.2 pt [-0.6, +0.9])" in reports.verdict_summary(rep) and "%" not in reports.verdict_summary(rep)
    speed = {**old, "kind": "speed", "figure": "1.30x [1.10, 1.50]"}
    assert reports.claim_figure(rep, speed) == "1.30x [1.10, 1.50]"  # a ratio as measured

    from beta_core.verdicts import compare_arms
    arms = {m: {s: {"summary": {"final_test_acc": acc + s / 100}} for s in range(4)} for m, acc in
            (("a", 0.5), ("b", 0.52))}
    tta = {m: {s: {} for s in range(4)} for m in arms}
    ends = {m: {s: {"step": 100, "time": 10.0} for s in range(4)} for m in arms}
    _, claims = compare_arms(arms, "a", tta, ends, [], 0.01, 0.1)
    assert claims[0]["figure"] == "+2.0 pt [+2.0, +2.0]"  # a new report says it in points itself


def test_the_train_headline_never_averages_runs_of_different_configs():
    """Issue 31: "sgd-beta 50.1%" averaged a 5-epoch and a 1-epoch run."""
    from beta_core.reports import training_outcome

    def run(method, epochs, seed, acc):
        return {"kind": "train", "method": method, "status": "done", "config": {"epochs": epochs, "seed": seed},
                "summary": {"final_test_acc": acc, "time_to_accuracy": {}}}
    text = training_outcome([run("sgd-hybrid", 5, 0, 0.584), run("sgd-beta", 5, 0, 0.58), run("sgd-beta", 1, 0, 0.42)])
    assert "sgd-beta (epochs=5) 58.0%" in text and "sgd-beta (epochs=1) 42.0%" in text and "50.0%" not in text
    same = training_outcome([run("sgd-beta", 5, s, a) for s, a in ((0, 0.5), (1, 0.6))])
    assert "**sgd-beta**: mean final test accuracy 55.0%" in same  # seeds are not a config difference


def test_a_planted_fault_is_said_and_stays_out_of_the_race():
    """The demo's damaged twin: its label says what differs ("no planted fault" for the clean
    run, not "=None"), the headline says what the fault cost, and it is never "first to" a
    target its final (damaged) model does not hold."""
    from beta_core.reports import training_outcome

    clean = _run("a", "sgd-beta", 0.574, 300)
    hurt = _run("b", "sgd-beta", 0.362, 200)
    hurt["config"] = {**hurt["config"], "planted_fault": "block2"}
    hurt["summary"]["planted_fault"] = {"group": "block2", "test_acc_before": 0.584, "test_acc_after": 0.362}
    text = training_outcome([clean, hurt, _run("c", "sgd-constant", 0.56, 400)])
    assert "sgd-beta (no planted fault) 57.4%" in text or text.startswith("**sgd-beta (no planted fault)**")
    assert "**sgd-beta (planted_fault=block2)** had a fault planted in block2 after training: 58.4% before it, " \
           "36.2% after." in text
    assert "First to 50% test accuracy: **sgd-beta (no planted fault)** at step 300" in text


def test_a_stored_report_without_paper_claims_shows_them_beside_its_speed_claims():
    """Issue 31: the demo's sweep report was stored before claims carried the paper's; the column was empty."""
    from beta_core.reports import verdict_rows
    rep = {"setting": {"baseline": "sgd-constant"},
           "claims": [{"claim": "c", "figure": "f", "verdict": "v", "n": 3, "kind": "speed", "method": "sgd-beta",
                       "target": 0.575, "paper": None},
                      {"claim": "a", "figure": "f", "verdict": "v", "n": 3, "kind": "accuracy", "method": "sgd-beta"}]}
    speed, acc = verdict_rows(rep)
    assert "1.9x" in speed["paper's claim"] and "not comparable: this claim's target is 57.5%" in speed["paper's claim"]
    assert acc["paper's claim"] == ""


def test_a_logged_loops_momentum_rule_reads_as_logged(tmp_path):
    from beta_core import track
    from beta_core.store import Store
    with track.start(method="my-sgd", seed=0, config={"lr": 0.1}, runs_dir=tmp_path / "runs") as run:
        run.log_step(0, loss=1.0, lr=0.1, momentum=0.9)
    row = reports.run_table(Store(tmp_path / "runs")).iloc[0]
    assert row["kind"] == "external" and row["momentum_rule"] == "as logged"


def test_two_comparisons_of_the_same_methods_are_told_apart_in_the_picker():
    """The new user's walk: "Recent comparisons" read the same for a 1-epoch synthetic try and an
    8-epoch CIFAR-10 comparison (methods, seeds and run count only)."""
    def run(epochs, data, i):
        return {"id": f"20261207-08190{i}-sgd-beta", "method": "sgd-beta", "summary": {"data": data},
                "config": {"model": "small_cnn", "epochs": epochs, "seed": 0}}

    quick, real = reports.comparison_label([run(1, "synthetic", 1)]), reports.comparison_label([run(8, "cifar10", 2)])
    assert quick != real and "1 epoch," in quick and "synthetic" in quick and "8 epochs, cifar10" in real
    assert reports.comparison_label([{"id": "x", "method": "m", "config": {}}]) == "x · m · - · seeds - · 1 run"
    demo = {"id": "20261201-1310-x", "method": "m", "config": {}, "tags": '["demo"]'}
    assert reports.comparison_label([demo]).startswith("2026-12-01 13:10 (demo) · m")
