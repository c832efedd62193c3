"""An offline report: one self-contained HTML file for runs or a sweep (no network to view it).

``build_report(store, ids)`` reads the runs (a sweep brings its members, a training run its
surgeries) and writes, top to bottom: the outcome in words, the setting (model, data and its
size, epochs, LRs, seeds), the live-chart panels as static figures (LR, momentum, zeta, loss,
accuracy, against optimizer steps), the mean curves with 95% bands and the verdict tables of a
sweep, the time-to-accuracy table, attribution heatmaps and surgery tables where the runs have
them, the environment each run recorded and the commands that reproduce them. plotly.js is
inlined once in the head; every figure after it refers to it, so the file opens on a laptop
without network. ``figures(store, ids)`` gives the same figures by name, for PNG/SVG files.
"""
from __future__ import annotations

import datetime
import html
import json
import re

import pandas as pd
import plotly.graph_objects as go
import plotly.offline

from . import reports
from .config import METHODS, TrainConfig, config_fields
from .figures import heatmap, mean_curve_figure, panel_figure, run_colors, run_name
from .formats import counted
from .queries import sweep_members
from .records import TRAINED_KINDS, train_config_of
from .store import Store
from .sweeps import SweepPlan, mean_curves

__all__ = ["build_report", "report_figures", "reproduce_command", "MAX_RUNS_PLOTTED"]

MAX_RUNS_PLOTTED = 30  # lines per panel: more is unreadable; the tables keep every run


def reproduce_command(run: dict) -> str:
    """The command that trains this run again: its method and every field that differs from
    the method's defaults (``beta-core train --from RUN`` does the same from a store)."""
    if run["kind"] == "sweep":
        plan = SweepPlan.from_dict(run["config"]["sweep"])
        parts = ["beta-core sweep", f"--methods {','.join(plan.methods)}", f"--seeds {','.join(map(str, plan.seeds))}"]
        value = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
        parts += [f"--grid {'' if k == '*' else k + ':'}{f}={','.join(value(v) for v in vs)}"
                  for k, g in plan.grid.items() for f, vs in g.items()]
        if plan.tune:
            parts += [f"--tune {','.join(plan.tune)}", f"--tune-seeds {','.join(map(str, plan.tune_seeds))}"]
        if plan.preset:
            parts.append(f"--preset {plan.preset}")
        parts += [f"--set {k}={v}" for k, v in plan.overrides.items() if v is not None]
        return " ".join(parts)
    if run["kind"] not in ("train", "surgery"):
        return f"(logged from {run['config'].get('script', 'your own loop')}; not launched by beta-core)"
    cfg = train_config_of(run)
    base = TrainConfig(method=cfg["method"]).to_dict() if cfg.get("method") in METHODS else {}
    fixed = METHODS.get(cfg.get("method"), {})
    fields = [f.name for f in config_fields() if f.name != "method"]
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731 - JSON keeps tuples as lists
    changed = [(k, cfg[k]) for k in fields if k in cfg and norm(cfg[k]) != norm(fixed.get(k, base.get(k)))]
    show = lambda v: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)  # noqa: E731
    cmd = f"beta-core train --method {cfg.get('method')} " + " ".join(f"--set {k}={show(v)}" for k, v in changed)
    surgery = run["config"].get("surgery") if run["kind"] == "surgery" else None
    return cmd + (f"   # then: beta-core surgery on it ({surgery})" if surgery else "")


def _expand(store: Store, ids: list[str]) -> tuple[list[dict], list[dict]]:
    """(the runs asked for with sweep members and surgeries, the sweeps among them)."""
    runs, sweeps, seen = [], [], set()

    def add(r):
        if r["id"] not in seen:
            seen.add(r["id"])
            runs.append(r)
    for rid in ids:
        run = store.get_run(rid)
        if run["kind"] == "sweep":
            sweeps.append(run)
            for _, m in sweep_members(store, rid):
                add(m)
        else:
            add(run)
    for r in list(runs):
        for s in store.runs(kind="surgery", parent=r["id"]):
            add(s)
    return runs, sweeps


def report_figures(store: Store, ids: list[str]) -> dict[str, go.Figure]:
    """Every figure of the report by a file-safe name (the same figures as its HTML)."""
    runs, sweeps = _expand(store, ids)
    out: dict[str, go.Figure] = {}
    # A sweep is drawn as its mean curves (below) and, in the run panels, one test run per method
    # (its first seed): 33 lines were a tangle
    tests = {s["id"]: [(c, r) for c, r in sweep_members(store, s["id"]) if c.stage == "test"] for s in sweeps}
    trained = [r for r in runs if r["kind"] in TRAINED_KINDS and r["parent"] not in tests]
    for test in tests.values():
        first: dict[str, dict] = {}
        for c, r in sorted(test, key=lambda cr: cr[0].seed):
            first.setdefault(c.method, r)
        trained += list(first.values())
    trained = trained[:MAX_RUNS_PLOTTED]
    if trained:
        tids = [r["id"] for r in trained]
        names, colors = {r["id"]: run_name(r) for r in trained}, run_colors(tids)
        steps, epochs = store.steps(*tids), store.epochs(*tids)
        frames = {i: steps[steps["run_id"] == i] for i in tids}
        eframes = {i: epochs[epochs["run_id"] == i].assign(epoch=lambda d: d["epoch"] + 1) for i in tids}
        out["schedule"] = panel_figure([
            {"frames": frames, "x": "step", "y": "lr", "title": "Learning rate"},
            {"frames": frames, "x": "step", "y": "momentum", "title": "Momentum μ"},
            {"frames": frames, "x": "step", "y": "zeta", "title": "Damping ratio ζ (assuming λ = 1)", "log_y": True,
             "bands": True}], names, colors)
        out["performance"] = panel_figure([
            {"frames": frames, "x": "step", "y": "loss", "title": "Training loss", "window": 10},
            {"frames": eframes, "x": "step", "y": "test_acc", "title": "Test accuracy (epoch ends)",
             "mode": "lines+markers"}], names, colors)
    for s in sweeps:
        test = tests[s["id"]]
        if test:
            arm = {r["id"]: c.method for c, r in test}
            curves = mean_curves(store.epochs(*arm), arm, "test_acc")
            out[f"mean-curves-{s['id']}"] = mean_curve_figure(curves, "step", f"Sweep {s['id']}: test accuracy, "
                                                                             "mean over test seeds (95% bands)",
                                                              percent=True)
    for r in runs:
        res = store.results(r["id"], "attribution")
        if res:
            a = res[-1]
            key = "by_true_class" if "by_true_class" in a else next((k for k in a if k.startswith("by_")), None)
            if key and isinstance(a[key], list):
                out[f"attribution-{r['id']}"] = heatmap(a[key], a["groups"], a["classes"],
                                                        f"{run_name(r)}: attribution, group × true class")
    return out


def _table(rows) -> str:
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    return df.to_html(index=False, border=0, classes="t", na_rep="—", float_format=lambda v: f"{v:.4g}")


def _md(text: str) -> str:
    """The library's outcome sentences (Markdown: **bold**, `code`) as HTML, escaped first.

    >>> _md("It **helped** (`a<b`)")
    'It <b>helped</b> (<code>a&lt;b</code>)'
    """
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text, quote=False))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _outcome(runs: list[dict], sweep_reports: dict[str, dict]) -> str:
    lines = [_md(reports.verdict_summary(rep)) for rep in sweep_reports.values()]
    for rep in sweep_reports.values():
        for c in rep["claims"]:
            lines.append(f"{c['claim']}: <b>{html.escape(c.get('verdict_holm') or c['verdict'])}</b> "
                         f"({html.escape(reports.claim_figure(rep, c))}, n = {c['n']})")
    trained = [r for r in runs if r["kind"] in TRAINED_KINDS and r["summary"].get("final_test_acc") is not None]
    if trained and not sweep_reports:
        best = max(trained, key=lambda r: r["summary"]["final_test_acc"])
        lines.append(f"{counted(len(trained), 'training run')}; the highest final test accuracy is "
                     f"{best['summary']['final_test_acc']:.2%} ({html.escape(run_name(best))}). One run per method "
                     "is not a comparison: a sweep or `beta-core verdict` says what the difference is worth.")
    for r in runs:
        if r["kind"] == "surgery" and r["status"] == "done":
            lines.append(_md(reports.surgery_outcome(r["summary"])))
    return "".join(f"<li>{line}</li>" for line in lines) or "<li>No finished runs.</li>"


def build_report(store: Store, ids: list[str], title: str | None = None) -> str:
    """The report of ``ids`` (runs or sweeps) as one HTML document."""
    runs, sweeps = _expand(store, ids)
    sweep_reports = {s["id"]: store.results(s["id"], "sweep")[-1] for s in sweeps if store.results(s["id"], "sweep")}
    figs = report_figures(store, ids)
    parts = [f"<h1>{html.escape(title or 'Beta-scheduling report')}</h1>",
             f"<p class=m>Runs {html.escape(', '.join(ids))}; written {datetime.datetime.now():%Y-%m-%d %H:%M} from "
             f"the store {html.escape(str(store.dir))}.</p>",
             "<h2>Outcome</h2><ul>" + _outcome(runs, sweep_reports) + "</ul>"]
    parts.append("<h2>Setting</h2>")
    for sid, rep in sweep_reports.items():
        parts.append(f"<p>Sweep {sid}: {html.escape(reports.sweep_setting(rep))}.</p>")
    table = reports.run_table(store, runs)
    cols = [c for c in ("id", "name", "status", "kind", "method", "model", "data", "lr", "momentum_rule", "seed",
                        "epochs", "final_test_acc", "best_test_acc", "time to accuracy", "wall_seconds", "tags", "note")
            if c in table and (c not in ("name", "tags", "note") or table[c].fillna("").astype(bool).any())]
    parts.append(_table(table[cols]))
    parts.append("<p class=m>wall_seconds: wall clock on the machine that ran each run (evaluation included); runs "
                 "that shared a machine slow each other, so compare steps, not seconds, across runs.</p>")
    if figs:
        parts.append("<h2>Figures</h2><p class=m>Against optimizer steps; ζ assumes curvature λ = 1 (the paper's); "
                     "the paper's beta line is drawn last, others dashed beneath it.</p>")
        for name, fig in figs.items():
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                                     config={"displaylogo": False}))
    for sid, rep in sweep_reports.items():
        parts.append(f"<h2>Verdicts of sweep {sid}</h2>")
        if rep.get("note"):
            parts.append(f"<p><b>Note:</b> {html.escape(rep['note'])}</p>")
        parts.append(_table(reports.verdict_rows(rep)) + _table(reports.method_rows(rep)))
        parts.append(f"<p class=m>Statistics: {html.escape(json.dumps(rep['statistics']))}</p>")
    for r in runs:
        if r["kind"] == "surgery" and r["status"] == "done":
            parts.append(f"<h2>Surgery {r['id']}</h2>" + _table(reports.surgery_rows(r["summary"])))
        res = store.results(r["id"], "attribution")
        if res:
            parts.append(f"<h2>Attribution of {html.escape(run_name(r))}</h2>"
                         + _table(reports.attribution_rows(res[-1])))
    envs = {json.dumps(r["summary"].get("environment"), sort_keys=True): r["id"] for r in runs
            if r["summary"].get("environment")}
    parts.append("<h2>Environment</h2>")
    parts.append(_table([{**json.loads(e), "e.g. run": rid} for e, rid in envs.items()]) if envs else
                 "<p>Not recorded (runs made before environments were recorded).</p>")
    parts.append("<h2>Reproduce</h2><pre>" + html.escape("\n".join(
        f"{r['id']}:  {reproduce_command(r)}" for r in [*sweeps, *[r for r in runs if r["kind"] != "train"
                                                                    or not r.get("parent")]])) + "</pre>")
    style = ("body{font-family:sans-serif;max-width:1150px;margin:24px auto;color:#222}table.t{border-collapse:"
             "collapse;font-size:13px;margin:8px 0}table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd;"
             "text-align:left}.m{color:#666;font-size:13px}pre{white-space:pre-wrap;font-size:12px}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(title or "Beta-scheduling report")
            + f"</title><style>{style}</style><script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script>"
            + "</head><body>" + "\n".join(parts) + "</body></html>")
