"""What an active job is doing, in one line (phase, done of total, rate, time left measured
here), and the status boxes that refresh it while jobs run."""
import time

import streamlit as st

from beta_core.env import settings
from beta_core.formats import format_progress, format_seconds
from beta_core.records import ACTIVE, TRAINED_KINDS
from beta_core.store import Store
from beta_core.timeleft import earlier_seconds, progress_of, queue_times
from pages.views.common import get_store


def progress_line(store: Store, run: dict, steps: int | None = None) -> str:
    """One line for an active job: its phase (loading data, training, evaluating, ...), done of
    total, the rate and the time left, measured on this machine: ``training: 120/235 steps ·
    12 steps/s · about 9 s left``. ``steps``: the run's step records, when the caller has counted them."""
    if run["status"] == "queued":
        active = list(reversed(store.runs(status=ACTIVE)))  # the queue's order: oldest first
        ahead = next((k for k, r in enumerate(active) if r["id"] == run["id"]), len(active))
        if not ahead:
            return "queued: a worker is starting"
        slots = settings().max_jobs  # what the app's job manager runs at once (BETA_MAX_JOBS)
        start, end = queue_times(store, active, slots).get(run["id"], (None, None))
        when = (f": starts in about {format_seconds(start)}, done in about {format_seconds(end)}" if end is not None
                else f": starts in about {format_seconds(start)}" if start is not None
                else " (no run of its kind and model finished here yet to estimate from)")
        return f"queued, {ahead} ahead ({slots} at a time){when}"
    p = dict(run["summary"].get("progress") or {})
    done = None
    if run["kind"] in ("surgery", *TRAINED_KINDS) and p.get("unit", "steps") == "steps":  # not while its data decodes
        done = store.step_counts(run["id"])[run["id"]] if steps is None else steps
        total = p.get("total")
        epochs = run["config"].get("epochs") if run["kind"] == "train" else None
        if total and epochs and done:
            per_epoch = max(1, total // epochs)
            finished = min(epochs, done // per_epoch)
            if done % per_epoch == 0 and len(store.epochs(run["id"])) < finished:
                p["phase"] = f"evaluating epoch {finished}"
    info = progress_of(p, time.time(), done)
    suffix = ""
    if info["eta"] is None and p.get("started") and run["kind"] != "train":
        earlier = earlier_seconds(store, run)
        if earlier:
            info["eta"] = max(0.0, earlier[0] - (time.time() - p["started"]))
            suffix = f" (from {earlier[1]} earlier here)"
    line = format_progress(info) + suffix
    if p.get("started") and info["eta"] is None:
        line += f" · {format_seconds(time.time() - p['started'])} so far"
    return line


@st.fragment(run_every=1.0)
def job_status(job_ids: tuple[str, ...], what: str) -> None:
    """While jobs run: one status box each (phase, rate, time left), refreshed every second; a
    full rerun when they have all ended, so the page shows their results. The one polling style
    of the pages: fragments, never sleep-and-rerun of the whole page."""
    store = get_store()
    jobs = [store.get_run(i) for i in job_ids]
    if all(j["status"] not in ACTIVE for j in jobs):
        st.rerun()
    for j in jobs:
        if j["status"] in ACTIVE:
            st.info(f"{what} {j['id']}: {progress_line(store, j)}")
