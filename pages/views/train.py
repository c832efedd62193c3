"""Train & compare: launch background runs and watch them live."""
import os
import uuid

import streamlit as st

from beta_core.config import METHODS, TrainConfig, parse_seeds, plan_runs
from beta_core.data import SOURCES
from beta_core.engine import check_data
from beta_core.env import settings
from beta_core.formats import counted
from beta_core.presets import PRESETS, preset_config, preset_methods
from beta_core.queries import active_duplicates
from beta_core.records import TRAINED_KINDS
from beta_core.reports import comparison_label, training_outcome
from beta_core.store import StoreError, is_run_id
from pages.views.common import (
    data_dir,
    data_source_label,
    demo_button,
    get_manager,
    get_store,
    launch_errors,
    recent_runs,
    report_button,
    run_name,
    show_error,
    term,
)
from pages.views.model_picker import model_picker
from pages.views.run_actions import launch_again
from pages.views.train_live import View, live

SHOWN = "tr_runs"  # the runs shown: session state and the URL's query parameter
PENDING = "tr_pending"  # runs to show from the next rerun (set after the selector exists)
st.title("Train & compare")
outcome = st.empty()  # the shown runs' outcome in words, first on the page (filled once they are known)

store = get_store()
# ------------------------------------------------------------------ launch form
# Folded once runs exist: the outcome and the charts come first. The preset sits outside the
# form, so the form's defaults follow the preset picked. Settings outside the form are kept in
# the URL (bind): a teacher's link opens the same view.
if st.session_state.pop("tr_fold", False):  # just launched: the form folds, the new runs' status comes first
    st.session_state["tr_launch"] = False
with st.expander("Launch a comparison", expanded=store.count_runs(TRAINED_KINDS) == 0, key="tr_launch",
                 on_change="rerun", icon=":material/play_arrow:"):
    preset = st.selectbox("Preset", list(PRESETS), index=0, key="tr_preset", bind="query-params",
                          help="quick-cpu: three methods, 6,000 images, 5 epochs: 31 s of training for all three on "
                               "2 CPU cores (measured, CIFAR-10 pack)")
    model, resize = model_picker(PRESETS[preset]["config"]["model"], key="train-model")
    with st.form("launch", enter_to_submit=False):
        c2, c3 = st.columns([1, 2])
        dataset = c2.selectbox("Dataset", SOURCES,
                               index=SOURCES.index(PRESETS[preset]["config"].get("dataset", "auto")),
                               help="auto: a data path if given, else CIFAR-10 in data/, else synthetic")
        data_path = c3.text_input("Data path (ImageFolder tree or .tar.gz)", value="", key="data_path",
                                  help="kept for this session: the sidebar's Data line names what it resolves to")
        c5, c6 = st.columns(2)
        methods = c5.multiselect("Methods", list(METHODS), default=preset_methods(preset),
                                 help=term("constant", "beta_rule", "hybrid", "onecycle"))
        seeds_text = c6.text_input("Seeds (comma-separated)", value="0")
        c7, c8, c9 = st.columns(3)
        epochs = c7.number_input("Epochs", min_value=1, max_value=500, value=PRESETS[preset]["config"]["epochs"])
        subset = c8.number_input("Training images (0 = all)", min_value=0, max_value=50000,
                                 value=PRESETS[preset]["config"]["train_subset"] or 0, step=500)
        lr = c9.number_input("Peak LR (SGD)", min_value=1e-5, max_value=2.0,
                             value=float(PRESETS[preset]["config"].get("lr", 0.1)), format="%.4f", help=term("eff_lr"))
        with st.expander("Advanced: momentum, batch size, LR schedule"):
            preset_cfg = {**TrainConfig().to_dict(), **preset_config(preset)}
            a1, a2, a3 = st.columns(3)
            mu = a1.number_input("Momentum μ (constant; hybrid after its switch)", min_value=0.0, max_value=0.999,
                                 value=float(preset_cfg["mu"]), format="%.3f",
                                 help="The beta rule sets μ itself: μ = 1 − 2√lr.\n\n" + term("momentum"))
            batch = a2.number_input("Batch size", min_value=1, max_value=65536, value=int(preset_cfg["batch_size"]))
            schedules = ["cosine", "constant", "step", "linear"]
            sched = a3.selectbox("LR schedule", schedules, index=schedules.index(preset_cfg["lr_schedule"])
                                 if preset_cfg["lr_schedule"] in schedules else 0,
                                 help="sgd-onecycle keeps its own one-cycle schedule")
            targets = st.text_input("Time-to-accuracy targets (test accuracy, comma-separated)",
                                    value=",".join(f"{t:g}" for t in preset_cfg["thresholds"]),
                                    help=term("time_to_acc"))
        c10, c11 = st.columns(2)
        per_epoch = c10.checkbox("Attribution each epoch", help="A group × epoch heatmap on the Attribution page; "
                                 "costs about 4% of an epoch on the small CNN.\n\n"
                                 + term("attribution", "layer_group"))
        curvature = c11.checkbox("Curvature each epoch", help="The top Hessian eigenvalue each epoch, so ζ uses the "
                                 "measured curvature instead of λ = 1.\n\n" + term("sharpness", "zeta"))
        launched = st.form_submit_button("Launch", type="primary")

    if launched:
        with launch_errors():
            seeds = parse_seeds(seeds_text)
            over = {"model": model, "resize": resize, "dataset": dataset, "epochs": int(epochs),
                    "train_subset": int(subset) or None, "data_path": data_path or None,
                    "attribution_every_epoch": per_epoch, "curvature_every_epoch": curvature}
            # Advanced fields only when changed from the preset's: a method's own fixed values (onecycle's
            # schedule, adam's beta1) are not overridden by a default nobody touched.
            try:
                wanted = tuple(float(t) for t in targets.split(",") if t.strip())
            except ValueError:
                raise ValueError(f"Invalid targets: {targets!r} (expected test accuracies such as 0.5,0.6)") from None
            for name, value in (("mu", float(mu)), ("batch_size", int(batch)), ("lr_schedule", sched),
                                ("thresholds", wanted)):
                if value != (tuple(preset_cfg[name]) if name == "thresholds" else preset_cfg[name]):
                    over[name] = value
            configs = plan_runs(methods, seeds, preset, over, sgd_overrides={"lr": float(lr)})
            check_data(configs, data_dir(), decode=False)  # a bad path: refused before any run exists
            same = active_duplicates(store, [c.to_dict() for c in configs])
            if same:  # a second press of Launch, or a second tab: the same runs would train twice
                raise ValueError(f"Already queued or running with the same config and seed: "
                                 f"{', '.join(run_name(r) for r in same[:4])}{'…' if len(same) > 4 else ''} "
                                 "(expected a new comparison: wait for them, cancel them in the sidebar, or change "
                                 "the seeds)")
            jm = get_manager()
            group = f"ui-{uuid.uuid4().hex[:8]}"
            # shown from the next run on, set before the selector exists: a second click's stale browser value
            # of "Runs shown" must not bring the old comparison back under the new banner
            st.session_state[PENDING] = [jm.submit(c.to_dict(), group_id=group) for c in configs]
            st.session_state.update(tr_fold=True, tr_launched=f"Launched {counted(len(configs), 'run')} on "
                                                              f"{data_source_label(data_path or None)}.")
            st.rerun()
if launched_now := st.session_state.pop("tr_launched", None):
    st.success(launched_now)
# ------------------------------------------------------------------ runs an earlier app never started
stale = store.never_started()
if stale:
    a, b = st.columns([5, 1])
    a.warning(f"{counted(len(stale), 'run')} queued when the app stopped and never ran: "
              + ", ".join(run_name(r) for r in stale[:5]) + ("…" if len(stale) > 5 else ""))
    if b.button("Requeue them", key="requeue"):
        try:
            get_manager().requeue([r["id"] for r in stale])
            st.session_state[SHOWN] = [r["id"] for r in stale]
            st.rerun()
        except (StoreError, OSError) as e:
            show_error(e, "Cannot requeue: ")

# ------------------------------------------------------------------ which runs to show
# external: logged from your own loop (beta_core.track); the newest runs, or a search, and the selection
# The runs shown live in the URL (?tr_runs=ID&tr_runs=ID): a link, a reload or a new tab opens them.
# Synced by hand: bound with bind="query-params", the multiselect did not take run ids from the
# URL under AppTest (Streamlit 1.67), and ids deleted since a link was made must drop quietly.
if PENDING in st.session_state:
    st.session_state[SHOWN] = st.session_state.pop(PENDING)
if SHOWN not in st.session_state and st.query_params.get_all(SHOWN):  # a link, a reload, a new tab
    st.session_state[SHOWN] = [i for i in st.query_params.get_all(SHOWN)[:50] if is_run_id(i)]  # data, not paths
wanted = st.session_state.get(SHOWN, [])
runs = recent_runs(store, "train-runs", TRAINED_KINDS, keep=wanted)
if not runs:
    st.info("No runs yet. Press **Launch** to compare the preset's methods, or load the demo runs: real results "
            "on every page at once.")
    demo_button("train")
    st.stop()
by_id = {r["id"]: r for r in runs}
# Recent comparisons (runs launched together; a sweep's members are the Compare page's), newest first
groups: dict[str, list[str]] = {}
for r in runs:
    if not r["parent"]:
        groups.setdefault(r["group_id"] or r["id"], []).append(r["id"])
if not [i for i in wanted if i in by_id]:  # nothing asked for: the newest comparison
    st.session_state[SHOWN] = next(iter(groups.values()), [runs[0]["id"]])[:10]
else:  # ids no longer in the store (deleted since the link was made) are dropped
    st.session_state[SHOWN] = [i for i in wanted if i in by_id]


a, b = st.columns([1, 3])  # the runs shown get the width: chips of four runs fit at 1280 px
a.selectbox("Recent comparisons", list(groups), index=None, placeholder="Open a comparison…", key="tr_group",
            format_func=lambda g: comparison_label([by_id[i] for i in groups[g]]),
            on_change=lambda: st.session_state.update(
                {SHOWN: groups.get(st.session_state["tr_group"], st.session_state.get(SHOWN, []))}))
chosen = b.multiselect("Runs shown", list(by_id), key=SHOWN, format_func=lambda i: run_name(by_id[i]))
st.query_params[SHOWN] = chosen  # ?tr_runs=ID&tr_runs=ID: the link to this view
c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
x_axis = c1.radio("x-axis", ["step", "epoch", "time"], horizontal=True, key="tr_x", bind="query-params",
                  format_func=lambda v: {"time": "wall-clock s"}.get(v, v), help=term("step", "wall_clock"))
window = c2.slider("Smoothing (steps)", 1, 50, 10, key="tr_smooth", bind="query-params")
log_y = c3.checkbox("log-y for loss", value=False, key="tr_logy", bind="query-params")
# Each refresh redraws six charts in the browser; on a 2-core machine that competes with the
# training processes for CPU, so the default refresh is slower there (bench_app_polling.py).
default_poll = settings().poll_seconds or (2.0 if (os.cpu_count() or 1) > 2 else 5.0)
poll = c4.selectbox("Refresh every (s)", [1.0, 2.0, 5.0, 10.0],
                    index=[1.0, 2.0, 5.0, 10.0].index(default_poll) if default_poll in (1.0, 2.0, 5.0, 10.0) else 2)


if chosen:
    outcome.markdown(training_outcome([by_id[i] for i in chosen]))
    live(chosen, View(x_axis, window, log_y, poll))
    report_button(chosen, "report-train")
    launch_again(by_id, chosen, PENDING)
