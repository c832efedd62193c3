"""Reading the store for pages and reports: a sweep's members, the newest localisation result,
runs already queued with a config, the sharpness runs measured.

Nothing here runs a job, so a page or a report that only reads imports this, not the job
system (``jobs``: processes, bodies, Ray).
"""
from __future__ import annotations

import json

from .figures import run_name
from .records import ACTIVE, Cell
from .store import Store

__all__ = ["latest_members", "sweep_members", "latest_localisation", "active_duplicates", "measured_sharpness"]


def latest_members(store: Store, sweep_id: str) -> dict[str, dict]:
    """The latest member run of each cell of a sweep (a cell run again keeps its old run too)."""
    latest: dict[str, dict] = {}
    for r in store.runs(kind="train", parent=sweep_id):  # newest first
        latest.setdefault(r["label"], r)
    return latest


def sweep_members(store: Store, sweep_id: str) -> list[tuple[Cell, dict]]:
    """(cell, latest run) of every member of a sweep, in order of creation."""
    return [(Cell.from_key(k), r) for k, r in reversed(list(latest_members(store, sweep_id).items()))]


def latest_localisation(store: Store, model: str, width=None) -> dict | None:
    """The newest finished localisation benchmark for this model family (name and width)."""
    for job in store.runs(kind="localise", status="done"):
        res = store.results(job["id"], "localisation")
        if res and res[-1].get("model") == model and res[-1].get("width") == width:
            return res[-1]
    return None


def active_duplicates(store: Store, configs: list[dict]) -> list[dict]:
    """Queued or running training runs whose config is one of ``configs`` (the thread count
    aside: a launcher fills it in): launching those again would run the same comparison twice."""
    def key(c: dict) -> str:
        return json.dumps({k: v for k, v in c.items() if k != "threads"}, sort_keys=True)
    wanted = {key(c) for c in configs}
    return [r for r in store.runs(kind="train", status=ACTIVE) if key(r["config"]) in wanted]


def measured_sharpness(store: Store, limit: int = 20) -> dict[str, float]:
    """``{"run · epoch k": lam_max}``: the last epoch with a measured sharpness of each of the
    newest ``limit`` finished training runs (the Theory page's choice of a measured λ)."""
    out = {}
    for r in store.runs(kind="train", status="done", limit=limit):
        ep = store.epochs(r["id"])
        for _, e in ep.iloc[::-1].iterrows():
            lam = e["extra"].get("lam_max")
            if lam:
                out[f"{run_name(r)} · epoch {int(e['epoch']) + 1}"] = float(lam)
                break
    return out
