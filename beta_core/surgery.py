"""Layer surgery (the paper's "Treat" and "Verify") with honest accounting and controls.

Retrain only the selected layer groups (everything else frozen, BatchNorm running statistics
of frozen groups too) on the *training* split with the beta-schedule momentum, then verify on
the held-out split: fixed (wrong -> right), broken (right -> wrong), net, accuracy change,
per-class changes, confusion-matrix difference.

Decisions (configurable, documented in docs/decisions.md):

* ``groups="auto"`` flags groups by attribution on the *training* split's errors, so no test
  information enters the repair. Names can be given instead (the dashboard pre-fills the
  groups flagged on its attribution page).
* Leakage guard: training on the split that is scored is refused unless ``allow_leaky``;
  then every output carries ``leaky: true``.
* Accounting: the paper's "compute savings" is a parameter-fraction proxy; we report it next
  to the measured wall-clock of the surgery and of a full fine-tune of all layers with the
  same data, epochs and schedule.
* Controls with the same budget: random groups with a similar parameter fraction, all
  groups, and per-parameter selection (the entries with the largest error-gradient
  magnitude, as many as the selected groups hold).
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, replace

import torch

from .attribution import PROBE_NOISE_Z, AttributionConfig, attribute
from .config import TrainConfig
from .data import Splits, eval_loaders
from .engine import Training, prepare
from .hooks import Hook
from .models import eval_mode, group_modules, group_param_counts, group_parameters, predict
from .records import SurgerySummary

__all__ = ["SurgeryConfig", "verify", "run_surgery", "random_groups_like", "top_gradient_masks",
           "surgery_run_config", "FreezeGroups", "MaskParams"]


@dataclass(frozen=True)
class SurgeryConfig:
    groups: tuple | str = "auto"        # "auto" (attribution on training errors) or group names
    epochs: int = 2                     # passes over the surgery training data
    lr: float = 0.01                    # peak LR of the repair (smaller than training's 0.1)
    lr_schedule: str = "cosine"         # LR schedule of the repair
    momentum_rule: str = "beta"         # physics momentum, as in the paper
    batch_size: int = 128               # images per step
    weight_decay: float = 5e-4          # as in training
    oversample_errors: int = 0          # extra copies of the parent's training-set errors
    train_split: str = "train"          # data the repair trains on
    eval_split: str = "test"            # data it is scored on
    allow_leaky: bool = False           # permit train_split == eval_split (labelled leaky)
    controls: bool = False              # also run random / per-parameter controls
    k: int = 3                          # groups flagged when groups="auto"
    seed: int = 0                       # data order of the repair; random-groups control
    attribution: dict = field(default_factory=dict)  # AttributionConfig fields for "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"Invalid surgery epochs: {self.epochs!r} (expected an integer >= 1)")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 1e6):
            raise ValueError(f"Invalid surgery lr: {self.lr!r} (expected a learning rate in (0, 1e6])")
        for name in ("train_split", "eval_split"):
            if getattr(self, name) not in ("train", "test"):
                raise ValueError(f"Invalid {name}: {getattr(self, name)!r} (expected 'train' or 'test')")
        if self.train_split == self.eval_split and not self.allow_leaky:
            raise ValueError(f"Refused: surgery would train on the {self.eval_split!r} split it is scored on "
                             "(expected train_split != eval_split, or allow_leaky=True to label the result leaky)")
        if not isinstance(self.oversample_errors, int) or self.oversample_errors < 0:
            raise ValueError(f"Invalid oversample_errors: {self.oversample_errors!r} (expected an integer >= 0)")
        if isinstance(self.groups, str) and self.groups != "auto":
            raise ValueError(f"Invalid groups: {self.groups!r} (expected 'auto' or a list of group names)")
        if not isinstance(self.groups, str):
            object.__setattr__(self, "groups", tuple(self.groups))
            if not self.groups:
                raise ValueError("Invalid groups: empty (expected 'auto' or at least one group name)")

    @property
    def leaky(self) -> bool:
        return self.train_split == self.eval_split


def verify(before: torch.Tensor, after: torch.Tensor, y: torch.Tensor, n_classes: int) -> dict:
    """Fixed / broken / net and the per-class and confusion changes between two predictions."""
    ok0, ok1 = before == y, after == y
    fixed, broken = int((~ok0 & ok1).sum()), int((ok0 & ~ok1).sum())
    conf = lambda p: torch.bincount(y * n_classes + p, minlength=n_classes ** 2).view(n_classes, n_classes)  # noqa: E731
    per_class = lambda ok: [float(ok[y == c].float().mean()) if (y == c).any() else None for c in range(n_classes)]  # noqa: E731
    return {"fixed": fixed, "broken": broken, "net": fixed - broken,
            "acc_before": float(ok0.float().mean()), "acc_after": float(ok1.float().mean()),
            "acc_change": float(ok1.float().mean() - ok0.float().mean()),
            "class_acc_before": per_class(ok0), "class_acc_after": per_class(ok1),
            "confusion_diff": (conf(after) - conf(before)).tolist()}


class FreezeGroups(Hook):
    """Train only the ``keep`` layer groups: the others get no gradient, and their BatchNorm
    layers stay in eval mode so their running statistics do not move either."""

    def __init__(self, keep: list[str]) -> None:
        self.keep, self.frozen_bn = list(keep), []

    def setup(self, training) -> None:
        groups = group_parameters(training.model)
        unknown = [g for g in self.keep if g not in groups]
        if unknown or not self.keep:
            raise ValueError(f"Unknown layer groups: {unknown or self.keep} (expected some of {list(groups)})")
        modules = group_modules(training.model)
        for name, params in groups.items():
            frozen = name not in self.keep
            for _, p in params:
                p.requires_grad_(not frozen)
            if frozen:
                self.frozen_bn += [m for c in modules[name] for m in c.modules()
                                   if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def epoch_start(self, training, epoch: int) -> None:
        for m in self.frozen_bn:
            m.eval()


class MaskParams(Hook):
    """Train only the masked entries: after every optimizer step the others go back, bit for bit."""

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        self.masks, self.kept = masks, []

    def setup(self, training) -> None:
        params = dict(training.model.named_parameters())
        unknown = [n for n in self.masks if n not in params]
        if unknown:
            raise ValueError(f"Unknown parameters in masks: {unknown[:3]} (expected names from the model)")
        self.kept = [(params[n], m.to(training.device), params[n].detach().clone()) for n, m in self.masks.items()]
        for n, p in params.items():
            p.requires_grad_(n in self.masks)

    def after_step(self, training) -> None:
        with torch.no_grad():
            for p, m, orig in self.kept:
                p.copy_(torch.where(m, p, orig))


def random_groups_like(counts: dict[str, int], target: float, exclude: set, seed: int, tries: int = 200) -> list[str]:
    """Random groups whose parameter fraction is closest to ``target`` (not the same set)."""
    rng = random.Random(seed)
    total, names = sum(counts.values()), list(counts)
    best, best_gap = None, float("inf")
    for _ in range(tries):
        rng.shuffle(names)
        pick, frac = [], 0.0
        for g in names:
            if frac >= target:
                break
            pick.append(g)
            frac += counts[g] / total
        gap = abs(frac - target)
        if set(pick) != exclude and gap < best_gap:
            best, best_gap = list(pick), gap
    return best or names[:1]


def top_gradient_masks(model, x: torch.Tensor, y: torch.Tensor, count: int, batch: int = 512) -> dict:
    """Boolean masks of the ``count`` parameter entries with the largest |error gradient|."""
    model.zero_grad(set_to_none=True)
    with eval_mode(model):
        for i in range(0, len(y), batch):
            torch.nn.functional.cross_entropy(model(x[i:i + batch]), y[i:i + batch], reduction="sum").backward()
    named = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    flat = torch.cat([p.grad.abs().flatten() for _, p in named])
    thresh = torch.topk(flat, min(count, len(flat))).values[-1]
    masks, left = {}, count
    for n, p in named:  # ties at the threshold: take them in order until the budget is spent
        m = (p.grad.abs() > thresh).contiguous()
        left -= int(m.sum())
        masks[n] = m
    for n, p in named:
        if left <= 0:
            break
        ties = (p.grad.abs() == thresh).flatten().nonzero().squeeze(1)[:left]
        masks[n].view(-1)[ties] = True
        left -= len(ties)
    model.zero_grad(set_to_none=True)
    return {n: m.cpu() for n, m in masks.items() if m.any()}


def _surgery_splits(parent: Splits, cfg: SurgeryConfig, train_errors: torch.Tensor | None) -> Splits:
    src_x = parent.train_x if cfg.train_split == "train" else parent.test_x
    src_y = parent.train_y if cfg.train_split == "train" else parent.test_y
    ev_x = parent.test_x if cfg.eval_split == "test" else parent.train_x
    ev_y = parent.test_y if cfg.eval_split == "test" else parent.train_y
    if cfg.oversample_errors and train_errors is not None and len(train_errors):
        idx = train_errors.cpu().repeat(cfg.oversample_errors)
        src_x, src_y = torch.cat([src_x, src_x[idx]]), torch.cat([src_y, src_y[idx]])
    return replace(parent, train_x=src_x, train_y=src_y, test_x=ev_x, test_y=ev_y)


def _finetune(train_cfg: TrainConfig, splits: Splits, state: dict, data_dir: str, groups=None, masks=None,
              on_record=None, stop=lambda: False) -> tuple[Training, torch.Tensor]:
    hooks = ([FreezeGroups(groups)] if groups is not None else []) + ([MaskParams(masks)] if masks is not None else [])
    t = Training(train_cfg, data_dir, splits=splits, init_state=state, should_stop=stop, hooks=hooks)
    for rec in t.run():
        if on_record:
            on_record(rec)
    preds, _ = predict(t.model, t.test_loader, t.autocast)
    return t, preds


def run_surgery(parent_cfg: TrainConfig, state: dict, cfg: SurgeryConfig, data_dir: str = "data",
                splits: Splits | None = None, on_record=None, stop=lambda: False) -> dict:
    """Repair a trained model; returns the report, the repaired weights and the training config."""
    base = prepare(parent_cfg, data_dir, splits, state)
    splits, model = base.splits, base.model
    n_classes = len(splits.classes)
    counts = group_param_counts(model)
    loaders = eval_loaders(splits, base.device, base.channels_last)
    train_loader = loaders["train_eval"]
    train_pred, _ = predict(model, train_loader)
    train_errors = (train_pred != train_loader.y).nonzero().squeeze(1)
    attribution = None
    if cfg.groups == "auto":
        acfg = AttributionConfig(**{"split": "train", "k": cfg.k, "by_predicted": False, "contrast": False,
                                    **cfg.attribution})
        attribution = attribute(model, train_loader, acfg, splits.classes, train_loader=loaders["train"])
        groups = attribution["flagged"]
        if not groups:
            raise ValueError(f"No group stands out in the attribution ({attribution['score']}: no drop exceeds "
                             f"{PROBE_NOISE_Z:g} standard errors of its noise): nothing to retrain (expected groups "
                             "named with --groups)")
    else:
        groups = list(cfg.groups)
        unknown = [g for g in groups if g not in counts]
        if unknown:
            raise ValueError(f"Unknown layer groups: {unknown} (expected some of {list(counts)})")
    sx = _surgery_splits(splits, cfg, train_errors)
    ev_loader = loaders["test" if cfg.eval_split == "test" else "train_eval"]
    before, _ = predict(model, ev_loader)
    ev_y = ev_loader.y
    train_cfg = replace(parent_cfg, epochs=cfg.epochs, lr=cfg.lr, lr_schedule=cfg.lr_schedule,
                        momentum_rule=cfg.momentum_rule, batch_size=min(cfg.batch_size, len(sx.train_y)),
                        weight_decay=cfg.weight_decay, seed=cfg.seed, warmup_epochs=0.0,
                        attribution_every_epoch=False, thresholds=parent_cfg.thresholds,
                        planted_fault=None)  # a planted fault is what surgery repairs, not a step it repeats
    fraction = sum(counts[g] for g in groups) / sum(counts.values())

    def variant(name, groups_=None, masks=None, rec=None, frac=None):
        t, after = _finetune(train_cfg, sx, state, data_dir, groups_, masks, rec, stop)
        out = {"name": name, "groups": groups_, "param_fraction": frac, "status": t.status,
               "step_seconds": t.summary.get("step_seconds"), **verify(before, after, ev_y, n_classes)}
        return out, t

    main, t_main = variant("surgery", groups, rec=on_record, frac=fraction)
    if t_main.status != "done":
        return {"status": t_main.status, "report": {"surgery": main}, "state": None, "train_config": train_cfg}
    full, _ = variant("all groups (full fine-tune)", list(counts), frac=1.0)
    report = {"surgery": main, "full": full}
    if cfg.controls:
        rnd = random_groups_like(counts, fraction, set(groups), cfg.seed)
        report["random"] = variant("random groups", rnd, frac=sum(counts[g] for g in rnd) / sum(counts.values()))[0]
        budget = sum(counts[g] for g in groups)
        xe, ye = train_loader.normalise(train_loader.x[train_errors]), train_loader.y[train_errors]
        masks = top_gradient_masks(model, xe, ye, budget)
        report["per_parameter"] = variant("per-parameter (same count)", None, masks,
                                          frac=budget / sum(counts.values()))[0]
    measured = 1 - main["step_seconds"] / full["step_seconds"] if full["step_seconds"] else None
    summary: SurgerySummary = {
        "groups": groups, "param_fraction": fraction, "leaky": cfg.leaky,
        "train_split": cfg.train_split, "eval_split": cfg.eval_split,
        "savings_param_proxy": 1 - fraction, "savings_measured": measured,
        "surgery_seconds": main["step_seconds"], "full_seconds": full["step_seconds"],
        "fixed": main["fixed"], "broken": main["broken"], "net": main["net"],
        "acc_before": main["acc_before"], "acc_after": main["acc_after"],
        "classes": list(splits.classes), "data": splits.name, "synthetic": splits.synthetic,
    }
    return {"status": "done", "summary": summary, "report": report, "attribution": attribution,
            "state": t_main.model.state_dict(), "train_config": train_cfg}


def surgery_run_config(parent_cfg: dict, cfg: SurgeryConfig) -> dict:
    """What a surgery run stores as its config: the parent's training config and the surgery's."""
    return {"method": "surgery", "model": parent_cfg.get("model"), "dataset": parent_cfg.get("dataset"),
            "train": parent_cfg, "surgery": asdict(cfg)}
