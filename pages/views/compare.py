"""Compare: a tuned sweep (LR chosen per method on validation), then verdicts on fresh seeds."""
import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from beta_core import reports
from beta_core.config import METHODS, check_data, parse_seeds
from beta_core.data import SOURCES
from beta_core.figures import lr_sensitivity_figure, mean_curve_figure, sweep_grid_figure
from beta_core.presets import PRESETS, preset_methods, preset_sweep
from beta_core.queries import sweep_members
from beta_core.records import ACTIVE, TRAINED_KINDS, format_seconds
from beta_core.sweeps import CONFIRM_ABOVE, SweepPlan, estimate_seconds, mean_curves, seeds_plan, sweep_run_config
from beta_core.verdicts import analyse_runs, run_arms
from pages.views.common import (
    PALETTE,
    RECENT,
    data_dir,
    data_source_label,
    demo_button,
    get_manager,
    get_store,
    launch_errors,
    model_picker,
    plain,
    progress_line,
    recent_runs,
    report_button,
    resume_sweep,
    run_name,
    show_error,
    term,
)


def plan_form() -> tuple[SweepPlan | None, bool]:
    """The sweep's plan from its settings, with its size and duration shown before Launch. Not an
    st.form: the preview follows every change (a form would show it only after Launch)."""
    preset = st.selectbox("Preset", SWEEP_PRESETS, help="sweep-cpu: a tuned comparison on 2 CPU cores "
                          "(6 min 18 s measured on the CIFAR-10 pack, README)")
    defaults, config = preset_sweep(preset), PRESETS[preset]["config"]
    model, resize = model_picker(config["model"], key="sweep-model", groups=False)
    with st.container(border=True):
        c1, c2 = st.columns([1, 2])
        dataset = c1.selectbox("Dataset", SOURCES, index=SOURCES.index(config.get("dataset", "auto")))
        data_path = c2.text_input("Data path (ImageFolder tree or .tar.gz)", value="")
        c4, c5, c6 = st.columns(3)
        methods = c4.multiselect("Methods", list(METHODS), default=preset_methods(preset))
        lrs_text = c5.text_input("LR grid (SGD methods)", value=",".join(f"{v:g}" for v in defaults["grid"]["*"]["lr"]))
        baseline = c6.selectbox("Baseline", list(METHODS), index=list(METHODS).index(defaults["baseline"]))
        c7, c8, c9 = st.columns(3)
        tune = c7.checkbox("Tune the LR per method on validation (two stages)", value=True,
                           help=term("validation", "tuning"))
        tune_seeds_text = c8.text_input("Tuning seeds", value=",".join(map(str, defaults["tune_seeds"])),
                                        help=term("tuning"))
        seeds_text = c9.text_input("Test seeds (fresh)", value=",".join(map(str, defaults["seeds"])),
                                   help=term("tuning", "mde"))
        c10, c11, c12 = st.columns(3)
        targets_text = c10.text_input("Target test accuracies (empty: fitted to the data)", value="",
                                      help="Empty: 90, 95 and 99% of the baseline's mean validation accuracy in "
                                           "stage 1")
        epochs = c11.number_input("Epochs", min_value=1, max_value=500, value=config["epochs"])
        subset = c12.number_input("Training images (0 = all)", min_value=0, max_value=50000,
                                  value=config["train_subset"] or 0, step=500)
        over = {"dataset": dataset, "data_path": data_path or None, "epochs": int(epochs),
                "train_subset": int(subset) or None, "model": model, "resize": resize}
        try:
            plan = SweepPlan(methods=methods, seeds=parse_seeds(seeds_text),
                             grid={"*": {"lr": [float(v) for v in lrs_text.split(",") if v.strip()]}},
                             tune=["lr"] if tune else [], tune_seeds=parse_seeds(tune_seeds_text) if tune else [],
                             targets=[float(v) for v in targets_text.split(",") if v.strip()], baseline=baseline,
                             preset=preset, overrides=over)
        except ValueError as e:  # a half-typed grid or seed list: say what is expected, launch nothing
            show_error(e)
            return None, False
        st.markdown(f"**This sweep plans {plan_size(plan)}.**")
        confirm = st.checkbox(f"Start even if it plans more than {CONFIRM_ABOVE} runs")
        if not st.button("Launch sweep", type="primary"):
            return None, confirm
    return plan, confirm


def plan_size(plan: SweepPlan) -> str:
    """Runs per stage and the duration from runs of this model measured on this machine."""
    stages = (f" ({len(plan.first_stage_cells())} to tune on validation, then "
              f"{plan.n_cells() - len(plan.first_stage_cells())} on fresh test seeds)" if plan.tune else "")
    secs = estimate_seconds(plan, get_store().runs(kind="train", status="done", limit=500))
    rough = f"{max(1, round(secs / 60))} min" if secs and secs >= 90 else format_seconds(secs or 0)  # an estimate
    when = (f", about {rough} one at a time (measured: the median speed of earlier runs of this model on this "
            "machine, per image and epoch)"
            if secs else ": no earlier run of this model on this machine to time it from (imported runs do not "
            "count; launch one on Train to get an estimate)")
    return f"{plan.n_cells()} runs{stages}{when}"


def launch(plan: SweepPlan, confirm: bool) -> None:
    """A sweep over CONFIRM_ABOVE runs waits for the box."""
    size = plan_size(plan)
    if plan.n_cells() > CONFIRM_ABOVE and not confirm:
        raise ValueError(f"This sweep plans {size}: tick the box above to start it, or shrink the grid or seeds")
    check_data([plan.config(c) for c in plan.first_stage_cells()], data_dir(), decode=False)
    sid = get_manager().submit(sweep_run_config(plan), kind="sweep")
    st.session_state["sweep"] = sid
    st.success(f"Launched sweep {sid} ({size}) on {data_source_label(plan.overrides.get('data_path'))}.")


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


def lr_sensitivity(choice: dict, color: dict) -> None:
    st.subheader("LR sensitivity (stage 1, validation)", help=term("tuning", "edge_of_grid"))
    st.plotly_chart(lr_sensitivity_figure(choice, color), width="stretch", key="lr-sensitivity")
    seen: dict[tuple, list] = {}
    for m, c in choice.items():
        if key := tuple(p["mean"] for p in c["curve"] if p["mean"] is not None):
            seen.setdefault(key, []).append(m)
    for same in (ms for ms in seen.values() if len(ms) > 1):
        st.caption(f"{' and '.join(sorted(same))} coincide at every LR here (the lines lie on each other; "
                   "hybrid is beta until its switch late in training).")
    edges = [f"{m} ({', '.join(c['edge'])})" for m, c in choice.items() if c["edge"]]
    if edges:
        st.warning("Chosen at the edge of the grid — widen the grid: " + plain(", ".join(edges)))


def curves(store, test: list, color: dict) -> None:
    st.subheader("Mean curves over test seeds (95% bands)", help=term("interval"))
    arm = {r["id"]: c.method for c, r in test}
    epochs = store.epochs(*arm)
    x_axis = st.radio("x-axis", ["step", "time"], horizontal=True, key="curve-x", help=term("step", "wall_clock"),
                      format_func=lambda v: {"time": "wall-clock s"}.get(v, v))
    for col, metric, title in zip(st.columns(2), ("test_acc", "val_acc"), ("Test accuracy", "Validation accuracy")):
        fig = mean_curve_figure(mean_curves(epochs, arm, metric), x_axis, title, color, percent=True)
        col.plotly_chart(fig, width="stretch", key=f"curve-{metric}")


def seeds_curve(sid: str, rep: dict) -> None:
    """This sweep as a pilot: the accuracy difference n seeds per method could detect."""
    try:
        p = seeds_plan(rep, 0.01)
    except ValueError:
        return
    fig = go.Figure(go.Scatter(x=[c["n"] for c in p["curve"]], y=[100 * c["detectable"] for c in p["curve"]],
                               mode="lines+markers"))
    fig.add_vline(x=p["n_pilot"], line_dash="dot", annotation_text="this sweep")
    fig.update_layout(title="How many seeds? Detectable accuracy difference at 80% power", height=300,
                      xaxis_title="seeds per method", yaxis_title="points", margin={"l": 10, "r": 10, "t": 40, "b": 10})
    st.plotly_chart(fig, width="stretch", key=f"seeds-curve-{sid}")
    st.caption(f"From this paired spread ({100 * p['sd']:.2f} pts, {p['method']} vs the baseline). A 1-point "
               f"difference needs {p['needed'] or 'more than 1000'} seeds per method."
               + (f" CLI: `beta-core sweep --plan-n 0.01 --pilot {sid}`." if sid in status_of else ""))


def verdicts(sid: str, rep: dict) -> None:
    st.subheader("Verdicts", help=term("verdict", "interval", "mde", "holm", "censored", "speedup"))
    st.markdown(reports.verdict_summary(rep))  # the outcome in words, then its setting and the tables
    st.caption(plain(f"Setting: {reports.sweep_setting(rep)}."))
    if rep["setting"].get("synthetic"):
        st.warning("Trained on SYNTHETIC data: these verdicts say nothing about CIFAR-10.")
    if rep.get("note"):
        st.info(plain(rep["note"]))
    table = pd.DataFrame(reports.verdict_rows(rep))
    st.table(table.set_index("claim"))  # a table wraps its text: the verdict and paper columns are read whole
    st.dataframe(pd.DataFrame(reports.method_rows(rep)), hide_index=True, width="stretch")
    seeds_curve(sid, rep)
    a, b = st.columns(2)
    a.download_button("Verdicts (CSV)", table.to_csv(index=False), f"{sid}-verdicts.csv", "text/csv")
    b.download_button("Report (JSON)", json.dumps(rep, indent=2, default=str), f"{sid}.json", "application/json")
    report_button(rep.get("runs_shown") or [sid], f"report-{sid}")


st.title("Compare: tuned sweeps and verdicts")
st.caption("Each method gets its own LR, chosen on a **validation** split over tuning seeds; the chosen "
           "LRs then run on fresh seeds and are reported on the **test** split, with 95% intervals. "
           "\"No detectable difference\" is a result too.")
SWEEP_PRESETS = [p for p in PRESETS if preset_sweep(p)]
store = get_store()
sweeps = store.runs(kind="sweep", limit=RECENT)
# The latest verdicts are the page's outcome: with sweeps in the store, planning a new one folds away.
with st.expander("Plan and launch a sweep", expanded=not sweeps), launch_errors():
    plan, confirm = plan_form()
    if plan is not None:
        launch(plan, confirm)

def any_runs_verdict(store) -> None:
    """The sweep's statistics over any finished runs (engine or logged from your own loop):
    arms by a field, paired by seed, against a baseline arm."""
    st.subheader("Verdict over any runs")
    st.caption("Finished training runs and runs logged from your own loop (`beta_core.track`), grouped into arms "
               "and paired by seed, with the statistics of a sweep. CLI: `beta-core verdict`.")
    runs = recent_runs(store, "any-runs", TRAINED_KINDS, ("done", "diverged"))
    if len(runs) < 2:
        st.info("At least two finished runs are needed: launch some on Train, or log your own loop.")
        return
    by_id = {r["id"]: r for r in runs}
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect("Runs", list(by_id), format_func=lambda i: run_name(by_id[i]), key="any-runs",
                            help="newest first; each arm needs one run per seed")
    group_by = c2.selectbox("Arms by", ["method", "model", "lr", "momentum_rule", "optimizer"], key="any-group")
    picked = [by_id[i] for i in chosen]
    if not picked:
        return
    with launch_errors():
        arms = run_arms(list(reversed(picked)), group_by)
        c3, c4 = st.columns(2)
        names = list(arms)
        baseline = c3.selectbox("Baseline arm", names, key="any-baseline",  # the paper's baseline when present
                                index=names.index("sgd-constant") if "sgd-constant" in names else 0)
        targets_text = c4.text_input("Target test accuracies (empty: fitted to the baseline's validation accuracy)",
                                     key="any-targets")
        targets = [float(v) for v in targets_text.split(",") if v.strip()] or None
        epochs = store.epoch_records(*[r["id"] for a in arms.values() for r in a.values()])
        rep = analyse_runs(arms, epochs, baseline, targets)
        verdicts(f"verdict-{'-'.join(sorted(chosen))[:40]}", {**rep, "runs_shown": chosen})


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
ACTIVE_AT_START = sid is not None and status_of[sid] in ACTIVE


@st.fragment(run_every=3.0 if ACTIVE_AT_START else None)
def show(sid: str) -> None:
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
    if ACTIVE_AT_START and sweep["status"] not in ACTIVE:
        st.rerun()  # finished: a full rerun stops the polling


if sid is not None:
    show(sid)
    interrupted = [r for _, r in sweep_members(store, sid) if r["status"] == "interrupted"]
    if interrupted:
        st.caption("Some runs were interrupted: " + ", ".join(run_name(r) for r in interrupted))
any_runs_verdict(store)
