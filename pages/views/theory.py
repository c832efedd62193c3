"""Theory: heavy ball on a quadratic, under-, critically and over-damped side by side.

Laid out for a 1280x720 projector: the controls sit beside the plots, so the sliders and the
first plot show without scrolling. Every setting is kept in the URL (keys ``th_*``), so a
teacher can bookmark or share a setting.
"""
import numpy as np
import streamlit as st

from beta_core.damping import classify, overshoots, settling_step, simulate_bounded, velocity, zeta
from beta_core.figures import oscillator_figures, valley_figure
from beta_core.formats import g3
from beta_core.glossary import term
from beta_core.queries import measured_sharpness
from beta_core.schedules import beta_momentum
from beta_core.store import StoreError
from pages.views.common import get_manager

LRS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0]
BOUND = 10.0  # every trajectory starts at |x| = 1: past 10x that it is diverging, and is cut there
# One colour per case, the same in both plots and in its label (Streamlit's colour name, then the
# plot's hex): red/green/blue are the regime bands' colours on the Schedules and Train charts.
COLORS = {"μ = 0.9": ("red", "#d62728"), "μ = 0.3": ("blue", "#1f77b4"), "your μ": ("violet", "#9467bd"),
          "critical": ("green", "#2ca02c")}


def case_label(name: str, mu: float, clamped: bool = False) -> str:
    """``μ = 0.9`` names itself; ``critical`` and ``your μ`` add their value. A clamped rule is
    not critical (no momentum in [0, 0.99] gives ζ = 1 there): it is called what it is."""
    if name == "critical" and clamped:
        return f"**beta rule, clamped** (μ = {g3(mu)})"
    return f"**{name}**" if name.startswith("μ") else f"**{name}** (μ = {g3(mu)})"


def diverges_label(k: int) -> str:
    return f"diverges: |x| > {BOUND:g} at step {k}"


st.title("Heavy ball as a damped oscillator", help=term("heavy_ball"))
st.markdown("Momentum SGD on a quadratic of curvature λ is a damped spring with damping ratio "
            "**ζ = (1 − μ) / (2√(λ·lr))**. Critical damping, ζ = 1, gives the paper's rule **μ = 1 − 2√(λ·lr)**.")

# A real model's curvature is far from 1: offer the sharpness measured in a run (Train page,
# "Curvature each epoch", or `beta-core curvature RUN`).
try:
    measured = measured_sharpness(get_manager().store)
except (StoreError, OSError):  # the theory page works without a run store
    measured = {}

left, right = st.columns([1, 3], gap="medium")
with left:
    # Only a store with measured runs has a choice to offer: without one the selector is a wasted line.
    source = "the slider"
    if measured:
        source = st.selectbox("Curvature λ from", ["the slider", *measured], help=term("sharpness"))
    lr = st.select_slider("Learning rate", options=LRS, value=0.01, format_func=g3, key="th_lr",
                          bind="query-params", help=term("beta_rule") + "\n\n" + term("stability"))
    if source == "the slider":
        lam = st.slider("Curvature λ", 0.25, 4.0, 1.0, 0.25, key="th_lam", bind="query-params", help=term("lam"))
    else:
        lam = measured[source]
        st.metric("Curvature λ (measured)", g3(lam), help=term("sharpness"))
    steps = st.slider("Steps", 50, 1000, 300, 50, key="th_steps", bind="query-params", help=term("step"))
    mode = st.radio("Compare critical against", ["μ = 0.9 and μ = 0.3", "my own μ"], key="th_mode",
                    bind="query-params", help=term("momentum"))
    if mode == "my own μ":
        own = st.slider("Your μ", 0.0, 0.99, 0.9, 0.01, key="th_mu", bind="query-params", help=term("momentum"))

    raw = 1.0 - 2.0 * np.sqrt(lam * lr)  # the rule before beta_momentum clamps it to [0, 0.99]
    crit = beta_momentum(lr, lam)
    clamped = not np.isclose(crit, raw)
    if raw < 0:
        z = zeta(lr, crit, lam)
        st.caption(f"μ = 1 − 2√(λ·lr) = {g3(raw)} < 0: clamped to 0; ζ = {g3(z)}, {classify(z)} (no momentum "
                   "reaches ζ = 1 at this lr).", help=term("beta_rule"))
    elif raw > crit:
        st.caption(f"μ = 1 − 2√(λ·lr) = {g3(raw)} > 0.99: clamped to 0.99; ζ = {g3(zeta(lr, crit, lam))}.",
                   help=term("mu_max"))
    if source != "the slider":
        st.caption(f"Your run's sharpness: {source}, λ = {g3(lam)}. At lr {g3(lr)} the critical momentum is "
                   f"{g3(crit)} (the paper's λ = 1 gives {g3(beta_momentum(lr, 1.0))}); heavy ball is stable only "
                   f"while lr·λ < 2(1+μ): lr·λ = {g3(lr * lam)}.")

# The compared cases; "critical" last, so it is drawn on top.
cases = {"your μ": own} if mode == "my own μ" else {"μ = 0.9": 0.9, "μ = 0.3": 0.3}
cases["critical"] = crit
runs = {name: simulate_bounded([lam], lr, mu, steps, BOUND) for name, mu in cases.items()}
zetas = {name: zeta(lr, mu, lam) for name, mu in cases.items()}

with right:
    at = st.slider("Step: move the balls", 0, steps, 20, key="th_step", bind="query-params", help=term("heavy_ball"))
    at = min(at, steps)  # the Steps slider may just have shrunk under it
    # The key to both plots, in the lines' colours: one line of text costs less height than a
    # legend inside each narrow plot.
    st.markdown(" &nbsp; ".join(f":{COLORS[name][0]}[━━ {case_label(name, mu, clamped)}, ζ = {g3(zetas[name])}]"
                                for name, mu in cases.items()))
    pos, phase = oscillator_figures(runs, {n: COLORS[n][1] for n in runs}, at, steps, BOUND)
    a, b = st.columns(2)
    a.plotly_chart(pos, width="stretch")
    b.plotly_chart(phase, width="stretch")

    # One badge per case: its ζ, its regime in its colour (no arrow: a regime is not a change),
    # how it ends, and where the ball is at the chosen step.
    for col, (name, (traj, k)) in zip(st.columns(len(cases)), runs.items()):
        mu, (cname, _) = cases[name], COLORS[name]
        z = zetas[name]
        col.metric(f":{cname}[{case_label(name, mu, clamped)}]", f"ζ = {g3(z)}", classify(z), delta_color=cname,
                   delta_arrow="off", help=term("zeta") + "\n\n" + term("regime"))
        if k is not None:
            end = diverges_label(k)
        else:
            settle = settling_step(traj)
            end = (f"settles (|x| < 0.001) at step {settle}" if settle is not None else f"not settled in {steps} steps")
            end += "; overshoots the minimum" if overshoots(traj) else "; never crosses the minimum"
        now = (f"step {at}: x = {g3(traj[at, 0])}, v = {g3(velocity(traj)[at, 0])}" if at < len(traj)
               else f"step {at}: gone (|x| > {BOUND:g})")
        col.caption(f"{end}. {now}", help=term("stability") if k is not None else None)

st.subheader("Two dimensions: one momentum, two curvatures")
left2, right2 = st.columns([1, 3], gap="medium")
with left2:
    lam2 = st.slider("Second curvature λ₂", 1.0, 50.0, 10.0, 1.0, key="th_lam2", bind="query-params",
                     help=term("lam"))
    mu2d = st.radio("Momentum", ["critical for λ = 1", "critical for the stiff direction", "0.9"], key="th_mu2d",
                    bind="query-params", help=term("momentum"))
    mu_val = {"critical for λ = 1": beta_momentum(lr, 1.0), "critical for the stiff direction": beta_momentum(lr, lam2),
              "0.9": 0.9}[mu2d]
    color = COLORS["μ = 0.9" if mu2d == "0.9" else "critical"][1]
    t2, k2 = simulate_bounded([1.0, lam2], lr, mu_val, steps, BOUND)
    st.caption(f"Same lr {g3(lr)} as above, μ = {g3(mu_val)}: ζ = {g3(zeta(lr, mu_val, 1.0))} along x₁ (flat), "
               f"{g3(zeta(lr, mu_val, lam2))} along x₂ (stiff).", help=term("zeta"))
    if k2 is not None:
        st.caption(f"lr·λ₂ = {g3(lr * lam2)} against the stability limit 2(1+μ) = {g3(2 * (1 + mu_val))}: "
                   f"{diverges_label(k2)}.", help=term("stability"))
    elif at < len(t2):
        st.caption(f"Step {at}: x = ({g3(t2[at, 0])}, {g3(t2[at, 1])}).")

with right2:
    st.plotly_chart(valley_figure(t2, k2, lam2, mu_val, color, at, BOUND), width="stretch")
