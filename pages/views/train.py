"""Train & compare: launch background runs and watch them live."""
import os
import uuid
from pathlib import Path

import pandas as pd
import streamlit as st

from beta_core.config import METHODS, TrainConfig, check_data, parse_seeds, plan_runs
from beta_core.data import SOURCES
from beta_core.env import settings
from beta_core.presets import PRESETS, preset_config, preset_methods
from beta_core.queries import active_duplicates
from beta_core.records import ACTIVE, TRAINED_KINDS, counted, format_hit, format_seconds, format_target
from beta_core.reports import timing_note, training_outcome
from beta_core.store import StoreError, is_run_id
from beta_core.sweeps import mean_curves
from beta_core.timeleft import queue_times
from pages.views.common import (
    data_dir,
    data_source_label,
    demo_button,
    get_manager,
    get_store,
    launch_errors,
    mean_curve_figure,
    model_picker,
    panel_figure,
    plain,
    progress_line,
    recent_runs,
    report_button,
    run_colors,
    run_name,
    show_error,
    term,
)

SHOWN = "tr_runs"  # the runs shown: session state and the URL's query parameter
PENDING = "tr_pending"  # runs to show from the next rerun (set after the selector exists)
st.title("Train & compare")
outcome = st.empty()  # the shown runs' outcome in words, first on the page (filled once they are known)

store = get_store()
# ------------------------------------------------------------------ launch form
# Folded once runs exist: the outcome and the charts come first. The preset sits outside the
# form, so the form's defaults follow the preset picked. Settings outside the form are kept in
# the URL (bind): a teacher's link opens the same view.
with st.expander("Launch a comparison", expanded=store.count_runs(TRAINED_KINDS) == 0,
                 icon=":material/play_arrow:"):
    preset = st.selectbox("Preset", list(PRESETS), index=0, key="tr_preset", bind="query-params",
                          help="quick-cpu: three methods, 6,000 images, 5 epochs: 31 s of training for all three on "
                               "2 CPU cores (measured, CIFAR-10 pack)")
    model, resize = model_picker(PRESETS[preset]["config"]["model"], key="train-model")
    with st.form("launch"):
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
            st.session_state[SHOWN] = [jm.submit(c.to_dict(), group_id=group) for c in configs]
            st.success(f"Launched {counted(len(configs), 'run')} on {data_source_label(data_path or None)}.")
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


def comparison_label(gid: str) -> str:
    rs = [by_id[i] for i in groups[gid]]
    seeds = sorted({r["config"].get("seed") for r in rs if r["config"].get("seed") is not None})
    return (f"{', '.join(dict.fromkeys(r['method'] for r in rs))} · seeds {', '.join(map(str, seeds)) or '-'} · "
            f"{counted(len(rs), 'run')} · {rs[0]['id'][:13]}")


a, b = st.columns([2, 3])
a.selectbox("Recent comparisons", list(groups), index=None, placeholder="Open a comparison…", key="tr_group",
            format_func=comparison_label, on_change=lambda: st.session_state.update(
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
any_active = any(by_id[i]["status"] in ACTIVE for i in chosen)


def status_lines(store, runs: dict, names: dict, counts: dict) -> None:
    """One status box per run: active ones with phase, rate and time left; the rest only when
    they did not finish or trained on synthetic data. First, when all of them will be done."""
    if any(r["status"] in ACTIVE for r in runs.values()):
        mine = [e for i, (_, e) in queue_times(store, get_manager().active(), get_manager().max_parallel).items()
                if i in runs]
        st.caption(f"These runs: all done in about {format_seconds(max(mine))} (measured on this machine)."
                   if mine and None not in mine else "These runs: time left is known once each has measured its rate "
                   "or a run of its kind and model has finished here.")
    for i, r in runs.items():
        if r["status"] in ACTIVE:
            total = r["summary"].get("total_steps")  # known once the worker has loaded the data
            a, b = st.columns([5, 1])
            if r["kind"] == "external":  # its loop is the user's: we show it, we cannot stop it
                a.info(f"{names[i]}: logging from {Path(r['config'].get('script', '?')).name} on "
                       f"{r['config'].get('host', '?')}, {counts[i]} steps so far")
                continue
            a.progress(min(1.0, counts[i] / total) if total else 0.0,
                       text=plain(f"{names[i]}: {progress_line(store, r, counts[i])}"))
            if b.button("Cancel", key=f"cancel-{i}"):
                get_manager().cancel(i)
        elif r["status"] not in ("done",):
            st.warning(f"{names[i]}: {r['status']}" + (f" — {plain(r['error'])}" if r["error"] else ""))
        elif r["summary"].get("synthetic"):
            st.caption(f"{names[i]}: trained on **synthetic** data")


def step_frames(store, runs: dict) -> dict[str, pd.DataFrame]:
    """Each run's step records, read incrementally: a refresh reads only the steps recorded
    since the last one (``since=``), and a finished run's records are kept as they are."""
    old = st.session_state.get("step-cache", {})
    cache = st.session_state["step-cache"] = {i: old[i] for i in runs if i in old}  # only the runs shown
    out = {}
    for i, r in runs.items():
        have = cache.get(i)
        if have is None or len(have) == 0:
            have = store.steps(i)
        elif r["status"] in ACTIVE or not have.attrs.get("final"):
            new = store.steps(i, since=int(have["step"].iloc[-1]) + 1)
            have = pd.concat([have, new], ignore_index=True) if len(new) else have
        have.attrs["final"] = r["status"] not in ACTIVE  # finished runs never change
        cache[i] = out[i] = have
    return out


def charts(store, runs: dict, names: dict, colors: dict, seconds: str) -> None:
    ids = list(runs)
    frames, epochs = step_frames(store, runs), store.epochs(*ids)
    eframes = {i: epochs[epochs["run_id"] == i].assign(epoch=lambda d: d["epoch"] + 1) for i in ids}
    x = "epoch" if x_axis == "epoch" else x_axis
    sx = "step" if x_axis == "epoch" else x_axis  # step records have fractional epochs only via step
    if x_axis == "time":
        st.caption(f"Time axis: {seconds}.")
    sched = [{"frames": frames, "x": sx, "y": "lr", "title": "Learning rate"},
             {"frames": frames, "x": sx, "y": "momentum", "title": "Momentum μ"},
             {"frames": frames, "x": sx, "y": "zeta", "title": "Damping ratio ζ (assuming λ = 1)", "log_y": True,
              "bands": True}]
    perf = [{"frames": frames, "x": sx, "y": "loss", "title": "Training loss", "log_y": log_y, "window": window},
            {"frames": frames, "x": sx, "y": "acc", "title": "Training accuracy (batch)", "window": window,
             "percent": True},
            {"frames": eframes, "x": x, "y": "test_acc", "title": "Test accuracy", "mode": "lines+markers",
             "percent": True}]
    if x_axis == "time":
        for p in sched + perf:
            p["x_title"] = "wall-clock s on this machine"
    st.plotly_chart(panel_figure(sched, names, colors), width="stretch", key="live-schedule")
    st.plotly_chart(panel_figure(perf, names, colors), width="stretch", key="live-performance")
    mean_by_method(runs, epochs)
    curv = {i: f.assign(**{k: [e.get(k) for e in f["extra"]] for k in ("lam_max", "stability_margin", "zeta_measured")})
            for i, f in eframes.items() if len(f) and any(e.get("lam_max") for e in f["extra"])}
    if curv:
        fig = panel_figure([{"frames": curv, "x": "epoch", "y": "lam_max", "title": "Sharpness λ_max (measured)",
                             "log_y": True, "mode": "lines+markers"},
                            {"frames": curv, "x": "epoch", "y": "stability_margin",
                             "title": "lr·λ_max / 2(1+μ): diverges above 1", "mode": "lines+markers"},
                            {"frames": curv, "x": "epoch", "y": "zeta_measured", "title": "ζ under measured λ",
                             "log_y": True, "bands": True, "mode": "lines+markers"}], names, colors)
        fig.add_hline(y=1.0, line_dash="dash", line_color="#d62728", row=1, col=2)
        st.plotly_chart(fig, width="stretch", key="live-curvature")
        st.caption("Curvature measured each epoch on a fixed batch of training images (BatchNorm in eval mode). "
                   "Adam: the preconditioned sharpness; its margin uses (2+2β₁)/((1−β₁)·lr); no ζ.")


def mean_by_method(runs: dict, epochs: pd.DataFrame) -> None:
    """With several seeds of a method shown: its mean test accuracy per epoch and 95% band."""
    method = {i: r["method"] for i, r in runs.items() if r["status"] == "done"}
    if max(pd.Series(list(method.values())).value_counts(), default=0) < 2:
        return
    if st.checkbox("Mean per method over seeds (95% band)", key="tr_mean", bind="query-params",
                   help=term("interval")):
        curves = mean_curves(epochs, method).assign(epoch=lambda d: d["epoch"] + 1)
        x = {"epoch": "epoch", "time": "time"}.get(x_axis, "step")
        fig = mean_curve_figure(curves, x, "Test accuracy: mean per method over seeds, 95% band")
        st.plotly_chart(fig, width="stretch", key="live-mean")


REGIME = {"underdamped": "under", "critical": "crit", "overdamped": "over"}  # short, whole words in a cell


def time_to_accuracy(runs: dict, names: dict, seconds: str) -> None:
    st.subheader("Time to accuracy", help=term("time_to_acc", "step", "wall_clock"))
    with_seconds = st.checkbox("Also show wall-clock seconds", key="tr_secs", bind="query-params",
                               help=term("wall_clock"))
    rows = []
    for i, r in runs.items():
        s = r["summary"]
        acc = s.get("final_test_acc")
        row = {"run": names[i], "lr": f"{r['config'].get('lr', 0):g}", "status": r["status"],
               "final test acc": "-" if acc is None else f"{acc:.1%}",
               "regime per epoch (λ = 1)": " ".join("n/a" if x and x.startswith("n/a") else REGIME.get(x, x or "-")
                                                    for x in s.get("regimes", []))}
        for t, v in (s.get("time_to_accuracy") or {}).items():
            row[f"≥{format_target(t)}"] = format_hit(v)
            if with_seconds:  # its own column: a long cell would be cut
                row[f"≥{format_target(t)} wall-clock s"] = "—" if v is None else f"{v['time']:.1f}"
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "regime per epoch (λ = 1)": st.column_config.TextColumn(help="under: underdamped, crit: critical, over: "
                                                                     "overdamped.\n\n" + term("regime"))})
    st.caption("Steps first: a step costs the same for every SGD method. "
               + (f"Seconds: {seconds}." if with_seconds else "Tick the box for seconds."))


@st.fragment(run_every=poll if any_active else None)
def live(ids: list[str]) -> None:
    store = get_store()
    runs = {i: store.get_run(i) for i in ids}
    names = {i: run_name(r) for i, r in runs.items()}
    times = store.step_times(*ids)
    status_lines(store, runs, names, {i: n for i, (n, _) in times.items()})
    seconds = timing_note(list(runs.values()), {i: t for i, (_, t) in times.items()})
    charts(store, runs, names, run_colors(ids), seconds)
    time_to_accuracy(runs, names, seconds)
    if any_active and all(r["status"] not in ACTIVE for r in runs.values()):
        st.rerun()  # everything finished: a full rerun stops the polling


def launch_again(runs: dict, ids: list[str]) -> None:
    """A shown run's stored config in a form (LR, epochs, seed editable; every other field as it
    was), launched as a new run. CLI: ``beta-core train --from RUN --set FIELD=VALUE``."""
    ours = [i for i in ids if runs[i]["kind"] == "train"]
    if not ours:
        return
    with st.expander("Launch again: a run's stored config, with changes"):
        rid = st.selectbox("Run", ours, format_func=lambda i: run_name(runs[i]), key="again-run")
        cfg = runs[rid]["config"]
        with st.form("again"):
            c1, c2, c3 = st.columns(3)
            lr = c1.number_input("Peak LR", min_value=1e-6, max_value=1e3, value=float(cfg["lr"]), format="%.4f")
            epochs = c2.number_input("Epochs", min_value=1, max_value=500, value=int(cfg["epochs"]))
            seed = c3.number_input("Seed", min_value=0, max_value=2 ** 32 - 1, value=int(cfg["seed"]))
            where = cfg["dataset"] + (f" {cfg['data_path']}" if cfg.get("data_path") else "")
            st.caption(plain(f"Everything else as stored: {cfg['method']}, {cfg['model']}, {where}, batch "
                             f"{cfg['batch_size']}. CLI: beta-core train --from {rid} --set lr=..."))
            if st.form_submit_button("Launch again"):
                with launch_errors():
                    new = TrainConfig.from_fields({**cfg, "lr": float(lr), "epochs": int(epochs), "seed": int(seed)})
                    check_data([new], data_dir(), decode=False)
                    # shown from the next run on (the selector above already exists in this one)
                    st.session_state[PENDING] = [get_manager().submit(new.to_dict(), group_id=runs[rid]["group_id"])]
                    st.rerun()


if chosen:
    outcome.markdown(training_outcome([by_id[i] for i in chosen]))
    live(chosen)
    report_button(chosen, "report-train")
    launch_again(by_id, chosen)
