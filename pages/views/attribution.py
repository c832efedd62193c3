"""Attribution: which layer groups carry the gradient of the misclassified images."""
import streamlit as st

from beta_core import reports
from beta_core.attribution import (
    DEFAULT_SCORE,
    NORMALIZATIONS,
    PAPER_SCORES,
    SCORE_MEANING,
    SCORES,
    AttributionConfig,
    overlap,
)
from beta_core.figures import group_scores_figure, probe_figure
from beta_core.jobs.specs import attribution_job
from beta_core.queries import latest_localisation
from beta_core.records import ACTIVE, train_config_of
from pages.views.common import (
    get_manager,
    get_store,
    heatmap,
    launch_errors,
    pick_run,
    recent_runs,
    report_button,
    show_error,
    term,
)
from pages.views.gallery import error_gallery
from pages.views.localise_bench import benchmark
from pages.views.progress import job_status


def score_label(s: str) -> str:
    return s + (" (default: the benchmark's winner)" if s == DEFAULT_SCORE else
                " (the paper's)" if s in PAPER_SCORES else "")


def inputs() -> dict:
    score = st.selectbox("Score that flags groups", SCORES, index=SCORES.index(DEFAULT_SCORE),
                         format_func=score_label,
                         help="The localisation benchmark below measures how often each score finds a damaged "
                              "group.\n\n" + term("probe", "relative", "per_param"))
    c1, c2, c3, c4, c5 = st.columns(5)
    norm = c1.selectbox("Normalization (heatmaps)", NORMALIZATIONS, index=NORMALIZATIONS.index("relative"),
                        help=term("normalization", "relative", "per_param"))
    split = c2.selectbox("Errors from split", ["test", "train"])
    k = c3.number_input("Groups flagged (top-k)", min_value=1, max_value=10, value=3, help=term("flagged"))
    probe = c4.number_input("Probe steps per group", min_value=1, max_value=500, value=20,
                            help=term("probe"))
    images = c5.number_input("Images (0 = the whole split)", min_value=0, max_value=1_000_000, value=0, step=1000,
                             help="Only the first N images of the split: minutes become seconds on a CPU.")
    return {"split": split, "normalization": norm, "k": int(k), "probe_steps": int(probe), "score": score,
            "max_samples": int(images) or None}


def evidence(store, run: dict, used: str) -> str:
    """How often the flagging score is right on this model family, from the latest benchmark."""
    bench = latest_localisation(store, run["config"].get("model") or train_config_of(run).get("model"),
                                train_config_of(run).get("width"))
    if not (bench and used in bench["scores"]):
        return (f"How often {used} is right: not measured for this model — run the localisation benchmark below. "
                f"It measures {SCORE_MEANING[used]}.")
    b = bench["scores"][used]
    return (f"How often {used} is right: it ranked a deliberately damaged group first in {b['top1']['rate']:.0%} "
            f"[{b['top1']['ci_low']:.0%}, {b['top1']['ci_high']:.0%}] and in the top 3 in {b['top3']['rate']:.0%} "
            f"of {b['top1']['n']} planted faults on this model (random: {bench['floor_top1']:.0%} / "
            f"{bench['floor_top3']:.0%}). It measures {SCORE_MEANING[used]}.")


def bars(r: dict, used: str, n: int) -> None:
    st.plotly_chart(group_scores_figure(r, red_flagged=used.startswith("grad")), width="stretch", key=f"bar-{n}")
    if r.get("probe_scores"):
        st.plotly_chart(probe_figure(r), width="stretch", key=f"probe-{n}")
        st.caption("Each bar: retrain that group alone for a few steps, then the held-out loss before minus "
                   "after. Above 0 helped; below 0 made the held-out loss worse.", help=term("probe"))


def column(store, n: int, run: dict, opts: dict) -> dict | None:
    """One run's attribution: launch, status, the flagged groups with their evidence, the bars."""
    jobs = store.runs(kind="attribution", parent=run["id"])
    active = [j["id"] for j in jobs if j["status"] in ACTIVE]
    if active:
        job_status(tuple(active), "Attribution")
    elif st.button("Run attribution", key=f"attr-go-{n}", type="primary"):
        with launch_errors():
            get_manager().submit(attribution_job(run, AttributionConfig(**opts)), kind="attribution",
                                 parent=run["id"])
        st.rerun()
    if jobs and not active and jobs[0]["status"] == "failed":
        show_error(jobs[0]["error"], "Last attribution failed: ")
    stored = store.results(run["id"], "attribution")
    if not stored:
        st.caption("No attribution yet for this run.")
        return None
    r = stored[-1]
    used = r.get("score", f"grad_{r['config']['normalization']}")
    flagged = (f"**{', '.join(r['flagged'])}** ({r['param_fraction']:.1%} of parameters)" if r["flagged"] else
               "**no group stands out**: no loss drop exceeds twice the disagreement of two probe runs")
    st.markdown(f"**{r['n_errors']}** errors of {r['n_samples']} ({r['config']['split']} split). "
                f"Flagged by **{used}**: {flagged}")
    if r["param_fraction"] > 0.5:
        st.warning(f"The flagged groups hold {r['param_fraction']:.0%} of the parameters: barely a localisation.")
    if fault := reports.fault_found(run, r):  # a demo's damaged run: was the diagnosis right?
        st.markdown(fault)
    st.caption(evidence(store, run, used))
    bars(r, used, n)
    return r


def heatmaps(store, shown: list[tuple[dict, dict]]) -> None:
    # One colour scale for every heatmap on the page, so the two runs compare by eye.
    zmax = max(v for r, _ in shown for row in r["by_true_class"] for v in row if v is not None)
    for n, (col, (r, run)) in enumerate(zip(st.columns(len(shown)), shown)):
        with col:
            st.plotly_chart(heatmap(r["by_true_class"], r["groups"], r["classes"], "Group × true class", zmax),
                            width="stretch", key=f"hm-true-{n}")
            if r.get("by_pred_class"):
                st.plotly_chart(heatmap(r["by_pred_class"], r["groups"], r["classes"], "Group × predicted class",
                                        zmax), width="stretch", key=f"hm-pred-{n}")
            per_epoch = [e.get("group_scores") for e in store.epochs(run["id"])["extra"]]
            if any(per_epoch):
                mat = [[(s or {}).get(g) for s in per_epoch] for g in r["groups"]]
                st.plotly_chart(heatmap(mat, r["groups"], [f"ep {i + 1}" for i in range(len(per_epoch))],
                                        "Group × epoch (scores on test errors)"), width="stretch",
                                key=f"hm-epoch-{n}")
            else:
                st.caption("Group × epoch: tick *Attribution each epoch* when launching on the Train page "
                           "(CLI: `--set attribution_every_epoch=true`).")
            error_gallery(r, str(n))
    if len(shown) == 2 and not all(r["flagged"] for r, _ in shown):
        st.caption("Overlap of flagged groups: not measured, "
                   + ("neither run flagged a group." if not any(r["flagged"] for r, _ in shown) else
                      "one run flagged no group (nothing to share)."))
    elif len(shown) == 2:
        o = overlap(shown[0][0]["flagged"], shown[1][0]["flagged"])
        st.metric("Overlap of flagged groups (Jaccard)", f"{o['jaccard']:.2f}",
                  f"shared: {', '.join(o['shared']) or 'none'}", delta_color="off", delta_arrow="off",
                  help=term("jaccard"))


st.title("Per-layer attribution on misclassified images")
store = get_store()
attributed = store.with_results("attribution")
# Runs that already have an attribution come first, so the page opens on results.
runs = sorted(recent_runs(store, "attr-runs", ("train", "surgery"), "done", keep=sorted(attributed, reverse=True)[:50]),
              key=lambda r: r["id"] not in attributed)
# Attribution reads the weights: runs stored without them (a bundle packed --no-checkpoints) are left out
# unless they already have a result to show.
runs = [r for r in runs if r["id"] in attributed or store.checkpoint_path(r["id"]).exists()]
# The settings are for a new attribution: with results on the page they fold away, so the flagged
# groups are what it says first.
with st.expander("Settings of a new attribution: score, normalization, k, probe steps", expanded=not attributed):
    opts = inputs()
shown = []


def family(run: dict) -> str:
    return "adam" if train_config_of(run).get("optimizer", "sgd").startswith("adam") else "sgd"


def partner(a: dict, runs: list[dict]) -> int:
    """Where Run B opens: beside a run with a planted fault, its clean twin (same comparison and
    method: what the diagnosis finds with and without the fault); else the other optimizer family
    (SGD vs Adam: the paper's comparison; two runs of one family mostly flag the same groups);
    else the next run."""
    if a.get("config", {}).get("planted_fault"):
        twin = next((i for i, r in enumerate(runs) if r["id"] != a["id"] and r["group_id"] == a["group_id"]
                     and r["method"] == a["method"] and not r["config"].get("planted_fault")), None)
        if twin is not None:
            return twin
    return next((i for i, r in enumerate(runs) if family(r) != family(a)), min(1, len(runs) - 1))


shown_run = None  # Run A, once picked
# Side by side by default only where two runs have a result to compare.
for n, col in enumerate(st.columns(2 if st.checkbox("Two runs side by side (e.g. SGD vs Adam)",
                                                    value=len(attributed & {r["id"] for r in runs}) > 1) else 1)):
    with col:
        index = n if n == 0 else partner(shown_run, runs)
        run = pick_run(f"Run {'AB'[n]}", runs, key=f"attr-run-{n}", index=index)
        shown_run = run
        if run is None:
            st.stop()
        r = column(store, n, run, opts)
        if r is not None:
            shown.append((r, run))
if shown:
    heatmaps(store, shown)
    report_button([run["id"] for _, run in shown], "report-attribution")
benchmark(store, runs)
