"""What the pages do to runs: two configs side by side, tags, a name and a note, a bundle from
another store, a run launched again with changes. Each takes what it works on as arguments."""
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from beta_core import bundles, reports
from beta_core.annotations import tags_of
from beta_core.config import TrainConfig
from beta_core.engine import check_data
from beta_core.formats import counted
from beta_core.store import StoreError
from pages.views.common import data_dir, get_manager, launch_errors, plain, run_name, show_error, term


def config_diff(a: dict, b: dict) -> None:
    """Two runs' configs side by side, the differing fields first and highlighted."""
    rows = reports.config_diff(a["config"], b["config"])
    n = sum(r["differs"] for r in rows)
    st.markdown(f"**{n} config field{'s' if n != 1 else ''} differ** between {run_name(a)} and {run_name(b)}.")
    df = pd.DataFrame(sorted(rows, key=lambda r: not r["differs"])).rename(columns={"a": run_name(a),
                                                                                  "b": run_name(b)})
    styled = df.style.apply(lambda row: ["background-color: #fde2a7" if row["differs"] else ""] * len(row), axis=1)
    st.dataframe(styled, hide_index=True, width="stretch", placeholder="—", column_config={"differs": None})


def unpack_form(store) -> None:
    """A bundle from another store (``beta-core runs pack``) into this one."""
    up = st.file_uploader("Unpack a bundle into this store (ids kept; a run already here is skipped)", type=["zip"])
    if up is not None and st.button("Unpack", key="unpack"):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "bundle.zip"
            path.write_bytes(up.getvalue())
            try:
                info = bundles.unpack(store, path, shown=up.name)
            except (bundles.BundleError, StoreError) as e:
                show_error(e)
                return
        st.success(f"{counted(len(info['added']), 'run')} added, {len(info['skipped']):,} already here.")


def annotate(store, ids: list[str], runs: dict) -> None:
    """Tags, a note and a name for the selected runs (also `beta-core runs tag|note|rename`)."""
    with st.expander(f"Tag, rename or annotate {counted(len(ids), 'run')}"):
        a, b = st.columns(2)
        add = a.text_input("Add tags (comma-separated)", key="tag-add", help=term("run"))
        drop = b.multiselect("Remove tags", sorted({t for r in runs.values() for t in tags_of(r)}), key="tag-drop")
        name = a.text_input("Name", value=runs[ids[0]].get("name") or "", key=f"name-{ids[0]}", disabled=len(ids) > 1,
                            help="One run at a time: the name shown in tables and legends")
        note = b.text_area("Note", value=runs[ids[0]].get("note") or "", key=f"note-{ids[0]}", disabled=len(ids) > 1)
        if st.button("Save", key="annotate"):
            try:
                for i in ids:
                    store.tag(i, add=[t.strip() for t in add.split(",") if t.strip()], remove=drop)
                if len(ids) == 1:
                    store.rename(ids[0], name)
                    store.note(ids[0], note)
            except (ValueError, StoreError) as err:
                show_error(err)
            else:
                st.rerun()


def launch_again(runs: dict, ids: list[str], pending: str) -> None:
    """A shown run's stored config in a form (LR, epochs, seed editable; every other field as it
    was), launched as a new run, shown from the next rerun (session key ``pending``). CLI:
    ``beta-core train --from RUN --set FIELD=VALUE``."""
    ours = [i for i in ids if runs[i]["kind"] == "train"]
    if not ours:
        return
    with st.expander("Launch again: a run's stored config, with changes"):
        rid = st.selectbox("Run", ours, format_func=lambda i: run_name(runs[i]), key="again-run")
        cfg = runs[rid]["config"]
        with st.form("again", enter_to_submit=False):
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
                    st.session_state[pending] = [get_manager().submit(new.to_dict(), group_id=runs[rid]["group_id"])]
                    st.rerun()
