"""Runs: everything in the store; overlay, delete, export."""
import io
import zipfile

import streamlit as st

from beta_core.store import ACTIVE, StoreError
from pages.views.common import get_manager, metric_figure, run_colors, run_name

st.title("Runs")
try:
    store = get_manager().store
    df = store.list_runs()
except (StoreError, OSError) as e:
    st.error(f"Run store unavailable: {e}")
    st.stop()
if df.empty:
    st.info("No runs yet.")
    st.stop()
tta = {}
for r in store.runs():
    t = r["summary"].get("time_to_accuracy") or {}
    tta[r["id"]] = ", ".join(f"{k}: " + ("—" if v is None else f"ep {v['epoch'] + 1}") for k, v in t.items())
df["time to accuracy"] = df["id"].map(tta)
show = ["id", "status", "kind", "method", "model", "data", "seed", "best_test_acc", "time to accuracy",
        "train_seconds", "parent", "error"]
st.dataframe(df[show], hide_index=True, width="stretch")
ids = st.multiselect("Select runs", df["id"].tolist(), format_func=lambda i: f"{i} ({df.set_index('id').loc[i, 'method']})")
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
        z.writestr("runs.csv", df[df["id"].isin(ids)].to_csv(index=False))
        z.writestr("steps.csv", steps.to_csv(index=False))
        z.writestr("epochs.csv", epochs.to_csv(index=False))
        z.writestr("loss.html", f1.to_html(include_plotlyjs="cdn"))
        z.writestr("test_acc.html", f2.to_html(include_plotlyjs="cdn"))
    st.download_button("Export CSV and figures (zip)", buf.getvalue(), "runs-export.zip", "application/zip")
    c1, c2 = st.columns(2)
    active = [i for i in ids if runs[i]["status"] in ACTIVE]
    if c1.button("Delete selected", type="secondary"):
        if active:
            st.error(f"Refused: {len(active)} selected run(s) are still {runs[active[0]]['status']}; cancel them first.")
        else:
            for i in ids:
                store.delete(i)
            st.rerun()
    if active and c2.button("Cancel active"):
        for i in active:
            get_manager().cancel(i)
        st.rerun()
