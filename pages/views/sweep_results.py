"""Compare, what a sweep found: the verdicts in words and tables, the LR sensitivity of stage
1, the mean curves and the per-seed values; and the same statistics over any finished runs."""
import json

import pandas as pd
import streamlit as st

from beta_core import reports
from beta_core.figures import lr_sensitivity_figure, mean_curve_figure, seeds_needed_figure
from beta_core.records import TRAINED_KINDS
from beta_core.store import is_run_id
from beta_core.sweeps import mean_curves, seeds_plan
from beta_core.verdicts import analyse_runs, run_arms
from pages.views.common import launch_errors, plain, recent_runs, report_button, run_name, term


def lr_sensitivity(choice: dict, color: dict) -> None:
    st.subheader("LR sensitivity (stage 1, validation)", help=term("tuning", "edge_of_grid"))
    st.plotly_chart(lr_sensitivity_figure(choice, color), width="stretch", key="lr-sensitivity")
    ns = sorted({p["n"] for c in choice.values() for p in c["curve"] if p.get("n")})
    if ns:  # the bars are over tuning seeds only: few, so wide (the walk read them as noise)
        n = ns[0] if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
        st.caption(f"Each point: mean validation accuracy over n = {n} tuning seeds, with its 95% t interval, cut at "
                   "0 and 100%" + (": with 2 seeds an interval is wide, and LRs whose bars overlap are not told "
                                   "apart" if ns[0] <= 3 else "") + ".")
    seen: dict[tuple, list] = {}
    for m, c in choice.items():
        if key := tuple(p["mean"] for p in c["curve"] if p["mean"] is not None):
            seen.setdefault(key, []).append(m)
    for same in (ms for ms in seen.values() if len(ms) > 1):
        st.caption(f"{' and '.join(sorted(same))} coincide at every LR here (the lines lie on each other; "
                   "hybrid is beta until its switch late in training).")
    edges = [f"{m} ({', '.join(c['edge'])})" for m, c in choice.items() if c["edge"]]
    if edges:
        st.warning("Chosen at the edge of the grid — widen the grid: " + plain(", ".join(edges)))


def curves(store, test: list, color: dict) -> None:
    st.subheader("Mean curves over test seeds (95% bands)", help=term("interval"))
    arm = {r["id"]: c.method for c, r in test}
    epochs = store.epochs(*arm)
    x_axis = st.radio("x-axis", ["step", "time"], horizontal=True, key="curve-x", help=term("step", "wall_clock"),
                      format_func=lambda v: {"time": "wall-clock s"}.get(v, v))
    for col, metric, title in zip(st.columns(2), ("test_acc", "val_acc"), ("Test accuracy", "Validation accuracy")):
        fig = mean_curve_figure(mean_curves(epochs, arm, metric), x_axis, title, color, percent=True)
        col.plotly_chart(fig, width="stretch", key=f"curve-{metric}")


def seeds_curve(sid: str, rep: dict) -> None:
    """This sweep as a pilot: the accuracy difference n seeds per method could detect."""
    try:
        p = seeds_plan(rep, 0.01)
    except ValueError:
        return
    st.plotly_chart(seeds_needed_figure(p), width="stretch", key=f"seeds-curve-{sid}")
    st.caption(f"From this paired spread ({100 * p['sd']:.2f} pts, {p['method']} vs the baseline). A 1-point "
               f"difference needs {p['needed'] or 'more than 1000'} seeds per method."
               + (f" CLI: `beta-core sweep --plan-n 0.01 --pilot {sid}`." if is_run_id(sid) else ""))


def verdicts(sid: str, rep: dict) -> None:
    st.subheader("Verdicts", help=term("verdict", "interval", "mde", "holm", "censored", "speedup"))
    st.markdown(reports.verdict_summary(rep))  # the outcome in words, then its setting and the tables
    st.caption(plain(f"Setting: {reports.sweep_setting(rep)}."))
    if rep["setting"].get("synthetic"):
        st.warning("Trained on SYNTHETIC data: these verdicts say nothing about CIFAR-10.")
    if rep.get("note"):
        st.info(plain(rep["note"]))
    table = pd.DataFrame(reports.verdict_rows(rep))
    st.table(table.set_index("claim"))  # a table wraps its text: the verdict and paper columns are read whole
    st.dataframe(pd.DataFrame(reports.method_rows(rep)), hide_index=True, width="stretch", placeholder="—")
    seeds_curve(sid, rep)
    a, b = st.columns(2)
    a.download_button("Verdicts (CSV)", table.to_csv(index=False), f"{sid}-verdicts.csv", "text/csv")
    b.download_button("Report (JSON)", json.dumps(rep, indent=2, default=str), f"{sid}.json", "application/json")
    report_button(rep.get("runs_shown") or [sid], f"report-{sid}")


def any_runs_verdict(store) -> None:
    """The sweep's statistics over any finished runs (engine or logged from your own loop):
    arms by a field, paired by seed, against a baseline arm."""
    st.subheader("Verdict over any runs")
    st.caption("Finished training runs and runs logged from your own loop (`beta_core.track`), grouped into arms "
               "and paired by seed, with the statistics of a sweep. CLI: `beta-core verdict`.")
    runs = recent_runs(store, "any-runs", TRAINED_KINDS, ("done", "diverged"))
    if len(runs) < 2:
        st.info("At least two finished runs are needed: launch some on Train, or log your own loop.")
        return
    by_id = {r["id"]: r for r in runs}
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect("Runs", list(by_id), format_func=lambda i: run_name(by_id[i]), key="any-runs",
                            help="newest first; each arm needs one run per seed")
    group_by = c2.selectbox("Arms by", ["method", "model", "lr", "momentum_rule", "optimizer"], key="any-group")
    picked = [by_id[i] for i in chosen]
    if not picked:
        return
    with launch_errors():
        arms = run_arms(list(reversed(picked)), group_by)
        c3, c4 = st.columns(2)
        names = list(arms)
        baseline = c3.selectbox("Baseline arm", names, key="any-baseline",  # the paper's baseline when present
                                index=names.index("sgd-constant") if "sgd-constant" in names else 0)
        targets_text = c4.text_input("Target test accuracies (empty: fitted to the baseline's validation accuracy)",
                                     key="any-targets")
        targets = [float(v) for v in targets_text.split(",") if v.strip()] or None
        epochs = store.epoch_records(*[r["id"] for a in arms.values() for r in a.values()])
        rep = analyse_runs(arms, epochs, baseline, targets)
        verdicts(f"verdict-{'-'.join(sorted(chosen))[:40]}", {**rep, "runs_shown": chosen})
