"""Preparing a run and training it: one loop that yields records.

``prepare(cfg)`` builds what a run needs (device, data, loaders, model with seeded initial
weights); ``Training(cfg).run()`` trains it, yielding ``step`` and ``epoch`` records
(schemas in :mod:`beta_core.records`), and leaves ``status`` (done, diverged, cancelled),
``model`` and ``summary`` on the object.

The loop calls hooks (:class:`~beta_core.hooks.Hook`) when the run is set up, at the start of
each epoch, after each optimizer step and after each epoch; each hook lives beside its maths
(surgery's masks in ``surgery``, per-epoch attribution in ``attribution``, curvature and the
beta-measured rule in ``curvature``). :func:`config_hooks` is the one table of the hooks a
config asks for; callers pass their own beside them.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

from .attribution import EpochAttribution, add_weight_noise
from .config import TrainConfig
from .curvature import CurvatureMeasurement, MeasuredMomentum
from .damping import regime_summary
from .damping import zeta as damping_zeta
from .data import DeviceLoader, Splits, balanced_subset, check_source, load_splits, train_images
from .hooks import Hook
from .models import build_model, check_model, evaluate, group_parameters, layer_groups, loss_fn
from .provenance import environment
from .records import EPOCH, STEP, EpochRecord, StepRecord, TrainSummary, time_to_accuracy
from .schedules import MomentumScheduler, effective_lr

__all__ = ["pick_device", "check_data", "sync", "Prepared", "prepare", "Hook",
           "config_hooks", "Training", "make_optimizer", "DivergenceWatch", "WeightsMismatch"]


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


# ------------------------------------------------------------------ before a run exists
def pick_device(name: str = "auto") -> torch.device:
    """``auto``: cuda, then mps, then cpu. An explicit device that is absent is an error."""
    has = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if name == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if has[d]))
    if not has.get(name, False):
        raise ValueError(f"Invalid device {name!r}: no {name.upper()} device here (expected one of "
                         f"{[d for d, ok in has.items() if ok]} or 'auto')")
    return torch.device(name)


def check_data(configs: list[TrainConfig], data_dir: str = "data", devices: bool = True, decode: bool = True) -> None:
    """What can be known before any run is created: each distinct data source reads (see
    ``data.check_source``), each distinct model builds and runs on its input size (see
    ``models.check_model``: imports, factories, pretrained weights) and, with ``devices`` (runs
    that train on this machine, not on a Ray cluster), each device asked for exists here.
    ``decode``: see ``data.check_source`` (the app lists a folder; its runs decode it, visibly)."""
    images = {}
    for dc in {c.data for c in configs}:
        check_source(dc, data_dir, decode)
        pool = train_images(replace(dc, train_subset=None), data_dir)  # once per data: a folder's listing walked
        images[dc] = min(dc.train_subset or pool, pool)
        if dc.train_subset and dc.train_subset > pool:  # the loader would take all, and the run say it asked more
            raise ValueError(f"Invalid train_subset: {dc.train_subset:,} (expected at most the {pool:,} training "
                             "images this data gives after the validation split, or none for all; no run was "
                             "created)")
    for c in configs:  # as the engine would refuse it, but before the run exists
        n = images[c.data]
        if c.batch_size > n:
            raise ValueError(f"Invalid batch_size: {c.batch_size} (expected at most the {n:,} training images this "
                             "data gives after the validation split; no run was created)")
    for mc in {c.model for c in configs}:
        check_model(mc)
    for c in (c for c in configs if c.planted_fault):  # a group name checked on the meta device: no weights
        with torch.device("meta"):
            groups = group_parameters(build_model(c.model, pretrained=False))
        if c.fault()[0] not in groups:
            raise ValueError(f"Unknown layer group in planted_fault: {c.fault()[0]!r} (expected one of "
                             f"{', '.join(groups)}; no run was created)")
    for d in {c.device for c in configs} if devices else ():
        pick_device(d)


def prepare(cfg: TrainConfig, data_dir: str = "data", splits: Splits | None = None,
            init_state: dict | None = None) -> Prepared:
    """Device, data (loaded unless given), loaders and the model (seeded; ``init_state`` loaded)."""
    device = pick_device(cfg.device)
    if cfg.threads:  # float reductions split by thread: the count is part of the run, not of the launcher
        torch.set_num_threads(cfg.threads)
    if splits is None:
        splits = load_splits(cfg.data, data_dir)
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
    model = build_model(replace(cfg.model, num_classes=len(splits.classes)), pretrained=init_state is None)
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
        raise WeightsMismatch(f"Weights do not fit the model {cfg.model.name} (width {cfg.model.width or 'default'}): "
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


class IntervalEvaluation(Hook):
    """``evals_per_epoch`` evaluations of a fixed, class-balanced test subset within each epoch
    (the last at its end): the epoch record's ``evals`` lists ``[step, seconds, accuracy]``, the
    series a sweep reads time-to-target from, interpolated between evaluations."""

    def setup(self, training: Training) -> None:
        cfg, s = training.cfg, training.splits
        idx = balanced_subset(s.test_y, min(cfg.eval_images, len(s.test_y)), cfg.data.data_seed + 3)
        mean, std = s.mean_std
        self.loader = DeviceLoader(s.test_x[idx], s.test_y[idx], min(1024, len(idx)), mean, std, False, cfg.seed,
                                   training.device, training.channels_last)
        self.every = max(1, training.steps_per_epoch // cfg.evals_per_epoch)
        self.steps, self.evals = 0, []

    def after_step(self, training: Training) -> None:
        self.steps += 1
        if self.steps % self.every == 0 or self.steps % training.steps_per_epoch == 0:
            _, acc = evaluate(training.model, self.loader, training.autocast, training.cfg.tta)
            self.evals.append([self.steps, time.perf_counter() - training.started, acc])

    def after_epoch(self, training: Training, record: dict) -> None:
        record["evals"], self.evals = self.evals, []


def config_hooks(cfg: TrainConfig) -> list[Hook]:
    """The hooks a config asks for (evaluations within epochs, per-epoch attribution, per-epoch
    curvature, the beta-measured rule); a caller passes its own beside them."""
    return (([IntervalEvaluation()] if cfg.evals_per_epoch else [])
            + ([EpochAttribution()] if cfg.attribution_every_epoch else [])
            + ([MeasuredMomentum()] if cfg.momentum_rule == "beta-measured" else [])
            + ([CurvatureMeasurement()] if cfg.curvature_every_epoch else []))


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
        self.hooks = list(hooks) + config_hooks(cfg)
        self.prepared: Prepared | None = None
        self.status, self.summary, self.epochs_done = "created", {}, []
        self.step_seconds = 0.0               # step loops only, without evaluation

    def setup(self) -> None:
        """Build the run (:func:`prepare`); its pieces become attributes: ``model``, ``device``,
        ``train_loader``, ``test_loader``, ``val_loader``, ``total_steps``, ``steps_per_epoch``, ..."""
        p = self.prepared = prepare(self.cfg, self.data_dir, self.splits, self.init_state)
        self.device, self.splits, self.model, self.forward = p.device, p.splits, p.model, p.forward
        self.train_loader, self.test_loader, self.val_loader = p.train_loader, p.test_loader, p.val_loader
        self.channels_last, self.autocast = p.channels_last, p.autocast
        self.steps_per_epoch, self.total_steps = p.steps_per_epoch, p.total_steps
        fault = self.cfg.fault()
        if fault and fault[0] not in group_parameters(self.model):  # before a step is spent
            raise ValueError(f"Unknown layer group in planted_fault: {fault[0]!r} (expected one of "
                             f"{', '.join(group_parameters(self.model))})")
        for h in self.hooks:
            h.setup(self)

    def start_summary(self) -> dict:
        """What is known once the run is set up: what a live page reads, kept in the final summary
        (every launcher writes this, so a run's summary has the same keys wherever it ran)."""
        return {"total_steps": self.total_steps, "data": self.splits.name, "synthetic": self.splits.synthetic,
                "device": str(self.device), "groups": [[g.name, g.n_params] for g in layer_groups(self.model)],
                "environment": environment(self.device)}

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def run(self) -> Iterator[StepRecord | EpochRecord]:
        """Train, yielding step and epoch records; sets ``status`` and ``summary`` at the end."""
        if self.prepared is None:
            self.setup()
        cfg, model = self.cfg, self.model
        sched = cfg.lr_schedule_for(self.total_steps)
        opt = make_optimizer(cfg, self.trainable_parameters())
        lrs = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: sched.lr(min(s, self.total_steps - 1)) / cfg.lr)
        mom = MomentumScheduler(opt, cfg.momentum_rule_for(self.total_steps))
        criterion = loss_fn(cfg.label_smoothing)
        self.optimizer, self.momentum = opt, mom
        for h in self.hooks:
            h.start(self)
        self.status, step, t0 = "running", 0, time.perf_counter()
        self.started = t0  # hooks time their records from here
        watch = DivergenceWatch()
        self.step_seconds = 0.0  # step loops only, without evaluation: what surgery accounting compares
        pending: list = []  # (record, batch size, loss tensor, correct tensor): synced in batches, not per step
        loss_sum, correct_sum, seen = 0.0, 0, 0  # the epoch's training loss and accuracy, over synced steps

        def flush() -> tuple[list[dict], bool]:
            """Sync the pending steps; their records, and whether training is still sane."""
            nonlocal loss_sum, correct_sum, seen
            recs = []
            for rec, n, loss, correct in pending:
                rec["loss"], c = loss.item(), correct.item()
                rec["acc"] = c / n
                loss_sum, correct_sum, seen = loss_sum + rec["loss"] * n, correct_sum + c, seen + n
                recs.append(rec)
            pending.clear()
            return recs, watch.ok([r["loss"] for r in recs])

        for epoch in range(cfg.epochs):
            model.train()
            for h in self.hooks:
                h.epoch_start(self, epoch)
            t_epoch = time.perf_counter()
            loss_sum, correct_sum, seen = 0.0, 0, 0
            pairs = []  # (lr, mu) of every step: the epoch's damping regime
            for xb, yb in self.train_loader.epoch(epoch):
                if self.should_stop():
                    yield from flush()[0]
                    return self._finish("cancelled", t0)
                lr, mu = opt.param_groups[0]["lr"], mom.get_last_momentum()[0]
                with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
                    out = self.forward(xb)
                loss = criterion(out, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for h in self.hooks:
                    h.after_step(self)
                lrs.step()
                mom.step()
                pairs.append((lr, mu))
                z = damping_zeta(lr, mu, cfg.lam) if lr > 0 and not cfg.adam else None  # none describes Adam
                rec = {"kind": STEP, "step": step, "epoch": epoch, "lr": lr, "momentum": mu, "zeta": z,
                       "eff_lr": effective_lr(lr, mu) if lr > 0 else 0.0, "time": time.perf_counter() - t0}
                pending.append((rec, len(yb), loss.detach(), (out.argmax(1) == yb).sum()))
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
            yield self._epoch_record(epoch, step, loss_sum / seen, correct_sum / seen, pairs, t0)
        return self._finish("done" if watch.ended_ok() else "diverged", t0)

    def _epoch_record(self, epoch: int, step: int, train_loss: float, train_acc: float, pairs: list,
                      t0: float) -> dict:
        tta = self.cfg.tta
        test_loss, test_acc = evaluate(self.model, self.test_loader, self.autocast, tta)
        val_loss, val_acc = (evaluate(self.model, self.val_loader, self.autocast, tta) if self.val_loader is not None
                             else (None, None))
        sync(self.device)
        valid = [(lr, mu) for lr, mu in pairs if lr > 0]
        zmed, regime, _ = regime_summary(valid, self.cfg.lam) if valid else (None, None, None)
        if self.cfg.adam:
            zmed, regime = None, "n/a (Adam)"
        rec = {"kind": EPOCH, "epoch": epoch, "step": step, "train_loss": train_loss, "train_acc": train_acc,
               "test_loss": test_loss, "test_acc": test_acc, "regime": regime, "zeta_median": zmed,
               "lr": pairs[-1][0], "momentum": pairs[-1][1], "val_loss": val_loss, "val_acc": val_acc,
               "time": time.perf_counter() - t0}
        for h in self.hooks:
            h.after_epoch(self, rec)
        self.epochs_done.append(rec)
        return rec

    def _plant_fault(self) -> dict:
        """The planted fault (``cfg.planted_fault``), after training: noise into one group's
        weights (seeded by the run's seed), and the held-out accuracies before and after it."""
        group, strength = self.cfg.fault()
        g = torch.Generator().manual_seed(self.cfg.seed)
        with torch.no_grad():
            for _, p in group_parameters(self.model)[group]:
                add_weight_noise(p, strength, g)
        last = self.epochs_done[-1]
        after = {k: evaluate(self.model, loader, self.autocast, self.cfg.tta)[1] if loader is not None else None
                 for k, loader in (("test", self.test_loader), ("val", self.val_loader))}
        return {"group": group, "strength": strength, "test_acc_before": last["test_acc"],
                "test_acc_after": after["test"], "val_acc_before": last["val_acc"], "val_acc_after": after["val"]}

    def _finish(self, status: str, t0: float) -> None:
        self.status = status
        eps = self.epochs_done
        fault = self._plant_fault() if status == "done" and self.cfg.planted_fault and eps else None
        self.summary: TrainSummary = {
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
        if fault:  # the run's model is the damaged one: its final accuracies are after the fault
            self.summary.update({"planted_fault": fault, "final_test_acc": fault["test_acc_after"],
                                 "final_val_acc": fault["val_acc_after"]})
