"""Every page through streamlit.testing.v1.AppTest: empty store, populated store, widgets."""
import os
import re
from pathlib import Path

import pytest
from helpers import tiny_config
from streamlit.testing.v1 import AppTest

from beta_core.jobs.bodies import execute_run
from beta_core.store import Store
from beta_core.surgery import SurgeryConfig, surgery_run_config
from beta_core.sweeps import SweepPlan, sweep_run_config

PAGES = ["theory", "findings", "schedules", "train", "compare", "attribution", "surgery", "runs"]


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A store with two finished runs, an attribution result and a surgery (about 15 s)."""
    root = tmp_path_factory.mktemp("app")
    store = Store(root / "runs")
    ids = []
    for method in ("sgd-beta", "adam"):
        rid = store.create_run(tiny_config(method=method, epochs=2, attribution_every_epoch=True).to_dict())
        assert execute_run(store, rid, str(root / "data"))["status"] == "done"
        ids.append(rid)
    for rid in ids:
        job = store.create_run({"method": "attribution", "attribution": {"k": 2}}, kind="attribution", parent=rid)
        assert execute_run(store, job, str(root / "data"))["status"] == "done"
    cfg = surgery_run_config(store.get_run(ids[0])["config"], SurgeryConfig(groups=("fc",), epochs=1))
    sid = store.create_run(cfg, kind="surgery", parent=ids[0])
    run = execute_run(store, sid, str(root / "data"))
    assert run["status"] == "done", run["error"]
    bench = store.create_run({"method": "localise", "model": "small_cnn",
                              "localise": {"severities": {"noise": [1.0]},
                                           "scores": ["grad_relative", "probe", "random"],
                                           "probe_steps": 2}}, kind="localise", parent=ids[0])
    assert execute_run(store, bench, str(root / "data"))["status"] == "done"
    plan = SweepPlan(methods=["sgd-constant", "sgd-beta"], seeds=[0, 1], grid={"*": {"lr": [0.05, 0.1]}},
                     tune=["lr"], tune_seeds=[7], targets=[0.2],
                     overrides={k: v for k, v in tiny_config().to_dict().items() if k not in ("method", "seed", "lr")})
    sweep = execute_run(store, store.create_run(sweep_run_config(plan), kind="sweep"), str(root / "data"))
    assert sweep["status"] == "done", sweep["error"]
    return root, ids, sid


def _app(monkeypatch, root, page: str, selected: list[str] | None = None) -> AppTest:
    """The app on ``page``; ``selected``: runs selected on the Runs page, through its link (?runs=)."""
    monkeypatch.setenv("BETA_RUNS_DIR", str(root / "runs"))
    monkeypatch.setenv("BETA_DATA_DIR", str(root / "data"))
    at = AppTest.from_file("../app.py", default_timeout=60)
    if selected:
        at.query_params["runs"] = ",".join(selected)
    at.switch_page(f"pages/views/{page}.py")  # opened by its own link, as a URL with ?runs= is
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_on_empty_store(monkeypatch, tmp_path, page):
    at = _app(monkeypatch, tmp_path, page)
    assert at.title and not at.error


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_with_runs(monkeypatch, populated, page):
    at = _app(monkeypatch, populated[0], page)
    assert not at.error, [e.value for e in at.error]


def test_theory_widgets_change_what_is_shown(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path, "theory")
    before = [m.value for m in at.metric]
    at.select_slider[0].set_value(0.1).run()
    after = [m.value for m in at.metric]
    assert before != after and any("0.158" in v for v in after)  # zeta of mu=0.9 at lr 0.1


def test_schedules_rejects_bad_values_with_an_error(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path, "schedules")
    n = len(at.get("plotly_chart"))
    at.selectbox[0].set_value("step").run()
    assert len(at.get("plotly_chart")) == n and not at.exception


def test_schedules_says_when_the_beta_rule_is_clamped_and_underdamped(monkeypatch, tmp_path):
    """The new user's walk: at peak LR 1 the page said "starts at μ = 0.000 (ζ = 1 at λ = 1)"
    beside a chart of ζ = 0.5: above LR 1/(4λ) the rule is clamped at 0 and underdamped."""
    at = _app(monkeypatch, tmp_path, "schedules")
    assert any("ζ = 1 at λ = 1" in m.value for m in at.markdown)  # LR 0.1: the rule holds
    at.number_input(key="sc_lr").set_value(1.0).run()
    text = next(m.value for m in at.markdown if "the beta rule starts at" in m.value)
    assert "ζ = 1 at" not in text and "clamped" in text and "ζ = 0.50, **underdamped**, until step" in text


def test_train_shows_runs_and_tables(monkeypatch, populated):
    at = _app(monkeypatch, populated[0], "train")
    assert len(at.get("plotly_chart")) == 2  # schedule panels, performance panels
    assert any("Time to accuracy" in s.value for s in at.subheader)
    at.radio[0].set_value("epoch").run()
    assert not at.exception and len(at.get("plotly_chart")) == 2


def test_train_bad_seeds_show_error_not_traceback(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path, "train")
    at.text_input[1].set_value("a,b")
    at.button[0].click().run()
    assert not at.exception
    assert any("invalid literal" in e.value or "Invalid" in e.value for e in at.error)


def test_train_unwritable_store_shows_error(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("BETA_RUNS_DIR", str(blocker / "runs"))
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.run()
    at.switch_page("pages/views/train.py")
    at.run()
    assert not at.exception
    assert any("writable" in e.value for e in at.error)


def test_attribution_shows_heatmaps_and_overlap(monkeypatch, populated):
    at = _app(monkeypatch, populated[0], "attribution")
    root, ids, _ = populated
    at.selectbox(key="attr-run-0").set_value(ids[0]).run()
    at.selectbox(key="attr-run-1").set_value(ids[1]).run()
    charts = at.get("plotly_chart")
    assert len(charts) >= 8  # 2 bars + 2x(true, predicted, epoch) heatmaps
    assert any("Jaccard" in m.label for m in at.metric)


def test_surgery_shows_before_after(monkeypatch, populated):
    at = _app(monkeypatch, populated[0], "surgery")  # opens on the run that has a surgery, not the newest
    assert at.selectbox(key="surgery-run").value == populated[1][0]
    # savings are headline figures only when the repair was worth it; otherwise a note says why not
    net = Store(populated[0] / "runs").get_run(populated[2])["summary"]
    worth = net["net"] > 0 and net["net"] >= net["report"]["full"]["net"]
    assert (any("Savings" in m.label for m in at.metric) if worth else
            any("No savings to claim" in w.value for w in at.warning)) and len(at.dataframe) >= 1
    assert at.markdown[0].value.startswith("The repair **")  # the outcome in words comes first
    at.selectbox(key="surgery-run").set_value(populated[1][1]).run()
    assert any("No surgery on this run yet" in c.value for c in at.caption)


def test_runs_delete_refuses_nothing_selected_and_lists(monkeypatch, populated):
    at = _app(monkeypatch, populated[0], "runs")
    assert len(at.dataframe) >= 1  # the runs table first (then the groups of the runs charted)
    ids = at.dataframe[0].value["id"].tolist()
    assert populated[2] in ids


def test_compare_page_shows_grid_curves_and_verdicts(monkeypatch, populated):
    at = _app(monkeypatch, populated[0], "compare")
    assert not at.error, [e.value for e in at.error]
    assert any(s.value == "Verdicts" for s in at.subheader) and len(at.table) == 1 and len(at.dataframe) >= 1
    claims = at.table[0].value.reset_index()  # a table, not a dataframe: long verdicts wrap instead of being cut
    assert set(claims.columns) >= {"claim", "measured (95% CI)", "verdict", "n"} and len(claims) == 2
    assert all(v.startswith(("faster", "slower", "higher", "lower", "no detectable", "undetermined", "equivalent"))
               for v in claims["verdict"])
    # the stage-1 bars say how many tuning seeds they rest on (the walk read their width as noise)
    assert any(c.value.startswith("Each point: mean validation accuracy over n = ") for c in at.caption)


def test_attribution_page_shows_the_evidence_beside_the_flag(monkeypatch, populated):
    at = _app(monkeypatch, populated[0], "attribution")
    captions = " ".join(c.value for c in at.caption)
    assert "How often probe is right" in captions and "planted faults on this model" in captions
    assert any(s.value.startswith("How often is a flag right") for s in at.subheader)
    table = next(d.value for d in at.dataframe if "top-1 [95% CI]" in d.value.columns)  # reports.localisation_rows
    assert set(table["score"]) == {"grad_relative (paper)", "probe", "random"}
    # the benchmark's units: rates in % everywhere (heatmap, bars, table), a fault's cost in points
    cost = next(c.value for c in at.caption if c.value.startswith("Test accuracy each fault cost the model"))
    assert re.search(r"^[^:]+: \S+ \S+: -?\d+\.\d pt(, |\.$)", cost), cost  # "noise 1: 23.5 pt", not 0.235
    heat = next(c for c in at.get("plotly_chart") if "Top-1 rate (%)" in c.proto.spec)
    assert '"zmax":100' in heat.proto.spec.replace(" ", "")


def test_theory_takes_a_runs_measured_sharpness(monkeypatch, tmp_path):
    store = Store(tmp_path / "runs")
    rid = store.create_run(tiny_config(epochs=1, curvature_every_epoch=True).to_dict())
    assert execute_run(store, rid, str(tmp_path / "data"))["status"] == "done"
    at = _app(monkeypatch, tmp_path, "theory")
    source = at.selectbox[0]
    assert len(source.options) == 2 and "epoch 1" in source.options[1]
    source.set_value(source.options[1]).run()
    assert not at.exception and any("Your run's sharpness" in c.value for c in at.caption)
    lam = store.epochs(rid)["extra"][0]["lam_max"]
    assert any(f"{lam:.3g}" == m.value for m in at.metric)


@pytest.mark.parametrize("page", ["theory", "train", "runs"])
def test_unreachable_ray_head_is_one_plain_error(monkeypatch, tmp_path, page):
    """BETA_BACKEND=ray with no head: one error naming the backend (not the store), no traceback."""
    monkeypatch.setenv("BETA_BACKEND", "ray")
    monkeypatch.setenv("BETA_RAY_ADDRESS", "127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("BETA_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.run()
    if page != "theory":
        at.switch_page(f"pages/views/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and "ray backend is unavailable" in at.error[0].value
    assert "store" not in at.error[0].value.lower()


def test_compare_page_resumes_a_stopped_sweep_unless_another_process_runs_it(monkeypatch, tmp_path):
    """The page's Resume uses the same atomic claim as `sweep --resume`: when the CLI took the
    sweep first, the page says which process runs it and starts nothing."""
    import subprocess
    import sys

    store = Store(tmp_path / "runs")
    plan = SweepPlan(methods=["sgd-constant", "sgd-beta"], seeds=[0], targets=[0.2],
                     overrides={k: v for k, v in tiny_config().to_dict().items() if k not in ("method", "seed")})
    sid = store.create_run(sweep_run_config(plan), kind="sweep", status="cancelled")
    at = _app(monkeypatch, tmp_path, "compare")
    assert any("Resume sweep" == b.label for b in at.button)
    cli = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.reopen(sid, pid=cli.pid)  # the CLI claims it between the page's render and the click
        next(b for b in at.button if b.label == "Resume sweep").click().run()
        assert not at.exception and not any(b.label == "Resume sweep" for b in at.button)  # shown as running
        assert store.get_run(sid)["pid"] == cli.pid and store.runs(kind="train") == []
        from beta_core.store import StoreError
        from pages.views.common import resume_sweep  # the click's own path, had the page not rerun first
        monkeypatch.setenv("BETA_RUNS_DIR", str(tmp_path / "runs"))
        with pytest.raises(StoreError, match=f"sweep {sid} is being run by process {cli.pid}"):
            resume_sweep(sid)
    finally:
        cli.kill()
        cli.wait()
    store.finish(sid, "cancelled")
    at = _app(monkeypatch, tmp_path, "compare")
    next(b for b in at.button if b.label == "Resume sweep").click().run()
    assert store.get_run(sid)["status"] in ("queued", "running", "done")


def test_sidebar_counts_jobs_run_by_any_process(monkeypatch, tmp_path):
    """A job queued or running under another process (the CLI, a worker) counts in the sidebar."""
    import subprocess
    import sys

    store = Store(tmp_path / "runs")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = store.create_run(tiny_config().to_dict(), status="running", pid=other.pid)
        queued = store.create_run(tiny_config(seed=3).to_dict(), pid=other.pid)
        at = _app(monkeypatch, tmp_path, "theory")
        captions = [c.value for c in at.sidebar.caption]
        assert "Active jobs: **2**" in captions, captions
        # each job by name, seed, id and place in the queue, with its own cancel button
        assert f"sgd-beta s0 · {running[-6:]} (running)" in captions
        assert f"sgd-beta s3 · {queued[-6:]} (queued, 1 ahead)" in captions
        keys = [b.key for b in at.sidebar.button]
        # keyed by place and id: the job that moves up the list never meets its own old button (a ghost row)
        assert keys == [f"sidebar-cancel-0-{running}", f"sidebar-cancel-1-{queued}"]
        next(b for b in at.sidebar.button if b.key == f"sidebar-cancel-1-{queued}").click().run()
        assert store.get_run(queued)["status"] == "cancelled"
    finally:
        other.kill()
        other.wait()


def _tracked_runs(runs_dir) -> list[str]:
    """Four runs logged from 'your own loop': two methods x two seeds, beta ahead on both."""
    from beta_core import track
    ids = []
    for seed in (0, 1):
        for method, accs in (("sgd-constant", (0.40, 0.60)), ("sgd-beta", (0.50, 0.65))):
            with track.start(method, seed=seed, runs_dir=runs_dir, config={"model": "mine"}) as run:
                for step in range(4):
                    run.log_step(step, loss=1.0, lr=0.04, momentum=0.6)
                    if step % 2 == 1:
                        run.log_epoch(step // 2, test_acc=accs[step // 2] + 0.01 * seed,
                                      val_acc=accs[step // 2] + 0.01 * seed)
            ids.append(run.id)
    return ids


def test_external_runs_show_on_train_and_get_a_verdict_on_compare(monkeypatch, tmp_path):
    ids = _tracked_runs(tmp_path / "runs")
    at = _app(monkeypatch, tmp_path, "train")
    shown = next(m for m in at.multiselect if m.label == "Runs shown")
    assert shown.value == [ids[-1]]  # shown live like ours, and named as a run of your loop
    assert sum("(your loop)" in o for o in shown.options) == 4
    assert not at.error, [e.value for e in at.error]
    at = _app(monkeypatch, tmp_path, "compare")
    runs = next(m for m in at.multiselect if m.label == "Runs")
    runs.set_value(ids).run()
    assert not at.exception, [e.value for e in at.exception]
    claims = [t.value.reset_index() for t in at.table if t.value.index.name == "claim"]
    assert claims and "sgd-beta ends with higher test accuracy than sgd-constant" in set(claims[0]["claim"])


def test_runs_page_diffs_two_runs_and_prepares_a_report_and_a_bundle(monkeypatch, populated):
    root, ids, _ = populated
    at = _app(monkeypatch, root, "runs", selected=ids[:2])
    assert not at.exception, [e.value for e in at.exception]
    assert any("config field" in m.value and "differ" in m.value for m in at.markdown)  # sgd-beta vs adam
    at.button(key="report-runs-make").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(b.label.startswith("Download report") for b in at.get("download_button"))
    next(b for b in at.button if b.label.startswith("Pack a bundle")).click().run()
    assert any(b.label.startswith("Download the bundle (2 runs") for b in at.get("download_button"))


def test_launch_again_fills_a_form_from_a_runs_config(monkeypatch, tmp_path):
    store = Store(tmp_path / "runs")
    rid = store.create_run(tiny_config(lr=0.03).to_dict())
    assert execute_run(store, rid, str(tmp_path / "data"))["status"] == "done"
    at = _app(monkeypatch, tmp_path, "train")
    form_lr = next(n for n in at.number_input if n.label == "Peak LR" and n.form_id == "again")
    assert form_lr.value == pytest.approx(0.03)  # filled from the stored config
    form_lr.set_value(0.02)
    submitted = []
    monkeypatch.setattr("pages.views.common.JobManager.submit", lambda self, cfg, **kw: submitted.append(cfg) or rid)
    next(b for b in at.button if b.label == "Launch again").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(submitted) == 1 and submitted[0]["lr"] == 0.02
    import json
    same = json.loads(json.dumps(submitted[0]))
    assert {k: v for k, v in same.items() if k != "lr"} == {k: v for k, v in store.get_run(rid)["config"].items()
                                                             if k != "lr"}


def test_pages_over_a_store_of_2000_runs_list_the_newest_and_search(monkeypatch, tmp_path):
    # Behaviour at sweep scale (benchmarks/bench_store_scale.py holds the 10,000-run timing target).
    import json
    import sqlite3
    store = Store(tmp_path / "runs")
    cfg = json.dumps(tiny_config().to_dict())
    summary = json.dumps({"final_test_acc": 0.5, "best_test_acc": 0.5, "time_to_accuracy": {}})
    with sqlite3.connect(store.dir / "runs.db") as db:
        db.executemany("INSERT INTO runs (id, created, updated, status, kind, method, model, dataset, config, summary) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?)",
                       [(f"20260101-000000-{m}-{i:06d}", i, i, "done", "train", m, "small_cnn", "synthetic", cfg,
                         summary) for i in range(2000) for m in ("sgd-beta",)])
    at = _app(monkeypatch, tmp_path, "runs")
    assert any("2,000 runs match; page 1 of 20" in c.value for c in at.caption)
    assert len(at.dataframe[0].value) == 100 and at.dataframe[0].value["id"].iloc[0].endswith("001999")
    at.text_input(key="rf").set_value("id ~ 000042").run()  # a search is a filter: FIELD ~ TEXT
    assert list(at.dataframe[0].value["id"]) == ["20260101-000000-sgd-beta-000042"]
    at = _app(monkeypatch, tmp_path, "train")
    shown = next(m for m in at.multiselect if m.label == "Runs shown")
    assert len(shown.options) == 200 and at.text_input(key="train-runs-search")
    at.text_input(key="train-runs-search").set_value("000007").run()
    shown = next(m for m in at.multiselect if m.label == "Runs shown")
    # the search's hit, and the run already shown (a search does not drop what is on the charts)
    assert [o[-6:] for o in shown.options] == ["000007", "001999"] and not at.exception


def test_delete_asks_for_confirmation(monkeypatch, tmp_path):
    store = Store(tmp_path / "runs")
    rid = store.create_run(tiny_config().to_dict())
    store.finish(rid, "done")
    at = _app(monkeypatch, tmp_path, "runs", selected=[rid])
    next(b for b in at.button if b.label == "Delete selected").click().run()
    assert store.get_run(rid)["id"] == rid  # nothing deleted yet
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="delete-yes").click().run()
    assert store.runs() == []


def test_advanced_train_fields_reach_the_configs_only_when_changed(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path, "train")
    submitted = []
    monkeypatch.setattr("pages.views.common.JobManager.submit", lambda self, cfg, **kw: submitted.append(cfg) or "x")
    next(n for n in at.number_input if n.label == "Batch size").set_value(64)
    next(m for m in at.multiselect if m.label == "Methods").set_value(["sgd-constant", "sgd-onecycle"])
    next(t for t in at.text_input if t.label.startswith("Data path")).set_value("")
    next(s for s in at.selectbox if s.label == "Dataset").set_value("synthetic")
    next(b for b in at.button if b.label == "Launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [c["batch_size"] for c in submitted] == [64, 64]
    assert [c["lr_schedule"] for c in submitted] == ["cosine", "onecycle"]  # onecycle keeps its own
    assert [list(c["thresholds"]) for c in submitted] == [[0.5, 0.55, 0.6]] * 2  # untouched: the preset's
    # launched: the form folds so the new runs' status is the first screen, and says what it launched
    assert at.session_state["tr_launch"] is False and at.success[0].value.startswith("Launched 2 runs on ")
    submitted.clear()
    next(t for t in at.text_input if t.label.startswith("Time-to-accuracy targets")).set_value("0.9, 0.95")
    next(b for b in at.button if b.label == "Launch").click().run()
    assert [list(c["thresholds"]) for c in submitted] == [[0.9, 0.95]] * 2
    next(t for t in at.text_input if t.label.startswith("Time-to-accuracy targets")).set_value("0.9, high")
    next(b for b in at.button if b.label == "Launch").click().run()
    assert any("Invalid targets" in e.value for e in at.error)


def test_attribution_run_b_opens_on_the_other_optimizer_family(monkeypatch, populated):
    at = _app(monkeypatch, populated[0], "attribution")
    a, b = (next(s for s in at.selectbox if s.label == f"Run {x}") for x in "AB")
    store = Store(populated[0] / "runs")
    fam = lambda rid: store.get_run(rid)["config"]["optimizer"]  # noqa: E731
    assert fam(a.value) != fam(b.value)


def _helps(at) -> list[str]:
    """The `?` texts of a page's widgets and metrics."""
    kinds = ("selectbox", "slider", "select_slider", "number_input", "radio", "checkbox", "multiselect",
             "text_input", "metric")
    return [w.help for k in kinds for w in getattr(at, k) if getattr(w, "help", None)]


@pytest.mark.parametrize("page", PAGES)
def test_the_glossary_is_behind_the_question_marks(monkeypatch, populated, page):
    from beta_core.glossary import GLOSSARY

    at = _app(monkeypatch, populated[0], page)
    names = [f"**{name}**" for name, _, _ in GLOSSARY.values()]
    assert any(n in h for h in _helps(at) for n in names), _helps(at)
    # and the whole glossary in the sidebar, for reading
    assert any("damping ratio ζ" in m.value for m in at.sidebar.markdown)


def test_schedules_and_train_settings_live_in_the_url(monkeypatch, tmp_path):
    monkeypatch.setenv("BETA_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("BETA_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.query_params["sc_lr"] = "0.05"
    at.query_params["sc_schedule"] = "step"
    at.switch_page("pages/views/schedules.py").run()  # /schedules?sc_lr=0.05&sc_schedule=step
    assert at.number_input(key="sc_lr").value == 0.05 and at.selectbox(key="sc_schedule").value == "step"
    # every setting is bound to the URL under its key (the browser writes changes back; AppTest has no URL)
    bound = [at.selectbox(key="sc_schedule"), at.number_input(key="sc_lr"), at.number_input(key="sc_steps"),
             at.slider(key="sc_mu"), at.slider(key="sc_mumax"), at.number_input(key="sc_lam")]
    assert all(w.proto.query_param_key == w.key for w in bound)
    at.switch_page("pages/views/train.py").run()
    assert at.selectbox(key="tr_preset").proto.query_param_key == "tr_preset"


def test_load_demo_runs_fills_every_page_from_the_shipped_bundles(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path, "train")
    next(b for b in at.button if b.label == "Load demo runs").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = Store(tmp_path / "runs")
    kinds = {r["kind"] for r in store.runs()}
    assert {"train", "surgery", "sweep"} <= kinds and store.count_runs() >= 37
    beta = next(r for r in store.runs(kind="train") if r["method"] == "sgd-beta" and not r["parent"])
    assert store.results(beta["id"], "attribution") and store.checkpoint_path(beta["id"]).exists()
    from beta_core.annotations import tags_of  # told apart from the user's own: tagged, and said in the picker
    assert all("demo" in tags_of(r) for r in store.runs())
    assert all(" (demo) · " in o for o in at.selectbox(key="tr_group").options)  # the labels, as shown
    # the Train page shows the comparison's outcome in words first; the button is gone
    assert any("ended highest" in m.value for m in at.markdown)
    assert not any(b.label == "Load demo runs" for b in at.button)
    for page in ("compare", "attribution", "surgery", "runs"):
        at.switch_page(f"pages/views/{page}.py").run()
        assert not at.exception and not at.error, page
    # the demo model's localisation benchmark: how often the flagging score is right, beside the flag
    at.switch_page("pages/views/attribution.py").run()
    assert any("How often probe is right: it ranked a deliberately damaged group first in" in c.value
               for c in at.caption)
    # both outcomes side by side: the run with a planted fault (block2 damaged) has its damaged group
    # flagged; the clean run of the same seed has nothing that stands out
    said = " ".join(m.value for m in at.markdown)
    assert "Flagged by **probe**: **block2**" in said and "**no group stands out**" in said
    assert "Planted fault in **block2**: probe ranks it **first** of 6 groups and flags it: **found**." in said
    assert any("one run flagged no group" in c.value for c in at.caption)  # no Jaccard 0 read as disagreement
    faulty = next(r for r in store.runs(kind="train") if r["config"].get("planted_fault") == "block2")
    assert faulty["group_id"] == beta["group_id"]  # beside the clean run in its comparison
    repair = store.runs(kind="surgery", parent=faulty["id"])[0]["summary"]
    assert repair["groups"] == ["block2"] and repair["acc_after"] > repair["acc_before"] + 0.1
    at.switch_page("pages/views/surgery.py").run()  # opens on that repair, and says why those groups
    assert any("Groups **block2**, flagged by attribution on the train split's errors (top 1" in m.value
               for m in at.markdown)
    assert any("Before its planted fault in block2 this model had 58.4% test accuracy; the fault cost 22.2 points and "
               "the repair won back 18.1 of them." in c.value for c in at.caption)
    # the Findings page answers the paper's four claims from the shipped runs, the verdicts first
    at.switch_page("pages/views/findings.py").run()
    assert not at.exception and not at.error
    assert at.markdown[0].value.startswith("| # | the paper | here | verdict |")
    labels = [e.label for e in at.expander]
    assert labels[0] == "The methods at their tuned LR" and [x[:2] for x in labels[1:5]] == ["1.", "2.", "3.", "4."]


def test_sweep_size_and_duration_are_shown_before_launch(monkeypatch, populated, tmp_path):
    at = _app(monkeypatch, tmp_path, "compare")  # empty store: the size, and why no duration
    plan = next(m.value for m in at.markdown if m.value.startswith("**This sweep plans"))
    assert "33 runs (24 to tune on validation, then 9 on fresh test seeds)" in plan and "no earlier run" in plan
    at = _app(monkeypatch, populated[0], "compare")  # finished runs of the model: a measured duration
    next(t for t in at.text_input if t.label.startswith("LR grid")).set_value("0.1").run()
    plan = next(m.value for m in at.markdown if m.value.startswith("**This sweep plans"))
    assert "one at a time (measured" in plan, plan


def test_an_active_job_has_one_status_box_with_phase_rate_and_time_left(monkeypatch, tmp_path):
    import os
    import time

    store = Store(tmp_path / "runs")
    rid = store.create_run(tiny_config(epochs=4).to_dict(), status="running", pid=os.getpid())
    store.update_summary(rid, {"total_steps": 100, "progress": {"phase": "training", "total": 100, "unit": "steps",
                                                                 "started": time.time() - 10}})
    store.add_steps(rid, [{"step": s, "epoch": 0, "lr": 0.1, "momentum": 0.9, "zeta": 1.0, "eff_lr": 1.0,
                           "loss": 1.0, "acc": 0.5, "time": s / 2} for s in range(20)])
    at = _app(monkeypatch, tmp_path, "train")
    bars = [p for p in at.get("progress")]
    assert len(bars) == 1
    text = bars[0].proto.text
    assert "training: 20/100 steps" in text and "steps/s" in text and "left" in text, text


def test_the_runs_shown_are_in_the_url_and_a_recent_comparison_opens_them(monkeypatch, tmp_path):
    store = Store(tmp_path / "runs")
    old = [store.create_run(tiny_config(seed=s).to_dict(), group_id="ui-old", status="done") for s in (0, 1)]
    new = [store.create_run(tiny_config(seed=s, method="sgd-constant").to_dict(), group_id="ui-new", status="done")
           for s in (0, 1)]
    at = _app(monkeypatch, tmp_path, "train")
    shown = next(m for m in at.multiselect if m.label == "Runs shown")
    assert sorted(shown.value) == sorted(new)  # nothing asked for: the newest comparison
    # a link (or a reload, or a new tab) with ?tr_runs=... opens those runs
    monkeypatch.setenv("BETA_RUNS_DIR", str(tmp_path / "runs"))
    linked = AppTest.from_file("../app.py", default_timeout=60)
    linked.switch_page("pages/views/train.py")
    linked.query_params["tr_runs"] = [old[1], "../../etc/passwd", "no-such-run"]  # a hand-edited link
    linked.run()
    assert next(m for m in linked.multiselect if m.label == "Runs shown").value == [old[1]]
    # the picker of recent comparisons opens a whole comparison
    picker = next(s for s in at.selectbox if s.label == "Recent comparisons")
    assert picker.options[:2] == [picker.format_func("ui-new"), picker.format_func("ui-old")]
    picker.set_value("ui-old").run()
    assert sorted(next(m for m in at.multiselect if m.label == "Runs shown").value) == sorted(old)


def test_imported_runs_show_on_train_with_their_damping_and_report(monkeypatch, tmp_path):
    from beta_core import importer
    from beta_core.trackers import Source

    planned = []
    for seed in (0, 1):
        scalars = {"train/lr": [(s, 0.1 * (1 - s / 40) + 1e-3, float(s)) for s in range(40)],
                   "opt/momentum": [(s, 0.9, float(s)) for s in range(40)],
                   "train/loss": [(s, 2 - s / 40, float(s)) for s in range(40)],
                   "val/acc": [(10 * (e + 1), 0.3 + 0.1 * e + 0.01 * seed, 10.0 * (e + 1)) for e in range(4)]}
        src = Source("tensorboard", "/logs", f"run{seed}", scalars)
        planned.append(importer.plan(src, importer.guess_map(scalars), method="sgd-constant", seed=seed))
    store = Store(tmp_path / "runs")
    ids = [rid for _, rid in importer.import_sources(store, planned)]
    at = _app(monkeypatch, tmp_path, "train")
    shown = next(m for m in at.multiselect if m.label == "Runs shown")
    assert sum("(imported)" in o for o in shown.options) == 2
    shown.set_value(ids).run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert at.get("plotly_chart")
    at = _app(monkeypatch, tmp_path, "runs", selected=ids)
    at.button(key="report-runs-make").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_runs_explorer_filters_sorts_groups_and_draws_the_sweeps_settings(monkeypatch, populated):
    root, ids, _ = populated
    at = _app(monkeypatch, root, "runs")
    at.text_input(key="rf").input("method in sgd-beta,sgd-constant; kind = train").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith("9 runs match") for c in at.caption), [c.value for c in at.caption]
    at.selectbox(key="rsort").set_value("final_test_acc").run()
    at.toggle(key="rdesc").set_value(False).run()
    table = at.dataframe[0].value
    acc = table["final_test_acc"].dropna().tolist()
    assert acc == sorted(acc) and len(acc) == 9  # in percent, smallest first
    at.selectbox(key="group-by").set_value("method").run()
    groups = next(d.value for d in at.dataframe if "ci_low" in d.value)
    assert set(groups["method"]) == {"sgd-beta", "sgd-constant"} and (groups["ci_low"] <= groups["mean"]).all()
    assert (groups["ci_high"] <= 100).all() and (groups["ci_low"] >= 0).all()  # an accuracy stays in [0, 100]%
    assert any("has the highest mean final test acc" in m.value for m in at.markdown)
    # the sweep's runs at several LRs in one method's group: said, not read as a seed interval
    assert any(w.value.startswith("These groups pool runs that differ in **") and "lr" in w.value for w in at.warning)
    assert "lr" in " ".join(groups["pools"])
    at.toggle(key="settings").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    charts = at.get("plotly_chart")
    parcoords = [c for c in charts if '"parcoords"' in c.proto.spec]
    assert parcoords and '"lr"' in parcoords[0].proto.spec  # the sweep's LR grid is an axis
    assert sum(b.label.startswith("Data as CSV") for b in at.get("download_button")) >= 4
    at.text_input(key="rf").input("lrr > 0.1").run()
    assert not at.exception and any("Unknown field 'lrr'" in e.value for e in at.error)
    # a rejected filter keeps nothing: no groups or charts of every run under it (the walk saw them)
    assert any(i.value.startswith("Fix the filter above") for i in at.info) and not at.get("plotly_chart")
    assert not any("has the highest mean" in m.value for m in at.markdown)
    at.text_input(key="rf").input("").run()  # every run: the sweep's own row has no accuracy to average
    groups = next(d.value for d in at.dataframe if "ci_low" in d.value)
    assert (groups["n"] > 0).all() and "sweep" not in set(groups["method"])  # named, not a row of "—"
    assert any(c.value.startswith("Left out, no final test acc: ") and "sweep" in c.value for c in at.caption)


def test_selected_runs_come_back_from_the_url_and_take_tags_and_a_note(monkeypatch, populated):
    root, ids, _ = populated
    at = _app(monkeypatch, root, "runs", selected=[*ids, "not-a-run"])  # a link, as a reload or a colleague opens it
    assert any(m.value.startswith("**2 runs selected**") for m in at.markdown)
    at.text_input(key="tag-add").input("lecture, week1").run()
    at.button(key="annotate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = Store(root / "runs")
    from beta_core.annotations import tags_of
    assert all(tags_of(store.get_run(i)) == ["lecture", "week1"] for i in ids)
    at.text_input(key="rf").input("tag = week1").run()
    assert any(c.value.startswith("2 runs match") for c in at.caption)
    for i in ids:
        store.tag(i, remove=["lecture", "week1"])


def test_a_toast_says_when_a_run_finishes_or_fails(monkeypatch, tmp_path):
    import os
    store = Store(tmp_path / "runs")
    ok = store.create_run(tiny_config().to_dict(), status="running", pid=os.getpid())
    bad = store.create_run(tiny_config().to_dict(), status="running", pid=os.getpid())
    at = _app(monkeypatch, tmp_path, "theory")
    assert not at.toast
    store.finish(ok, "done", {"final_test_acc": 0.42})
    store.finish(bad, "failed", error="CUDA out of memory")
    at.run()
    toasts = [t.value for t in at.toast]
    assert any("finished: 42.0% test accuracy" in t for t in toasts), toasts
    assert any("failed: CUDA out of memory" in t for t in toasts)
    at.run()
    assert not at.toast  # said once


def test_attribution_shows_the_misclassified_images_filtered_by_class_pair(monkeypatch, populated):
    root, ids, _ = populated
    at = _app(monkeypatch, root, "attribution")
    pick = next(s for s in at.selectbox if s.label.startswith("Misclassified images"))
    assert pick.options[0] == "all" and len(pick.options) >= 2
    before = [c for im in at.get("image") for c in im.captions]
    assert before, "no gallery"
    pair = pick.options[1].rsplit(" (", 1)[0]  # the most frequent confusion of the first run ("a → b (n)")
    pick.set_value(pair).run()
    assert not at.exception, [e.value for e in at.exception]
    after = [c for im in at.get("image") for c in im.captions]
    dropped = [c for c in before if c not in after]
    assert dropped and not any(c.startswith(pair + " ") for c in dropped)  # only other pairs left the page
    assert any(c.startswith(pair + " ") for c in after)


def test_theory_and_schedules_open_without_torch(tmp_path):
    """The first page a teacher opens needs no torch (8 s of imports on 2 cores, 18-20 s of the
    first page under load): the app, its sidebar and the Theory and Schedules pages render, in a
    fresh process, with torch never imported."""
    import subprocess
    import sys

    code = ("import sys\nfrom streamlit.testing.v1 import AppTest\n"
            "at = AppTest.from_file('app.py', default_timeout=60); at.run()\n"
            "assert not at.exception and at.title[0].value.startswith('Heavy ball'), at.exception\n"
            "at.switch_page('pages/views/schedules.py').run()\n"
            "assert not at.exception and at.title[0].value.startswith('LR schedules'), at.exception\n"
            "print('torch' in sys.modules)\n")
    env = {**os.environ, "BETA_RUNS_DIR": str(tmp_path / "runs"), "BETA_DATA_DIR": str(tmp_path / "data")}
    p = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-1500:]
    assert p.stdout.strip().splitlines()[-1] == "False"
