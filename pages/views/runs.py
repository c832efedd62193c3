"""Runs: everything in the store; overlay, delete, export."""
import io
import zipfile

import streamlit as st

from beta_core import reports
from beta_core.records import ACTIVE
from pages.views.common import get_manager, get_store, metric_figure, run_colors, run_name

st.title("Runs")
store = get_store()
df = reports.run_table(store)
if df.empty:
    st.info("No runs yet.")
    st.stop()
show = ["id", "status", "kind", "method", "model", "data", "lr", "momentum_rule", "seed", "best_test_acc",
        "time to accuracy", "wall_seconds", "parent", "error"]
st.dataframe(df[show], hide_index=True, width="stretch")
method_of = dict(zip(df["id"], df["method"]))
ids = st.multiselect("Select runs", df["id"].tolist(), format_func=lambda i: f"{i} ({method_of[i]})")
if ids:
    runs = {i: store.get_run(i) for i in ids}
    names, colors = {i: run_name(r) for i, r in runs.items()}, run_colors(ids)
    steps, epochs = store.steps(*ids), store.epochs(*ids)
    f1 = metric_figure({i: steps[steps["run_id"] == i] for i in ids}, names, colors, "step", "loss",
                       "Training loss", window=10)
    f2 = metric_figure({i: epochs[epochs["run_id"] == i] for i in ids}, names, colors, "epoch", "test_acc",
                       "Test accuracy", mode="lines+markers")
    a, b = st.columns(2)
    a.plotly_chart(f1, width="stretch")
    b.plotly_chart(f2, width="stretch")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in reports.export_tables(store, ids).items():
            z.writestr(name, text)
        z.writestr("loss.html", f1.to_html(include_plotlyjs="cdn"))
        z.writestr("test_acc.html", f2.to_html(include_plotlyjs="cdn"))
    st.download_button("Export CSV and figures (zip)", buf.getvalue(), "runs-export.zip", "application/zip")
    c1, c2 = st.columns(2)
    active = [i for i in ids if runs[i]["status"] in ACTIVE]
    if c1.button("Delete selected", type="secondary"):
        if active:
            st.error(f"Refused: {len(active)} selected run(s) are still {runs[active[0]]['status']}; "
                     "cancel them first.")
        else:
            for i in ids:
                if i in {r["id"] for r in store.runs()}:  # a sweep took its members with it
                    store.delete(i)
            st.rerun()
    if active and c2.button("Cancel active"):
        for i in active:
            get_manager().cancel(i)
        st.rerun()
