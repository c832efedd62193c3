"""Theory: heavy ball on a quadratic, under-, critically and over-damped side by side.

Laid out for a 1280x720 projector: the controls sit beside the plots, so the sliders and the
first plot show without scrolling. Every setting is kept in the URL (keys ``th_*``), so a
teacher can bookmark or share a setting.
"""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from beta_core.damping import classify, overshoots, settling_step, simulate_heavy_ball, zeta
from beta_core.glossary import term
from beta_core.schedules import beta_momentum
from beta_core.store import StoreError
from pages.views.common import get_manager, measured_sharpness

LRS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0]
BOUND = 10.0  # every trajectory starts at |x| = 1: past 10x that it is diverging, and is cut there
HEIGHT = 300  # px: two plots and the controls fit one 720-px screen
# One colour per case, the same in both plots and in its label (Streamlit's colour name, then the
# plot's hex): red/green/blue are the regime bands' colours on the Schedules and Train charts.
COLORS = {"μ = 0.9": ("red", "#d62728"), "μ = 0.3": ("blue", "#1f77b4"), "your μ": ("violet", "#9467bd"),
          "critical": ("green", "#2ca02c")}
GRID = {"gridcolor": "rgba(0,0,0,0.08)"}
LAYOUT = {"height": HEIGHT, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "plot_bgcolor": "white",
          "showlegend": False}


def g3(x: float) -> str:
    """A number to 3 significant digits, with a true minus sign: 0.158, −76.1, 1e-05."""
    return ("−" if x < 0 else "") + f"{abs(x):.3g}"


def simulate(lams: list[float], lr: float, mu: float, steps: int) -> tuple[np.ndarray, int | None]:
    """(the trajectory's steps before the first one past BOUND, that step or None). A diverging
    run overflows to inf and nan within a few hundred steps: it is cut before, so no axis ever
    stretches to 1e133."""
    with np.errstate(over="ignore", invalid="ignore"):
        traj = simulate_heavy_ball(lams, lr, mu, steps, x0=[1.0] * len(lams))
        past = ~np.all(np.abs(traj) <= BOUND, axis=1)  # nan counts as past
    if not past.any():
        return traj, None
    k = int(np.argmax(past))
    return traj[:k], k


def velocity(traj: np.ndarray) -> np.ndarray:
    """v(t) = x(t) − x(t−1), the heavy ball's own velocity; the ball starts at rest."""
    return np.diff(traj, axis=0, prepend=traj[:1])


def span(*values: np.ndarray, least: float = 0.0) -> list[float]:
    """A fixed axis range over the drawn values, 0 and ±``least``, with a 5% margin each side."""
    lo = min(-least, *(float(np.min(v)) for v in values))
    hi = max(least, *(float(np.max(v)) for v in values))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = 0.05 * (hi - lo or 1.0)
    return [lo - pad, hi + pad]


def case_label(name: str, mu: float, clamped: bool = False) -> str:
    """``μ = 0.9`` names itself; ``critical`` and ``your μ`` add their value. A clamped rule is
    not critical (no momentum in [0, 0.99] gives ζ = 1 there): it is called what it is."""
    if name == "critical" and clamped:
        return f"**beta rule, clamped** (μ = {g3(mu)})"
    return f"**{name}**" if name.startswith("μ") else f"**{name}** (μ = {g3(mu)})"


def diverges_label(k: int) -> str:
    return f"diverges: |x| > {BOUND:g} at step {k}"


def mark_divergence(fig: go.Figure, ends: list[tuple[float, float, str, str]]) -> None:
    """Where diverging trajectories were cut: a cross at each cut end, and one note in the
    bottom-right corner, a line per case in its colour (labels at the crosses pile up, as the
    cases often diverge within a step of each other). ``ends``: (x, y, colour, words)."""
    for x, y, color, _ in ends:
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", marker={"symbol": "x", "size": 12, "color": color},
                                 showlegend=False, hoverinfo="skip"))
    if ends:
        text = "<br>".join(f"<span style='color:{color}'>{words}</span>" for *_, color, words in ends)
        fig.add_annotation(text=text, xref="paper", yref="paper", x=1, y=0, xanchor="right", yanchor="bottom",
                           showarrow=False, align="right", bgcolor="rgba(255,255,255,0.85)")


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
runs = {name: simulate([lam], lr, mu, steps) for name, mu in cases.items()}
zetas = {name: zeta(lr, mu, lam) for name, mu in cases.items()}

with right:
    at = st.slider("Step: move the balls", 0, steps, 20, key="th_step", bind="query-params", help=term("heavy_ball"))
    at = min(at, steps)  # the Steps slider may just have shrunk under it
    # The key to both plots, in the lines' colours: one line of text costs less height than a
    # legend inside each narrow plot.
    st.markdown(" &nbsp; ".join(f":{COLORS[name][0]}[━━ {case_label(name, mu, clamped)}, ζ = {g3(zetas[name])}]"
                                for name, mu in cases.items()))
    pos, phase = go.Figure(), go.Figure()
    ends = []  # (name, step, x, v, colour) where a diverging trajectory was cut
    for name, (traj, k) in runs.items():
        x, v = traj[:, 0], velocity(traj)[:, 0]
        line = {"color": COLORS[name][1], "width": 4 if name == "critical" else 2}
        pos.add_trace(go.Scatter(y=x, name=name, mode="lines", line=line))
        phase.add_trace(go.Scatter(x=x, y=v, name=name, mode="lines", line=line))
        if k is not None:
            ends.append((name, k, x[-1], v[-1], line["color"]))
        if at < len(x):  # the ball at the chosen step (a diverged ball has left the chart)
            ball = {"size": 13, "color": line["color"], "line": {"color": "white", "width": 1.5}}
            hover = f"{name}<br>step {at}<br>x = {g3(x[at])}<br>v = {g3(v[at])}<extra></extra>"
            pos.add_trace(go.Scatter(x=[at], y=[x[at]], mode="markers", marker=ball, hovertemplate=hover))
            phase.add_trace(go.Scatter(x=[x[at]], y=[v[at]], mode="markers", marker=ball, hovertemplate=hover))
    mark_divergence(pos, [(k - 1, x, c, f"{n} {diverges_label(k)}") for n, k, x, _, c in ends])
    mark_divergence(phase, [(x, v, c, f"{n} {diverges_label(k)}") for n, k, x, v, c in ends])
    xs = [t[:, 0] for t, _ in runs.values()]
    vs = [velocity(t)[:, 0] for t, _ in runs.values()]
    # When every case has diverged, all there is to see is in the first few steps.
    last = steps if len(ends) < len(runs) else min(steps, max(10, 3 * max(k for _, k, *_ in ends)))
    pos.add_hline(y=0, line_dash="dot", line_color="gray")
    pos.add_vline(x=at, line_dash="dash", line_color="rgba(0,0,0,0.3)")
    pos.update_layout(title="Position x over steps", xaxis={"title": "step", "range": [0, last], **GRID},
                      yaxis={"title": "x", "range": span(*xs), **GRID}, **LAYOUT)
    phase.update_layout(title="Phase portrait: velocity against x", xaxis={"title": "x", "range": span(*xs), **GRID},
                        yaxis={"title": "v = x(t) − x(t−1)", "range": span(*vs), **GRID}, **LAYOUT)
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
    t2, k2 = simulate([1.0, lam2], lr, mu_val, steps)
    st.caption(f"Same lr {g3(lr)} as above, μ = {g3(mu_val)}: ζ = {g3(zeta(lr, mu_val, 1.0))} along x₁ (flat), "
               f"{g3(zeta(lr, mu_val, lam2))} along x₂ (stiff).", help=term("zeta"))
    if k2 is not None:
        st.caption(f"lr·λ₂ = {g3(lr * lam2)} against the stability limit 2(1+μ) = {g3(2 * (1 + mu_val))}: "
                   f"{diverges_label(k2)}.", help=term("stability"))
    elif at < len(t2):
        st.caption(f"Step {at}: x = ({g3(t2[at, 0])}, {g3(t2[at, 1])}).")

with right2:
    # Equal axes (a circle looks round) in a wide plot: x₁ gets about twice x₂'s span so the
    # plot is filled, and the loss's level lines are drawn over a box that covers either way.
    r2 = span(t2[:, 1], least=1.1)
    r1 = span(t2[:, 0], least=1.1)
    mid, half = (r1[0] + r1[1]) / 2, max(r1[1] - r1[0], 2.2 * (r2[1] - r2[0])) / 2
    r1 = [mid - half, mid + half]
    reach = max(map(abs, r1 + r2))
    grid = np.linspace(-reach, reach, 161)
    # f = ½(x₁² + λ₂x₂²), drawn as √(2f) so the ellipses are evenly spaced (f's own levels crowd
    # at the edges).
    level = np.sqrt(grid[None, :] ** 2 + lam2 * grid[:, None] ** 2)
    size = np.sqrt(lam2) * (r2[1] - r2[0]) / 12  # about six level lines across x₂'s half of the view
    f2 = go.Figure(go.Contour(x=grid, y=grid, z=level, showscale=False, hoverinfo="skip", line_width=1,
                              contours={"coloring": "lines", "start": size, "end": float(level.max()), "size": size},
                              colorscale=[[0, "#bbbbbb"], [1, "#bbbbbb"]], name="loss level lines"))
    f2.add_trace(go.Scatter(x=t2[:, 0], y=t2[:, 1], mode="lines+markers", marker={"size": 3, "color": color},
                            line={"color": color, "width": 2}, name=f"μ = {g3(mu_val)}", hoverinfo="skip"))
    f2.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker={"symbol": "star", "size": 12, "color": "black"},
                            name="minimum", hoverinfo="skip"))
    if k2 is not None:
        mark_divergence(f2, [(t2[-1, 0], t2[-1, 1], color, diverges_label(k2))])
    if at < len(t2):
        f2.add_trace(go.Scatter(x=[t2[at, 0]], y=[t2[at, 1]], mode="markers", name=f"step {at}",
                                marker={"size": 13, "color": color, "line": {"color": "white", "width": 1.5}}))
    f2.update_layout(title=f"Trajectory from (1, 1) on f = ½(x₁² + {g3(lam2)}·x₂²)",
                     xaxis={"title": "x₁ (λ = 1)", "range": r1, "constrain": "domain"},
                     yaxis={"title": f"x₂ (λ₂ = {g3(lam2)})", "range": r2, "scaleanchor": "x", "scaleratio": 1},
                     **{**LAYOUT, "height": 360, "showlegend": True}, legend={"orientation": "h", "y": -0.2})
    st.plotly_chart(f2, width="stretch")
