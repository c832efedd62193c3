"""Attribution: which layer groups carry the gradient of the misclassified images."""
import plotly.graph_objects as go
import streamlit as st

from beta_core.attribution import NORMALIZATIONS, overlap
from beta_core.records import ACTIVE
from pages.views.common import get_manager, get_store, heatmap, pick_run, show_error

st.title("Per-layer attribution on misclassified images")
store = get_store()
runs = store.runs(kind=("train", "surgery"), status="done")
# Runs that already have an attribution come first, so the page opens on results.
runs.sort(key=lambda r: not store.results(r["id"], "attribution"))


c1, c2, c3, c4 = st.columns(4)
norm = c1.selectbox("Normalisation", NORMALIZATIONS, index=NORMALIZATIONS.index("relative"),
                    help="relative = ||g|| / ||w|| (Auto-RGN); raw favours big groups")
split = c2.selectbox("Errors from split", ["test", "train"])
k = c3.number_input("Groups flagged (top-k)", min_value=1, max_value=10, value=3)
probe = c4.number_input("Probe steps per group (0 = off)", min_value=0, max_value=500, value=0,
                        help="Retrain each group alone for this many SGD steps and measure the held-out loss drop")
compare = st.checkbox("Two runs side by side (e.g. SGD vs Adam)", value=len(runs) > 1)
cols = st.columns(2 if compare else 1)
results = []
jobs_active = False
for n, col in enumerate(cols):
    with col:
        run = pick_run(f"Run {'AB'[n]}", runs, key=f"attr-run-{n}", index=n)
        if run is None:
            st.stop()
        jobs = store.runs(kind="attribution", parent=run["id"])
        active = [j for j in jobs if j["status"] in ACTIVE]
        if active:
            jobs_active = True
            st.info("Attribution running…")
        elif st.button("Run attribution", key=f"attr-go-{n}", type="primary"):
            cfg = {"method": "attribution", "model": run["config"].get("model"),
                   "attribution": {"split": split, "normalization": norm, "k": int(k),
                                   "probe_steps": int(probe)}}
            get_manager().submit(cfg, kind="attribution", parent=run["id"])
            st.rerun()
        failed = [j for j in jobs if j["status"] == "failed"]
        if failed and not active and failed[0] == jobs[0]:
            show_error(failed[0]["error"], "Last attribution failed: ")
        stored = store.results(run["id"], "attribution")
        if not stored:
            st.caption("No attribution yet for this run.")
            results.append(None)
            continue
        r = stored[-1]
        results.append(r)
        st.markdown(f"**{r['n_errors']}** errors of {r['n_samples']} ({r['config']['split']} split, "
                    f"{r['config']['normalization']}). Flagged: **{', '.join(r['flagged'])}** "
                    f"({r['param_fraction']:.1%} of parameters)")
        bar = go.Figure(go.Bar(x=r["groups"], y=[r["scores"][g] for g in r["groups"]], name="errors",
                               marker_color=["#d62728" if g in r["flagged"] else "#1f77b4" for g in r["groups"]]))
        if r.get("correct_scores"):
            bar.add_trace(go.Bar(x=r["groups"], y=[r["correct_scores"][g] for g in r["groups"]], name="correct",
                                 marker_color="#bbbbbb"))
        bar.update_layout(title="Group scores (red: flagged)", height=300, barmode="group",
                          margin={"l": 10, "r": 10, "t": 40, "b": 10})
        st.plotly_chart(bar, width="stretch", key=f"bar-{n}")
        if r.get("probe_scores"):
            pr = go.Figure(go.Bar(x=r["groups"], y=[r["probe_scores"][g] for g in r["groups"]],
                                  marker_color="#2ca02c"))
            pr.update_layout(title="Probe: held-out loss drop after retraining one group alone", height=260,
                             margin={"l": 10, "r": 10, "t": 40, "b": 10})
            st.plotly_chart(pr, width="stretch", key=f"probe-{n}")
        results[-1]["_run"] = run

shown = [r for r in results if r]
if shown:
    # One colour scale for every heatmap on the page, so the two runs compare by eye.
    zmax = max(v for r in shown for row in r["by_true_class"] for v in row if v is not None)
    cols = st.columns(len(results))
    for n, (col, r) in enumerate(zip(cols, results)):
        if not r:
            continue
        with col:
            st.plotly_chart(heatmap(r["by_true_class"], r["groups"], r["classes"], "Group × true class", zmax),
                            width="stretch", key=f"hm-true-{n}")
            if r.get("by_pred_class"):
                st.plotly_chart(heatmap(r["by_pred_class"], r["groups"], r["classes"], "Group × predicted class",
                                        zmax), width="stretch", key=f"hm-pred-{n}")
            ep = store.epochs(r["_run"]["id"])
            per_epoch = [e.get("group_scores") for e in ep["extra"]]
            if any(per_epoch):
                mat = [[(s or {}).get(g) for s in per_epoch] for g in r["groups"]]
                st.plotly_chart(heatmap(mat, r["groups"], [f"ep {i + 1}" for i in range(len(per_epoch))],
                                        "Group × epoch (scores on test errors)"), width="stretch",
                                key=f"hm-epoch-{n}")
            else:
                st.caption("Group × epoch: tick *Per-epoch attribution* when launching on the Train page "
                           "(CLI: `--set attribution_every_epoch=true`).")
    if len(shown) == 2:
        o = overlap(shown[0]["flagged"], shown[1]["flagged"])
        st.metric("Overlap of flagged groups (Jaccard)", f"{o['jaccard']:.2f}",
                  f"shared: {', '.join(o['shared']) or 'none'}", delta_color="off")

if jobs_active:
    import time

    time.sleep(1.0)
    st.rerun()
