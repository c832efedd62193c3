"""Train & compare, the live view: status, charts and time to accuracy of the runs shown,
refreshed while any of them trains. Every input comes in as an argument (``View``)."""
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import streamlit as st

from beta_core.formats import format_hit, format_seconds, format_target
from beta_core.records import ACTIVE
from beta_core.reports import timing_note
from beta_core.sweeps import mean_curves
from beta_core.timeleft import queue_times
from pages.views.common import (
    get_manager,
    get_store,
    mean_curve_figure,
    panel_figure,
    plain,
    run_colors,
    run_name,
    term,
)
from pages.views.progress import progress_line


class View(NamedTuple):
    """How the runs are drawn: the reader's choices above the charts."""

    x_axis: str    # step | epoch | time
    window: int    # smoothing of step curves, in steps
    log_y: bool    # loss on a log axis
    poll: float    # seconds between refreshes while a run is active


def status_lines(store, runs: dict, names: dict, counts: dict) -> None:
    """One status box per run: active ones with phase, rate and time left; the rest only when
    they did not finish or trained on synthetic data. First, when all of them will be done."""
    if any(r["status"] in ACTIVE for r in runs.values()):
        mine = [e for i, (_, e) in queue_times(store, get_manager().active(), get_manager().max_parallel).items()
                if i in runs]
        st.caption(f"These runs: all done in about {format_seconds(max(mine))} (measured on this machine)."
                   if mine and None not in mine else "These runs: time left is known once each has measured its rate "
                   "or a run of its kind and model has finished here.")
    for i, r in runs.items():
        if r["status"] in ACTIVE:
            total = r["summary"].get("total_steps")  # known once the worker has loaded the data
            a, b = st.columns([5, 1])
            if r["kind"] == "external":  # its loop is the user's: we show it, we cannot stop it
                a.info(f"{names[i]}: logging from {Path(r['config'].get('script', '?')).name} on "
                       f"{r['config'].get('host', '?')}, {counts[i]} steps so far")
                continue
            p = r["summary"].get("progress") or {}
            if p.get("unit") == "images" and p.get("total"):  # its data decoding: that bar, then training's
                counts_i, total = p.get("done", 0), p["total"]
            else:
                counts_i = counts[i]
            a.progress(min(1.0, counts_i / total) if total else 0.0,
                       text=plain(f"{names[i]}: {progress_line(store, r, counts[i])}"))
            if b.button("Cancel", key=f"cancel-{i}"):
                get_manager().cancel(i)
        elif r["status"] not in ("done",):
            st.warning(f"{names[i]}: {r['status']}" + (f" — {plain(r['error'])}" if r["error"] else ""))
        elif r["summary"].get("synthetic"):
            st.caption(f"{names[i]}: trained on **synthetic** data")


def step_frames(store, runs: dict) -> dict[str, pd.DataFrame]:
    """Each run's step records, read incrementally: a refresh reads only the steps recorded
    since the last one (``since=``), and a finished run's records are kept as they are."""
    old = st.session_state.get("step-cache", {})
    cache = st.session_state["step-cache"] = {i: old[i] for i in runs if i in old}  # only the runs shown
    out = {}
    for i, r in runs.items():
        have = cache.get(i)
        if have is None or len(have) == 0:
            have = store.steps(i)
        elif r["status"] in ACTIVE or not have.attrs.get("final"):
            new = store.steps(i, since=int(have["step"].iloc[-1]) + 1)
            have = pd.concat([have, new], ignore_index=True) if len(new) else have
        have.attrs["final"] = r["status"] not in ACTIVE  # finished runs never change
        cache[i] = out[i] = have
    return out


def charts(store, runs: dict, names: dict, colors: dict, seconds: str, view: View) -> None:
    ids = list(runs)
    frames, epochs = step_frames(store, runs), store.epochs(*ids)
    eframes = {i: epochs[epochs["run_id"] == i].assign(epoch=lambda d: d["epoch"] + 1) for i in ids}
    x_axis = view.x_axis
    x = "epoch" if x_axis == "epoch" else x_axis
    sx = "step" if x_axis == "epoch" else x_axis  # step records have fractional epochs only via step
    if x_axis == "time":
        st.caption(f"Time axis: {seconds}.")
    sched = [{"frames": frames, "x": sx, "y": "lr", "title": "Learning rate"},
             {"frames": frames, "x": sx, "y": "momentum", "title": "Momentum μ"},
             {"frames": frames, "x": sx, "y": "zeta", "title": "Damping ratio ζ (assuming λ = 1)", "log_y": True,
              "bands": True}]
    perf = [{"frames": frames, "x": sx, "y": "loss", "title": "Training loss", "log_y": view.log_y,
             "window": view.window},
            {"frames": frames, "x": sx, "y": "acc", "title": "Training accuracy (batch)", "window": view.window,
             "percent": True},
            {"frames": eframes, "x": x, "y": "test_acc", "title": "Test accuracy", "mode": "lines+markers",
             "percent": True, "after": {i: (f["test_acc_after"], f"after the planted fault in {f['group']}")
                                        for i, r in runs.items() if (f := (r["summary"] or {}).get("planted_fault"))}}]
    if x_axis == "time":
        for p in sched + perf:
            p["x_title"] = "wall-clock s on this machine"
    st.plotly_chart(panel_figure(sched, names, colors), width="stretch", key="live-schedule")
    st.plotly_chart(panel_figure(perf, names, colors), width="stretch", key="live-performance")
    mean_by_method(runs, epochs, x_axis)
    curv = {i: f.assign(**{k: [e.get(k) for e in f["extra"]] for k in ("lam_max", "stability_margin", "zeta_measured")})
            for i, f in eframes.items() if len(f) and any(e.get("lam_max") for e in f["extra"])}
    if curv:
        fig = panel_figure([{"frames": curv, "x": "epoch", "y": "lam_max", "title": "Sharpness λ_max (measured)",
                             "log_y": True, "mode": "lines+markers"},
                            {"frames": curv, "x": "epoch", "y": "stability_margin",
                             "title": "lr·λ_max / 2(1+μ): diverges above 1", "mode": "lines+markers"},
                            {"frames": curv, "x": "epoch", "y": "zeta_measured", "title": "ζ under measured λ",
                             "log_y": True, "bands": True, "mode": "lines+markers"}], names, colors)
        fig.add_hline(y=1.0, line_dash="dash", line_color="#d62728", row=1, col=2)
        st.plotly_chart(fig, width="stretch", key="live-curvature")
        st.caption("Curvature measured each epoch on a fixed batch of training images (BatchNorm in eval mode). "
                   "Adam: the preconditioned sharpness; its margin uses (2+2β₁)/((1−β₁)·lr); no ζ.")


def mean_by_method(runs: dict, epochs: pd.DataFrame, x_axis: str) -> None:
    """With several seeds of a method shown: its mean test accuracy per epoch and 95% band."""
    method = {i: r["method"] for i, r in runs.items() if r["status"] == "done"}
    if max(pd.Series(list(method.values())).value_counts(), default=0) < 2:
        return
    if st.checkbox("Mean per method over seeds (95% band)", key="tr_mean", bind="query-params",
                   help=term("interval")):
        curves = mean_curves(epochs, method).assign(epoch=lambda d: d["epoch"] + 1)
        x = {"epoch": "epoch", "time": "time"}.get(x_axis, "step")
        fig = mean_curve_figure(curves, x, "Test accuracy: mean per method over seeds, 95% band")
        st.plotly_chart(fig, width="stretch", key="live-mean")


REGIME = {"underdamped": "under", "critical": "crit", "overdamped": "over"}  # short, whole words in a cell


def time_to_accuracy(runs: dict, names: dict, seconds: str) -> None:
    st.subheader("Time to accuracy", help=term("time_to_acc", "step", "wall_clock"))
    with_seconds = st.checkbox("Also show wall-clock seconds", key="tr_secs", bind="query-params",
                               help=term("wall_clock"))
    rows = []
    for i, r in runs.items():
        s = r["summary"]
        acc = s.get("final_test_acc")
        row = {"run": names[i], "lr": f"{r['config'].get('lr', 0):g}", "status": r["status"],
               "final test acc": "-" if acc is None else f"{acc:.1%}",
               "regime per epoch (λ = 1)": " ".join("n/a" if x and x.startswith("n/a") else REGIME.get(x, x or "-")
                                                    for x in s.get("regimes", []))}
        for t, v in (s.get("time_to_accuracy") or {}).items():
            row[f"≥{format_target(t)}"] = format_hit(v)
            if with_seconds:  # its own column: a long cell would be cut
                row[f"≥{format_target(t)} wall-clock s"] = "—" if v is None else f"{v['time']:.1f}"
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", placeholder="—", column_config={
        "regime per epoch (λ = 1)": st.column_config.TextColumn(help="under: underdamped, crit: critical, over: "
                                                                     "overdamped.\n\n" + term("regime"))})
    st.caption("Steps first: a step costs the same for every SGD method. "
               + (f"Seconds: {seconds}." if with_seconds else "Tick the box for seconds."))


def live(ids: list[str], view: View) -> None:
    """The shown runs, refreshed every ``view.poll`` seconds while any of them is active."""
    any_active = any(get_store().get_run(i)["status"] in ACTIVE for i in ids)

    @st.fragment(run_every=view.poll if any_active else None)
    def refresh() -> None:
        store = get_store()
        runs = {i: store.get_run(i) for i in ids}
        names = {i: run_name(r) for i, r in runs.items()}
        times = store.step_times(*ids)
        status_lines(store, runs, names, {i: n for i, (n, _) in times.items()})
        seconds = timing_note(list(runs.values()), {i: t for i, (_, t) in times.items()})
        charts(store, runs, names, run_colors(ids), seconds, view)
        time_to_accuracy(runs, names, seconds)
        if any_active and all(r["status"] not in ACTIVE for r in runs.values()):
            st.rerun()  # everything finished: a full rerun stops the polling

    refresh()
