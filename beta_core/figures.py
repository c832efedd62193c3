"""The figures: one home for every chart the pages draw and the offline report embeds.

Plotly figures are data (a JSON spec), not UI: the pages show them with Streamlit, the
report (``report``) writes them into one self-contained HTML file, and ``save_figure`` writes
PNG and SVG through kaleido. Nothing here imports Streamlit.

Lines: one colour per run on every chart; methods that coincide for much of a run (hybrid is
beta until its switch) stay visible: the paper's beta is drawn last, thin and solid, the
others under it, wider and dashed, and the panel's title says until where two coincide.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .damping import DEFAULT_TOL, velocity
from .formats import g3
from .records import ACTIVE

__all__ = ["group_scores_figure", "probe_figure", "PALETTE", "REGIME_BANDS", "MAX_POINTS", "run_colors", "run_name",
           "smooth", "metric_figure", "line_style", "coincide", "coincide_from", "panel_figure", "AXIS_TITLES",
           "log_ticks", "ticks_between", "heatmap", "save_figure", "FigureExportError", "mean_curve_figure",
           "seeds_figure", "sweep_grid_figure", "parcoords_figure", "scatter_figure", "lr_sensitivity_figure",
           "percent_axis", "seeds_needed_figure", "axis_span", "mark_divergence", "oscillator_figures",
           "valley_figure", "top1_figure"]

FLAGGED, PLAIN = "#d62728", "#1f77b4"  # a flagged layer group; any other
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f"]
REGIME_BANDS = [(1 - DEFAULT_TOL, "rgba(214,39,40,0.08)", "underdamped"),
                (1 + DEFAULT_TOL, "rgba(44,160,44,0.18)", "critical"),
                (None, "rgba(31,119,180,0.08)", "overdamped")]  # upper edge of each zeta band


def run_colors(run_ids) -> dict[str, str]:
    """One colour per run, the same on every chart (ordered by id, so stable across reruns)."""
    return {rid: PALETTE[i % len(PALETTE)] for i, rid in enumerate(sorted(run_ids))}


def run_name(run: dict) -> str:
    """``sgd-beta s0 lr 0.1 · 87e53e``: method, seed and LR tell a comparison's runs apart, the id's
    tail tells reruns apart; a run someone named goes by its name."""
    seed, lr = run["config"].get("seed"), run["config"].get("lr")
    mark = {"external": " (your loop)", "imported": " (imported)"}.get(run.get("kind"), "")
    if (run.get("config") or {}).get("planted_fault"):  # a damaged model must never pass for its clean twin
        mark += f" (planted fault: {run['config']['planted_fault']})"
    if run.get("name"):  # the name someone gave it (annotations)
        return f"{run['name']}{mark} · {run['id'][-6:]}"
    return (f"{run['method']}" + (f" s{seed}" if seed is not None else "") + (f" lr {lr:g}" if isinstance(
        lr, (int, float)) and run.get("kind") != "surgery" else "") + mark + f" · {run['id'][-6:]}")


def smooth(y: pd.Series, window: int) -> pd.Series:
    return y.rolling(window, min_periods=1).mean() if window > 1 else y


# Every time axis says what its seconds are (a step costs the same for every SGD method; seconds
# depend on what else the machine did).
AXIS_TITLES = {"step": "step", "epoch": "epoch (from 1)", "time": "seconds (wall clock on this machine)"}

MAX_POINTS = 400  # per line: more is invisible at chart width and costs the browser on every poll


def metric_figure(frames: dict[str, pd.DataFrame], names: dict[str, str], colors: dict[str, str], x: str, y: str,
                  title: str, log_y: bool = False, window: int = 1, bands: bool = False,
                  mode: str = "lines") -> go.Figure:
    """One chart, one line per run; ``frames`` maps run id to its records."""
    return panel_figure([{"frames": frames, "x": x, "y": y, "title": title, "log_y": log_y, "window": window,
                          "bands": bands, "mode": mode}], names, colors)


# Methods that coincide for most of a run (hybrid is beta until its switch) must both stay
# visible: the paper's beta is drawn last, thin and solid; the others under it, wider, dashed.
_STYLES = (("hybrid", "dash", 5, 0), ("exact", "dashdot", 4, 1), ("onecycle", "dot", 4, 1), ("constant", "solid", 3, 1),
           ("beta", "solid", 2, 2))


def line_style(name: str) -> tuple[str, int, int]:
    """(dash, width, draw order) of a line by the method or rule in its name; higher order on top."""
    return next(((dash, width, order) for key, dash, width, order in _STYLES if key in name), ("solid", 2, 1))


def coincide(a: pd.DataFrame, b: pd.DataFrame, x: str, y: str) -> float | None:
    """The last x up to which two runs' y are equal (from the start), when that is a real share of
    the run (> 10% of its points) but not all of it; else None."""
    n = min(len(a), len(b))
    if n < 2 or not np.array_equal(a[x].to_numpy()[:n], b[x].to_numpy()[:n]):
        return None
    same = np.isclose(a[y].to_numpy(dtype=float)[:n], b[y].to_numpy(dtype=float)[:n], rtol=1e-9, equal_nan=True)
    k = n if same.all() else int(np.argmin(same))
    return float(a[x].iloc[k - 1]) if 0.1 * n < k < n else None


def coincide_from(a: pd.DataFrame, b: pd.DataFrame, x: str, y: str) -> float | None:
    """The first x from which two runs' y are equal to the end (hybrid = constant after its
    switch), when that is a real share of the run (> 10% of its points) but not all of it; else None."""
    n = min(len(a), len(b))
    if n < 2 or not np.array_equal(a[x].to_numpy()[:n], b[x].to_numpy()[:n]):
        return None
    same = np.isclose(a[y].to_numpy(dtype=float)[:n], b[y].to_numpy(dtype=float)[:n], rtol=1e-9, equal_nan=True)
    if same.all() or not same[-1]:
        return None
    k = n - int(np.argmin(same[::-1]))  # where the equal tail starts
    return float(a[x].iloc[k]) if n - k > 0.1 * n else None


def panel_figure(panels: list[dict], names: dict[str, str], colors: dict[str, str], height: int = 320) -> go.Figure:
    """Side-by-side charts in one figure (one redraw per refresh instead of one per chart).

    Each panel: ``frames`` (run id -> records), ``x``, ``y``, ``title`` and optionally
    ``log_y``, ``window`` (smoothing), ``bands`` (zeta regimes), ``mode``, ``x_title`` (default
    :data:`AXIS_TITLES`), ``percent`` (a fraction shown as %), ``after`` (run id -> (value, words):
    where a run ended after its last record, as a planted fault leaves it). Lines are smoothed,
    then thinned to MAX_POINTS; a run keeps its colour in every panel and appears once in the legend.
    """
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[_titled(p, names) for p in panels],
                        horizontal_spacing=0.06)
    shown = set()
    for col, p in enumerate(panels, start=1):
        x, y = p["x"], p["y"]
        for rid, df in sorted(p["frames"].items(), key=lambda kv: line_style(names[kv[0]])[2]):
            if df.empty or y not in df or df[y].isna().all():
                continue
            ys = smooth(df[y].astype(float), p.get("window", 1))
            stride = max(1, len(df) // MAX_POINTS)
            dash, width, _ = line_style(names[rid])
            fig.add_trace(go.Scatter(x=df[x].iloc[::stride], y=ys.iloc[::stride], name=names[rid],
                                     mode=p.get("mode", "lines"), legendgroup=rid, showlegend=rid not in shown,
                                     line={"color": colors[rid], "dash": dash, "width": width},
                                     marker={"color": colors[rid]}), row=1, col=col)
            shown.add(rid)
            if rid in p.get("after", {}):  # a planted fault comes after the last epoch: its drop, marked
                y_after, words = p["after"][rid]
                fig.add_trace(go.Scatter(x=[df[x].iloc[-1]] * 2, y=[ys.iloc[-1], y_after], mode="lines+markers+text",
                                         text=["", "fault"], textposition="middle left", legendgroup=rid,
                                         line={"color": colors[rid], "dash": "dot", "width": width},
                                         marker={"color": colors[rid], "symbol": ["circle", "x"], "size": [1, 10]},
                                         showlegend=False, hovertext=words, hoverinfo="text+y"), row=1, col=col)
        if p.get("log_y"):
            fig.update_yaxes(type="log", row=1, col=col, **log_ticks(p["frames"], y))
        if p.get("percent"):  # accuracies read as the tables and sentences write them
            fig.update_yaxes(tickformat=".1~%", row=1, col=col)  # 16.5%, not "16% 17% 17%" on a short axis
        if p.get("bands"):
            _regime_bands(fig, p["frames"], y, p.get("log_y", False), col)
        fig.update_xaxes(title_text=p.get("x_title", AXIS_TITLES.get(x, x)), row=1, col=col)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.3})
    return fig


def log_ticks(frames: dict, y: str) -> dict:
    """Ticks of a log axis at 1, 2, 5 of each decade, written out in full: plotly's default
    labels the minor ticks with a bare digit ("2, 1, 5, 2, 0.1" read as numbers)."""
    vals = pd.concat([df[y] for df in frames.values() if y in df] or [pd.Series(dtype=float)]).dropna().astype(float)
    vals = vals[vals > 0]
    if vals.empty:
        return {}
    return ticks_between(float(vals.min()) / 2, float(vals.max()) * 2)


def ticks_between(lo: float, hi: float) -> dict:
    """tickvals/ticktext at 1, 2, 5 of each decade from ``lo`` to ``hi``, labelled in full."""
    steps = (1,) if hi / lo > 1e4 else (1, 2, 5)  # over many decades, 2 and 5 would crowd the axis
    ticks = [m * 10.0 ** e for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
             for m in steps]
    ticks = [float(f"{t:.3g}") for t in ticks if lo <= t <= hi] or ticks
    return {"tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}


def _titled(panel: dict, names: dict[str, str]) -> str:
    """A panel's title, with a note where two runs coincide ("hybrid = beta until step 899")."""
    frames = {r: f for r, f in panel["frames"].items() if not f.empty and panel["y"] in f}
    method = {r: names[r].split(" ")[0] for r in frames}  # "sgd-beta s0 · a66ab7" -> "sgd-beta"
    # what else the name says (seed, LR, "your loop"): only runs alike in all of it are twins; a
    # logged loop's sgd-beta is not the engine's (it said "= until step 94" where the twins part at 211)
    rest = {r: (names[r].rsplit(" · ", 1)[0].split(" ", 1) + [""])[1] for r in frames}
    shared: dict[tuple, float] = {}  # (method, method) -> the earliest end of a shared start over seeds
    tails: dict[tuple, float] = {}   # (method, method) -> the latest start of a shared end over seeds
    for a, b in itertools.combinations(sorted(frames, key=lambda r: names[r]), 2):
        if method[a] == method[b] or rest[a] != rest[b]:
            continue
        key = tuple(sorted((method[a], method[b])))
        upto = coincide(frames[a], frames[b], panel["x"], panel["y"])
        if upto is not None:
            shared[key] = min(upto, shared.get(key, upto))
        since = coincide_from(frames[a], frames[b], panel["x"], panel["y"])
        if since is not None:
            tails[key] = max(since, tails.get(key, since))
    notes = []  # at most one of each kind: a panel title is narrow
    if shared:
        (m1, m2), upto = min(shared.items(), key=lambda kv: kv[1])
        notes.append(f"{m1} = {m2} until {panel['x']} {upto:g}")
    if tails:
        (m1, m2), since = max(tails.items(), key=lambda kv: kv[1])
        notes.append(f"{m1} = {m2} from {panel['x']} {since:g}")
    return panel["title"] + (f"<br><sup>{'; '.join(notes)}</sup>" if notes else "")


def _regime_bands(fig: go.Figure, frames: dict, y: str, log_y: bool, col: int = 1) -> None:
    """Shade the under/critical/over-damped zeta bands over the plotted range."""
    vals = pd.concat([df[y] for df in frames.values() if y in df]).dropna().astype(float)
    vals = vals[vals > 0]
    lo, hi = (float(vals.min()), float(vals.max())) if len(vals) else (0.1, 10.0)
    lo, hi = min(lo, 0.5) * 0.8, max(hi, 2.0) * 1.25
    edges = [lo] + [b[0] for b in REGIME_BANDS[:-1]] + [hi]
    # Shapes take data values on any axis here (plotly.js 3); an axis range on a log axis takes
    # exponents. Checked by rendering to PNG.
    tr = (lambda v: float(np.log10(v))) if log_y else (lambda v: v)
    for (_, color, label), y0, y1 in zip(REGIME_BANDS, edges[:-1], edges[1:]):
        fig.add_hrect(y0=y0, y1=y1, fillcolor=color, line_width=0, layer="below", row=1, col=col)
        # Annotations, unlike shapes, take exponents on a log axis: label each band at its middle.
        mid = tr(float(np.sqrt(y0 * y1))) if log_y else (y0 + y1) / 2
        axis = "" if col == 1 else str(col)
        fig.add_annotation(x=0.01, xref=f"x{axis} domain", y=mid, yref=f"y{axis}", text=label, showarrow=False,
                           xanchor="left", font={"size": 10, "color": "#666"})
    fig.update_yaxes(range=[tr(lo), tr(hi)], row=1, col=col)
    if log_y:  # plotly labels minor log ticks as bare digits ("2, 5, 2"): name the ticks instead
        fig.update_yaxes(row=1, col=col, **ticks_between(lo, hi))


def heatmap(matrix, rows, cols, title: str, zmax: float | None = None, colorscale="Viridis",
            zmid: float | None = None) -> go.Figure:
    z = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    kw = {"zmid": zmid} if zmid is not None else {"zmin": 0, "zmax": zmax}
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=rows, colorscale=colorscale, **kw))
    fig.update_layout(title=title, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    # Names, not numbers: an nn.Sequential's groups "0", "1", "4" on a numeric axis read as 0/5/10.
    fig.update_xaxes(type="category")
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def group_scores_figure(r: dict, red_flagged: bool) -> go.Figure:
    """An attribution's per-group gradient scores on the errors (and on correct images), flagged
    groups in red when they were flagged by this score; groups on a categorical axis."""
    colors = [FLAGGED if g in r["flagged"] else PLAIN for g in r["groups"]] if red_flagged else PLAIN
    fig = go.Figure(go.Bar(x=r["groups"], y=[r["scores"][g] for g in r["groups"]], name="errors", marker_color=colors))
    if r.get("correct_scores"):
        fig.add_trace(go.Bar(x=r["groups"], y=[r["correct_scores"][g] for g in r["groups"]], name="correct",
                             marker_color="#bbbbbb"))
    norm = r["config"]["normalization"]
    fig.update_layout(title=f"The paper's gradient scores ({norm})" + ("; red: flagged" if red_flagged else ""),
                      height=300, barmode="group", yaxis_title=f"gradient norm ({norm})",
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(type="category", title="layer group")
    return fig


def probe_figure(r: dict) -> go.Figure:
    """The probe's held-out loss drop per group (flagged in red), zero marked; categorical groups."""
    fig = go.Figure(go.Bar(x=r["groups"], y=[r["probe_scores"][g] for g in r["groups"]],
                           marker_color=[FLAGGED if g in r["flagged"] else PLAIN for g in r["groups"]]))
    fig.update_layout(title="Probe: loss drop per group (red: flagged)", height=260, yaxis_title="held-out loss drop",
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(type="category", title="layer group")
    fig.add_hline(y=0, line_color="#888")
    return fig


def seeds_figure(values: dict[str, list], title: str, y_title: str, paired: bool = False) -> go.Figure:
    """One point per seed for each arm on a categorical axis, the arm's mean as a black bar; a
    seed with no value (a run that never reached a target) is left out and counted in the
    arm's label. ``paired``: a grey line joins each seed's points across arms."""
    fig = go.Figure()
    arms = list(values)
    label = {a: a + (f" ({sum(v is None for v in values[a])} never)" if any(v is None for v in values[a]) else "")
             for a in arms}
    if paired:
        for i in range(max(len(v) for v in values.values())):
            fig.add_trace(go.Scatter(x=[label[a] for a in arms], y=[values[a][i] for a in arms], mode="lines",
                                     line={"color": "#cccccc", "width": 1}, showlegend=False, hoverinfo="skip"))
    for i, a in enumerate(arms):
        got = [v for v in values[a] if v is not None]
        fig.add_trace(go.Box(x=[label[a]] * len(got), y=got, boxpoints="all", jitter=0.3, pointpos=0, name=a,
                             marker_color=PALETTE[i % len(PALETTE)], fillcolor="rgba(0,0,0,0)",
                             line={"color": "rgba(0,0,0,0)"}, showlegend=False))
        if got:
            fig.add_trace(go.Scatter(x=[label[a]], y=[float(np.mean(got))], mode="markers", showlegend=False,
                                     marker={"symbol": "line-ew-open", "size": 30, "color": "black"},
                                     hovertemplate=f"{a}: mean %{{y:.4g}}<extra></extra>"))
    fig.update_layout(title=title, height=320, yaxis_title=y_title, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(type="category")
    return fig


def sweep_grid_figure(members, stage: str) -> go.Figure | None:
    """A sweep stage as a method x grid-point heatmap of final (validation or test) accuracy;
    the title says what a blank cell is. ``members``: (cell, run) pairs (``queries.sweep_members``)."""
    rows = [(c, r) for c, r in members if c.stage == stage]
    if not rows:
        return None
    metric = "final_val_acc" if stage == "tune" else "final_test_acc"
    ys = list(dict.fromkeys(c.method for c, _ in rows))
    xs = list(dict.fromkeys(c.label().split(" ", 1)[1] for c, _ in rows))
    z = np.full((len(ys), len(xs)), np.nan)
    text = [["" for _ in xs] for _ in ys]
    pending = any(r["status"] in ACTIVE for _, r in rows)
    for c, r in rows:
        i, j = ys.index(c.method), xs.index(c.label().split(" ", 1)[1])
        v = r["summary"].get(metric)
        z[i, j] = np.nan if v is None else 100 * v  # accuracy in %, as on every page
        text[i][j] = r["status"] if v is None else f"{100 * v:.1f}%"
    fig = go.Figure(go.Heatmap(z=z, x=xs, y=ys, text=text, texttemplate="%{text}", colorscale="Viridis",
                               colorbar={"title": "val acc, %" if stage == "tune" else "test acc, %"}))
    what = "Stage 1: tuning (validation accuracy)" if stage == "tune" else "Reported stage (test accuracy)"
    # a blank cell is a run still to finish, or a point outside that method's grid (Adam's LRs)
    blank = (" — blank: not run yet" if pending else
             " — blank: not in that method's grid" if np.isnan(z).any() else "")
    if not np.isnan(z).all():  # the colours span these cells only: say so
        what += f"; colours from {np.nanmin(z):.1f}% to {np.nanmax(z):.1f}%"
    fig.update_layout(title=f"{what}{blank}", height=120 + 50 * len(ys), margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def mean_curve_figure(curves: pd.DataFrame, x: str, title: str, colors: dict[str, str] | None = None,
                      markers: bool = True, percent: bool = False, log_y: bool = False) -> go.Figure:
    """Per arm: the mean curve (``sweeps.mean_curves``) with its 95% band, beta drawn last;
    ``markers`` off for curves of many points (steps); ``percent``: an accuracy, drawn in % as
    on every page."""
    if percent and len(curves):
        curves = curves.assign(**{c: curves[c] * 100 for c in ("mean", "ci_low", "ci_high")})
    fig = go.Figure()
    arms = sorted(curves.groupby("arm"), key=lambda mg: line_style(mg[0])[2]) if len(curves) else []
    # an arm whose mean equals another's at every point (hybrid before its switch is beta) would
    # hide under it: its legend entry says so
    same = {m: next((o for o, h in arms if o != m and len(h) == len(g)
                     and np.allclose(h["mean"].to_numpy(float), g["mean"].to_numpy(float), equal_nan=True)
                     and line_style(o)[2] > line_style(m)[2]), None) for m, g in arms}
    for k, (m, g) in enumerate(arms):
        c = (colors or {}).get(m, PALETTE[k % len(PALETTE)])
        dash, width, _ = line_style(m)
        band = g.dropna(subset=["ci_low"])
        if len(band):
            fig.add_trace(go.Scatter(x=list(band[x]) + list(band[x])[::-1],
                                     y=list(band["ci_high"]) + list(band["ci_low"])[::-1], fill="toself",
                                     line={"width": 0}, fillcolor=c, opacity=0.2, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=g[x], y=g["mean"], name=f"{m} (= {same[m]} throughout: under it)" if same[m] else m,
                                 mode="lines" if same[m] or not markers else "lines+markers",
                                 line={"color": c, "dash": dash, "width": width + 2 if same[m] else width}))
    fig.update_layout(title=title, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    if percent:
        percent_axis(fig, pd.concat([curves["mean"], curves["ci_low"], curves["ci_high"]]) if len(curves) else [],
                     "accuracy (%)")
    fig.update_xaxes(title_text={"step": "steps", "epoch": "epoch (from 1)"}.get(
        x, "seconds (mean; wall clock on the machine that ran them, runs one after another)"))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def percent_axis(fig: go.Figure, values, title: str) -> None:
    """A y axis in % that spans the data, padded a little, never beyond 0-100% (a one-point
    chart drew -50% to 100%), and a note on the chart that says so: a short axis is not read as
    a large gap."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    fig.update_yaxes(title_text=title)
    if not v.size:
        return
    lo, hi = float(v.min()), float(v.max())
    pad = max((hi - lo) * 0.08, 1.0)
    span = [max(0.0, lo - pad), min(100.0, hi + pad)]
    fig.update_yaxes(range=span)
    if span != [0.0, 100.0]:  # said only where it is so (an interval from 0 to 100% spans it all)
        fig.add_annotation(text="y axis spans the data (not 0-100%)", xref="paper", yref="paper", x=1, y=1,
                           xanchor="right", yanchor="bottom", showarrow=False, font={"size": 10, "color": "#777"})


def top1_figure(bench: dict, names: list[str]) -> go.Figure:
    """The localisation benchmark: each score's top-1 rate with its 95% interval, in % as the
    table beside it says it, the random ranking's rate dashed."""
    top1 = [bench["scores"][n]["top1"] for n in names]
    bar = go.Figure(go.Bar(x=names, y=[t["rate"] for t in top1],
                           error_y={"type": "data", "symmetric": False,
                                    "array": [t["ci_high"] - t["rate"] for t in top1],
                                    "arrayminus": [t["rate"] - t["ci_low"] for t in top1]}))
    bar.add_hline(y=bench["floor_top1"], line_dash="dash", annotation_text="random floor")
    bar.update_layout(title="Top-1 rate with 95% interval", height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      yaxis={"range": [0, 1], "tickformat": ".0%", "title": "top-1 rate (damaged group ranked first)"})
    return bar


def seeds_needed_figure(p: dict) -> go.Figure:
    """A sweep as a pilot (``sweeps.seeds_plan``): the accuracy difference n seeds per method
    could detect at 80% power, with this sweep's n marked."""
    fig = go.Figure(go.Scatter(x=[c["n"] for c in p["curve"]], y=[100 * c["detectable"] for c in p["curve"]],
                               mode="lines+markers"))
    fig.add_vline(x=p["n_pilot"], line_dash="dot", annotation_text="this sweep")
    fig.update_layout(title="How many seeds? Detectable accuracy difference at 80% power", height=300,
                      xaxis_title="seeds per method", yaxis_title="points", margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def lr_sensitivity_figure(choice: dict, colors: dict[str, str]) -> go.Figure:
    """A tuned sweep's stage 1: per method, mean validation accuracy (%) against each peak LR of
    its grid, with its 95% interval (cut at 0-100%); an x tick at every LR of the grid, written
    out (the grid's edges are where a choice is suspect)."""
    fig, ys = go.Figure(), []
    for m, c in sorted(choice.items(), key=lambda kv: line_style(kv[0])[2]):  # the paper's beta drawn last
        pts = [p for p in c["curve"] if p["mean"] is not None and "lr" in p["values"]]
        if not pts:
            continue
        mean = [100 * p["mean"] for p in pts]
        hi = [100 * min(1.0, p["ci_high"]) - y if p.get("ci_high") is not None else 0 for p, y in zip(pts, mean)]
        lo = [y - 100 * max(0.0, p["ci_low"]) if p.get("ci_low") is not None else 0 for p, y in zip(pts, mean)]
        dash, width, _ = line_style(m)
        fig.add_trace(go.Scatter(x=[p["values"]["lr"] for p in pts], y=mean, name=m, mode="lines+markers",
                                 error_y={"type": "data", "array": hi, "arrayminus": lo, "symmetric": False},
                                 line={"color": colors.get(m), "dash": dash, "width": width}))
        ys += [y + h for y, h in zip(mean, hi)] + [y - d for y, d in zip(mean, lo)]
    lrs = sorted({p["values"]["lr"] for c in choice.values() for p in c["curve"] if "lr" in p["values"]})
    fig.update_xaxes(type="log", title_text="peak LR (a tick at each LR tried)",
                     **({"tickvals": lrs, "ticktext": [f"{v:g}" for v in lrs]} if lrs else {}))
    percent_axis(fig, ys, "val. accuracy (%), mean")
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 24, "b": 10})
    return fig


def _axis(values: pd.Series, name: str) -> dict:
    """One parallel-coordinates axis: numbers as they are, anything else as categories in order."""
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().all():
        return {"label": name, "values": num.tolist()}
    cats = sorted(values.astype(str).unique())
    code = {c: i for i, c in enumerate(cats)}
    return {"label": name, "values": [code[v] for v in values.astype(str)], "tickvals": list(range(len(cats))),
            "ticktext": cats}


def parcoords_figure(runs: pd.DataFrame, dims: list[str], metric: str, title: str) -> go.Figure:
    """Which setting mattered: one line per run through its config fields (``dims``), ending on
    ``metric``, coloured by it; drag on an axis to keep a range. Fields with one value are left
    out (they cannot have mattered here); runs without the metric are left out."""
    df = runs.dropna(subset=[metric])
    keep = [d for d in dims if d in df and df[d].astype(str).nunique() > 1]
    fig = go.Figure(go.Parcoords(
        line={"color": df[metric].astype(float).tolist(), "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": {"text": metric}}},
        dimensions=[_axis(df[d], d) for d in keep] + [_axis(df[metric].astype(float), metric)]))
    fig.update_layout(title=f"{title} ({len(df):,} runs; fields with one value left out)", height=400,
                      margin={"l": 80, "r": 110, "t": 100, "b": 30})
    return fig


def scatter_figure(runs: pd.DataFrame, x: str, y: str, title: str, color: str = "method") -> go.Figure:
    """Any field against any metric, one point per run, coloured by ``color``; a categorical x
    is a categorical axis."""
    fig = go.Figure()
    df = runs.dropna(subset=[y])
    for i, (g, part) in enumerate(df.groupby(df[color].astype(str) if color in df else pd.Series("runs", df.index))):
        fig.add_trace(go.Scatter(x=part[x], y=part[y], mode="markers", name=str(g),
                                 marker={"color": PALETTE[i % len(PALETTE)], "size": 8, "opacity": 0.8},
                                 text=part["id"] if "id" in part else None,
                                 hovertemplate=f"{x} %{{x}}<br>{y} %{{y:.4g}}<br>%{{text}}<extra>{g}</extra>"))
    fig.update_layout(title=f"{title} ({len(df):,} runs)", height=340, xaxis_title=x, yaxis_title=y,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    if len(df) and pd.to_numeric(df[x], errors="coerce").isna().any():
        fig.update_xaxes(type="category")
    return fig


class FigureExportError(RuntimeError):
    """A figure could not be written as PNG or SVG (no browser for kaleido)."""


def save_figure(fig: go.Figure, path: str | Path, width: int = 1100, height: int | None = None) -> Path:
    """Write ``fig`` as PNG or SVG (by ``path``'s suffix) through kaleido, which drives a
    Chromium it finds on the machine (Debian's ``chromium``, the one CI installs). Without
    one: :class:`FigureExportError` in one line (the HTML report needs no browser)."""
    path = Path(path)
    if path.suffix not in (".png", ".svg"):
        raise ValueError(f"Invalid figure file {str(path)!r} (expected a .png or .svg name)")
    try:
        fig.write_image(path, width=width, height=height or fig.layout.height or 400)
    except Exception as e:  # noqa: BLE001 - kaleido says "no Chrome" in several exception types
        raise FigureExportError(f"Cannot write {path.name}: {type(e).__name__}: {str(e).splitlines()[0][:160]} "
                                "(expected kaleido and a Chromium browser, e.g. Debian's chromium package; the HTML "
                                "report needs neither)") from None
    return path


# ------------------------------------------------------------------ the Theory page's heavy ball
def axis_span(*values: np.ndarray, least: float = 0.0) -> list[float]:
    """A fixed axis range over the drawn values, 0 and ±``least``, with a 5% margin each side."""
    lo = min(-least, *(float(np.min(v)) for v in values))
    hi = max(least, *(float(np.max(v)) for v in values))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = 0.05 * (hi - lo or 1.0)
    return [lo - pad, hi + pad]


def mark_divergence(fig: go.Figure, ends: list[tuple[float, float, str, str]]) -> None:
    """Where diverging trajectories were cut: a cross at each cut end, and one note in the
    bottom-right corner, a line per case in its colour (labels at the crosses pile up, as the
    cases often diverge within a step of each other). ``ends``: (x, y, colour, words)."""
    for x, y, color, _ in ends:
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", marker={"symbol": "x", "size": 12, "color": color},
                                 showlegend=False, hoverinfo="skip"))
    if ends:
        text = "<br>".join(f"<span style='color:{color}'>{words}</span>" for *_, color, words in ends)
        fig.add_annotation(text=text, xref="paper", yref="paper", x=1, y=0, xanchor="right", yanchor="bottom",
                           showarrow=False, align="right", bgcolor="rgba(255,255,255,0.85)")


THEORY_GRID = {"gridcolor": "rgba(0,0,0,0.08)"}
THEORY_LAYOUT = {"height": 300, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "plot_bgcolor": "white",
                 "showlegend": False}  # two plots and the controls fit one 720-px screen


def oscillator_figures(runs: dict, colors: dict[str, str], at: int, steps: int, bound: float,
                       emphasised: str = "critical") -> tuple[go.Figure, go.Figure]:
    """The heavy ball in one dimension, per case: (position over steps, phase portrait), the
    ball at step ``at``, crosses where a diverging case was cut (past ``bound``). ``runs``:
    name -> (trajectory, step cut or None), as ``damping.simulate_bounded`` returns them."""
    pos, phase = go.Figure(), go.Figure()
    ends = []  # (name, step, x, v, colour) where a diverging trajectory was cut
    for name, (traj, k) in runs.items():
        x, v = traj[:, 0], velocity(traj)[:, 0]
        line = {"color": colors[name], "width": 4 if name == emphasised else 2}
        pos.add_trace(go.Scatter(y=x, name=name, mode="lines", line=line))
        phase.add_trace(go.Scatter(x=x, y=v, name=name, mode="lines", line=line))
        if k is not None:
            ends.append((name, k, x[-1], v[-1], line["color"]))
        if at < len(x):  # the ball at the chosen step (a diverged ball has left the chart)
            ball = {"size": 13, "color": line["color"], "line": {"color": "white", "width": 1.5}}
            hover = f"{name}<br>step {at}<br>x = {g3(x[at])}<br>v = {g3(v[at])}<extra></extra>"
            pos.add_trace(go.Scatter(x=[at], y=[x[at]], mode="markers", marker=ball, hovertemplate=hover))
            phase.add_trace(go.Scatter(x=[x[at]], y=[v[at]], mode="markers", marker=ball, hovertemplate=hover))
    cut = lambda k: f"diverges: |x| > {bound:g} at step {k}"  # noqa: E731
    mark_divergence(pos, [(k - 1, x, c, f"{n} {cut(k)}") for n, k, x, _, c in ends])
    mark_divergence(phase, [(x, v, c, f"{n} {cut(k)}") for n, k, x, v, c in ends])
    xs = [t[:, 0] for t, _ in runs.values()]
    vs = [velocity(t)[:, 0] for t, _ in runs.values()]
    # When every case has diverged, all there is to see is in the first few steps.
    last = steps if len(ends) < len(runs) else min(steps, max(10, 3 * max(k for _, k, *_ in ends)))
    pos.add_hline(y=0, line_dash="dot", line_color="gray")
    pos.add_vline(x=at, line_dash="dash", line_color="rgba(0,0,0,0.3)")
    pos.update_layout(title="Position x over steps", xaxis={"title": "step", "range": [0, last], **THEORY_GRID},
                      yaxis={"title": "x", "range": axis_span(*xs), **THEORY_GRID}, **THEORY_LAYOUT)
    phase.update_layout(title="Phase portrait: velocity against x",
                        xaxis={"title": "x", "range": axis_span(*xs), **THEORY_GRID},
                        yaxis={"title": "v = x(t) − x(t−1)", "range": axis_span(*vs), **THEORY_GRID}, **THEORY_LAYOUT)
    return pos, phase


def valley_figure(t2: np.ndarray, k2: int | None, lam2: float, mu: float, color: str, at: int,
                  bound: float) -> go.Figure:
    """The heavy ball in two dimensions, curvatures 1 and ``lam2``: its path from (1, 1) over
    the loss's level lines, the ball at step ``at``, a cross where it was cut (past ``bound``)."""
    # Equal axes (a circle looks round) in a wide plot: x₁ gets about twice x₂'s span so the
    # plot is filled, and the loss's level lines are drawn over a box that covers either way.
    r2 = axis_span(t2[:, 1], least=1.1)
    r1 = axis_span(t2[:, 0], least=1.1)
    mid, half = (r1[0] + r1[1]) / 2, max(r1[1] - r1[0], 2.2 * (r2[1] - r2[0])) / 2
    r1 = [mid - half, mid + half]
    reach = max(map(abs, r1 + r2))
    grid = np.linspace(-reach, reach, 161)
    # f = ½(x₁² + λ₂x₂²), drawn as √(2f) so the ellipses are evenly spaced (f's own levels crowd
    # at the edges).
    level = np.sqrt(grid[None, :] ** 2 + lam2 * grid[:, None] ** 2)
    size = np.sqrt(lam2) * (r2[1] - r2[0]) / 12  # about six level lines across x₂'s half of the view
    f2 = go.Figure(go.Contour(x=grid, y=grid, z=level, showscale=False, hoverinfo="skip", line_width=1,
                              contours={"coloring": "lines", "start": size, "end": float(level.max()), "size": size},
                              colorscale=[[0, "#bbbbbb"], [1, "#bbbbbb"]], name="loss level lines"))
    f2.add_trace(go.Scatter(x=t2[:, 0], y=t2[:, 1], mode="lines+markers", marker={"size": 3, "color": color},
                            line={"color": color, "width": 2}, name=f"μ = {g3(mu)}", hoverinfo="skip"))
    f2.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker={"symbol": "star", "size": 12, "color": "black"},
                            name="minimum", hoverinfo="skip"))
    if k2 is not None:
        mark_divergence(f2, [(t2[-1, 0], t2[-1, 1], color, f"diverges: |x| > {bound:g} at step {k2}")])
    if at < len(t2):
        f2.add_trace(go.Scatter(x=[t2[at, 0]], y=[t2[at, 1]], mode="markers", name=f"step {at}",
                                marker={"size": 13, "color": color, "line": {"color": "white", "width": 1.5}}))
    f2.update_layout(title=f"Trajectory from (1, 1) on f = ½(x₁² + {g3(lam2)}·x₂²)",
                     xaxis={"title": "x₁ (λ = 1)", "range": r1, "constrain": "domain"},
                     yaxis={"title": f"x₂ (λ₂ = {g3(lam2)})", "range": r2, "scaleanchor": "x", "scaleratio": 1},
                     **{**THEORY_LAYOUT, "height": 360, "showlegend": True}, legend={"orientation": "h", "y": -0.2})
    return f2
