"""The Runs page's charts: groups with intervals, metric curves, which setting mattered. Each
function takes what it shows as arguments and places figures built by ``beta_core.figures``;
every chart has its data as CSV under it."""
import pandas as pd
import streamlit as st

from beta_core import explorer
from beta_core.figures import mean_curve_figure, metric_figure, parcoords_figure, run_colors, scatter_figure
from beta_core.glossary import term
from beta_core.records import EPOCH_FIELDS

CURVES = {"loss": ("step", "Training loss"), "test_acc": ("epoch", "Test accuracy (%)"),
          "val_acc": ("epoch", "Validation accuracy (%)"), "train_acc": ("epoch", "Train accuracy (%)"),
          "momentum": ("step", "Momentum μ"), "zeta": ("step", "Damping ratio ζ (λ = 1)"),
          "eff_lr": ("step", "Effective LR, lr / (1 - μ)"), "lr": ("step", "Learning rate"),
          # the machine while each run trained (sampled every 10 s): a slow run or a busy machine?
          "cpu_machine": ("time", "Machine CPU (% of one core)"),
          "cpu_process": ("time", "The run's CPU (% of one core)"),
          "rss_mb": ("time", "The run's memory (MB)"), "gpu_mem_mb": ("time", "GPU memory (MB)")}
MAX_CURVE_RUNS = 200  # runs a curve chart reads (records are per step)
MAX_SETTING_RUNS = 5000  # runs the parallel-coordinates and scatter charts read (summaries only)


def csv_button(df: pd.DataFrame, name: str, key: str) -> None:
    st.download_button(f"Data as CSV ({len(df):,} rows)", df.to_csv(index=False).encode(), f"{name}.csv", "text/csv",
                       key=key, type="tertiary")


def _percent(df: pd.DataFrame, metric: str, cols) -> pd.DataFrame:
    return df.assign(**{c: df[c] * 100 for c in cols}) if metric.endswith("acc") else df


def group_table(store, flt: str, kinds, known: list[str], by: str, metric: str) -> None:
    """Per group over every run the filter keeps: n, mean and its 95% interval."""
    stats = explorer.group_stats(store, flt, by, metric, kinds, known)
    without = stats[stats["n"] == 0][by].tolist()  # sweeps, localisations: no such metric to average
    stats = stats[stats["n"] > 0]
    if without:
        st.caption(f"Left out, no {explorer.label(metric)}: {', '.join(map(str, without))}.")
    if stats.empty:
        return
    shown = _percent(stats, metric, ("mean", "ci_low", "ci_high"))
    unit = "%" if metric.endswith("acc") else ""
    best = shown.dropna(subset=["mean"]).sort_values("mean", ascending=metric.startswith("steps_to"))
    if len(best):
        b = best.iloc[0]
        num = (lambda v: f"{v:.1f}%") if unit else (lambda v: f"{v:.3g}")
        ci = "" if pd.isna(b["ci_low"]) else f" [{num(b['ci_low'])}, {num(b['ci_high'])}]"
        st.markdown(f"By **{by}**: **{b[by]}** has the {'lowest' if metric.startswith('steps_to') else 'highest'} "
                    f"mean {explorer.label(metric)}, {num(b['mean'])}{ci} over {b['n']} runs (95% t interval"
                    + ("; accuracy intervals cut at 0 and 100%" if shown["clipped"].any() else "") + ")"
                    + (f", runs that differ in {b['pools']}" if b["pools"] else "") + ".")
    pooled = sorted({f for v in shown["pools"] for f in v.split(", ") if f})
    if pooled:  # runs of different settings in one group: its interval is not a spread over seeds
        st.warning(f"These groups pool runs that differ in **{', '.join(pooled)}** (column \"pools\"): a group's "
                   "interval spans those settings, not only seeds. Filter or group by them to compare like with like.")
    fmt = "%.1f%%" if unit else "%.1f"  # the table's printf has no %g
    st.dataframe(shown, hide_index=True, width="stretch", placeholder="—", column_config={
        "mean": st.column_config.NumberColumn("mean", format=fmt),
        "ci_low": st.column_config.NumberColumn("95% CI low", format=fmt),
        "ci_high": st.column_config.NumberColumn("95% CI high", format=fmt), "clipped": None,
        "n": st.column_config.NumberColumn("n (with the metric)", help=term("interval")),
        "pools": st.column_config.Column("pools (settings that differ)")})
    csv_button(stats, f"groups-by-{by}", "csv-groups")


def curve_chart(store, ids: list[str], names: dict, group_of: dict | None, metric: str, window: int, log_y: bool,
                key: str) -> None:
    """One metric over steps or epochs: a line per run, or per group its mean with a 95% band."""
    x, title = CURVES[metric]
    records = (explorer.system_records(store, ids) if x == "time" else
               store.epochs(*ids) if metric in EPOCH_FIELDS and x == "epoch" else store.step_series(ids, metric))
    if records.empty or records[metric].isna().all():
        st.caption(f"{title}: none of these runs logged it" + (" (the machine is sampled for runs trained here "
                                                                "since this version)" if x == "time" else "") + ".")
        return
    records = explorer.smoothed(records, metric, window)
    if x == "epoch":
        records = records.assign(epoch=records["epoch"] + 1)  # epochs count from 1 everywhere
    if group_of:
        data = explorer.group_curves(records, group_of, x, metric)
        fig = mean_curve_figure(data, x, f"{title}: mean per group, 95% band", markers=x == "epoch",
                                percent=metric.endswith("acc"), log_y=log_y)
    else:
        frames = {i: _percent(records[records["run_id"] == i], metric, (metric,)) for i in ids}
        fig = metric_figure(frames, names, run_colors(ids), x, metric, title, log_y=log_y)
        data = records[["run_id", x, metric]]
    st.plotly_chart(fig, width="stretch", key=f"chart-{key}")
    csv_button(data, f"{metric}-by-{x}", f"csv-{key}")


def setting_charts(store, flt: str, kinds, known: list[str], selected: list[str]) -> None:
    """Which setting mattered: config fields against a metric, and any field against a metric."""
    numeric = [f for f in known if f in explorer.METRICS or f.startswith("steps_to_")]
    a, b = st.columns([3, 1])
    default_dims = [f for f in ("method", "lr", "seed", "epochs", "batch_size", "model", "momentum_rule") if f in known]
    dims = a.multiselect("Fields", [f for f in known if f not in numeric], default=default_dims, key="pc-dims")
    metric = b.selectbox("Metric", numeric, index=numeric.index("final_test_acc") if "final_test_acc" in numeric
                         else 0, key="pc-metric", format_func=explorer.label)
    cols = list(dict.fromkeys([*dims, metric, "method"]))
    runs = explorer.query(store, flt, columns=cols, limit=MAX_SETTING_RUNS, kinds=kinds, known=known).frame
    if selected:
        runs = runs[runs["id"].isin(selected)]
    if runs[metric].notna().sum() < 2:
        st.caption("Fewer than two of these runs have that metric: nothing to compare.")
        return
    st.plotly_chart(parcoords_figure(runs, dims, metric, f"Which setting mattered for {explorer.label(metric)}"),
                    width="stretch", key="chart-parcoords")
    csv_button(runs, "settings", "csv-parcoords")
    c, d = st.columns([1, 3])
    x = c.selectbox("Scatter: field", [f for f in known if f != metric], key="sc-x",
                    index=[f for f in known if f != metric].index("lr") if "lr" in known else 0)
    runs = explorer.query(store, flt, columns=list(dict.fromkeys([x, metric, "method"])), limit=MAX_SETTING_RUNS,
                          kinds=kinds, known=known).frame
    if selected:
        runs = runs[runs["id"].isin(selected)]
    with d:
        st.plotly_chart(scatter_figure(runs, x, metric, f"{explorer.label(metric)} against {x}"), width="stretch",
                        key="chart-scatter")
        csv_button(runs[["id", x, metric, "method"]], f"{metric}-against-{x}", "csv-scatter")
