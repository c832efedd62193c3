import math

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_config

from beta_core.curvature import (
    HessianOperator,
    adam_preconditioner,
    group_eigenvalues,
    measured_damping,
    power_refresh,
    top_hessian_eigenvalues,
)
from beta_core.engine import Training
from beta_core.records import EPOCH


class Quadratic(torch.nn.Module):
    """out = x @ w; with loss 0.5 * mean((out - y)^2) * 2 / 2 the Hessian in w is X^T X / n."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(d, dtype=torch.float64))

    def forward(self, x):
        return x @ self.w


def mse(out, y):
    return 0.5 * ((out - y) ** 2).mean()


def test_quadratic_with_known_hessian():
    torch.manual_seed(0)
    x = torch.randn(200, 12, dtype=torch.float64)
    h = x.T @ x / len(x)
    truth = sorted(torch.linalg.eigvalsh(h).tolist(), reverse=True)
    got = top_hessian_eigenvalues(Quadratic(12), mse, [(x, torch.zeros(200, dtype=torch.float64))], k=3,
                                  max_hvps=200, tol=1e-10)
    assert got == pytest.approx(truth[:3], rel=1e-4)


def _mlp():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()


def _dense_hessian(model, x, y, names):
    params = dict(model.named_parameters())
    flat = torch.cat([params[n].detach().reshape(-1) for n in names])
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]

    def f(v):
        ps = {n: t.view(s) for n, t, s in zip(names, v.split(sizes), shapes)}
        out = torch.func.functional_call(model, {**{k: p.detach() for k, p in params.items()}, **ps}, (x,))
        return F.cross_entropy(out, y)

    return torch.autograd.functional.hessian(f, flat)


def test_mlp_top_eigenvalue_matches_dense_hessian_and_group_blocks():
    model = _mlp()
    x, y = torch.randn(64, 6, dtype=torch.float64), torch.randint(0, 3, (64,))
    names = [n for n, _ in model.named_parameters()]
    dense = _dense_hessian(model, x, y, names)
    top = float(torch.linalg.eigvalsh(dense)[-1])
    got = top_hessian_eigenvalues(model, F.cross_entropy, [(x[:32], y[:32]), (x[32:], y[32:])], max_hvps=300, tol=1e-8)
    assert got[0] == pytest.approx(top, rel=1e-2)
    groups = group_eigenvalues(model, F.cross_entropy, [(x, y)], k=1, max_hvps=300, tol=1e-8)
    offset = 0
    for g, params in (("0", ["0.weight", "0.bias"]), ("2", ["2.weight", "2.bias"])):
        n = sum(dict(model.named_parameters())[p].numel() for p in params)
        block = dense[offset:offset + n, offset:offset + n]
        assert groups[g][0] == pytest.approx(float(torch.linalg.eigvalsh(block)[-1]), rel=1e-2)
        offset += n


def test_preconditioned_sharpness_matches_dense():
    model = _mlp()
    x, y = torch.randn(64, 6, dtype=torch.float64), torch.randint(0, 3, (64,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    p = adam_preconditioner(opt, model)
    names = [n for n, _ in model.named_parameters()]
    dense = _dense_hessian(model, x, y, names)
    s = torch.cat([p[n].reshape(-1) for n in names]).rsqrt()
    truth = float(torch.linalg.eigvalsh(s[:, None] * dense * s[None, :])[-1])
    got = top_hessian_eigenvalues(model, F.cross_entropy, [(x, y)], precond=p, max_hvps=300, tol=1e-8)
    assert got[0] == pytest.approx(truth, rel=1e-2)
    with pytest.raises(ValueError, match="no Adam second-moment state"):
        adam_preconditioner(torch.optim.SGD(model.parameters(), lr=0.1), model)


def test_power_refresh_tracks_the_top_eigenvalue():
    torch.manual_seed(0)
    x = torch.randn(100, 5, dtype=torch.float64)
    op = HessianOperator(Quadratic(5), mse, [(x, torch.zeros(100, dtype=torch.float64))])
    lam, v = power_refresh(op, torch.ones(5, dtype=torch.float64), iters=200)
    assert lam == pytest.approx(float(torch.linalg.eigvalsh(x.T @ x / 100)[-1]), rel=1e-6)
    assert op.hvps == 200


def test_measured_damping():
    d = measured_damping(lam=40.0, lr=0.1, mu=0.9)
    assert d["zeta_measured"] == pytest.approx(0.1 / (2 * math.sqrt(4.0))) and d["regime_measured"] == "underdamped"
    assert d["stability_margin"] == pytest.approx(0.1 * 40 / 3.8)
    a = measured_damping(lam=100.0, lr=1e-3, mu=0.9, adam=True)
    assert a["zeta_measured"] is None and a["regime_measured"] == "n/a (Adam)"
    assert a["stability_margin"] == pytest.approx(1e-3 * 100 * 0.1 / 3.8)


def test_measured_rule_writes_beta_of_the_measured_curvature(tiny_splits):
    """sgd-beta-measured on a run: the momentum written is 1 - 2 sqrt(lam_hat lr) with lam_hat the
    Lanczos value on the fixed batch, not lam = 1."""
    t = Training(tiny_config(method="sgd-beta-measured", lr=0.01, lr_schedule="constant", epochs=1,
                             curvature_every=1000), splits=tiny_splits)
    t.setup()
    recs = t.run()
    first = next(recs)  # step 0: lam_hat measured before it
    lam = t.momentum.rule.lam
    assert lam != 1.0 and first["momentum"] == pytest.approx(max(0.0, min(0.99, 1 - 2 * math.sqrt(lam * 0.01))))
    ep = [r for r in recs if r["kind"] == EPOCH]
    assert ep[-1]["lam_hat"] == pytest.approx(lam)


def test_curvature_in_training_records_and_adam_is_na(tiny_splits):
    t = Training(tiny_config(epochs=2, curvature_every_epoch=True, curvature_hvps=30), splits=tiny_splits)
    eps = [r for r in t.run() if r["kind"] == EPOCH]
    assert all(r["lam_max"] > 0 and r["stability_margin"] > 0 and r["regime_measured"] for r in eps)
    cfg = tiny_config(method="adam", epochs=1, curvature_every_epoch=True, curvature_hvps=30)
    a = Training(cfg, splits=tiny_splits)
    recs = list(a.run())
    ep = [r for r in recs if r["kind"] == EPOCH][0]
    assert ep["regime"] == "n/a (Adam)" and ep["zeta_median"] is None and ep["regime_measured"] == "n/a (Adam)"
    assert ep["curvature_preconditioned"] and ep["lam_max"] > 0
    assert all(r["zeta"] is None for r in recs if r["kind"] == "step")


def test_no_torch_jit_warning_reaches_the_user():
    """torch's forward AD loads its decompositions through torch.jit.script on the first jvp of a
    process (airnet's ops need them) and warns; that warning is silenced where we call jvp."""
    import subprocess
    import sys

    code = ("import torch; from beta_core.models import ModelConfig, build_model; "
            "from beta_core.curvature import top_hessian_eigenvalues; torch.manual_seed(0); "
            "m = build_model(ModelConfig('airnet', widths=(4, 4, 4))).eval(); "
            "b = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))]; "
            "print(top_hessian_eigenvalues(m, torch.nn.functional.cross_entropy, b, 1, max_hvps=8, tol=0.5))")
    out = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "FutureWarning" not in out.stderr, out.stderr[-2000:]


@pytest.mark.parametrize("mode", ["reverse-over-reverse", "finite-difference"])
def test_fallback_products_match_forward_over_reverse(mode):
    # Models with an op torch cannot differentiate twice (MobileNetV3's hardsigmoid) fall back to
    # these; each must give the same H v as the default, in float32 as models train.
    torch.manual_seed(0)
    model = _mlp().float()
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    exact = HessianOperator(model, F.cross_entropy, [(x, y)])
    other = HessianOperator(model, F.cross_entropy, [(x, y)])
    other.mode = mode
    v = torch.randn(exact.dim)
    a, b = exact.matvec(v), other.matvec(v)
    assert exact.mode == "forward-over-reverse"
    assert float((a - b).norm() / a.norm()) < (1e-5 if mode == "reverse-over-reverse" else 2e-2)


def test_an_op_without_second_derivatives_falls_back():
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Hardsigmoid(), torch.nn.Linear(8, 3))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    op = HessianOperator(model, F.cross_entropy, [(x, y)])
    hv = op.matvec(torch.randn(op.dim))
    assert op.mode == "finite-difference" and torch.isfinite(hv).all()
