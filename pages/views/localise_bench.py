"""Attribution, how often a flag is right: the localisation benchmark of a model (planted faults,
each score's top-1 rate against a random ranking), launched and shown."""
import pandas as pd
import streamlit as st

from beta_core import reports
from beta_core.attribution import PAPER_SCORES
from beta_core.figures import heatmap, top1_figure
from beta_core.jobs.specs import localise_job
from beta_core.queries import latest_localisation
from beta_core.records import ACTIVE, train_config_of
from pages.views.common import get_manager, pick_run, show_error, term
from pages.views.progress import job_status


def benchmark(store, runs: list[dict]) -> None:
    st.subheader("How often is a flag right? The localisation benchmark", help=term("planted_fault"))
    st.caption("Damage one layer group on purpose (noise, zeroed or sign-flipped weights, re-initialisation, "
               "corrupted BatchNorm statistics), then ask each score which group is broken. Top-1: the damaged group "
               "ranked first; the dashed line is what a random ranking gets.")
    target = pick_run("Model to benchmark", runs, key="bench-run")
    if target is None:
        return
    bjobs = store.runs(kind="localise", parent=target["id"])
    active = [j["id"] for j in bjobs if j["status"] in ACTIVE]
    if active:
        job_status(tuple(active), "Benchmark")
    elif st.button("Run the benchmark (quick)", key="bench-go"):
        get_manager().submit(localise_job(target), kind="localise", parent=target["id"])
        st.rerun()
    if bjobs and bjobs[0]["status"] == "failed":
        show_error(bjobs[0]["error"] or "", "Last benchmark failed: ")
    bench = latest_localisation(store, train_config_of(target).get("model"), train_config_of(target).get("width"))
    if bench is None:
        st.caption("No benchmark for this model family yet.")
        return
    st.markdown(f"Latest benchmark for **{bench['model']}**: {bench['n_cases']} damaged models, errors of the "
                f"{bench['split']} split (run {bench['run_id']}).")
    rows = reports.localisation_rows(bench, PAPER_SCORES)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", placeholder="—")
    names = [r_["score"].split(" ")[0] for r_ in rows]
    faults = list(next(iter(bench["scores"].values()))["by_fault"])
    a, b = st.columns(2)
    rates = [[None if (v := bench["scores"][n]["by_fault"].get(f)) is None else 100 * v for f in faults] for n in names]
    a.plotly_chart(heatmap(rates, names, faults, "Top-1 rate (%), score × fault", zmax=100.0), width="stretch",
                   key="bench-heat")  # in % like the table and the bars beside it
    b.plotly_chart(top1_figure(bench, names), width="stretch", key="bench-bar")
    st.caption("Test accuracy each fault cost the model, mean over its cases (fault, then its strength): "
               + ", ".join(f"{k}: {100 * v['mean']:.1f} pt" for k, v in bench["accuracy_drop"].items()) + ".")
