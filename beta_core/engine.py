"""One training loop: config, named methods, records, time-to-accuracy.

``Training(cfg).run()`` yields records with one fixed schema each:

* step:  step, epoch, lr, momentum, zeta, eff_lr, loss, acc, time
* epoch: epoch, step, train_loss, train_acc, test_loss, test_acc, regime, zeta_median,
  lr, momentum, time (plus group attribution scores when enabled)

and leaves ``status`` (done, diverged, cancelled), ``model`` and ``summary`` on the object.

Named methods fix a few fields; any field given explicitly wins:

==============  ==========================================================
sgd-constant    SGD, constant momentum 0.9 (the convention)
sgd-beta        SGD, beta rule mu = 1 - 2*sqrt(lr)
sgd-hybrid      SGD, beta until mu reaches 0.9, then 0.9
sgd-onecycle    SGD, one-cycle LR and momentum 0.95 -> 0.85 -> 0.95
adam            Adam, lr 1e-3, beta1 = 0.9
adam-beta       Adam, lr 1e-3, beta1 from the beta rule
==============  ==========================================================
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .damping import regime_summary, zeta as damping_zeta
from .data import DataConfig, DeviceLoader, Splits, load_splits
from .models import ModelConfig, build_model
from .schedules import LRSchedule, MomentumRule, MomentumScheduler, effective_lr

__all__ = ["METHODS", "OPTIMIZERS", "TrainConfig", "resolve_config", "Training", "pick_device",
           "time_to_accuracy", "STEP_FIELDS", "EPOCH_FIELDS", "evaluate", "predict"]

OPTIMIZERS = ("sgd", "adam", "adamw")
METHODS: dict[str, dict] = {
    "sgd-constant": {"optimizer": "sgd", "momentum_rule": "constant", "mu": 0.9},
    "sgd-beta": {"optimizer": "sgd", "momentum_rule": "beta"},
    "sgd-hybrid": {"optimizer": "sgd", "momentum_rule": "hybrid", "mu": 0.9},
    "sgd-onecycle": {"optimizer": "sgd", "momentum_rule": "onecycle", "lr_schedule": "onecycle"},
    "adam": {"optimizer": "adam", "momentum_rule": "constant", "mu": 0.9, "lr": 1e-3},
    "adam-beta": {"optimizer": "adam", "momentum_rule": "beta", "lr": 1e-3},
}
STEP_FIELDS = ("step", "epoch", "lr", "momentum", "zeta", "eff_lr", "loss", "acc", "time")
EPOCH_FIELDS = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "regime",
                "zeta_median", "lr", "momentum", "time")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; stored (resolved) with every run so it can be reproduced."""

    method: str = "sgd-beta"            # one of METHODS: sets the fields it fixes
    # data
    dataset: str = "auto"               # auto | synthetic | cifar10 | folder
    data_path: str | None = None        # ImageFolder tree or .tar.gz (dataset folder/auto)
    train_subset: int | None = None     # class-balanced training images; None = all
    test_subset: int | None = None      # class-balanced test images; None = all
    synthetic_train: int = 10000        # synthetic dataset size (train)
    synthetic_test: int = 2000          # synthetic dataset size (test)
    # model
    model: str = "small_cnn"            # small_cnn | small_resnet | resnet18
    width: int | None = None            # first-stage channels; None = the model's default
    # optimisation
    epochs: int = 4                     # passes over the training set
    batch_size: int = 128               # images per step
    optimizer: str = "sgd"              # sgd | adam | adamw
    lr: float = 0.1                     # peak LR (SGD batch 128 on CIFAR-10: 0.1)
    weight_decay: float = 5e-4          # L2 (decoupled for adamw)
    nesterov: bool = False              # SGD only
    beta2: float = 0.999                # Adam's second-moment decay
    lr_schedule: str = "cosine"         # constant | step | cosine | linear | onecycle
    warmup_epochs: float = 0.0          # linear warm-up length (cosine, linear)
    min_lr: float = 0.0                 # cosine floor / linear end
    momentum_rule: str = "beta"         # constant | beta | exact | hybrid | onecycle
    mu: float = 0.9                     # constant momentum; hybrid's value after the switch
    lam: float = 1.0                    # curvature in the critical-damping formula (paper: 1)
    mu_min: float = 0.0                 # clamp floor of beta/exact/hybrid
    mu_max: float = 0.99                # clamp ceiling of beta/exact/hybrid
    hybrid_switch: str | float = "auto" # "auto" or a fraction of training
    label_smoothing: float = 0.0        # cross-entropy label smoothing
    # run
    seed: int = 0                       # weights, data order, augmentation: paired across methods
    device: str = "auto"                # auto (cuda, mps, cpu) | cuda | mps | cpu
    thresholds: tuple = (0.9, 0.95)     # test accuracies for time-to-accuracy, in (0, 1]
    attribution_every_epoch: bool = False  # record per-group error-gradient scores each epoch
    data_seed: int = 0                  # synthetic data and subset choice

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Unknown method: {self.method!r} (expected one of {tuple(METHODS)})")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer: {self.optimizer!r} (expected one of {OPTIMIZERS})")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"Invalid epochs: {self.epochs!r} (expected an integer >= 1)")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"Invalid batch_size: {self.batch_size!r} (expected an integer >= 1)")
        if self.device not in ("auto", "cuda", "mps", "cpu"):
            raise ValueError(f"Unknown device: {self.device!r} (expected auto, cuda, mps or cpu)")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"Invalid weight_decay: {self.weight_decay!r} (expected >= 0)")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"Invalid label_smoothing: {self.label_smoothing!r} (expected [0, 1))")
        if not 0 < self.beta2 < 1:
            raise ValueError(f"Invalid beta2: {self.beta2!r} (expected (0, 1))")
        if not self.thresholds or any(not (isinstance(t, (int, float)) and 0 < t <= 1) for t in self.thresholds):
            raise ValueError(f"Invalid thresholds: {self.thresholds!r} (expected accuracies in (0, 1])")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            raise ValueError(f"Invalid warmup_epochs: {self.warmup_epochs!r} (expected 0 <= warmup_epochs <= epochs)")
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        self.data_config(), self.model_config()
        self.lr_config(100), self.momentum_config(100)  # validates those fields early

    # --------------------------------------------------------- sub-configs
    def data_config(self) -> DataConfig:
        return DataConfig(self.dataset, self.data_path, self.train_subset, self.test_subset,
                          self.synthetic_train, self.synthetic_test, self.data_seed)

    def model_config(self) -> ModelConfig:
        return ModelConfig(self.model, self.width)

    def lr_config(self, total_steps: int) -> LRSchedule:
        warm = round(self.warmup_epochs / self.epochs * total_steps)
        return LRSchedule(self.lr_schedule, self.lr, total_steps, warm, self.min_lr,
                          step_size=max(1, total_steps // 3), gamma=0.1)

    def momentum_config(self, total_steps: int) -> MomentumRule:
        return MomentumRule(self.momentum_rule, self.mu, self.lam, self.mu_min, self.mu_max,
                            self.hybrid_switch, total_steps)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown config fields: {sorted(unknown)} (expected some of {sorted(known)})")
        if "thresholds" in d:
            d = {**d, "thresholds": tuple(d["thresholds"])}
        return cls(**d)


def resolve_config(method: str = "sgd-beta", **overrides) -> TrainConfig:
    """The method's fixed fields, then the caller's overrides (explicit values win)."""
    if method not in METHODS:
        raise ValueError(f"Unknown method: {method!r} (expected one of {tuple(METHODS)})")
    return TrainConfig.from_dict({**METHODS[method], **{k: v for k, v in overrides.items() if v is not None},
                                  "method": method})


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: cuda, then mps, then cpu. An explicit device that is absent is an error."""
    has = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if name == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if has[d]))
    if not has.get(name, False):
        raise ValueError(f"Device {name!r} is not available here (expected one of "
                         f"{[d for d, ok in has.items() if ok]} or 'auto')")
    return torch.device(name)


def _make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.mu, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov)
    opt = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return opt(params, lr=cfg.lr, betas=(cfg.mu, cfg.beta2), weight_decay=cfg.weight_decay)


@torch.no_grad()
def predict(model: torch.nn.Module, loader: DeviceLoader, autocast: bool = False) -> tuple[torch.Tensor, float]:
    """(predicted labels, mean loss) over one pass of ``loader`` in eval mode."""
    model.eval()
    preds, loss_sum, n = [], 0.0, 0
    for xb, yb in loader.epoch(0):
        with torch.autocast(loader.device.type, torch.bfloat16, enabled=autocast):
            out = model(xb)
        loss_sum += F.cross_entropy(out.float(), yb, reduction="sum").item()
        preds.append(out.argmax(1))
        n += len(yb)
    return torch.cat(preds), loss_sum / n


def evaluate(model: torch.nn.Module, loader: DeviceLoader, autocast: bool = False) -> tuple[float, float]:
    """(loss, accuracy) over one pass of ``loader``."""
    preds, loss = predict(model, loader, autocast)
    return loss, (preds == loader.y).float().mean().item()


def time_to_accuracy(epochs: list[dict], thresholds) -> dict[str, dict | None]:
    """First epoch, step and second at which test accuracy reaches each threshold (None: never)."""
    out = {}
    for t in thresholds:
        hit = next((e for e in epochs if e["test_acc"] >= t), None)
        out[f"{t:g}"] = None if hit is None else {"epoch": hit["epoch"], "step": hit["step"], "time": hit["time"]}
    return out


@dataclass
class Training:
    """One run: ``for record in Training(cfg).run(): ...``."""

    cfg: TrainConfig
    data_dir: str = "data"
    splits: Splits | None = None                      # pass pre-loaded data to skip loading
    should_stop: Callable[[], bool] = lambda: False   # checked every step: cancellation
    init_state: dict | None = None                    # start from these weights (surgery, resume)
    trainable_groups: list | None = None              # surgery: train only these layer groups
    param_masks: dict | None = None                   # surgery control: train only masked entries
    status: str = "created"
    summary: dict = field(default_factory=dict)
    model: torch.nn.Module | None = None
    epochs_done: list = field(default_factory=list)

    def setup(self) -> None:
        cfg = self.cfg
        self.device = pick_device(cfg.device)
        if self.splits is None:
            self.splits = load_splits(cfg.data_config(), self.data_dir)
        s = self.splits
        if cfg.batch_size > len(s.train_y):
            raise ValueError(f"Invalid batch_size: {cfg.batch_size} (expected at most the {len(s.train_y)} "
                             "training images)")
        # channels_last: faster for convs on CUDA and, measured here, ~1.6x on a 2-core CPU.
        self.channels_last = self.device.type in ("cuda", "cpu")
        self.autocast = self.device.type == "cuda"
        mean, std = s.mean_std
        self.train_loader = DeviceLoader(s.train_x, s.train_y, cfg.batch_size, mean, std, True, cfg.seed,
                                         self.device, self.channels_last)
        self.test_loader = DeviceLoader(s.test_x, s.test_y, min(1024, len(s.test_y)), mean, std, False,
                                        cfg.seed, self.device, self.channels_last)
        # Same seed, same initial weights for every method: paired comparisons.
        torch.manual_seed(cfg.seed)
        model = build_model(replace(cfg.model_config(), num_classes=len(s.classes)))
        if self.init_state is not None:
            model.load_state_dict(self.init_state)
        mf = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=mf)
        self._frozen_bn = []
        if self.trainable_groups is not None:
            self._freeze_groups(self.trainable_groups)
        if self.param_masks is not None:
            params = dict(self.model.named_parameters())
            self._masked = [(params[n], m.to(self.device), params[n].detach().clone())
                            for n, m in self.param_masks.items()]
            for n, p in params.items():
                p.requires_grad_(n in self.param_masks)
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = cfg.epochs * self.steps_per_epoch

    def _freeze_groups(self, keep: list) -> None:
        from .models import group_parameters

        groups = group_parameters(self.model)
        unknown = [g for g in keep if g not in groups]
        if unknown or not keep:
            raise ValueError(f"Unknown layer groups: {unknown or keep} (expected some of {list(groups)})")
        for name, child in self.model.named_children():
            frozen = name not in keep
            for p in child.parameters():
                p.requires_grad_(not frozen)
            if frozen:  # BN running statistics of frozen groups stay as they were, too
                self._frozen_bn += [m for m in child.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def _train_mode(self) -> None:
        self.model.train()
        for m in self._frozen_bn:
            m.eval()

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def run(self) -> Iterator[dict]:
        """Train, yielding step and epoch records; sets ``status`` and ``summary`` at the end."""
        if self.model is None:
            self.setup()
        cfg, model = self.cfg, self.model
        sched = cfg.lr_config(self.total_steps)
        opt = _make_optimizer(cfg, self.trainable_parameters())
        lrs = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: sched.lr(min(s, self.total_steps - 1)) / cfg.lr)
        mom = MomentumScheduler(opt, cfg.momentum_config(self.total_steps))
        self.optimizer = opt
        self.status, step, t0 = "running", 0, time.perf_counter()
        pending: list = []  # (record, loss tensor, correct tensor): synced in batches, not per step
        totals = [0.0, 0.0, 0]  # this epoch's loss * n, correct, n: the epoch's train loss/accuracy

        def flush() -> tuple[list[dict], bool]:
            """Sync the pending steps; returns their records and whether every loss is finite."""
            recs = []
            for rec, loss, correct in pending:
                n, c = rec.pop("_n"), correct.item()
                rec["loss"], rec["acc"] = loss.item(), c / n
                totals[0] += rec["loss"] * n
                totals[1] += c
                totals[2] += n
                recs.append(rec)
            pending.clear()
            return recs, all(math.isfinite(r["loss"]) for r in recs)

        self.train_seconds = 0.0  # step loops only, without evaluation: what surgery accounting compares
        for epoch in range(cfg.epochs):
            self._train_mode()
            t_epoch = time.perf_counter()
            totals[:] = [0.0, 0.0, 0]
            pairs = []
            for xb, yb in self.train_loader.epoch(epoch):
                if self.should_stop():
                    yield from flush()[0]
                    return self._finish("cancelled", t0)
                lr, mu = opt.param_groups[0]["lr"], mom.get_last_momentum()[0]
                with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
                    out = model(xb)
                loss = F.cross_entropy(out.float(), yb, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if self.param_masks is not None:
                    with torch.no_grad():  # entries outside the mask go back, bit for bit
                        for p, m, orig in self._masked:
                            p.copy_(torch.where(m, p, orig))
                lrs.step()
                mom.step()
                correct = (out.argmax(1) == yb).sum()
                pairs.append((lr, mu))
                z = damping_zeta(lr, mu, cfg.lam) if lr > 0 else None
                pending.append(({"step": step, "epoch": epoch, "lr": lr, "momentum": mu, "zeta": z,
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
            self.train_seconds += time.perf_counter() - t_epoch
            yield from recs
            if not finite:
                return self._finish("diverged", t0)
            yield self._epoch_record(epoch, step, totals, pairs, t0)
        return self._finish("done", t0)

    def _epoch_record(self, epoch: int, step: int, totals: list, pairs: list, t0: float) -> dict:
        test_loss, test_acc = evaluate(self.model, self.test_loader, self.autocast)
        loss_n, correct, n = totals
        valid = [(lr, mu) for lr, mu in pairs if lr > 0]
        zmed, regime, _ = regime_summary(valid, self.cfg.lam) if valid else (None, None, None)
        rec = {"epoch": epoch, "step": step, "train_loss": loss_n / n, "train_acc": correct / n,
               "test_loss": test_loss, "test_acc": test_acc, "regime": regime, "zeta_median": zmed,
               "lr": pairs[-1][0], "momentum": pairs[-1][1], "time": time.perf_counter() - t0}
        if self.cfg.attribution_every_epoch:
            from .attribution import epoch_scores  # only when enabled: keeps the loop light
            rec["group_scores"] = epoch_scores(self.model, self.test_loader)
        self.epochs_done.append(rec)
        return rec

    def _finish(self, status: str, t0: float) -> None:
        self.status = status
        eps = self.epochs_done
        self.summary = {
            "status": status, "epochs_completed": len(eps), "train_seconds": time.perf_counter() - t0,
            "step_seconds": getattr(self, "train_seconds", None),
            "final_test_acc": eps[-1]["test_acc"] if eps else None,
            "best_test_acc": max((e["test_acc"] for e in eps), default=None),
            "time_to_accuracy": time_to_accuracy(eps, self.cfg.thresholds),
            "device": str(self.device), "steps_per_epoch": self.steps_per_epoch,
            "data": self.splits.name, "synthetic": self.splits.synthetic,
            "regimes": [e["regime"] for e in eps],
        }



