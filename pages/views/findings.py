"""Findings: the paper's four claims, tested with seeds; the outcome in words first, each claim's
detail folded under it. The text is docs/findings.md's, computed from the runs in this store."""
import streamlit as st

from beta_core.figures import seeds_figure
from beta_core.findings import COMMAND, findings, findings_sweeps, sections
from beta_core.formats import format_target
from pages.views.common import demo_button, get_store, show_error, term

st.title("Findings: the paper's claims, tested")
store = get_store()
sweeps = findings_sweeps(store)  # the default first
n_seeds = {r["id"]: len(r["config"].get("sweep", {}).get("seeds", [])) for r in sweeps}
chosen = st.selectbox("Sweep the claims are tested on", list(n_seeds),
                      format_func=lambda i: f"{i} ({n_seeds[i]} seeds per method)",
                      help=term("sweep", "verdict", "interval", "mde", "holm")) if sweeps else None
try:
    f = findings(store, chosen)
except ValueError as e:
    st.info("No findings runs in this store yet. **Load demo runs** adds the recorded ones (a tuned sweep of five "
            "methods on 12 seeds each, with attribution and surgery); `python data/demo/record_findings.py "
            "ARCHIVE` records them again (about 45 minutes on 2 CPU cores).")
    demo_button("findings")
    st.caption(str(e))
    st.stop()
except Exception as e:  # noqa: BLE001 - a store from another version must not take the page down
    show_error(e, "Cannot compute the findings: ")
    st.stop()

parts = sections(f)
intro, outcome = parts[0][1], dict(parts)["Outcome"]
st.markdown(outcome.split("\n\n", 1)[0])  # the four verdicts, as a table: the answer first
st.caption(intro.split("\n\n")[-1])
details = {h: b for h, b in parts[1:] if h != "Outcome"}
figures = {
    "1": seeds_figure({m: f["claim4"]["per_seed"][m] for m in f["claim4"]["per_seed"]},
                      f"Steps to {format_target(f['claim4']['top'])} test accuracy, one point per seed",
                      "optimizer steps"),
    "3": seeds_figure(f["claim3"]["per_seed"], "Net images fixed (fixed − broken) per seed", "net images",
                      paired=True) if f["claim3"]["n"] else None,
}
for head, body in details.items():
    with st.expander(head, expanded=False):
        st.markdown(body)
        fig = figures.get(head[:1])
        if fig is not None:
            st.plotly_chart(fig, width="stretch")
st.caption(f"The same text is docs/findings.md; `{COMMAND}` regenerates it from the stored runs.")
