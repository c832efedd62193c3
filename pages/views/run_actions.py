"""What the Runs page does to runs: two configs side by side, tags, a name and a note, a bundle
from another store. Each takes what it works on as arguments."""
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from beta_core import bundles, reports
from beta_core.annotations import tags_of
from beta_core.records import counted
from beta_core.store import StoreError
from pages.views.common import run_name, show_error, term


def config_diff(a: dict, b: dict) -> None:
    """Two runs' configs side by side, the differing fields first and highlighted."""
    rows = reports.config_diff(a["config"], b["config"])
    n = sum(r["differs"] for r in rows)
    st.markdown(f"**{n} config field{'s' if n != 1 else ''} differ** between {run_name(a)} and {run_name(b)}.")
    df = pd.DataFrame(sorted(rows, key=lambda r: not r["differs"])).rename(columns={"a": run_name(a),
                                                                                  "b": run_name(b)})
    styled = df.style.apply(lambda row: ["background-color: #fde2a7" if row["differs"] else ""] * len(row), axis=1)
    st.dataframe(styled, hide_index=True, width="stretch", column_config={"differs": None})


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
