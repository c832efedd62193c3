"""Shared pieces of the pages: the job manager, labels, colours and plotly figures.

Pages build configs and call beta_core; nothing here trains.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import streamlit as st

from beta_core.env import RayBackendError, settings
from beta_core.figures import (  # noqa: F401 - the pages' figure helpers, one home in beta_core
    PALETTE,
    REGIME_BANDS,
    coincide,
    heatmap,
    line_style,
    mean_curve_figure,
    metric_figure,
    panel_figure,
    run_colors,
    run_name,
    smooth,
)
from beta_core.formats import counted
from beta_core.glossary import term  # noqa: F401 - the pages' `?` texts, one home in beta_core
from beta_core.html_report import build_report
from beta_core.jobs.manager import JobManager
from beta_core.store import Store, StoreError
from beta_core.subconfigs import DataConfig, resolve_source
from beta_core.sysmon import device_label as sysmon_device_label


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


@lru_cache(maxsize=1)
def device_label() -> str:
    return sysmon_device_label()  # once per app: asked without importing torch


def data_source_label(path: str | None = None) -> str:
    try:
        source, p = resolve_source(DataConfig("auto", path), data_dir())
    except ValueError as e:
        return f"error: {plain(e)}"
    if path:  # what the Train page's typed path resolves to
        where = Path(path).expanduser()
        if not where.exists():
            return f"not found: {plain(path)} (a launch would refuse it)"
        return f"{'archive' if where.is_file() else 'folder'} {plain(path)}"
    return {"synthetic": "synthetic (no CIFAR-10 in data/)", "cifar10": "CIFAR-10 (data/)"}.get(source, f"folder {p}")


def report_button(ids: list[str], key: str, label: str = "Download report (HTML, opens offline)") -> None:
    """A report of ``ids`` as one self-contained HTML file. Built on request (it embeds plotly.js
    and reads every run), kept for the same runs until they change."""
    if not ids:
        return
    if st.button(f"Prepare report of {counted(len(ids), 'run')}" if len(ids) > 1 else "Prepare report",
                 key=f"{key}-make",
                 help="setting, figures, tables, verdicts, attribution and surgery, environment, reproduce command"):
        try:
            st.session_state[f"{key}-html"] = (tuple(ids), build_report(get_store(), list(ids)))
        except (StoreError, ValueError) as e:
            show_error(e, "Cannot build the report: ")
    made = st.session_state.get(f"{key}-html")
    if made and made[0] == tuple(ids):
        st.download_button(label, made[1], f"report-{ids[0]}.html", "text/html", key=f"{key}-download")


# Real runs shipped with the project (data/demo/record.py recorded them on the CIFAR-10 pack): a
# lecture starts from results, not from a minute of training.
DEMO_DIR = Path(__file__).resolve().parents[2] / "data" / "demo"


def demo_button(key: str) -> None:
    """On an empty store: "Load demo runs" unpacks the shipped bundles (a three-method comparison
    with attribution and surgery, and the findings' tuned sweep with its attributions and
    surgeries) and shows them at once."""
    store = get_store()
    bundles = sorted(DEMO_DIR.glob("*.zip"))
    if not bundles or store.count_runs() > 0:
        return
    if st.button("Load demo runs", key=f"demo-{key}", type="primary",
                 help="Real runs recorded on CIFAR-10 (2 CPU cores): sgd-constant, sgd-beta and sgd-hybrid on the "
                      "quick-cpu preset with attribution and surgery of the sgd-beta run; and the findings: a tuned "
                      "sweep of five methods at 12 seeds each, attribution of its sgd-beta and adam runs, surgery "
                      "with controls (the Findings page). The same as `beta-core runs unpack` of each bundle in "
                      "data/demo/."):
        from beta_core.bundles import BundleError, unpack  # the bundle checks import torch: only when asked

        try:
            added = [i for b in bundles for i in unpack(store, b)["added"]]
            for i in added:  # told apart from the user's own runs: pickers say "demo", `tag = demo` finds them
                store.tag(i, add=["demo"])
        except (BundleError, StoreError, OSError) as e:
            show_error(e, "Cannot load the demo runs: ")
            return
        st.session_state.pop("tr_runs", None)  # the Train page opens on the newest comparison
        st.toast(f"Loaded {len(added)} demo runs.")
        st.rerun()


def pick_run(label: str, runs: list[dict], key: str, index: int = 0) -> dict | None:
    if not runs:
        st.info("No finished runs yet: launch one on the **Train & compare** page, or load the demo runs.")
        demo_button(key)
        return None
    ids = [r["id"] for r in runs]
    chosen = st.selectbox(label, ids, index=min(index, len(ids) - 1), key=key,
                          format_func=lambda i: run_name(next(r for r in runs if r["id"] == i)))
    return next(r for r in runs if r["id"] == chosen)


RECENT = 200  # runs a selector lists: the newest, or what a search finds (a store of sweeps holds thousands)


def recent_runs(store: Store, key: str, kind, status=None, keep=()) -> list[dict]:
    """The newest RECENT runs of ``kind`` (and ``status``), read in SQL; with more in the store,
    a search box narrows them (part of an id, method, model or label). Runs in ``keep`` (ids:
    the selection, results worth opening on) are added when not among them."""
    total = store.count_runs(kind, status)
    search = None
    if total > RECENT:
        search = st.text_input(f"Find runs ({total:,} in the store; the newest {RECENT} are listed)",
                               key=f"{key}-search", placeholder="part of an id, method, model or label") or None
    runs = store.runs(kind=kind, status=status, limit=RECENT, search=search)
    have = {r["id"] for r in runs}
    for i in keep:
        if i not in have:
            try:
                runs.append(store.get_run(i))
            except StoreError:  # deleted since: nothing to add
                pass
    return runs
