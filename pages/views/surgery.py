"""Surgery: retrain only some layer groups, then see what it fixed and what it broke."""
import pandas as pd
import streamlit as st

from beta_core import formats, reports
from beta_core.models import run_groups
from beta_core.records import ACTIVE
from beta_core.surgery import SurgeryConfig, surgery_run_config
from pages.views.common import (
    RECENT,
    get_manager,
    get_store,
    heatmap,
    launch_errors,
    pick_run,
    recent_runs,
    run_name,
    show_error,
    term,
)
from pages.views.progress import job_status


def launch_form(run: dict, flagged: list[str]) -> None:
    names = [g for g, _ in run_groups(run)]
    with st.form("surgery", enter_to_submit=False):
        groups = st.multiselect("Layer groups to retrain (pre-filled with the flagged ones; empty = auto)", names,
                                default=flagged, help=term("layer_group", "flagged"))
        c1, c2, c3, c4 = st.columns(4)
        epochs = c1.number_input("Epochs", min_value=1, max_value=50, value=2)
        lr = c2.number_input("Peak LR", min_value=1e-5, max_value=1.0, value=0.01, format="%.4f")
        oversample = c3.number_input("Extra copies of training errors", min_value=0, max_value=10, value=0)
        controls = c4.checkbox("Controls (random, per-parameter)", value=False, help=term("controls"))
        leaky = st.checkbox("Train on the test split (leaky: results are labelled)", value=False)
        launched = st.form_submit_button("Launch surgery", type="primary")
    if launched:
        with launch_errors():
            cfg = SurgeryConfig(groups=tuple(groups) or "auto", epochs=int(epochs), lr=float(lr),
                                oversample_errors=int(oversample), controls=controls,
                                train_split="test" if leaky else "train", allow_leaky=leaky)
            get_manager().submit(surgery_run_config(run["config"], cfg), kind="surgery", parent=run["id"])
            st.rerun()  # one status box: the job's own, below


def results(job: dict, run: dict) -> None:
    s = job["summary"]
    if s.get("leaky"):
        st.warning("LEAKY: this repair trained on the split it is scored on.")
    st.markdown(reports.surgery_outcome(s), help=term("fixed_broken", "controls"))
    sc = job["config"].get("surgery", {})
    why = (f"flagged by attribution on the {s.get('train_split', 'train')} split's errors (top {sc.get('k', 3)}: "
           "the held-out split stays unseen)" if sc.get("groups", "auto") == "auto" else "chosen by hand")
    st.markdown(f"Repaired model: run **{job['id']}** (parent {run_name(run)}). Groups **{', '.join(s['groups'])}**, "
                f"{why}: {formats.share(s['param_fraction'])} of parameters.")
    if f := run["summary"].get("planted_fault"):  # the demo's damaged model: measured against its healthy self
        lost = f["test_acc_before"] - f["test_acc_after"]
        st.caption(f"Before its planted fault in {f['group']} this model had {f['test_acc_before']:.1%} test accuracy; "
                   f"the fault cost {100 * lost:.1f} points and the repair won back "
                   f"{100 * (s['acc_after'] - s['acc_before']):.1f} of them.")
    st.dataframe(pd.DataFrame(reports.surgery_rows(s)), hide_index=True, width="stretch", placeholder="—")
    # Savings only mean something when the outcome is at least as good as the full fine-tune's.
    full = s["report"].get("full")
    worth = s["net"] > 0 and (full is None or s["net"] >= full["net"])
    proxy = f"{s['savings_param_proxy']:.0%}"
    measured = "—" if s["savings_measured"] is None else f"{s['savings_measured']:.0%}"
    if worth:
        c1, c2 = st.columns(2)
        c1.metric("Savings, parameter proxy (paper)", proxy, help=term("savings"))
        c2.metric("Savings, measured wall-clock vs full fine-tune", measured, help=term("wall_clock"))
    else:  # no headline figure for a saving that bought a worse model
        st.warning("No savings to claim: the repair " + ("made the model worse" if s["net"] < 0 else
                   "changed nothing" if s["net"] == 0 else "did worse than the full fine-tune") +
                   f", so a cheaper repair is not a saving (it retrained {formats.share(s['param_fraction'])} of "
                   f"the parameters; savings against the full fine-tune: {proxy} by parameters, {measured} "
                   "measured wall-clock).", icon=":material/info:")
    main, classes = s["report"]["surgery"], s["classes"]
    # after − before on the diagonal (more correct) and before − after off it (fewer mistakes):
    # one colour means better everywhere
    diff = [[v if r == c else -v for c, v in enumerate(row)] for r, row in enumerate(main["confusion_diff"])]
    st.markdown("**What surgery changed, class by class**", help=term("confusion_diff"))
    st.plotly_chart(heatmap(diff, classes, classes, "Blue better, red worse (diagonal: images now right; elsewhere: "
                            "mistakes removed; rows: true class)", colorscale="RdBu", zmid=0), width="stretch")
    per_class = pd.DataFrame({"class": classes, "before": main["class_acc_before"], "after": main["class_acc_after"]})
    per_class = per_class.assign(change=per_class["after"] - per_class["before"])
    per_class = per_class.rename(columns={"change": "change (points)"})
    per_class["change (points)"] *= 100
    st.dataframe(per_class.style.format({"before": "{:.1%}", "after": "{:.1%}", "change (points)": "{:+.1f}"}),
                 hide_index=True, placeholder="—")


st.title("Layer surgery")
store = get_store()
repaired = {j["parent"] for j in store.runs(kind="surgery", limit=RECENT)}
# Runs that already have a surgery come first, so the page opens on a result.
runs = sorted(recent_runs(store, "surgery-runs", "train", "done", keep=sorted(repaired, reverse=True)[:50]),
              key=lambda r: r["id"] not in repaired)
runs = [r for r in runs if r["id"] in repaired or store.checkpoint_path(r["id"]).exists()]  # surgery needs weights
run = pick_run("Model to repair", runs, key="surgery-run")
if run is None:
    st.stop()
attributions = store.results(run["id"], "attribution")
jobs = store.runs(kind="surgery", parent=run["id"])
# The outcome first: the latest surgery's result (or its progress), then the form for another.
if not jobs:
    st.caption("No surgery on this run yet.")
elif jobs[0]["status"] in ACTIVE:
    job_status((jobs[0]["id"],), "Surgery (then the full fine-tune for comparison)")
elif jobs[0]["status"] != "done":
    show_error(jobs[0]["error"] or "", f"Surgery {jobs[0]['id']} {jobs[0]['status']}: ")
else:
    results(jobs[0], run)
with st.expander("Launch a surgery on this run", expanded=not jobs):
    launch_form(run, attributions[-1]["flagged"] if attributions else [])
