"""Curvature of the training loss: top Hessian eigenvalues ("sharpness"), whole model and per
layer group, the Adam-preconditioned sharpness, and the damping they imply.

Products: Hessian-vector products from ``torch.func`` (forward-over-reverse: ``jvp`` of
``grad`` through ``functional_call``), exact, one product costing about three
forward-backward passes, no Hessian ever formed. Eigenvalues: scipy's Lanczos
(``scipy.sparse.linalg.eigsh``, ``which="LA"``) on a ``LinearOperator`` of those products,
with a budget of products (``max_hvps``). Why torch.func and not curvlinops: see
docs/decisions.md ("Curvature"; both measured by ``benchmarks/bench_curvature.py``).

BatchNorm is in **eval mode** during a measurement (running statistics): the loss is then a
fixed function of the weights on the fixed batches, so the operator is symmetric and the
same from one product to the next; train-mode BN would make each product depend on the
batch statistics.

Damping under a measured curvature ``lam`` (heavy ball on a quadratic):

* ``zeta = (1 - mu) / (2 sqrt(lam lr))`` (critical at 1),
* stability margin ``lr lam / (2 (1 + mu))`` (the iteration diverges above 1; Cohen et al.
  2021 find training hovers near it, "the edge of stability"),
* Adam: the preconditioned sharpness ``lam_P`` = top eigenvalue of P^-1/2 H P^-1/2 with
  P = sqrt(v_hat) + eps from Adam's state, margin ``lr lam_P (1 - beta1) / (2 + 2 beta1)``
  (Cohen et al. 2022); no heavy-ball zeta is defined for Adam.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable

import numpy as np
import torch
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh
from torch.func import functional_call, grad, jvp, vjp

from .damping import classify, zeta
from .hooks import Hook
from .models import eval_mode, group_parameters, loss_fn

__all__ = ["HessianOperator", "top_hessian_eigenvalues", "group_eigenvalues", "adam_preconditioner",
           "measured_damping", "power_refresh",
           "CurvatureMeasurement", "MeasuredMomentum", "curvature_batch"]


class HessianOperator:
    """v -> H v for the mean loss over ``batches``, w.r.t. the parameters ``names`` (default:
    all). ``precond`` (name -> tensor P) gives P^-1/2 H P^-1/2 instead. Counts its products."""

    def __init__(self, model: torch.nn.Module, loss_fn: Callable, batches: Iterable, names: list[str] | None = None,
                 precond: dict | None = None) -> None:
        self.model, self.loss_fn = model, loss_fn
        self.batches = [(x, y) for x, y in batches]
        if not self.batches:
            raise ValueError("Invalid batches: none (expected at least one (inputs, targets) batch)")
        params = dict(model.named_parameters())
        self.names = list(names) if names is not None else list(params)
        unknown = [n for n in self.names if n not in params]
        if unknown or not self.names:
            raise ValueError(f"Unknown parameters: {unknown[:3] or 'none given'} (expected names from the model)")
        self.fixed = {n: p.detach() for n, p in params.items()}
        self.buffers = {n: b.detach() for n, b in model.named_buffers()}
        self.shapes = [self.fixed[n].shape for n in self.names]
        self.sizes = [self.fixed[n].numel() for n in self.names]
        self.dim = sum(self.sizes)
        self.device, self.dtype = self.fixed[self.names[0]].device, self.fixed[self.names[0]].dtype
        self.scale = None
        if precond is not None:  # P^-1/2, flattened in parameter order
            self.scale = torch.cat([precond[n].reshape(-1).to(self.device, self.dtype).rsqrt() for n in self.names])
        self.n_total = sum(len(y) for _, y in self.batches)
        self.hvps = 0
        self.mode = "forward-over-reverse"  # until an op lacks the derivative it needs (see _hvp)

    def _hvp(self, g: Callable, primal: tuple, tangent: tuple) -> tuple:
        """H v by the first mode that works: forward over reverse (jvp of grad); reverse over
        reverse (vjp of grad: H is symmetric); a central difference of gradients, for ops with
        no second derivative in torch (hardsigmoid in MobileNetV3, whose exact second derivative
        is zero almost everywhere)."""
        if self.mode == "forward-over-reverse":
            try:
                return jvp(g, primal, tangent)[1]
            except (NotImplementedError, RuntimeError):
                self.mode = "reverse-over-reverse"
        if self.mode == "reverse-over-reverse":
            try:
                return vjp(g, *primal)[1](tangent)
            except (NotImplementedError, RuntimeError):
                self.mode = "finite-difference"
        norm = torch.sqrt(sum((t.float() ** 2).sum() for t in tangent))
        size = torch.sqrt(sum((p.float() ** 2).sum() for p in primal))
        eps = float(1e-3 * (1 + size) / max(float(norm), 1e-12))  # ~sqrt(float32 eps), relative to the weights
        plus = g(*(p + eps * t for p, t in zip(primal, tangent)))
        minus = g(*(p - eps * t for p, t in zip(primal, tangent)))
        return tuple((a - b) / (2 * eps) for a, b in zip(plus, minus))

    def _split(self, flat: torch.Tensor) -> tuple:
        return tuple(t.view(s) for t, s in zip(flat.split(self.sizes), self.shapes))

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H v (or P^-1/2 H P^-1/2 v) for a flat vector ``v`` on the model's device."""
        if self.scale is not None:
            v = v * self.scale
        tangent = self._split(v)
        primal = tuple(self.fixed[n] for n in self.names)
        out = torch.zeros(self.dim, device=self.device, dtype=self.dtype)
        with eval_mode(self.model):
            for x, y in self.batches:
                def loss(*ps, x=x, y=y):
                    full = {**self.fixed, **dict(zip(self.names, ps))}
                    return self.loss_fn(functional_call(self.model, (full, self.buffers), (x,)), y)

                with warnings.catch_warnings():
                    # The first jvp of a process loads torch's forward-AD decompositions through
                    # torch.jit.script, which warns that it is deprecated: torch's own code, not ours.
                    warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)
                    hv = self._hvp(grad(loss, argnums=tuple(range(len(primal)))), primal, tangent)
                out += torch.cat([h.reshape(-1) for h in hv]) * (len(y) / self.n_total)
        self.hvps += 1
        return out * self.scale if self.scale is not None else out

    def as_scipy(self) -> LinearOperator:
        def mv(v: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).to(self.device, self.dtype)
            return self.matvec(t).double().cpu().numpy()
        return LinearOperator((self.dim, self.dim), matvec=mv, dtype=np.float64)


def top_hessian_eigenvalues(model: torch.nn.Module, loss_fn: Callable, batches: Iterable, k: int = 1,
                            names: list[str] | None = None, max_hvps: int = 100, tol: float = 1e-3,
                            v0: np.ndarray | None = None, precond: dict | None = None,
                            return_info: bool = False):
    """The ``k`` largest (algebraic) eigenvalues of the loss Hessian, largest first.

    ``batches``: fixed (inputs, targets) pairs; the loss is their size-weighted mean.
    ``names``: restrict to these parameters (a layer group's block of the Hessian).
    ``max_hvps``: budget of Hessian-vector products (Lanczos restarts stop there; the
    eigenvalues that converged are returned, an error says so when none did). ``v0``: a
    starting vector (warm start from a previous measurement). With ``return_info``, also
    ``{"hvps": products used, "vectors": eigenvectors, "converged": bool}``.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"Invalid k: {k!r} (expected an integer >= 1)")
    op = HessianOperator(model, loss_fn, batches, names, precond)
    if k >= op.dim:
        raise ValueError(f"Invalid k: {k} (expected fewer than the {op.dim} parameters measured)")
    ncv = min(op.dim, max(2 * k + 2, 4))  # small: a warm start converges in one or two cycles
    if max_hvps < ncv:
        raise ValueError(f"Invalid max_hvps: {max_hvps} (expected at least {ncv} for k = {k})")
    converged = True
    try:
        vals, vecs = eigsh(op.as_scipy(), k=k, which="LA", ncv=ncv, tol=tol, v0=v0,
                           maxiter=max(1, max_hvps // max(1, ncv - k)))
    except ArpackNoConvergence as e:
        vals, vecs, converged = e.eigenvalues, e.eigenvectors, False
        if len(vals) == 0:
            raise ValueError(f"No eigenvalue converged within {max_hvps} Hessian-vector products "
                             f"(expected a larger max_hvps or a looser tol than {tol})") from None
    except ArpackError as e:
        if "Starting vector is zero" not in str(e):
            raise
        # H v vanished to float32 precision: the block is flat (the early stages of a deep net
        # at initialisation measure ~1e-11). Its top eigenvalues are zero as far as we can tell.
        vals, vecs = np.zeros(k), np.zeros((op.dim, k))
    order = np.argsort(vals)[::-1]
    out = [float(v) for v in vals[order]]
    if return_info:
        return out, {"hvps": op.hvps, "vectors": vecs[:, order], "converged": converged}
    return out


def group_eigenvalues(model: torch.nn.Module, loss_fn: Callable, batches: Iterable, k: int = 1,
                      max_hvps: int = 100, tol: float = 1e-3) -> dict[str, list[float]]:
    """Top-k eigenvalues of each layer group's diagonal block of the Hessian, in forward order."""
    batches = list(batches)
    out = {}
    for g, params in group_parameters(model).items():
        names = [n for n, _ in params]
        dim = sum(p.numel() for _, p in params)
        kk = min(k, dim - 1)
        if kk < 1:  # a one-parameter group: its block is a number
            op = HessianOperator(model, loss_fn, batches, names)
            out[g] = [float(op.matvec(torch.ones(1, device=op.device, dtype=op.dtype))[0])]
            continue
        out[g] = top_hessian_eigenvalues(model, loss_fn, batches, kk, names, max(max_hvps, min(dim, 2 * kk + 1)), tol)
    return out


def adam_preconditioner(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """P = sqrt(v_hat) + eps per parameter, from Adam's second-moment state (bias-corrected)."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in optimizer.param_groups:
        if "betas" not in group:
            continue
        beta2, eps = group["betas"][1], group["eps"]
        for p in group["params"]:
            st = optimizer.state.get(p)
            if not st or "exp_avg_sq" not in st:
                continue
            t = float(st["step"])
            out[names[id(p)]] = (st["exp_avg_sq"] / (1 - beta2 ** t)).sqrt() + eps
    if not out:
        raise ValueError("Invalid optimizer: no Adam second-moment state (expected an Adam/AdamW optimizer "
                         "that has taken at least one step)")
    return out


def measured_damping(lam: float, lr: float, mu: float, adam: bool = False) -> dict:
    """Damping under the measured curvature: zeta and regime (SGD only), stability margin."""
    if not (math.isfinite(lam) and lr > 0):
        return {"lam_max": lam, "zeta_measured": None, "stability_margin": None, "regime_measured": None}
    if adam:
        return {"lam_max": lam, "zeta_measured": None, "regime_measured": "n/a (Adam)",
                "stability_margin": lr * lam * (1 - mu) / (2 + 2 * mu)}
    margin = lr * lam / (2 * (1 + mu))
    if lam <= 0:
        return {"lam_max": lam, "zeta_measured": None, "stability_margin": margin, "regime_measured": "no curvature"}
    z = zeta(lr, mu, lam)
    return {"lam_max": lam, "zeta_measured": z, "stability_margin": margin, "regime_measured": classify(z)}


def power_refresh(op: HessianOperator, v: torch.Tensor, iters: int = 1) -> tuple[float, torch.Tensor]:
    """A cheap update of a tracked top eigenvalue: ``iters`` warm-started power steps.

    The Rayleigh quotient v.Hv of the previous top vector is returned with the next vector.
    Used between full Lanczos measurements (the ``beta-measured`` rule), where a handful of
    products per refresh must stay cheap; the curvature moves slowly, so the previous vector
    is already close."""
    lam = 0.0
    for _ in range(max(1, iters)):
        v = v / v.norm().clamp_min(1e-30)
        hv = op.matvec(v)
        lam = float(v @ hv)
        v = hv
    return lam, v / v.norm().clamp_min(1e-30)


# ------------------------------------------------------------------ hooks of the training loop
def curvature_batch(training) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed images the curvature is measured on: the first ``curvature_images`` training
    images, without augmentation, the same at every measurement."""
    loader, n = training.train_loader, min(training.cfg.curvature_images, len(training.train_loader.y))
    return [(loader.normalise(loader.x[:n]), loader.y[:n])]


class CurvatureMeasurement(Hook):
    """Each epoch: the top Hessian eigenvalue on a fixed batch (Lanczos, warm-started from the
    previous epoch's vector), and the damping it implies at the epoch's last lr and mu.
    Adam: the preconditioned sharpness and its margin; no zeta."""

    def __init__(self) -> None:
        self.v0 = None

    def after_epoch(self, training, record: dict) -> None:
        cfg = training.cfg
        precond = adam_preconditioner(training.optimizer, training.model) if cfg.adam else None
        t0 = time.perf_counter()
        try:
            budget = cfg.curvature_hvps if self.v0 is not None else 4 * cfg.curvature_hvps  # a cold start needs more
            vals, info = top_hessian_eigenvalues(training.model, loss_fn(cfg.label_smoothing),
                                                 curvature_batch(training), 1, max_hvps=budget, tol=1e-2, v0=self.v0,
                                                 precond=precond, return_info=True)
        except ValueError as e:  # no convergence within the budget: say so in the record, do not stop
            record.update({"lam_max": None, "curvature_error": str(e)})
            return
        self.v0 = info["vectors"][:, 0]
        record.update(measured_damping(vals[0], record["lr"], record["momentum"], cfg.adam))
        record.update({"curvature_hvps": info["hvps"], "curvature_seconds": time.perf_counter() - t0,
                       "curvature_preconditioned": cfg.adam})


class MeasuredMomentum(Hook):
    """The ``beta-measured`` rule: the momentum scheduler's ``lam`` is the measured top
    eigenvalue, first by Lanczos before the first step, then every ``curvature_every`` steps
    by one warm-started power step (one Hessian-vector product) on the same fixed batch."""

    def __init__(self) -> None:
        self.v, self.lam, self.steps = None, None, 0

    def _set(self, training, lam: float) -> None:
        self.lam = max(lam, 1e-6)  # a measured lam <= 0 (no curvature): the rule's limit, mu_max
        training.momentum.set_lam(self.lam)

    def start(self, training) -> None:
        vals, info = top_hessian_eigenvalues(training.model, loss_fn(training.cfg.label_smoothing),
                                             curvature_batch(training), 1, max_hvps=4 * training.cfg.curvature_hvps,
                                             tol=1e-2, return_info=True)
        self.v = torch.from_numpy(info["vectors"][:, 0].copy()).to(training.device, torch.float32)
        self._set(training, vals[0])

    def after_step(self, training) -> None:
        self.steps += 1
        if self.steps % training.cfg.curvature_every:
            return
        op = HessianOperator(training.model, loss_fn(training.cfg.label_smoothing), curvature_batch(training))
        lam, self.v = power_refresh(op, self.v, 1)
        self._set(training, lam)

    def after_epoch(self, training, record: dict) -> None:
        record["lam_hat"] = self.lam
