"""The runs explorer's SQL: fields, filter expressions (data, never SQL), sorting, groups."""
import pytest

from beta_core import explorer
from beta_core.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "runs")
    for i in range(8):
        method = ("sgd-beta", "sgd-constant")[i % 2]
        rid = s.create_run({"method": method, "lr": 0.025 * (1 + i % 4), "seed": i, "model": "small_cnn"},
                           status="done")
        s.finish(rid, "done", {"final_test_acc": 0.5 + 0.01 * i, "environment": {"host": f"h{i % 2}"},
                               "time_to_accuracy": {"0.5": {"step": 100 - i, "epoch": 1, "time": 1.0}, "0.9": None}})
        if i < 3:
            s.tag(rid, add=["lecture"])
    return s


def test_fields_are_the_stores_own(store):
    known = explorer.fields(store)
    assert {"lr", "seed", "model", "final_test_acc", "steps_to_0.5", "steps_to_0.9", "host", "tags"} <= set(known)
    assert explorer.default_columns(known)[:5] == ["name", "method", "final_test_acc", "best_test_acc", "steps_to_0.5"]


@pytest.mark.parametrize("flt, n", [("lr > 0.05", 4), ("method in sgd-beta, sgd-constant", 8), ("tag = lecture", 3),
                                    ("tag != lecture", 5), ("method = sgd-beta and lr <= 0.05", 2),
                                    ("method ~ const; seed >= 4", 2), ("host = h1", 4), ("steps_to_0.5 < 95", 2),
                                    ("method not in sgd-beta", 4), ("", 8)])
def test_a_filter_keeps_what_it_says(store, flt, n):
    assert explorer.query(store, flt, known=explorer.fields(store)).total == n


def test_sorting_by_any_field_with_empty_values_last(store):
    rid = store.create_run({"method": "sgd-beta", "lr": 0.1, "seed": 99}, status="done")  # no accuracy
    page = explorer.query(store, None, "final_test_acc", True, ("final_test_acc", "seed"), limit=20)
    assert list(page.frame["seed"])[:3] == [7, 6, 5] and page.frame["id"].iloc[-1] == rid
    asc = explorer.query(store, None, "final_test_acc", False, ("seed",), limit=3)
    assert list(asc.frame["seed"]) == [0, 1, 2]
    paged = explorer.query(store, None, "seed", False, ("seed",), limit=3, offset=3)
    assert list(paged.frame["seed"]) == [3, 4, 5] and paged.total == 9


@pytest.mark.parametrize("bad, says", [("lrr > 0.1", "Unknown field 'lrr'"), ("lr >", "Invalid filter"),
                                       ("lr > high", "expected a number after >"), ("tag > 2", "tag = NAME"),
                                       ("just words", "expected FIELD OP VALUE")])
def test_a_bad_filter_is_one_error(store, bad, says):
    with pytest.raises(ValueError, match=says):
        explorer.query(store, bad, known=explorer.fields(store))


def test_a_filter_is_data_never_sql(store):
    assert explorer.query(store, "method = x' OR '1'='1", known=explorer.fields(store)).total == 0  # a value, bound
    with pytest.raises(ValueError, match="Invalid filter 'DROP TABLE runs'"):
        explorer.query(store, "method = x'); DROP TABLE runs; --", known=explorer.fields(store))
    assert explorer.query(store, "method ~ %'--", known=explorer.fields(store)).total == 0
    with pytest.raises(ValueError):
        explorer.query(store, "lr) OR 1=1 -- > 0")
    assert store.count_runs() == 8


def test_groups_have_intervals_inside_the_metrics_bounds(store):
    g = explorer.group_stats(store, None, "method", "final_test_acc").set_index("method")
    assert list(g["n"]) == [4, 4] and g.loc["sgd-beta", "mean"] == pytest.approx(0.53)
    assert g.loc["sgd-beta", "ci_low"] < 0.53 < g.loc["sgd-beta", "ci_high"] <= 1
    s = Store(store.dir)
    rid = s.create_run({"method": "edge", "seed": 0}, status="done")
    s.finish(rid, "done", {"final_test_acc": 0.99})
    rid = s.create_run({"method": "edge", "seed": 1}, status="done")
    s.finish(rid, "done", {"final_test_acc": 0.2})
    edge = explorer.group_stats(s, "method = edge", "method", "final_test_acc").iloc[0]
    assert edge["ci_high"] == 1.0 and edge["ci_low"] == 0.0 and edge["clipped"]  # n = 2: a wide interval, cut


def test_a_group_says_which_settings_its_runs_differ_in(store):
    """The new user's walk: grouped by method, sgd-beta's interval pooled every LR and a run with a
    planted fault. The group says what it pools; a group of seeds of one setting pools nothing."""
    g = explorer.group_stats(store, None, "method", "final_test_acc").set_index("method")
    assert g.loc["sgd-beta", "pools"] == "lr"  # the fixture's sgd-beta runs at 0.025 and 0.075
    s = Store(store.dir)
    for seed, fault in ((0, None), (1, None), (2, "block2")):
        rid = s.create_run({"method": "m", "lr": 0.1, "seed": seed, "planted_fault": fault}, status="done")
        s.finish(rid, "done", {"final_test_acc": 0.5})
    assert explorer.group_stats(s, "method = m", "method", "final_test_acc").iloc[0]["pools"] == "planted_fault"
    for seed, mu in ((0, 0.9), (1, 0.95)):
        rid = s.create_run({"method": "c", "lr": 0.1, "mu": mu, "seed": seed}, status="done")
        s.finish(rid, "done", {"final_test_acc": 0.5})
    assert explorer.group_stats(s, "method = c", "method", "final_test_acc").iloc[0]["pools"] == "mu"
    by_lr = explorer.group_stats(s, "method = m and seed < 2", "lr", "final_test_acc").iloc[0]
    assert by_lr["pools"] == "" and by_lr["n"] == 2  # same setting, two seeds


def test_group_curves_are_means_with_bands():
    import pandas as pd
    records = pd.DataFrame({"run_id": ["a", "a", "b", "b", "c", "c"], "epoch": [0, 1] * 3,
                            "test_acc": [0.2, 0.4, 0.3, 0.5, 0.9, 0.9]})
    c = explorer.group_curves(records, {"a": "x", "b": "x", "c": "y"}, "epoch", "test_acc")
    x = c[c["arm"] == "x"]
    assert list(x["mean"]) == pytest.approx([0.25, 0.45]) and list(x["n"]) == [2, 2]
    assert c[c["arm"] == "y"]["ci_low"].isna().all()  # one run: no interval
    sm = explorer.smoothed(records, "test_acc", 2)
    assert list(sm["test_acc"])[:2] == pytest.approx([0.2, 0.3])
