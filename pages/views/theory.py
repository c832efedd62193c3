"""Theory: heavy ball on a quadratic, under-, critically and over-damped side by side."""
import plotly.graph_objects as go
import streamlit as st

from beta_core.damping import classify, overshoots, settling_step, simulate_heavy_ball, zeta
from beta_core.schedules import beta_momentum
from beta_core.store import StoreError
from pages.views.common import get_manager, measured_sharpness

st.title("Heavy ball as a damped oscillator")
st.markdown(
    "SGD with momentum on a quadratic of curvature λ behaves like "
    "x'' + ((1-μ)/√lr)·x' + λ·x = 0, with damping ratio **ζ = (1-μ) / (2√(λ·lr))**. "
    "Critical damping (ζ = 1) gives the paper's rule **μ = 1 − 2√(λ·lr)**.")

# A real model's curvature is far from 1: offer the sharpness measured in a run (Train page,
# "Measure curvature each epoch", or `beta-core curvature RUN`).
try:
    measured = measured_sharpness(get_manager().store)
except (StoreError, OSError):  # the theory page works without a run store
    measured = {}
source = st.selectbox("Curvature λ from", ["the slider", *measured], help="runs whose sharpness was measured")
c1, c2, c3 = st.columns(3)
lr = c1.select_slider("Learning rate", options=[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1],
                      value=0.01)
if source == "the slider":
    lam = c2.slider("Curvature λ", 0.25, 4.0, 1.0, 0.25)
else:
    lam = measured[source]
    c2.metric("Curvature λ (measured)", f"{lam:.3g}")
    st.caption(f"Your run's sharpness: {source} — λ = {lam:.4g}. At lr {lr:g} the critical momentum is "
               f"{beta_momentum(lr, lam):.3f} (the paper's λ = 1 gives {beta_momentum(lr, 1.0):.3f}); heavy ball is "
               f"stable only while lr·λ < 2(1+μ): lr·λ = {lr * lam:.3g}.")
steps = c3.slider("Steps", 50, 1000, 300, 50)
mode = st.radio("Compare against", ["constant μ = 0.9 and μ = 0.3", "my own μ"], horizontal=True)
crit = beta_momentum(lr, lam)
if mode == "my own μ":
    own = st.slider("μ", 0.0, 0.99, 0.9, 0.01)
    cases = {"your μ": own, "critical": crit}
else:
    cases = {"μ = 0.9": 0.9, "critical": crit, "μ = 0.3": 0.3}

cols = st.columns(len(cases))
fig, phase = go.Figure(), go.Figure()
for col, (name, mu) in zip(cols, cases.items()):
    traj = simulate_heavy_ball([lam], lr, mu, steps)[:, 0]
    z = zeta(lr, mu, lam)
    settle = settling_step(traj[:, None])
    col.metric(f"{name}: μ = {mu:.3f}", f"ζ = {z:.2f}", classify(z), delta_color="off")
    col.caption(f"settles (|x| < 1e-3) at step {settle if settle is not None else f'> {steps}'}; "
                f"{'overshoots the minimum' if overshoots(traj[:, None]) else 'never crosses the minimum'}")
    fig.add_trace(go.Scatter(y=traj, name=f"{name} (ζ={z:.2f})", mode="lines"))
    phase.add_trace(go.Scatter(x=traj[1:], y=traj[1:] - traj[:-1], name=name, mode="lines"))
fig.add_hline(y=0, line_dash="dot")
fig.update_layout(title="Position x over steps", xaxis_title="step", yaxis_title="x", height=360)
phase.update_layout(title="Phase portrait (x, velocity)", xaxis_title="x", yaxis_title="v = x(t) − x(t−1)", height=360)
a, b = st.columns(2)
a.plotly_chart(fig, width="stretch")
b.plotly_chart(phase, width="stretch")

st.subheader("Two dimensions: one momentum, two curvatures")
lam2 = st.slider("Second curvature", 1.0, 50.0, 10.0, 1.0)
mu2d = st.radio("Momentum", ["critical for λ = 1", "critical for the stiff direction", "0.9"], horizontal=True)
mu_val = {"critical for λ = 1": beta_momentum(lr, 1.0), "critical for the stiff direction": beta_momentum(lr, lam2),
          "0.9": 0.9}[mu2d]
if lr * lam2 >= 2 * (1 + mu_val):
    st.warning(f"lr·λ = {lr * lam2:.2f} is past heavy ball's stability limit 2(1+μ): this diverges.")
t2 = simulate_heavy_ball([1.0, lam2], lr, mu_val, steps, x0=[1.0, 1.0])
f2 = go.Figure(go.Scatter(x=t2[:, 0], y=t2[:, 1], mode="lines+markers", marker={"size": 3}))
f2.update_layout(title=f"Trajectory from (1, 1), μ = {mu_val:.3f}: ζ = {zeta(lr, mu_val, 1.0):.2f} (flat), "
                 f"{zeta(lr, mu_val, lam2):.2f} (stiff)", xaxis_title="x₁ (λ = 1)", yaxis_title=f"x₂ (λ = {lam2:g})",
                 height=420)
st.plotly_chart(f2, width="stretch")
