"""Schedules: an LR schedule and what every momentum rule makes of it."""
import pandas as pd
import streamlit as st

from beta_core.damping import DEFAULT_TOL, epoch_regimes, zeta
from beta_core.schedules import (
    LR_SCHEDULES,
    WARMUP_SCHEDULES,
    LRSchedule,
    MomentumRule,
    effective_lr,
    hybrid_switch_lr,
    momentum_sequence,
)
from pages.views.common import metric_figure, run_colors, show_error, term

st.title("LR schedules and momentum rules")
plots = st.container()  # the page opens on its plots; the settings that draw them sit below
st.markdown("**Settings**")
# Every setting is kept in the URL (bind): a link opens the same schedules.
c1, c2, c3, c4 = st.columns(4)
name = c1.selectbox("LR schedule", LR_SCHEDULES, index=LR_SCHEDULES.index("cosine"), key="sc_schedule",
                    bind="query-params")
base_lr = c2.number_input("Peak LR", min_value=1e-5, max_value=2.0, value=0.1, format="%.4f", key="sc_lr",
                          bind="query-params", help=term("eff_lr"))
total = c3.number_input("Steps", min_value=10, max_value=100000, value=1000, step=100, key="sc_steps",
                        bind="query-params", help=term("step"))
warm = c4.number_input("Warm-up steps", min_value=0, max_value=int(total) - 1, value=0, key="sc_warmup",
                       bind="query-params", disabled=name not in WARMUP_SCHEDULES,
                       help="Cosine and linear schedules only (one-cycle has its own ramp).\n\n" + term("warmup"))
c5, c6, c7 = st.columns(3)
lam = c5.number_input("Curvature λ", min_value=0.01, max_value=100.0, value=1.0, key="sc_lam", bind="query-params",
                      help=term("lam"))
mu_c = c6.slider("Constant μ (and hybrid's μ after the switch)", 0.0, 0.99, 0.9, 0.01, key="sc_mu",
                 bind="query-params", help=term("constant", "hybrid"))
mu_max = c7.slider("Clamp ceiling μ_max", 0.5, 0.999, 0.99, 0.001, key="sc_mumax", bind="query-params",
                   help=term("mu_max"))

try:
    sched = LRSchedule(name, base_lr, int(total), int(warm) if name in WARMUP_SCHEDULES else 0,
                       step_size=max(1, int(total) // 3))
except ValueError as e:
    show_error(e)
    st.stop()
lrs = [sched.lr(s) for s in range(int(total))]
rules = {
    "constant": MomentumRule("constant", mu=mu_c),
    "beta": MomentumRule("beta", lam=lam, mu_max=mu_max),
    "exact": MomentumRule("exact", lam=lam, mu_max=mu_max),
    "hybrid": MomentumRule("hybrid", mu=mu_c, lam=lam, mu_max=mu_max),
    "onecycle": MomentumRule("onecycle", total_steps=int(total)),
}
frames = {}
for rule_name, rule in rules.items():
    mus = momentum_sequence(rule, lrs)
    frames[rule_name] = pd.DataFrame({
        "step": range(len(lrs)), "lr": lrs, "momentum": mus,
        "zeta": [zeta(lr, mu, lam) if lr > 0 else None for lr, mu in zip(lrs, mus)],
        "eff_lr": [effective_lr(lr, mu) if lr > 0 else None for lr, mu in zip(lrs, mus)]})
colors = run_colors(frames)
names = {k: k for k in frames}
low = next((s for s, v in enumerate(lrs) if 0 < v <= hybrid_switch_lr(mu_c)), None)
with plots:
    beta = frames["beta"].dropna(subset=["zeta"])
    under = beta[beta["zeta"] < 0.99]  # clamped at μ = 0: 1 - 2√(λ·lr) < 0 above lr = 1/(4λ)
    start = (f"ζ = 1 at λ = {lam:g}" if under.empty else
             f"clamped: 1 − 2√(λ·lr) is below 0 above LR {1 / (4 * lam):g}, so ζ = {beta['zeta'].iloc[0]:.2f}, "
             f"**underdamped**, until step {int(under['step'].iloc[-1]) + 1:,}")
    st.markdown(f"With a {name} schedule from LR {base_lr:g}, the beta rule starts at μ = "
                f"{frames['beta']['momentum'].iloc[0]:.3f} ({start}) and rises as the LR falls; hybrid = "
                + (f"beta until step {max(0, low - 1):,} of {int(total):,}, then holds μ = {mu_c:g}." if low is not None
                   else f"beta for the whole schedule (its LR never falls to {hybrid_switch_lr(mu_c):.4g})."))
    a, b = st.columns(2)
    a.plotly_chart(metric_figure(frames, names, colors, "step", "momentum", "Momentum μ"), width="stretch")
    b.plotly_chart(metric_figure(frames, names, colors, "step", "zeta", "Damping ratio ζ (log)", log_y=True,
                                 bands=True), width="stretch")
st.plotly_chart(metric_figure({"lr": frames["beta"]}, {"lr": "lr"}, {"lr": "#444"}, "step", "lr", "Learning rate"),
                width="stretch")
st.plotly_chart(metric_figure(frames, names, colors, "step", "eff_lr", "Effective step lr/(1−μ) (log)", log_y=True),
                width="stretch")
st.caption("Under the beta rule the effective step is √lr/2, far below 10·lr with μ = 0.9: comparisons at the "
           "same LR are not comparisons at the same step size. The exact rule's ζ sits below 1 (about 0.84 at lr "
           "0.1): its μ = (1 − √(lr·λ))² comes from the discrete-time analysis, while ζ here is the beta rule's "
           "continuous one; the two agree only at small LRs.")
st.caption("hybrid = beta " + (f"until step {max(0, low - 1):,} of {int(total):,}: at step {low:,} the LR falls to "
                               f"{hybrid_switch_lr(mu_c):.4g}, beta's μ reaches {mu_c:g}, and hybrid holds μ there"
                               if low is not None
                               else f"for the whole schedule (its LR never falls to {hybrid_switch_lr(mu_c):.4g})"))

st.subheader("Damping regime through training", help=term("regime", "zeta"))
tenth = max(1, int(total) // 10)
table = {rule: [r.regime for r in epoch_regimes([(v, m) for v, m in zip(lrs, f["momentum"]) if v > 0], tenth, lam)]
         for rule, f in frames.items()}
spans = [f"steps {i * tenth:,}–{min((i + 1) * tenth, int(total)) - 1:,}" for i in range(len(table["beta"]))]
st.dataframe(pd.DataFrame(table, index=spans), width="stretch", placeholder="—")  # a row per stretch: all columns fit
st.caption(f"Regime of the median ζ over each tenth of the steps with LR > 0 (critical: |ζ − 1| ≤ {DEFAULT_TOL:g}), "
           f"λ = {lam:g}.")
