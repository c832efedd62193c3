"""Runs: find runs (filter, sort, columns), group them, see which setting moved a metric, keep
notes; then compare configs, report, export, bundle or delete them."""
import io
import json
import math
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import streamlit as st

from beta_core import bundles, explorer, reports
from beta_core.formats import counted, format_seconds
from beta_core.records import ACTIVE, TRAINED_KINDS
from beta_core.store import StoreError, is_run_id
from pages.views.common import demo_button, get_manager, get_store, plain, report_button, run_name, show_error, term
from pages.views.explore import CURVES, MAX_CURVE_RUNS, curve_chart, group_table, setting_charts
from pages.views.run_actions import annotate, config_diff, unpack_form

PAGE = 100  # rows of the table: filtered, sorted and paged in SQL, so 10,000 runs cost what 100 do
PCT = ("final_test_acc", "best_test_acc", "final_val_acc", "best_val_acc", "acc_after")


def explorer_table(store, known: list[str]) -> tuple[str | None, tuple | None, list[str]]:
    """Filter, columns, sort and page; the table with click-to-select rows. Returns the filter
    (None when it is not valid), the kinds and the ids of the rows picked on this page."""
    a, b = st.columns([4, 2])
    flt = a.text_input("Filter", key="rf", placeholder="lr > 0.05; method in sgd-beta,sgd-hybrid; tag = lecture",
                       help="FIELD OP VALUE, several joined by ; or and. OP: = != > >= < <= ~ (contains) in, "
                            "not in. Fields: any column below, config field or metric.")
    kinds = tuple(b.multiselect("Kind", [*TRAINED_KINDS, "surgery", "sweep", "attribution", "localise"], key="rk",
                                help=term("run", "job", "sweep"))) or None
    c, d, e, f = st.columns([4, 2, 1, 1])
    cols = c.multiselect("Columns", known, default=explorer.default_columns(known), key="rc",
                         format_func=explorer.label)
    sort = d.selectbox("Sort by", known, index=known.index("created"), key="rsort", format_func=explorer.label)
    desc = e.toggle("Descending", True, key="rdesc")
    try:
        total = explorer.query(store, flt, limit=0, kinds=kinds, known=known).total
        pages = max(1, math.ceil(total / PAGE))
        page = int(f.number_input("Page", min_value=1, max_value=pages, value=1, key="rp"))
        got = explorer.query(store, flt, sort, desc, cols, PAGE, (page - 1) * PAGE, kinds, known)
    except ValueError as err:
        st.error(plain(err))
        return None, kinds, []  # no filter: the charts below must not fall back to every run
    st.caption(f"{counted(total, 'run')} match" + (f"; page {page} of {pages}, {PAGE} per page" if pages > 1 else "")
               + f"; sorted by {explorer.label(sort)}, {'largest' if desc else 'smallest'} first (empty last). "
               "Click rows to select them.")
    df = got.frame.assign(**{c: pd.to_numeric(got.frame[c]) * 100 for c in PCT if c in got.frame})
    if "name" in df:  # unnamed runs by method and id: "sgd-beta-3f9a2c"
        df["name"] = df["name"].fillna(df["id"].str.split("-", n=2).str[-1])
    if "tags" in df:
        df["tags"] = df["tags"].map(lambda t: ", ".join(json.loads(t)) if isinstance(t, str) else "")
    if "created" in df:  # the age, as a tracker's table says it
        df["created"] = (pd.Timestamp.now() - df["created"]).map(lambda d: format_seconds(d.total_seconds()) + " ago")
    config = {c: st.column_config.NumberColumn(explorer.label(c), format="%.1f%%") for c in PCT}
    config |= {c: st.column_config.NumberColumn(explorer.label(c), format="%d") for c in df if c.startswith("steps_to")}
    if "lr" in df:  # six significant digits: 0.1, not the 0.10000000149 of a float32 log
        df["lr"] = pd.to_numeric(df["lr"], errors="coerce").map(lambda v: float(f"{v:.6g}"))
    config |= {"id": None, "created": "age",
               **{c: st.column_config.Column(width="small") for c in ("seed", "epochs", "status")}}
    event = st.dataframe(df, hide_index=True, width="stretch", placeholder="—", on_select="rerun",
                         selection_mode="multi-row", key="rt", column_config=config)
    return flt, kinds, [df["id"].iloc[i] for i in event.selection.rows if i < len(df)]


def selection(store, picked: list[str]) -> list[str]:
    """The selected runs, kept in the URL (?runs=a,b) so a link or a reload reopens them."""
    before = st.session_state.get("runs-picked", [])
    st.session_state["runs-picked"] = picked
    if picked or before:  # a click in the table decides (deselecting every row clears the link too)
        if picked:
            st.query_params["runs"] = ",".join(picked)
        else:
            st.query_params.pop("runs", None)
        return picked
    ids = [i for i in st.query_params.get("runs", "").split(",")[:50] if is_run_id(i)]
    return [r["id"] for r in store.runs_by_id(ids)]


st.title("Runs")
store = get_store()
if store.count_runs() == 0:
    st.info("No runs yet. Launch some on Train, unpack a bundle from another store, or load the demo runs.")
    demo_button("runs")
    unpack_form(store)
    st.stop()
known = explorer.fields(store)
# The outcome first: what the store holds and its best run, in words (two indexed queries).
best = explorer.query(store, "final_test_acc >= 0", "final_test_acc", columns=("name", "method", "final_test_acc"),
                      limit=1).frame
active = store.count_runs(status=ACTIVE)
st.markdown(f"**{counted(store.count_runs(), 'run')}** in this store" + (f", {active} active" if active else "")
            + ("" if best.empty else f"; the highest final test accuracy is **{best['final_test_acc'].iloc[0]:.1%}** "
               f"({best['method'].iloc[0]} · {best['id'].iloc[0][-6:]})") + ".")
flt, kinds, picked = explorer_table(store, known)
ids = selection(store, picked)
runs = {i: store.get_run(i) for i in ids}
if ids:
    st.markdown(f"**{counted(len(ids), 'run')} selected**: " + ", ".join(run_name(r) for r in runs.values()))
    annotate(store, ids, runs)
st.subheader("Compare " + ("the selected runs" if ids else f"the runs that match (the newest {MAX_CURVE_RUNS})"))
if flt is None and not ids:  # the table above said what is wrong with the filter
    st.info("Fix the filter above to compare the runs it keeps.")
    unpack_form(store)
    st.stop()
chart_ids = ids or explorer.query(store, flt, columns=(), limit=MAX_CURVE_RUNS, kinds=kinds,
                                  known=known).frame["id"].tolist()
g1, g2, g3, g4 = st.columns([2, 2, 2, 1])
MANY = 12  # lines a chart can show one by one; beyond, the runs are grouped by method unless asked otherwise
by = g1.selectbox("Group by", ["(none: one line per run)", *known], key="group-by", format_func=explorer.label,
                  index=1 + known.index("method") if len(chart_ids) > MANY else 0,
                  help=f"Beyond {MANY} runs the charts show each method's mean: choose (none) for a line per run")
by = None if by.startswith("(none") else by
metric = g2.selectbox("Group metric", [f for f in known if f in explorer.METRICS or f.startswith("steps_to_")],
                      key="group-metric", format_func=explorer.label)
window = g3.slider("Smoothing (records)", 1, 50, 1, key="smooth", help="a trailing mean over each run's records")
log_y = g4.toggle("Log y", key="log-y")
if by:
    group_table(store, flt, kinds, known, by, metric)
if chart_ids:
    group_of = None
    if by:
        vals = explorer.query(store, f"id in {','.join(chart_ids)}", columns=(by,), limit=len(chart_ids)).frame
        group_of = dict(zip(vals["id"], vals[by].astype(str)))
    names = {r["id"]: run_name(r) for r in store.runs_by_id(chart_ids)}
    for col, default, key in zip(st.columns(2), ("loss", "test_acc"), ("left", "right")):
        with col:
            m = st.selectbox("Metric", list(CURVES), index=list(CURVES).index(default), key=f"curve-{key}",
                             format_func=lambda k: CURVES[k][1])
            curve_chart(store, chart_ids, names, group_of, m, window, log_y, key)
# read on request: at 10,000 runs these charts read every summary the filter keeps
if st.toggle("Which setting mattered: parallel coordinates and a scatter of the runs that match", key="settings"):
    setting_charts(store, flt, kinds, known, ids)
if ids:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in reports.export_tables(store, ids).items():
            z.writestr(name, text)
    if len(ids) == 2:
        config_diff(runs[ids[0]], runs[ids[1]])
    d1, d2 = st.columns(2)
    d1.download_button("Export records and summaries (CSV, zip)", buf.getvalue(), "runs-export.zip",
                       "application/zip")
    with d1:
        report_button(ids, "report-runs")
    # Packing reads every checkpoint: only on request, not on each rerun of the page.
    if d2.button("Pack a bundle for another store", help="config, records, results, checkpoints; a sweep brings "
                 "its members"):
        with tempfile.TemporaryDirectory() as d:
            try:
                info = bundles.pack(store, ids, Path(d) / "bundle.zip")
                st.session_state["bundle"] = (tuple(ids), (Path(d) / "bundle.zip").read_bytes(), info)
            except (StoreError, bundles.BundleError) as e:
                show_error(e, "Cannot pack: ")
    packed = st.session_state.get("bundle")
    if packed and packed[0] == tuple(ids):
        d2.download_button(f"Download the bundle ({counted(packed[2]['runs'], 'run')}, "
                           f"{packed[2]['bytes'] / 1e6:.1f} MB)",
                           packed[1], "runs-bundle.zip", "application/zip",
                           help=plain("Unpack with `beta-core runs unpack FILE` or on another app's Runs page"))
    c1, c2 = st.columns(2)
    active = [i for i in ids if runs[i]["status"] in ACTIVE]
    if c1.button("Delete selected", type="secondary"):
        if active:
            st.error(f"Refused: {counted(len(active), 'selected run')} still {runs[active[0]]['status']}; "
                     "cancel them first.")
        else:
            st.session_state["confirm-delete"] = tuple(ids)
    if st.session_state.get("confirm-delete") == tuple(ids) and not active:
        members = sum(len(store.runs(parent=i)) for i in ids if runs[i]["kind"] == "sweep")
        st.warning(f"Delete {counted(len(ids), 'run')}"
                   + (f" and {counted(members, 'sweep member run')}" if members else "")
                   + " with their records and checkpoints? This cannot be undone (a bundle keeps a copy).")
        y, n = st.columns(2)
        if n.button("Keep them", key="delete-no"):
            st.session_state.pop("confirm-delete")
            st.rerun()
        if y.button("Yes, delete", type="primary", key="delete-yes"):
            st.session_state.pop("confirm-delete")
            for i in ids:
                try:
                    store.delete(i)
                except StoreError as e:
                    if "Unknown run" not in str(e):  # a sweep took its members with it: not an error
                        show_error(e, "Cannot delete: ")
            st.rerun()
    if active and c2.button("Cancel active"):
        for i in active:
            get_manager().cancel(i)
        st.rerun()
else:
    st.caption("Select runs (click rows) to tag, export, report or bundle them; two to see their configs side by side.")
unpack_form(store)
