"""Beta-scheduling dashboard: the entry file only routes and shows the sidebar."""
import streamlit as st

from beta_core.env import EnvError, RayBackendError, settings
from beta_core.formats import format_seconds
from beta_core.glossary import GLOSSARY, term
from beta_core.store import StoreError
from beta_core.timeleft import queue_times
from pages.views.common import data_source_label, device_label, get_manager, plain, show_error

st.set_page_config(page_title="Beta-scheduling", layout="wide")
try:
    settings()  # every BETA_* variable, checked once: one clear message instead of a broken page
except EnvError as e:
    st.title("Beta-scheduling")
    show_error(e)
    st.stop()

theory = st.Page("pages/views/theory.py", title="Theory", icon=":material/school:")


def home() -> None:
    """The app's root opens Theory at its own address: a link to /theory works (a default page's
    own name gives Streamlit's "Page not found"), and a link to /?th_lr=0.05 keeps its settings."""
    st.switch_page(theory, query_params=st.query_params.to_dict())


pages = [
    st.Page(home, title="Home", url_path="home", default=True, visibility="hidden"),
    theory,
    st.Page("pages/views/findings.py", title="Findings", icon=":material/fact_check:"),
    st.Page("pages/views/schedules.py", title="Schedules", icon=":material/show_chart:"),
    st.Page("pages/views/train.py", title="Train & compare", icon=":material/play_arrow:"),
    st.Page("pages/views/compare.py", title="Compare (sweeps)", icon=":material/balance:"),
    st.Page("pages/views/attribution.py", title="Attribution", icon=":material/grid_on:"),
    st.Page("pages/views/surgery.py", title="Surgery", icon=":material/healing:"),
    st.Page("pages/views/runs.py", title="Runs", icon=":material/list:"),
]
nav = st.navigation(pages)
try:
    get_manager()  # the store and, with BETA_BACKEND=ray, the cluster: one plain error on every page
except RayBackendError as e:
    show_error(e, f"The {settings().backend} backend is unavailable (BETA_BACKEND={settings().backend}): ")
    st.caption("Start the Ray head, point BETA_RAY_ADDRESS at it, or set BETA_BACKEND=local, then reload.")
    st.stop()
except (StoreError, OSError):
    pass  # the page says what is wrong with the store, where it needs one


def finished_toasts(active: set[str]) -> None:
    """A toast on any page for each run that finished or failed since the last look."""
    store = get_manager().store
    for rid in st.session_state.get("watched", set()) - active:
        try:
            r = store.get_run(rid)
        except StoreError:
            continue  # deleted meanwhile
        acc = r["summary"].get("final_test_acc")
        what = f"{r['method'] if r['kind'] == 'train' else r['kind']} · {rid[-6:]}"
        if r["status"] == "done":
            st.toast(f"{what} finished" + (f": {acc:.1%} test accuracy" if acc is not None else ""),
                     icon=":material/check_circle:")  # a font icon: emoji drew as a box without an emoji font
        else:
            st.toast(f"{what} {r['status']}" + (f": {r['error'][:120]}" if r.get("error") else ""),
                     icon=":material/warning:")
    st.session_state["watched"] = active


SIDEBAR_JOBS = 8  # jobs the sidebar names (with an id and a cancel button); the Runs page lists them all


@st.fragment(run_every=5.0)  # every 2 s, the open page cost 43% of training on 2 cores (bench_app_polling)
def active_jobs() -> None:
    """The sidebar's count, refreshed on its own: a page's charts poll, the sidebar did not."""
    try:
        active = get_manager().active()  # oldest first: the order the queue runs them
        ends = [e for _, e in queue_times(get_manager().store, active, get_manager().max_parallel).values()]
        st.caption(f"Active jobs: **{len(active)}**" + (f" · all done in about {format_seconds(max(ends))}"
                                                        if ends and None not in ends else ""))
        ahead = 0
        for k, r in enumerate(active[:SIDEBAR_JOBS]):
            name = r["method"] if r["kind"] == "train" else r["kind"]
            seed = r["config"].get("seed")
            where = "running" if r["status"] == "running" else f"queued, {ahead} ahead"
            ahead += 1
            a, b = st.columns([5, 1], vertical_alignment="center")
            a.caption(f"{name}{'' if seed is None else f' s{seed}'} · {r['id'][-6:]} ({where})")
            # the row's place in the key: a job moving up the list must not meet its own old button there (a
            # widget id seen at two places stays on screen as a ghost row: the job listed twice)
            if b.button("✕", key=f"sidebar-cancel-{k}-{r['id']}", help=f"Cancel {r['id']}", type="tertiary"):
                get_manager().cancel(r["id"])
                st.rerun(scope="fragment")
        if len(active) > SIDEBAR_JOBS:
            st.caption(f"… and {len(active) - SIDEBAR_JOBS} more (Runs page)")
        finished_toasts({r["id"] for r in active})
    except Exception as e:  # noqa: BLE001 - the sidebar must not take the page down
        st.error(f"Run store unavailable: {plain(e)}")


with st.sidebar:
    st.caption(f"Device: **{device_label()}**")
    # what a Launch would train on now (the runs shown carry their own data in their tables)
    st.caption(f"Data for a new launch: **{data_source_label(st.session_state.get('data_path') or None)}**")
    active_jobs()
    with st.expander("Glossary: every term in plain words"):  # the same text as each `?` and the README
        st.markdown(term(*GLOSSARY))

nav.run()
