"""Compare, planning a sweep: the form (preset, methods, LR grids, seeds), what it will cost
here, and its launch (with a confirmation above CONFIRM_ABOVE runs)."""

import streamlit as st

from beta_core.config import METHODS, parse_seeds
from beta_core.data import SOURCES
from beta_core.engine import check_data
from beta_core.formats import format_seconds
from beta_core.presets import PRESETS, preset_methods, preset_sweep
from beta_core.sweeps import CONFIRM_ABOVE, SweepPlan, estimate_seconds, sweep_run_config
from pages.views.common import data_dir, data_source_label, get_manager, get_store, show_error, term
from pages.views.model_picker import model_picker

SWEEP_PRESETS = [p for p in PRESETS if preset_sweep(p)]  # the presets that plan a sweep


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
        # the methods get a row: five chips in a third of the width scrolled out of sight ("d-constant")
        methods = st.multiselect("Methods", list(METHODS), default=preset_methods(preset))
        c5, c6 = st.columns(2)
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
