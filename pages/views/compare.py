"""Compare: a tuned sweep (LR chosen per method on validation), then verdicts on fresh seeds."""

import streamlit as st

from beta_core.figures import sweep_grid_figure
from beta_core.queries import sweep_members
from beta_core.records import ACTIVE
from beta_core.sweeps import SweepPlan
from pages.views.common import (
    PALETTE,
    RECENT,
    demo_button,
    get_manager,
    get_store,
    launch_errors,
    plain,
    resume_sweep,
    run_name,
    show_error,
)
from pages.views.progress import progress_line
from pages.views.sweep_plan import launch, plan_form
from pages.views.sweep_results import any_runs_verdict, curves, lr_sensitivity, verdicts


def status(sweep: dict, members: list, plan: SweepPlan) -> None:
    finished = sum(r["status"] not in ACTIVE for _, r in members)
    if sweep["status"] in ACTIVE:
        a, b = st.columns([5, 1])
        a.progress(min(1.0, finished / plan.n_cells()),
                   text=plain(f"sweep: {finished}/{plan.n_cells()} runs finished; {progress_line(get_store(), sweep)}"))
        if b.button("Cancel sweep"):
            get_manager().cancel(sweep["id"])
    elif sweep["status"] != "done":
        cov = sweep["summary"].get("coverage") or {}
        why = sweep["error"] or (f"{len(cov['missing'])} of {cov['planned']} planned cells of the reported stage "
                                 "did not count" if cov.get("missing") else "stopped before it finished")
        show_error(why, f"Sweep {sweep['status']}: ")
        a, b = st.columns([1, 4])
        if a.button("Resume sweep", help="finished cells are kept; cancelled, interrupted and never-started cells "
                                         "run again (failed ones too, with the box ticked)"):
            with launch_errors():
                resume_sweep(sweep["id"], st.session_state.get("retry_failed", False))
                st.rerun()
        b.checkbox("Also run failed cells again", key="retry_failed")
        st.caption(f"Or from the command line: `beta-core sweep --resume {sweep['id']}`")


st.title("Compare: tuned sweeps and verdicts")
st.caption("Each method gets its own LR, chosen on a **validation** split over tuning seeds; the chosen "
           "LRs then run on fresh seeds and are reported on the **test** split, with 95% intervals. "
           "\"No detectable difference\" is a result too.")
store = get_store()
sweeps = store.runs(kind="sweep", limit=RECENT)
# The latest verdicts are the page's outcome: with sweeps in the store, planning a new one folds away.
with st.expander("Plan and launch a sweep", expanded=not sweeps), launch_errors():
    plan, confirm = plan_form()
    if plan is not None:
        launch(plan, confirm)

if st.session_state.get("sweep") and st.session_state["sweep"] not in {s["id"] for s in sweeps}:
    sweeps.insert(0, store.get_run(st.session_state["sweep"]))
ids = [s["id"] for s in sweeps]
status_of = {s["id"]: s["status"] for s in sweeps}
sid = None
if sweeps:
    default = ids.index(st.session_state["sweep"]) if st.session_state.get("sweep") in ids else 0
    # the status as of this render (an active sweep's live progress is in its box below)
    sid = st.selectbox("Sweep", ids, index=default, format_func=lambda i: f"{i} ({status_of[i]})")
else:
    st.info("No sweeps yet. Press **Launch sweep**, compare finished runs below, or load the demo runs (a "
            "finished sweep among them).")
    demo_button("compare")
def show(sid: str, active_at_start: bool) -> None:
    """A sweep: its status, verdicts, grids and curves, refreshed every 3 s while it runs."""

    @st.fragment(run_every=3.0 if active_at_start else None)
    def refresh() -> None:
        store = get_store()
        sweep, members = store.get_run(sid), sweep_members(store, sid)
        plan = SweepPlan.from_dict(sweep["config"]["sweep"])
        status(sweep, members, plan)
        stored = store.results(sid, "sweep")
        if stored:  # the verdicts first, in words and tables; how they came about below
            verdicts(sid, stored[-1])
        for stage in ("tune", "test"):
            fig = sweep_grid_figure(members, stage)
            if fig is not None:
                st.plotly_chart(fig, width="stretch", key=f"grid-{stage}")
        color = {m: PALETTE[k % len(PALETTE)] for k, m in enumerate(plan.methods)}  # one colour per method
        choice = store.results(sid, "sweep_choice")
        if choice:
            lr_sensitivity(choice[-1], color)
        test = [(c, r) for c, r in members if c.stage == "test"]
        if test:
            curves(store, test, color)
        if active_at_start and sweep["status"] not in ACTIVE:
            st.rerun()  # finished: a full rerun stops the polling

    refresh()


if sid is not None:
    show(sid, status_of[sid] in ACTIVE)
    interrupted = [r for _, r in sweep_members(store, sid) if r["status"] == "interrupted"]
    if interrupted:
        st.caption("Some runs were interrupted: " + ", ".join(run_name(r) for r in interrupted))
any_runs_verdict(store)
