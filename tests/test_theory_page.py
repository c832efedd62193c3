"""The Theory page through streamlit.testing.v1.AppTest: URL state, clamping, divergence, colours,
step-through and the glossary's help texts. The layout at 1280x720 is test_theory_browser.py's."""
import base64
import json
import math

import numpy as np
import pytest
from streamlit.proto.Metric_pb2 import Metric as MetricProto
from streamlit.testing.v1 import AppTest

from beta_core.glossary import term

# The widgets bound to the URL, by key (the key is the query parameter's name).
BOUND = {"th_lr": "select_slider", "th_lam": "slider", "th_steps": "slider", "th_mode": "radio",
         "th_step": "slider", "th_lam2": "slider", "th_mu2d": "radio"}


def _theory(monkeypatch, tmp_path, **params) -> AppTest:
    """The app opened at ``/?key=value...`` on an empty store. Theory is the default page, and a
    query parameter seeds a bound widget on the session's first run only (later runs keep the
    session's own value), so the parameters are set before that first run."""
    monkeypatch.setenv("BETA_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("BETA_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_file("../app.py", default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value.startswith("Heavy ball")
    return at


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _values(fig: dict, coord: str) -> list[float]:
    """Every number a figure's line and marker traces draw along ``coord`` (plotly writes numpy
    arrays as base64 ``{"dtype", "bdata"}``, lists as lists)."""
    out = []
    for trace in fig["data"]:
        v = trace.get(coord) if trace["type"] == "scatter" else None
        if isinstance(v, dict):
            v = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
        out += [float(x) for x in v or []]
    return out


def _texts(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_renders_three_cases_and_three_charts(monkeypatch, tmp_path):
    at = _theory(monkeypatch, tmp_path)
    assert not at.error and len(at.get("plotly_chart")) == 3  # position, phase, 2-D
    assert [m.value for m in at.metric] == ["ζ = 0.5", "ζ = 3.5", "ζ = 1"]  # 0.9, 0.3, critical at lr 0.01
    assert "clamped" not in _texts(at) and "diverges" not in _texts(at)


def test_settings_come_from_the_url(monkeypatch, tmp_path):
    at = _theory(monkeypatch, tmp_path, th_lr="0.05", th_steps="500", th_lam="2.5", th_mode="my own μ", th_mu="0.5")
    assert at.select_slider(key="th_lr").value == 0.05
    assert at.slider(key="th_steps").value == 500 and at.slider(key="th_lam").value == 2.5
    assert at.radio(key="th_mode").value == "my own μ" and at.slider(key="th_mu").value == 0.5
    assert [m.label for m in at.metric] == [":violet[**your μ** (μ = 0.5)]", ":green[**critical** (μ = 0.293)]"]


def test_every_setting_is_bound_to_the_url(monkeypatch, tmp_path):
    """The browser writes a bound widget's value into the URL when it changes (AppTest has no
    browser: test_theory_browser.py watches the URL itself); here: every setting is bound, under
    its own key, and a value that is no option is ignored, not an error."""
    at = _theory(monkeypatch, tmp_path, th_lr="0.07", th_mode="my own μ")
    widgets = {key: getattr(at, kind)(key=key) for key, kind in BOUND.items()}
    widgets["th_mu"] = at.slider(key="th_mu")
    assert {key: w.proto.query_param_key for key, w in widgets.items()} == {key: key for key in widgets}
    assert at.select_slider(key="th_lr").value == 0.01  # 0.07 is not on the slider: the default
    at.select_slider(key="th_lr").set_value(0.25).run()
    assert not at.exception and at.select_slider(key="th_lr").value == 0.25


def test_critical_momentum_clamped_at_zero_says_so(monkeypatch, tmp_path):
    at = _theory(monkeypatch, tmp_path, th_lr="0.5")  # 1 - 2·√0.5 < 0
    clamped = [c.value for c in at.caption if "clamped to 0" in c.value]
    assert clamped == ["μ = 1 − 2√(λ·lr) = −0.414 < 0: clamped to 0; ζ = 0.707, underdamped (no momentum "
                       "reaches ζ = 1 at this lr)."]
    assert at.metric[-1].label == ":green[**beta rule, clamped** (μ = 0)]"  # not "critical": ζ = 1 is out of reach


def test_a_diverging_setting_is_cut_labelled_and_keeps_finite_axes(monkeypatch, tmp_path):
    # lr·λ = 4 is past 2(1+μ) for all three cases; lr·λ₂ = 50 for the 2-D one.
    at = _theory(monkeypatch, tmp_path, th_lr="1", th_lam="4", th_lam2="50")
    figures = _figures(at)
    assert len(figures) == 3
    for fig in figures:
        notes = " ".join(a["text"] for a in fig["layout"]["annotations"])
        assert "diverges: |x| &gt; 10 at step" in notes or "diverges: |x| > 10 at step" in notes
        for axis in ("xaxis", "yaxis"):
            lo, hi = fig["layout"][axis]["range"]
            assert math.isfinite(lo) and math.isfinite(hi) and -100 < lo < hi < 100, (axis, lo, hi)
    position, phase, plane = figures
    # Nothing drawn past the cut: positions within 10, velocities (differences of two) within 20.
    drawn = {"position": _values(position, "y"), "phase x": _values(phase, "x"), "phase v": _values(phase, "y"),
             "plane": _values(plane, "x") + _values(plane, "y")}
    assert all(drawn.values()) and max(map(abs, drawn["position"] + drawn["phase x"] + drawn["plane"])) <= 10
    assert max(map(abs, drawn["phase v"])) <= 20
    assert sum("diverges: |x| > 10 at step" in c.value for c in at.caption) == 4  # three cases and the 2-D run


def test_each_case_keeps_its_colour_and_critical_is_drawn_last_and_thicker(monkeypatch, tmp_path):
    at = _theory(monkeypatch, tmp_path)
    position, phase, _ = _figures(at)
    for fig in (position, phase):
        lines = [t for t in fig["data"] if t.get("mode") == "lines"]
        assert [t["name"] for t in lines] == ["μ = 0.9", "μ = 0.3", "critical"]
        assert [t["line"]["color"] for t in lines] == ["#d62728", "#1f77b4", "#2ca02c"]
        assert lines[-1]["line"]["width"] > max(t["line"]["width"] for t in lines[:-1])
    assert [m.label.split("[")[0] for m in at.metric] == [":red", ":blue", ":green"]
    # The regime is a plain coloured word: no arrow, a regime is not a change.
    assert all(m.proto.direction == MetricProto.MetricDirection.NONE for m in at.metric)
    assert [m.proto.delta for m in at.metric] == ["underdamped", "overdamped", "critical"]


def _is_ball(trace: dict) -> bool:
    return trace.get("mode") == "markers" and trace.get("marker", {}).get("size") == 13


@pytest.mark.parametrize("step", [0, 50])
def test_the_step_slider_moves_the_balls(monkeypatch, tmp_path, step):
    at = _theory(monkeypatch, tmp_path, th_step=str(step))
    position, phase, plane = _figures(at)
    balls = [t for t in position["data"] if _is_ball(t)]
    assert len(balls) == 3 and all(b["x"] == [step] for b in balls)
    assert sum(map(_is_ball, phase["data"])) == 3
    assert any(t.get("name") == f"step {step}" for t in plane["data"])
    assert sum(f"step {step}: x = " in c.value for c in at.caption) == 3


def test_2d_plot_has_loss_contours_and_equal_axes(monkeypatch, tmp_path):
    at = _theory(monkeypatch, tmp_path)
    plane = _figures(at)[2]
    assert plane["data"][0]["type"] == "contour" and plane["data"][0]["contours"]["coloring"] == "lines"
    assert plane["layout"]["yaxis"]["scaleanchor"] == "x" and plane["layout"]["yaxis"]["scaleratio"] == 1


def test_help_texts_come_from_the_glossary(monkeypatch, tmp_path):
    at = _theory(monkeypatch, tmp_path, th_mode="my own μ")
    helps = {"th_lr": "beta_rule", "th_lam": "lam", "th_steps": "step", "th_mode": "momentum", "th_mu": "momentum",
             "th_step": "heavy_ball", "th_lam2": "lam", "th_mu2d": "momentum"}
    for key, glossary_key in helps.items():
        widget = getattr(at, BOUND.get(key, "slider"))(key=key)
        assert term(glossary_key) in widget.help, key
    assert term("stability") in at.select_slider(key="th_lr").help
    assert term("heavy_ball") == at.title[0].proto.help
    assert all(term("zeta") in m.proto.help and term("regime") in m.proto.help for m in at.metric)
