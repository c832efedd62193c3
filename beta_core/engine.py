"""Preparing a run and training it: one loop that yields records.

``prepare(cfg)`` builds what a run needs (device, data, loaders, model with seeded initial
weights); ``Training(cfg).run()`` trains it, yielding ``step`` and ``epoch`` records
(schemas in :mod:`beta_core.records`), and leaves ``status`` (done, diverged, cancelled),
``model`` and ``summary`` on the object.

The loop knows nothing of surgery or attribution: it calls hooks (:class:`Hook`) when the
run is set up, at the start of each epoch, after each optimizer step and after each epoch.
Surgery's frozen groups and parameter masks are hooks in ``surgery``; per-epoch attribution
(``attribution_every_epoch``) is the :class:`EpochAttribution` hook, added from the config.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .attribution import epoch_scores
from .config import TrainConfig, pick_device
from .curvature import HessianOperator, adam_preconditioner, measured_damping, power_refresh, top_hessian_eigenvalues
from .damping import regime_summary
from .damping import zeta as damping_zeta
from .data import DeviceLoader, Splits, load_splits
from .models import build_model, evaluate
from .records import EPOCH, STEP, time_to_accuracy
from .schedules import MomentumScheduler, effective_lr

__all__ = ["pick_device", "sync", "Prepared", "prepare", "Hook", "EpochAttribution", "CurvatureMeasurement",
           "MeasuredMomentum", "Training", "make_optimizer",
           "DivergenceWatch", "WeightsMismatch"]


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """The optimizer, as torch applies it to the *mean* loss of a batch. With ``bias_lr_scale``
    != 1, biases and BatchNorm shifts (1-D parameters) form a second group at ``lr x scale``
    and ``weight_decay / scale``, so every parameter decays by the same ``lr x weight_decay``
    per step (airbench's groups)."""
    params = list(params)
    if cfg.bias_lr_scale != 1:
        groups = [{"params": [p for p in params if p.ndim > 1]},
                  {"params": [p for p in params if p.ndim <= 1], "lr": cfg.lr * cfg.bias_lr_scale,
                   "weight_decay": cfg.weight_decay / cfg.bias_lr_scale}]
        params = [g for g in groups if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.mu, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov)
    opt = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return opt(params, lr=cfg.lr, betas=(cfg.mu, cfg.beta2), weight_decay=cfg.weight_decay)


def sync(device: torch.device) -> None:
    """Wait for queued GPU kernels, so a time taken next counts work done, not work queued.
    Only CUDA queues kernels asynchronously; elsewhere this does nothing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Prepared:
    """What a run trains on: built once by :func:`prepare`."""

    device: torch.device
    splits: Splits
    model: torch.nn.Module
    train_loader: DeviceLoader
    test_loader: DeviceLoader
    val_loader: DeviceLoader | None  # None without a validation split
    channels_last: bool
    autocast: bool
    steps_per_epoch: int
    total_steps: int
    forward: torch.nn.Module | None = None   # what the loop calls: the model, or torch.compile of it


def prepare(cfg: TrainConfig, data_dir: str = "data", splits: Splits | None = None,
            init_state: dict | None = None) -> Prepared:
    """Device, data (loaded unless given), loaders and the model (seeded; ``init_state`` loaded)."""
    device = pick_device(cfg.device)
    if splits is None:
        splits = load_splits(cfg.data_config(), data_dir)
    if cfg.batch_size > len(splits.train_y):
        raise ValueError(f"Invalid batch_size: {cfg.batch_size} (expected at most the {len(splits.train_y)} "
                         "training images)")
    # channels_last: faster for convs on CUDA and, measured here, ~1.6x on a 2-core CPU.
    channels_last = device.type in ("cuda", "cpu")
    autocast = device.type == "cuda"
    mean, std = splits.mean_std
    train_loader = DeviceLoader(splits.train_x, splits.train_y, cfg.batch_size, mean, std, True, cfg.seed,
                                device, channels_last)
    test_loader = DeviceLoader(splits.test_x, splits.test_y, min(1024, len(splits.test_y)), mean, std, False,
                               cfg.seed, device, channels_last)
    val_loader = None
    if splits.val_y is not None and len(splits.val_y):
        val_loader = DeviceLoader(splits.val_x, splits.val_y, min(1024, len(splits.val_y)), mean, std, False,
                                  cfg.seed, device, channels_last)
    # Same seed, same initial weights for every method: paired comparisons.
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:  # reproducible kernels (cuBLAS needs its workspace fixed before first use)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(cfg.deterministic)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not cfg.deterministic
    model = build_model(replace(cfg.model_config(), num_classes=len(splits.classes)))
    if init_state is not None:
        _load_weights(model, init_state, cfg)
    elif hasattr(model, "init_from_data"):  # airnet's whitening stem, from the training images
        model.init_from_data(train_loader.normalise(train_loader.x[:5000]).contiguous().cpu())
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    steps = len(train_loader)
    forward = torch.compile(model) if cfg.compile else model  # the uncompiled model keeps plain state_dict keys
    return Prepared(device, splits, model, train_loader, test_loader, val_loader, channels_last, autocast, steps,
                    cfg.epochs * steps, forward)


class WeightsMismatch(ValueError):
    """A state_dict that belongs to another model."""


def _load_weights(model: torch.nn.Module, state: dict, cfg: TrainConfig) -> None:
    """Load ``state`` or say in one line why it does not fit (torch's message runs to pages)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(v)} {what} (e.g. {v[0]})" for v, what in ((missing, "missing"), (unexpected, "unexpected"),
                                                                     (shapes, "of another shape")) if v]
        raise WeightsMismatch(f"Weights do not fit the model {cfg.model} (width {cfg.width or 'default'}): "
                         f"{', '.join(parts)} (expected a state_dict of this model)")
    model.load_state_dict(state)


class DivergenceWatch:
    """The divergence rule, applied to each synced window of step losses (up to 20 steps).

    A run has diverged when a loss is not finite, or when the mean loss of ``patience``
    consecutive windows exceeds ``factor`` times the run's first loss (step 0, before any
    update): cross-entropy a hundred times its starting value is not training any more (Adam
    at lr 1e6 reaches ~1e13 and never produces a NaN). Two windows, so one bad batch is not
    a verdict.
    """

    def __init__(self, factor: float = 100.0, patience: int = 2) -> None:
        self.factor, self.patience = factor, patience
        self.ref: float | None = None
        self.high = 0

    def ok(self, losses: list[float]) -> bool:
        if not losses:
            return True
        if not all(math.isfinite(v) for v in losses):
            return False
        if self.ref is None:
            self.ref = losses[0]
        mean = sum(losses) / len(losses)
        self.high = self.high + 1 if mean > self.factor * max(self.ref, 1e-3) else 0
        return self.high < self.patience

    def ended_ok(self) -> bool:
        """At the end of training: a run whose last window is still far above its first loss has
        diverged, even if it was too short for ``patience`` windows (4 steps of Adam at lr 1e6)."""
        return self.high == 0


class Hook:
    """Called by the training loop; override what you need (the defaults do nothing)."""

    def setup(self, training: Training) -> None:
        """Once, after the model is built and before the optimizer sees its parameters."""

    def start(self, training: Training) -> None:
        """Once the optimizer and schedulers exist (``training.optimizer``, ``training.momentum``),
        before the first step."""

    def epoch_start(self, training: Training, epoch: int) -> None:
        """After the model is put in train mode, before the epoch's first step."""

    def after_step(self, training: Training) -> None:
        """After each optimizer step (before the LR and momentum schedulers step)."""

    def after_epoch(self, training: Training, record: dict) -> None:
        """After evaluation; may add fields to the epoch record (they are stored as extras)."""


class EpochAttribution(Hook):
    """Per-group error-gradient scores on the first test images, every epoch (``group_scores``)."""

    def after_epoch(self, training: Training, record: dict) -> None:
        record["group_scores"] = epoch_scores(training.model, training.test_loader)


def _curvature_batch(training: Training) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed images the curvature is measured on: the first ``curvature_images`` training
    images, without augmentation, the same at every measurement."""
    loader, n = training.train_loader, min(training.cfg.curvature_images, len(training.train_loader.y))
    return [(loader.normalise(loader.x[:n]), loader.y[:n])]


def _loss_fn(training: Training):
    ls = training.cfg.label_smoothing
    return lambda out, y: F.cross_entropy(out.float(), y, label_smoothing=ls)


class CurvatureMeasurement(Hook):
    """Each epoch: the top Hessian eigenvalue on a fixed batch (Lanczos, warm-started from the
    previous epoch's vector), and the damping it implies at the epoch's last lr and mu.
    Adam: the preconditioned sharpness and its margin; no zeta."""

    def __init__(self) -> None:
        self.v0 = None

    def after_epoch(self, training: Training, record: dict) -> None:
        cfg = training.cfg
        adam = cfg.optimizer in ("adam", "adamw")
        precond = adam_preconditioner(training.optimizer, training.model) if adam else None
        t0 = time.perf_counter()
        try:
            budget = cfg.curvature_hvps if self.v0 is not None else 4 * cfg.curvature_hvps  # a cold start needs more
            vals, info = top_hessian_eigenvalues(training.model, _loss_fn(training), _curvature_batch(training), 1,
                                                 max_hvps=budget, tol=1e-2, v0=self.v0,
                                                 precond=precond, return_info=True)
        except ValueError as e:  # no convergence within the budget: say so in the record, do not stop
            record.update({"lam_max": None, "curvature_error": str(e)})
            return
        self.v0 = info["vectors"][:, 0]
        record.update(measured_damping(vals[0], record["lr"], record["momentum"], adam))
        record.update({"curvature_hvps": info["hvps"], "curvature_seconds": time.perf_counter() - t0,
                       "curvature_preconditioned": adam})


class MeasuredMomentum(Hook):
    """The ``beta-measured`` rule: the momentum scheduler's ``lam`` is the measured top
    eigenvalue, first by Lanczos before the first step, then every ``curvature_every`` steps
    by one warm-started power step (one Hessian-vector product) on the same fixed batch."""

    def __init__(self) -> None:
        self.op, self.v, self.lam, self.steps = None, None, None, 0

    def _set(self, training: Training, lam: float) -> None:
        self.lam = max(lam, 1e-6)  # a measured lam <= 0 (no curvature): the rule's limit, mu_max
        training.momentum.set_lam(self.lam)

    def start(self, training: Training) -> None:
        vals, info = top_hessian_eigenvalues(training.model, _loss_fn(training), _curvature_batch(training), 1,
                                             max_hvps=4 * training.cfg.curvature_hvps, tol=1e-2, return_info=True)
        self.v = torch.from_numpy(info["vectors"][:, 0].copy()).to(training.device, torch.float32)
        self._set(training, vals[0])

    def after_step(self, training: Training) -> None:
        self.steps += 1
        if self.steps % training.cfg.curvature_every:
            return
        self.op = HessianOperator(training.model, _loss_fn(training), _curvature_batch(training))
        lam, self.v = power_refresh(self.op, self.v, 1)
        self._set(training, lam)

    def after_epoch(self, training: Training, record: dict) -> None:
        record["lam_hat"] = self.lam


class Training:
    """One run: ``for record in Training(cfg).run(): ...``.

    After :meth:`setup` (called by :meth:`run` if needed), the prepared pieces (``model``,
    ``device``, ``train_loader``, ``test_loader``, ``total_steps``, ...) read as attributes.
    """

    def __init__(self, cfg: TrainConfig, data_dir: str = "data", splits: Splits | None = None,
                 should_stop: Callable[[], bool] = lambda: False, init_state: dict | None = None,
                 hooks: list[Hook] | tuple = ()) -> None:
        self.cfg, self.data_dir, self.should_stop, self.init_state = cfg, data_dir, should_stop, init_state
        self.splits = splits                  # pass pre-loaded data to skip loading
        self.hooks = (list(hooks) + ([EpochAttribution()] if cfg.attribution_every_epoch else [])
                      + ([MeasuredMomentum()] if cfg.momentum_rule == "beta-measured" else [])
                      + ([CurvatureMeasurement()] if cfg.curvature_every_epoch else []))
        self.prepared: Prepared | None = None
        self.status, self.summary, self.epochs_done = "created", {}, []
        self.step_seconds = 0.0               # step loops only, without evaluation

    def __getattr__(self, name: str):
        prepared = self.__dict__.get("prepared")
        if prepared is not None and hasattr(prepared, name):
            return getattr(prepared, name)
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}"
                             + ("" if prepared is not None else " (call setup() first)"))

    def setup(self) -> None:
        self.prepared = prepare(self.cfg, self.data_dir, self.splits, self.init_state)
        self.splits = self.prepared.splits
        for h in self.hooks:
            h.setup(self)

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def run(self) -> Iterator[dict]:
        """Train, yielding step and epoch records; sets ``status`` and ``summary`` at the end."""
        if self.prepared is None:
            self.setup()
        cfg, model = self.cfg, self.model
        sched = cfg.lr_schedule_for(self.total_steps)
        opt = make_optimizer(cfg, self.trainable_parameters())
        lrs = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: sched.lr(min(s, self.total_steps - 1)) / cfg.lr)
        mom = MomentumScheduler(opt, cfg.momentum_rule_for(self.total_steps))
        self.optimizer, self.momentum = opt, mom
        for h in self.hooks:
            h.start(self)
        adam = cfg.optimizer in ("adam", "adamw")  # no heavy-ball damping ratio describes Adam
        self.status, step, t0 = "running", 0, time.perf_counter()
        pending: list = []  # (record, loss tensor, correct tensor): synced in batches, not per step
        totals = [0.0, 0.0, 0]  # this epoch's loss * n, correct, n: the epoch's train loss/accuracy

        watch = DivergenceWatch()

        def flush() -> tuple[list[dict], bool]:
            """Sync the pending steps; returns their records and whether training is still sane."""
            recs = []
            for rec, loss, correct in pending:
                n, c = rec.pop("_n"), correct.item()
                rec["loss"], rec["acc"] = loss.item(), c / n
                totals[0] += rec["loss"] * n
                totals[1] += c
                totals[2] += n
                recs.append(rec)
            pending.clear()
            return recs, watch.ok([r["loss"] for r in recs])

        self.step_seconds = 0.0  # step loops only, without evaluation: what surgery accounting compares
        for epoch in range(cfg.epochs):
            model.train()
            for h in self.hooks:
                h.epoch_start(self, epoch)
            t_epoch = time.perf_counter()
            totals[:] = [0.0, 0.0, 0]
            pairs = []
            for xb, yb in self.train_loader.epoch(epoch):
                if self.should_stop():
                    yield from flush()[0]
                    return self._finish("cancelled", t0)
                lr, mu = opt.param_groups[0]["lr"], mom.get_last_momentum()[0]
                with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
                    out = self.forward(xb)
                loss = F.cross_entropy(out.float(), yb, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for h in self.hooks:
                    h.after_step(self)
                lrs.step()
                mom.step()
                correct = (out.argmax(1) == yb).sum()
                pairs.append((lr, mu))
                z = damping_zeta(lr, mu, cfg.lam) if lr > 0 and not adam else None
                pending.append(({"kind": STEP, "step": step, "epoch": epoch, "lr": lr, "momentum": mu, "zeta": z,
                                 "eff_lr": effective_lr(lr, mu) if lr > 0 else 0.0, "_n": len(yb),
                                 "time": time.perf_counter() - t0}, loss.detach(), correct))
                step += 1
                # Sync the device every 20 steps, not every step (a .item() per step stalls a GPU).
                if len(pending) >= 20:
                    recs, finite = flush()
                    yield from recs
                    if not finite:
                        return self._finish("diverged", t0)
            recs, finite = flush()
            sync(self.device)
            self.step_seconds += time.perf_counter() - t_epoch
            yield from recs
            if not finite:
                return self._finish("diverged", t0)
            yield self._epoch_record(epoch, step, totals, pairs, t0)
        return self._finish("done" if watch.ended_ok() else "diverged", t0)

    def _epoch_record(self, epoch: int, step: int, totals: list, pairs: list, t0: float) -> dict:
        tta = self.cfg.tta
        test_loss, test_acc = evaluate(self.model, self.test_loader, self.autocast, tta)
        val_loss, val_acc = (evaluate(self.model, self.val_loader, self.autocast, tta) if self.val_loader is not None
                             else (None, None))
        sync(self.device)
        loss_n, correct, n = totals
        valid = [(lr, mu) for lr, mu in pairs if lr > 0]
        zmed, regime, _ = regime_summary(valid, self.cfg.lam) if valid else (None, None, None)
        if self.cfg.optimizer in ("adam", "adamw"):
            zmed, regime = None, "n/a (Adam)"
        rec = {"kind": EPOCH, "epoch": epoch, "step": step, "train_loss": loss_n / n, "train_acc": correct / n,
               "test_loss": test_loss, "test_acc": test_acc, "regime": regime, "zeta_median": zmed,
               "lr": pairs[-1][0], "momentum": pairs[-1][1], "val_loss": val_loss, "val_acc": val_acc,
               "time": time.perf_counter() - t0}
        for h in self.hooks:
            h.after_epoch(self, rec)
        self.epochs_done.append(rec)
        return rec

    def _finish(self, status: str, t0: float) -> None:
        self.status = status
        eps = self.epochs_done
        self.summary = {
            "status": status, "epochs_completed": len(eps),
            "wall_seconds": time.perf_counter() - t0,  # steps, evaluation and hooks
            "step_seconds": self.step_seconds,         # optimizer steps only
            "final_test_acc": eps[-1]["test_acc"] if eps else None,
            "best_test_acc": max((e["test_acc"] for e in eps), default=None),
            "final_val_acc": eps[-1]["val_acc"] if eps else None,
            "best_val_acc": max((e["val_acc"] for e in eps if e["val_acc"] is not None), default=None),
            "n_train": len(self.splits.train_y), "n_val": 0 if self.splits.val_y is None else len(self.splits.val_y),
            "n_test": len(self.splits.test_y),
            "time_to_accuracy": time_to_accuracy(eps, self.cfg.thresholds),
            "device": str(self.device), "steps_per_epoch": self.steps_per_epoch,
            "data": self.splits.name, "synthetic": self.splits.synthetic,
            "regimes": [e["regime"] for e in eps],
        }
