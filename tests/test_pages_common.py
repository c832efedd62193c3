"""Figure builders of the pages (pages/views/common.py): no line hides another."""
import numpy as np
import pandas as pd

from pages.views.common import coincide, line_style, panel_figure


def _frames():
    steps = np.arange(100)
    beta = 1 - 2 * np.sqrt(np.linspace(0.1, 0.0001, 100))
    hybrid = np.where(steps < 80, beta, 0.9)
    const = np.full(100, 0.9)
    return {r: pd.DataFrame({"step": steps, "momentum": m}) for r, m in
            (("b", beta), ("h", hybrid), ("c", const))}


def test_the_papers_line_is_drawn_on_top_and_every_line_has_its_own_style():
    names = {"b": "sgd-beta s0", "h": "sgd-hybrid s0", "c": "sgd-constant s0"}
    fig = panel_figure([{"frames": _frames(), "x": "step", "y": "momentum", "title": "Momentum"}], names,
                       {"b": "#1f77b4", "h": "#d62728", "c": "#2ca02c"})
    order = [t.name for t in fig.data]
    assert order[-1] == "sgd-beta s0" and order.index("sgd-hybrid s0") < order.index("sgd-beta s0")
    styles = {t.name: (t.line.dash, t.line.width) for t in fig.data}
    assert len(set(styles.values())) == 3  # no two lines share a style: a covered one still shows
    # the line underneath is wider than the paper's on top, so it shows at both edges
    assert styles["sgd-hybrid s0"][1] > styles["sgd-beta s0"][1]
    title = fig.layout.annotations[0].text
    # hybrid is beta until its switch and the constant after it: both stretches are named
    assert title.endswith("<sup>sgd-beta = sgd-hybrid until step 79; sgd-constant = sgd-hybrid from step 80</sup>")


def test_a_logged_loop_is_no_twin_of_the_engines_runs():
    """Issue 31: with a logged loop's sgd-beta shown, the title said "sgd-beta = sgd-hybrid until
    step 94" (the loop against the engine's hybrid); twins are runs alike in all but method."""
    f = _frames()
    loop = f["b"].assign(momentum=np.where(f["b"]["step"] < 30, f["b"]["momentum"], 0.5))  # parts at step 30
    names = {"b": "sgd-beta s0 · 111111", "h": "sgd-hybrid s0 · 222222", "x": "sgd-beta s0 (your loop) · 333333"}
    fig = panel_figure([{"frames": {"b": f["b"], "h": f["h"], "x": loop}, "x": "step", "y": "momentum",
                         "title": "Momentum"}], names, {"b": "#1f77b4", "h": "#d62728", "x": "#2ca02c"})
    assert fig.layout.annotations[0].text.endswith("<sup>sgd-beta = sgd-hybrid until step 79</sup>")


def test_coincide_only_for_a_real_shared_stretch():
    f = _frames()
    assert coincide(f["b"], f["h"], "step", "momentum") == 79
    assert coincide(f["b"], f["b"], "step", "momentum") is None  # identical all along: one line, no note
    assert coincide(f["b"], f["c"], "step", "momentum") is None
    assert line_style("adam")[0] == "solid" and line_style("sgd-onecycle s1")[0] == "dot"


def test_every_axis_says_what_its_unit_is_and_log_ticks_are_written_out():
    names = {"b": "sgd-beta s0", "h": "sgd-hybrid s0", "c": "sgd-constant s0"}
    colors = {"b": "#1f77b4", "h": "#d62728", "c": "#2ca02c"}
    frames = {r: f.assign(time=f["step"] * 0.1, epoch=f["step"] // 10 + 1, zeta=0.05 + f["step"] * 0.2)
              for r, f in _frames().items()}
    fig = panel_figure([{"frames": frames, "x": "time", "y": "momentum", "title": "Momentum"},
                        {"frames": frames, "x": "epoch", "y": "momentum", "title": "Momentum"},
                        {"frames": frames, "x": "step", "y": "zeta", "title": "ζ", "log_y": True}], names, colors)
    assert fig.layout.xaxis.title.text == "seconds (wall clock on this machine)"
    assert fig.layout.xaxis2.title.text == "epoch (from 1)" and fig.layout.xaxis3.title.text == "step"
    assert list(fig.layout.yaxis3.ticktext) == ["0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10", "20"]
    own = panel_figure([{"frames": frames, "x": "time", "y": "momentum", "title": "M", "x_title": "wall-clock s"}],
                       names, colors)
    assert own.layout.xaxis.title.text == "wall-clock s"


def test_progress_lines_say_phase_rate_and_time_left_measured_here(tmp_path):
    import os
    import time

    from helpers import tiny_config

    from beta_core.store import Store
    from pages.views.progress import progress_line

    store = Store(tmp_path / "runs")
    job = {"method": "attribution", "model": "small_cnn"}
    earlier = store.create_run(job, kind="attribution")
    store.finish(earlier, "done", {"job_seconds": 30.0})
    now = store.create_run(job, kind="attribution", status="running", pid=os.getpid())
    store.update_summary(now, {"progress": {"phase": "scoring", "started": time.time() - 10}})
    line = progress_line(store, store.get_run(now))
    assert line.startswith("scoring · about 2") and line.endswith("s left (from 1 earlier here)"), line
    queued = store.create_run(job, kind="attribution")
    line = progress_line(store, store.get_run(queued))
    assert line.startswith("queued, 1 ahead (1 at a time): starts in about 2"), line  # the running job's 20 s left
    assert "done in about 5" in line  # then its own 30 s, as the earlier one took
    # a run whose steps fill its first epoch and no epoch record yet is evaluating
    run = store.create_run(tiny_config(epochs=2).to_dict(), status="running", pid=os.getpid())
    store.update_summary(run, {"progress": {"phase": "training", "total": 20, "unit": "steps",
                                            "started": time.time() - 5}})
    store.add_steps(run, [{"step": s, "epoch": 0, "lr": 0.1, "momentum": 0.9, "zeta": 1.0, "eff_lr": 1.0,
                           "loss": 1.0, "acc": 0.5, "time": s / 4} for s in range(10)])
    assert progress_line(store, store.get_run(run)).startswith("evaluating epoch 1: 10/20 steps · ")


def test_a_run_preparing_its_data_says_how_many_images_are_decoded(tmp_path):
    import os
    import time

    from helpers import tiny_config

    from beta_core.store import Store
    from pages.views.progress import progress_line

    store = Store(tmp_path / "runs")
    run = store.create_run(tiny_config().to_dict(), status="running", pid=os.getpid())
    store.update_summary(run, {"progress": {"phase": "preparing data", "done": 12000, "total": 60000,
                                            "unit": "images", "started": time.time() - 10}})
    line = progress_line(store, store.get_run(run), steps=0)  # no step yet: the decode's count, not 0 steps
    import re

    # 12,000 images in about 10 s (the clock runs on between the two calls): about 1,200 images/s
    assert re.fullmatch(r"preparing data: 12,000/60,000 images · 1,[12]\d\d images/s · about \d+ s left to decode",
                        line), line


def test_the_data_line_says_what_a_typed_path_is(tmp_path, monkeypatch):
    """The sidebar's "Data for a new launch" once read "folder from /no/such/path" beside the
    page's "Data path not found" (and called an archive a folder)."""
    from pages.views.common import data_source_label, plain

    monkeypatch.setenv("BETA_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "tree").mkdir()
    (tmp_path / "pack.tar.gz").write_bytes(b"")
    said = lambda p: plain(str(tmp_path / p))  # noqa: E731 - as the sidebar writes it (Markdown escaped)
    assert data_source_label(str(tmp_path / "nope")) == f"not found: {said('nope')} (a launch would refuse it)"
    assert data_source_label(str(tmp_path / "tree")) == f"folder {said('tree')}"
    assert data_source_label(str(tmp_path / "pack.tar.gz")) == f"archive {said('pack.tar.gz')}"


def test_every_table_on_a_page_shows_a_missing_value_as_a_dash():
    """A surgery row has no final test accuracy and a localisation no LR: the cell reads "—", not
    Streamlit's default "None" (the new user's walk read "None" as a broken value)."""
    import ast
    from pathlib import Path

    calls = []
    for path in Path(__file__).resolve().parents[1].glob("pages/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("dataframe", "data_editor"):
                ph = {k.arg: k.value for k in node.keywords}.get("placeholder")
                calls.append((f"{path.name}:{node.lineno}", isinstance(ph, ast.Constant) and ph.value == "—"))
    assert len(calls) >= 8 and [c for c, ok in calls if not ok] == []
