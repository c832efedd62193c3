"""The misclassified images beside an attribution: what the model got wrong, how sure it was,
filtered by the class pair (true -> predicted) a heatmap or a surgery's confusion change points to."""
import base64
from collections import Counter

import streamlit as st

from beta_core.formats import counted
from beta_core.glossary import term


def error_gallery(r: dict, key: str, columns: int = 6) -> None:
    images = r.get("gallery")
    if not images:
        st.caption("Misclassified images: this attribution was stored before images were kept with it; run it "
                   "again on a run that has its weights here to see them.")
        return
    cls = r["classes"]
    pairs = Counter((g["true"], g["pred"]) for g in images)
    options = ["all", *(f"{cls[t]} → {cls[p]}" for (t, p), _ in pairs.most_common())]
    count = {f"{cls[t]} → {cls[p]}": n for (t, p), n in pairs.items()}
    pick = st.selectbox(f"Misclassified images: the {counted(len(images), 'most confident mistake')} of "
                        f"{r['n_errors']:,}", options, key=f"gallery-{key}",
                        format_func=lambda o: o if o == "all" else f"{o} ({count[o]})",
                        help="true class → predicted class; the model's probability of its (wrong) answer, then "
                             "of the true class. " + term("attribution"))
    shown = [g for g in images if pick == "all" or f"{cls[g['true']]} → {cls[g['pred']]}" == pick]
    for i, col in enumerate(st.columns(columns) * (len(shown) // columns + 1)):
        if i >= len(shown):
            break
        g = shown[i]
        col.image(base64.b64decode(g["png"]), width=64,
                  caption=f"{cls[g['true']]} → {cls[g['pred']]} {g['p_pred']:.0%} ({g['p_true']:.0%})")
