"""Runs: everything in the store; overlay, compare configs, delete, export, move between stores."""
import io
import math
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import streamlit as st

from beta_core import bundles, reports
from beta_core.records import ACTIVE, STATUSES, TRAINED_KINDS, counted
from beta_core.store import StoreError
from pages.views.common import (
    demo_button,
    get_manager,
    get_store,
    metric_figure,
    plain,
    report_button,
    run_colors,
    run_name,
    show_error,
    term,
)


def config_diff(a: dict, b: dict) -> None:
    """Two runs' configs side by side, the differing fields first and highlighted."""
    rows = reports.config_diff(a["config"], b["config"])
    n = sum(r["differs"] for r in rows)
    st.markdown(f"**{n} config field{'s' if n != 1 else ''} differ** between {run_name(a)} and {run_name(b)}.")
    df = pd.DataFrame(sorted(rows, key=lambda r: not r["differs"])).rename(columns={"a": run_name(a),
                                                                                  "b": run_name(b)})
    styled = df.style.apply(lambda row: ["background-color: #fde2a7" if row["differs"] else ""] * len(row), axis=1)
    st.dataframe(styled, hide_index=True, width="stretch", column_config={"differs": None})


def unpack_form(store) -> None:
    """A bundle from another store (``beta-core runs pack``) into this one."""
    up = st.file_uploader("Unpack a bundle into this store (ids kept; a run already here is skipped)", type=["zip"])
    if up is not None and st.button("Unpack", key="unpack"):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "bundle.zip"
            path.write_bytes(up.getvalue())
            try:
                info = bundles.unpack(store, path, shown=up.name)
            except (bundles.BundleError, StoreError) as e:
                show_error(e)
                return
        st.success(f"{counted(len(info['added']), 'run')} added, {len(info['skipped']):,} already here.")


PAGE = 100  # rows of the table: filtered and paged in SQL, so 10,000 runs cost what 100 do


def table_page(store) -> pd.DataFrame:
    """One page of the run table, newest first, with its filters."""
    c1, c2, c3, c4 = st.columns([2, 2, 3, 1])
    kinds = c1.multiselect("Kind", [*TRAINED_KINDS, "surgery", "sweep", "attribution", "localise"], key="rk",
                           help=term("run", "job", "sweep"))
    statuses = c2.multiselect("Status", list(STATUSES), key="rs")
    search = c3.text_input("Search", placeholder="part of an id, method, model or label", key="rq") or None
    total = store.count_runs(tuple(kinds) or None, tuple(statuses) or None, search)
    pages = max(1, math.ceil(total / PAGE))
    page = int(c4.number_input("Page", min_value=1, max_value=pages, value=1, key="rp"))
    runs = store.runs(kind=tuple(kinds) or None, status=tuple(statuses) or None, search=search, limit=PAGE,
                      offset=(page - 1) * PAGE)
    st.caption(counted(total, "run")
               + (f"; page {page} of {pages}, {PAGE} per page, newest first" if pages > 1 else ""))
    return reports.run_table(store, runs)


st.title("Runs")
store = get_store()
if store.count_runs() == 0:
    st.info("No runs yet. Launch some on Train, unpack a bundle from another store, or load the demo runs.")
    demo_button("runs")
    unpack_form(store)
    st.stop()
df = table_page(store)
show = ["id", "status", "kind", "method", "model", "data", "lr", "momentum_rule", "seed", "best_test_acc",
        "time to accuracy", "wall_seconds", "parent", "error"]
NUM = st.column_config.NumberColumn
shown = df[show].assign(best_test_acc=df["best_test_acc"] * 100) if len(df) else pd.DataFrame(columns=show)
st.dataframe(shown, hide_index=True, width="stretch",  # accuracy in percent with one decimal, like every page
             column_config={"best_test_acc": NUM("best test acc", format="%.1f%%"),
                            "wall_seconds": NUM("wall-clock s", format="%.1f", help=term("wall_clock")),
                            "lr": NUM("lr", format="%g"), "momentum_rule": st.column_config.TextColumn(
                                "momentum rule", help=term("beta_rule", "hybrid")),
                            "time to accuracy": st.column_config.TextColumn(help=term("time_to_acc"))})
method_of = dict(zip(df["id"], df["method"]))
ids = st.multiselect("Select runs", df["id"].tolist(), format_func=lambda i: f"{i} ({method_of[i]})")
if ids:
    runs = {i: store.get_run(i) for i in ids}
    names, colors = {i: run_name(r) for i, r in runs.items()}, run_colors(ids)
    steps, epochs = store.steps(*ids), store.epochs(*ids)
    f1 = metric_figure({i: steps[steps["run_id"] == i] for i in ids}, names, colors, "step", "loss",
                       "Training loss", window=10)
    f2 = metric_figure({i: epochs[epochs["run_id"] == i].assign(epoch=lambda d: d["epoch"] + 1) for i in ids},
                       names, colors, "epoch", "test_acc", "Test accuracy", mode="lines+markers")  # epochs from 1
    a, b = st.columns(2)
    a.plotly_chart(f1, width="stretch")
    b.plotly_chart(f2, width="stretch")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in reports.export_tables(store, ids).items():
            z.writestr(name, text)
        # plotly.js inlined: the figures open offline (a lecture laptop without network)
        z.writestr("loss.html", f1.to_html(include_plotlyjs=True))
        z.writestr("test_acc.html", f2.to_html(include_plotlyjs=True))
    if len(ids) == 2:
        config_diff(runs[ids[0]], runs[ids[1]])
    d1, d2 = st.columns(2)
    d1.download_button("Export CSV and figures (zip)", buf.getvalue(), "runs-export.zip", "application/zip")
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
elif len(df) > 1:
    st.caption("Select two runs to see their configs side by side; select runs to export or bundle them.")
unpack_form(store)
