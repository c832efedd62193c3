"""Shared pieces of the pages: the job manager, labels, colours and plotly figures.

Pages build configs and call beta_core; nothing here trains.
"""
from __future__ import annotations

import itertools
import os
import re
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from beta_core.damping import DEFAULT_TOL
from beta_core.data import DataConfig, resolve_source
from beta_core.env import settings
from beta_core.jobs import JobManager
from beta_core.models import MODELS, ModelConfig, build_model, catalogue, layer_groups
from beta_core.ray_backend import RayBackendError
from beta_core.records import ACTIVE
from beta_core.store import Store, StoreError
from beta_core.zoo import torchvision_names

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f"]
REGIME_BANDS = [(1 - DEFAULT_TOL, "rgba(214,39,40,0.08)", "underdamped"),
                (1 + DEFAULT_TOL, "rgba(44,160,44,0.18)", "critical"),
                (None, "rgba(31,119,180,0.08)", "overdamped")]  # upper edge of each zeta band


def data_dir() -> str:
    return settings().data_dir


def plain(text: str) -> str:
    """``text`` with Markdown's special characters escaped: error messages show as written
    (``train/<class>/*.jpg`` keeps its ``*``)."""
    return re.sub(r"([\\`*_{}\[\]()#+!|~<>$-])", r"\\\1", str(text))


def show_error(text: str, prefix: str = "") -> None:
    st.error(prefix + plain(text))


@contextmanager
def launch_errors():
    """Around a Launch button's work: bad input and an unusable store or cluster become one
    error box on the page, nothing is launched."""
    try:
        yield
    except ValueError as e:
        show_error(e)
    except (StoreError, OSError, RayBackendError) as e:
        show_error(e, "Cannot launch: ")


@st.cache_resource
def _manager(runs_dir: str, data_dir: str, max_parallel: int, backend: str, ray_address: str | None) -> JobManager:
    return JobManager(runs_dir, data_dir, max_parallel=max_parallel, backend=backend, ray_address=ray_address)


def get_manager() -> JobManager:
    """One job manager per app process (and runs folder): each job runs as its own process,
    at most BETA_MAX_JOBS (default 1) at a time, so a 2-core machine is not oversubscribed."""
    s = settings()
    return _manager(s.runs_dir, s.data_dir, s.max_jobs, s.backend, s.ray_address)


def resume_sweep(sweep_id: str, retry_failed: bool = False) -> None:
    """Queue a stopped sweep again under this app (one atomic claim: refused with the owner's
    pid while the CLI or another app runs it); a worker picks it up."""
    jm = get_manager()
    sweep = jm.store.get_run(sweep_id)
    opts = {**sweep["config"].get("options", {}), "retry_failed": retry_failed}
    jm.store.reopen(sweep_id, {**sweep["config"], "options": opts}, pid=os.getpid())
    jm.requeue([])  # start what is queued for this process


def get_store() -> Store:
    """The run store, or an error box and the end of the page when it cannot be opened."""
    try:
        store = get_manager().store
        store.reap()  # a worker that died since the last look is recorded as interrupted
        return store
    except (StoreError, OSError, RayBackendError) as e:
        show_error(e, "Run store unavailable: ")
        st.stop()


@st.fragment(run_every=1.0)
def job_status(job_ids: tuple[str, ...], what: str) -> None:
    """While jobs run: one status line each (steps so far), refreshed every second; a full rerun
    when they have all ended, so the page shows their results. The one polling style of the
    pages: fragments, never sleep-and-rerun of the whole page."""
    store = get_store()
    jobs = [store.get_run(i) for i in job_ids]
    if all(j["status"] not in ACTIVE for j in jobs):
        st.rerun()
    for j in jobs:
        if j["status"] in ACTIVE:
            n = store.step_counts(j["id"])[j["id"]]
            st.info(f"{what} {j['id']}: {j['status']}" + (f", {n:,} steps so far" if n else ""))


def model_choices() -> list[str]:
    """What the Model selectors offer: the built-in models, the factories named in BETA_MODELS
    (the app never imports code typed into a page) and torchvision's classifiers."""
    return [*MODELS, *settings().models, *(f"torchvision:{n}" for n in torchvision_names())]


@st.cache_data(max_entries=64, show_spinner=False)
def _model_info(name: str, resize: int | None) -> tuple[list[dict], bool | None]:
    # Built on the meta device: no weights, no memory, milliseconds even for a ViT-B.
    with torch.device("meta"):
        groups = layer_groups(build_model(ModelConfig(name, resize=resize), pretrained=False))
    rows = [{"group": g.name, "parameters": f"{g.n_params:,}", "share": f"{100 * g.fraction:.1f}%"} for g in groups]
    return rows, catalogue([name], resize or 32)[0]["runs_at"]


def model_picker(default: str, key: str, groups: bool = True) -> tuple[str, int | None]:
    """The Model selector with its input size and, with ``groups``, the model's layer groups
    under it (the unit of attribution and surgery). Outside a form, so they follow the choice
    at once; a model that does not run at the chosen size says so either way."""
    choices = model_choices()
    c1, c2 = st.columns([3, 1])
    name = c1.selectbox("Model", choices, index=choices.index(default) if default in choices else 0, key=key,
                        help="built-in, BETA_MODELS factories, torchvision classifiers (README, 'Your model')")
    resize = c2.number_input("Input size (0 = as stored, 32)", min_value=0, max_value=1024, value=0, step=32,
                             key=f"{key}-resize", help="images upsampled on the device, batch by batch (ViT: 224)")
    try:
        rows, runs = _model_info(name, int(resize) or None)
    except (ValueError, RuntimeError, TypeError) as e:
        show_error(e)
        return name, int(resize) or None
    side = int(resize) or 32
    if runs is False:
        st.warning(f"{name} does not run on {side}x{side} images: set the input size (ViT: 224).")
    if groups:
        with st.expander(f"{name}: {len(rows)} layer groups (the unit of attribution and surgery)"):
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    return name, int(resize) or None


@lru_cache(maxsize=1)
def device_label() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    if torch.backends.mps.is_available():
        return "Apple GPU (mps)"
    return f"CPU ({os.cpu_count()} cores)"


def data_source_label(path: str | None = None) -> str:
    try:
        source, p = resolve_source(DataConfig("auto", path), data_dir())
    except ValueError as e:
        return f"error: {plain(e)}"
    return {"synthetic": "synthetic (no CIFAR-10 found)", "cifar10": "CIFAR-10 (data/)"}.get(source, f"folder {p}")


def run_colors(run_ids) -> dict[str, str]:
    """One colour per run, the same on every chart (ordered by id, so stable across reruns)."""
    return {rid: PALETTE[i % len(PALETTE)] for i, rid in enumerate(sorted(run_ids))}


def run_name(run: dict) -> str:
    seed = run["config"].get("seed")
    mark = " (your loop)" if run.get("kind") == "external" else ""
    return f"{run['method']}" + (f" s{seed}" if seed is not None else "") + mark + f" · {run['id'][-6:]}"


def smooth(y: pd.Series, window: int) -> pd.Series:
    return y.rolling(window, min_periods=1).mean() if window > 1 else y


MAX_POINTS = 400  # per line: more is invisible at chart width and costs the browser on every poll


def metric_figure(frames: dict[str, pd.DataFrame], names: dict[str, str], colors: dict[str, str], x: str, y: str,
                  title: str, log_y: bool = False, window: int = 1, bands: bool = False,
                  mode: str = "lines") -> go.Figure:
    """One chart, one line per run; ``frames`` maps run id to its records."""
    return panel_figure([{"frames": frames, "x": x, "y": y, "title": title, "log_y": log_y, "window": window,
                          "bands": bands, "mode": mode}], names, colors)


# Methods that coincide for most of a run (hybrid is beta until its switch) must both stay
# visible: the paper's beta is drawn last, thin and solid; the others under it, wider, dashed.
_STYLES = (("hybrid", "dash", 4, 0), ("exact", "dashdot", 3, 1), ("onecycle", "dot", 3, 1), ("constant", "solid", 3, 1),
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


def panel_figure(panels: list[dict], names: dict[str, str], colors: dict[str, str], height: int = 320) -> go.Figure:
    """Side-by-side charts in one figure (one redraw per refresh instead of one per chart).

    Each panel: ``frames`` (run id -> records), ``x``, ``y``, ``title`` and optionally
    ``log_y``, ``window`` (smoothing), ``bands`` (zeta regimes), ``mode``. Lines are smoothed,
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
        if p.get("log_y"):
            fig.update_yaxes(type="log", row=1, col=col)
        if p.get("bands"):
            _regime_bands(fig, p["frames"], y, p.get("log_y", False), col)
        fig.update_xaxes(title_text=x, row=1, col=col)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.3})
    return fig


def _titled(panel: dict, names: dict[str, str]) -> str:
    """A panel's title, with a note where two runs coincide ("hybrid = beta until step 899")."""
    frames = {r: f for r, f in panel["frames"].items() if not f.empty and panel["y"] in f}
    method = {r: names[r].split(" ")[0] for r in frames}  # "sgd-beta s0 · a66ab7" -> "sgd-beta"
    shared: dict[tuple, float] = {}  # (method, method) -> the earliest end of a shared stretch over seeds
    for a, b in itertools.combinations(sorted(frames, key=lambda r: names[r]), 2):
        upto = coincide(frames[a], frames[b], panel["x"], panel["y"]) if method[a] != method[b] else None
        if upto is not None:
            key = tuple(sorted((method[a], method[b])))
            shared[key] = min(upto, shared.get(key, upto))
    if not shared:
        return panel["title"]
    (m1, m2), upto = min(shared.items(), key=lambda kv: kv[1])  # one short note: a panel title is narrow
    return f"{panel['title']}<br><sup>{m1} = {m2} until {panel['x']} {upto:g}</sup>"


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
        ticks = [v for v in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500) if lo <= v <= hi]
        fig.update_yaxes(tickvals=ticks, ticktext=[f"{v:g}" for v in ticks], row=1, col=col)


def heatmap(matrix, rows, cols, title: str, zmax: float | None = None, colorscale="Viridis",
            zmid: float | None = None) -> go.Figure:
    z = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    kw = {"zmid": zmid} if zmid is not None else {"zmin": 0, "zmax": zmax}
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=rows, colorscale=colorscale, **kw))
    fig.update_layout(title=title, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_yaxes(autorange="reversed")
    return fig


def pick_run(label: str, runs: list[dict], key: str, index: int = 0) -> dict | None:
    if not runs:
        st.info("No finished runs yet: launch one on the **Train & compare** page.")
        return None
    ids = [r["id"] for r in runs]
    chosen = st.selectbox(label, ids, index=min(index, len(ids) - 1), key=key,
                          format_func=lambda i: run_name(next(r for r in runs if r["id"] == i)))
    return next(r for r in runs if r["id"] == chosen)


def measured_sharpness(store: Store, limit: int = 20) -> dict[str, float]:
    """``{"run · epoch k": lam_max}`` for the latest epochs with a measured sharpness (newest runs first)."""
    out = {}
    for r in store.runs(kind="train", status="done")[:limit]:
        ep = store.epochs(r["id"])
        for _, e in ep.iloc[::-1].iterrows():
            lam = e["extra"].get("lam_max")
            if lam:
                out[f"{run_name(r)} · epoch {int(e['epoch']) + 1}"] = float(lam)
                break
    return out
