"""The run config, named methods, and the planner that turns a comparison into configs.

``TrainConfig`` is everything a run needs; it is stored (resolved) with every run so any run
can be reproduced. Every field carries its help text (``field_help``), which the CLI turns
into flags; ``coerce_field`` parses a field's value from text by its declared type.

Named methods fix a few fields; any field given explicitly wins:

==============  ==========================================================
sgd-constant    SGD, constant momentum 0.9 (the convention)
sgd-beta        SGD, beta rule mu = 1 - 2*sqrt(lr)
sgd-hybrid      SGD, beta until mu reaches 0.9, then 0.9
sgd-onecycle    SGD, one-cycle LR and momentum 0.95 -> 0.85 -> 0.95
adam            Adam, lr 1e-3, beta1 = 0.9
adam-beta       Adam, lr 1e-3, beta1 from the beta rule
sgd-beta-       SGD, mu = 1 - 2*sqrt(lam_hat*lr) with lam_hat the measured top
measured        Hessian eigenvalue, refreshed every ``curvature_every`` steps
==============  ==========================================================

Adam keeps its own LR: a preset's LR (written for SGD) and the SGD-only overrides of
:func:`plan_runs` never reach an Adam method. An LR given for every method does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import NamedTuple

from .fieldtypes import LR_MAX, SEED_MAX, check_fields, coerce, described, hints, shown
from .presets import preset_config, preset_methods
from .schedules import LR_SCHEDULES, MOMENTUM_RULES, LRSchedule, MomentumRule
from .subconfigs import DataConfig, ModelConfig

__all__ = ["METHODS", "OPTIMIZERS", "DEVICES", "LIMITS", "TrainConfig", "FlatField", "resolve_config", "plan_runs",
           "field_help", "coerce_field", "config_fields", "is_adam", "default_methods", "parse_seeds", "PAPER_FIRST"]

OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("auto", "cuda", "mps", "cpu")
METHODS: dict[str, dict] = {
    "sgd-constant": {"optimizer": "sgd", "momentum_rule": "constant", "mu": 0.9},
    "sgd-beta": {"optimizer": "sgd", "momentum_rule": "beta"},
    "sgd-hybrid": {"optimizer": "sgd", "momentum_rule": "hybrid", "mu": 0.9},
    "sgd-onecycle": {"optimizer": "sgd", "momentum_rule": "onecycle", "lr_schedule": "onecycle"},
    "adam": {"optimizer": "adam", "momentum_rule": "constant", "mu": 0.9, "lr": 1e-3},
    "adam-beta": {"optimizer": "adam", "momentum_rule": "beta", "lr": 1e-3},
    "sgd-beta-measured": {"optimizer": "sgd", "momentum_rule": "beta-measured"},
}
# Upper bounds on values nobody means: a typo must fail at once, not after hours or at an
# 800 GB allocation. Generous on purpose (CIFAR-10 has 60,000 images; ImageNet 1.3M).
LIMITS = {"epochs": 10_000, "batch_size": 65_536}  # the data's: subconfigs.SUBSET_MAX, SYNTHETIC_MAX
# Rates and seeds torch can hold: an LR beyond float32 overflows inside the optimizer step
# (every run would fail), and torch's generators refuse seeds past 64 bits (numpy's past 32).
NUMBER_LIMITS = {"lr": LR_MAX, "weight_decay": 1e6, "min_lr": 1e6, "bias_lr_scale": 1e4, "lam": 1e12}


_f = described


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; stored (resolved) with every run so it can be reproduced.

    Its data and model are sub-configs, the one home of their fields (``DataConfig``,
    ``ModelConfig``); stored configs and flags carry every field flat (``dataset``, ``model``,
    ``width``, ...), made and read by :meth:`from_fields` and :meth:`to_dict`."""

    method: str = _f("sgd-beta", "one of METHODS: sets the fields it fixes")
    data: DataConfig = _f(DataConfig(), "which images: DataConfig's fields")
    model: ModelConfig = _f(ModelConfig(), "which network: ModelConfig's fields")
    # optimisation
    epochs: int = _f(4, "passes over the training set")
    batch_size: int = _f(128, "images per step")
    optimizer: str = _f("sgd", " | ".join(OPTIMIZERS))
    lr: float = _f(0.1, "peak LR (SGD batch 128 on CIFAR-10: 0.1)")
    weight_decay: float = _f(5e-4, "L2 (decoupled for adamw)")
    nesterov: bool = _f(False, "Nesterov momentum (SGD only)")
    beta2: float = _f(0.999, "Adam's second-moment decay")
    lr_schedule: str = _f("cosine", " | ".join(LR_SCHEDULES))
    warmup_epochs: float = _f(0.0, "linear warm-up length in epochs (cosine, linear)")
    min_lr: float = _f(0.0, "cosine floor / linear end")
    momentum_rule: str = _f("beta", " | ".join(MOMENTUM_RULES))
    mu: float = _f(0.9, "constant momentum; hybrid's value after the switch")
    lam: float = _f(1.0, "curvature in the critical-damping formula (paper: 1)")
    mu_min: float = _f(0.0, "clamp floor of beta/exact/hybrid")
    mu_max: float = _f(0.99, "clamp ceiling of beta/exact/hybrid")
    hybrid_switch: str | float = _f("auto", "'auto' or a fraction of training")
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing")
    bias_lr_scale: float = _f(1.0, "LR multiplier of biases and BatchNorm shifts (airbench: 64)")
    tta: bool = _f(False, "test-time augmentation in evaluation: mean logits of image and mirror")
    compile: bool = _f(False, "torch.compile the model (worth it on a GPU for runs of more than a few epochs)")
    deterministic: bool = _f(False, "deterministic kernels (torch.use_deterministic_algorithms): reproducible, "
                                    "slower on a GPU")
    planted_fault: str | None = _f(None, "a planted fault, for teaching the diagnosis: GROUP or GROUP:STRENGTH; after "
                                         "training, noise of STRENGTH (default 1) x its weights' RMS is added to that "
                                         "layer group (the localisation benchmark's fault), the damaged model is the "
                                         "run's; none = no fault")
    # run
    seed: int = _f(0, "weights, data order, augmentation: paired across methods")
    device: str = _f("auto", "auto (cuda, mps, cpu) | cuda | mps | cpu")
    threads: int | None = _f(None, "CPU threads of the run's math (torch.set_num_threads): the same value gives the "
                                   "same numbers in-process, in a worker or on Ray; none = the launcher's share")
    thresholds: tuple = _f((0.9, 0.95), "test accuracies for time-to-accuracy, in (0, 1], comma-separated")
    attribution_every_epoch: bool = _f(False, "record per-group error-gradient scores each epoch")
    curvature_every_epoch: bool = _f(False, "measure the top Hessian eigenvalue (sharpness) each epoch: lam_max, "
                                            "measured zeta, stability margin")
    curvature_images: int = _f(128, "training images (fixed, no augmentation) the curvature is measured on")
    curvature_hvps: int = _f(24, "Hessian-vector products per measurement (Lanczos budget; warm-started)")
    curvature_every: int = _f(100, "beta-measured: steps between refreshes of lam_hat")
    evals_per_epoch: int = _f(0, "evaluations of a fixed test subset per epoch, for time-to-target between epochs "
                                 "(interpolated); 0: at epoch ends only")
    eval_images: int = _f(256, "test images of those evaluations (class-balanced, fixed): about 2% of training "
                               "at 4 per epoch (bench_eval_every)")

    def __post_init__(self) -> None:
        check_fields(self)  # the data's and model's own fields were checked when they were made
        if self.method not in METHODS:
            raise ValueError(f"Unknown method: {shown(self.method)} (expected one of {', '.join(METHODS)})")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer: {shown(self.optimizer)} (expected one of {', '.join(OPTIMIZERS)})")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not 1 <= v <= LIMITS[name]:
                raise ValueError(f"Invalid {name}: {shown(v)} (expected an integer in [1, {LIMITS[name]:,}])")
        for name, top in NUMBER_LIMITS.items():
            if not -top <= getattr(self, name) <= top:
                raise ValueError(f"Invalid {name}: {getattr(self, name)!r} (expected at most {top:g} in size: larger "
                                 "values overflow torch's float32 arithmetic)")
        if not self.lr > 0:
            raise ValueError(f"Invalid lr: {shown(self.lr)} (expected a learning rate > 0)")
        if not 0 <= self.seed <= SEED_MAX:
            raise ValueError(f"Invalid seed: {shown(self.seed)} (expected an integer in [0, {SEED_MAX}])")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ValueError(f"Invalid threads: {shown(self.threads)} (expected an integer in [1, 1024])")
        if self.device not in DEVICES:
            raise ValueError(f"Unknown device: {shown(self.device)} (expected auto, cuda, mps or cpu)")
        if self.weight_decay < 0:
            raise ValueError(f"Invalid weight_decay: {shown(self.weight_decay)} (expected >= 0)")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"Invalid label_smoothing: {shown(self.label_smoothing)} (expected [0, 1))")
        if not 0 < self.beta2 < 1:
            raise ValueError(f"Invalid beta2: {shown(self.beta2)} (expected (0, 1))")
        if not self.thresholds or any(not (isinstance(t, (int, float)) and 0 < t <= 1) for t in self.thresholds):
            raise ValueError(f"Invalid thresholds: {shown(self.thresholds)} (expected accuracies in (0, 1])")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            raise ValueError(f"Invalid warmup_epochs: {self.warmup_epochs!r} (expected 0 <= warmup_epochs <= epochs)")
        if self.evals_per_epoch < 0 or self.eval_images < 1:
            raise ValueError(f"Invalid evals_per_epoch/eval_images: {self.evals_per_epoch}/{self.eval_images} "
                             "(expected evals_per_epoch >= 0 and eval_images >= 1)")
        for name in ("curvature_images", "curvature_hvps", "curvature_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"Invalid {name}: {shown(getattr(self, name))} (expected an integer >= 1)")
        if not self.bias_lr_scale > 0:
            raise ValueError(f"Invalid bias_lr_scale: {shown(self.bias_lr_scale)} (expected a number > 0)")
        if self.min_lr < 0:
            raise ValueError(f"Invalid min_lr: {shown(self.min_lr)} (expected >= 0)")
        self.fault()  # a malformed planted fault fails here, its group name once the model exists
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        self.lr_schedule_for(100), self.momentum_rule_for(100)  # validates those fields early

    @property
    def adam(self) -> bool:
        """Adam or AdamW: their own LR, beta1 for momentum, and no heavy-ball damping ratio."""
        return self.optimizer in ("adam", "adamw")

    def fault(self) -> tuple[str, float] | None:
        """The planted fault as (layer group, noise strength), or None."""
        if not self.planted_fault:
            return None
        group, _, strength = self.planted_fault.partition(":")
        try:
            value = float(strength) if strength else 1.0
        except ValueError:
            value = math.nan
        if not group.strip() or not (math.isfinite(value) and 0 < value <= 100):
            raise ValueError(f"Invalid planted_fault: {shown(self.planted_fault)} (expected GROUP or GROUP:STRENGTH "
                             "with STRENGTH in (0, 100], e.g. block2:1.0)")
        return group.strip(), value

    def lr_schedule_for(self, total_steps: int) -> LRSchedule:
        """The LR schedule of a run of ``total_steps`` optimizer steps."""
        warm = round(self.warmup_epochs / self.epochs * total_steps)
        return LRSchedule(self.lr_schedule, self.lr, total_steps, warm, self.min_lr,
                          step_size=max(1, total_steps // 3), gamma=0.1)

    def momentum_rule_for(self, total_steps: int) -> MomentumRule:
        """The momentum rule of a run of ``total_steps`` optimizer steps."""
        return MomentumRule(self.momentum_rule, self.mu, self.lam, self.mu_min, self.mu_max,
                            self.hybrid_switch, total_steps)

    def to_dict(self) -> dict:
        """Every field flat, as stored and as flags: ``{"method", "dataset", ..., "model", "width", ...}``."""
        return {f.name: getattr(_owner(self, f), f.attr) for f in _FLAT.values()}

    @classmethod
    def from_fields(cls, d: dict) -> TrainConfig:
        """A config from flat field values (unknown names refused, missing ones at their defaults);
        each sub-config checks its own."""
        unknown = set(d) - set(_FLAT)
        if unknown:
            raise ValueError(f"Unknown config fields: {sorted(unknown)} (expected some of {sorted(_FLAT)})")
        if isinstance(d.get("thresholds"), list):
            d = {**d, "thresholds": tuple(d["thresholds"])}
        parts: dict[str | None, dict] = {}
        for name, v in d.items():
            f = _FLAT[name]
            parts.setdefault(f.part, {})[f.attr] = v
        return cls(**parts.get(None, {}), **{part: _PARTS[part](**kw) for part, kw in parts.items() if part})

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A stored config (``to_dict``), including ones stored by earlier versions."""
        if "val_fraction" not in d:  # stored before validation splits existed: rebuild its data as it was
            d = {**d, "val_fraction": 0.0}
        return cls.from_fields(d)


# ------------------------------------------------------------------ flat fields
class FlatField(NamedTuple):
    """One field as stored and as a flag: its name, declared type, default, help, and where it
    lives (``part``: the TrainConfig field holding its sub-config, None for TrainConfig's own;
    ``attr``: its name there)."""
    name: str
    type: object
    default: object
    help: str
    part: str | None
    attr: str


_PARTS = {"data": DataConfig, "model": ModelConfig}
_RENAMED = {("model", "name"): "model"}   # ModelConfig's name is the stored "model"
_INTERNAL = {("model", "num_classes")}    # set from the data when the model is built, never by the user


def _flat_fields() -> dict[str, FlatField]:
    out = {}
    for f in fields(TrainConfig):
        if f.name in _PARTS:
            sub = _PARTS[f.name]
            for g in fields(sub):
                if (f.name, g.name) not in _INTERNAL:
                    name = _RENAMED.get((f.name, g.name), g.name)
                    out[name] = FlatField(name, hints(sub)[g.name], g.default, g.metadata.get("help", ""), f.name,
                                          g.name)
        else:
            out[f.name] = FlatField(f.name, hints(TrainConfig)[f.name], f.default, f.metadata.get("help", ""), None,
                                    f.name)
    return out


_FLAT = _flat_fields()


def _owner(cfg: TrainConfig, f: FlatField):
    return getattr(cfg, f.part) if f.part else cfg


def config_fields() -> list[FlatField]:
    """Every field of a run's config, flat as stored and as flags, in declaration order."""
    return list(_FLAT.values())


def field_help(name: str) -> str:
    return _FLAT[name].help


def coerce_field(name: str, text: str):
    """Parse ``text`` as a value of field ``name`` by its declared type; ValueError names the field
    (``fieldtypes.coerce``)."""
    if name not in _FLAT:
        raise ValueError(f"Unknown config field: {name!r} (expected one of {', '.join(sorted(_FLAT))})")
    return coerce(name, _FLAT[name].type, text)


def is_adam(method: str) -> bool:
    return METHODS[method]["optimizer"] in ("adam", "adamw")


# ------------------------------------------------------------------ planning
def resolve_config(method: str = "sgd-beta", **overrides) -> TrainConfig:
    """The method's fixed fields, then the caller's overrides (explicit values win)."""
    if method not in METHODS:
        raise ValueError(f"Unknown method: {shown(method)} (expected one of {', '.join(METHODS)})")
    return TrainConfig.from_fields({**METHODS[method], **{k: v for k, v in overrides.items() if v is not None},
                                    "method": method})


def plan_runs(methods: list[str], seeds: list[int], preset: str | None = None, overrides: dict | None = None,
              sgd_overrides: dict | None = None) -> list[TrainConfig]:
    """Configs for ``methods`` x ``seeds`` (seed-major), each validated.

    Precedence, lowest first: the method's fixed fields, the preset, ``overrides`` (all
    methods), ``sgd_overrides`` (SGD methods only), the seed. The preset's LR is written for
    SGD, so Adam methods keep their own; its width(s) are written for its model, so another
    model keeps its own; and a method's optimizer, momentum rule and LR schedule are the method
    (a preset's cosine schedule does not turn sgd-onecycle into cosine with one-cycle momentum).
    """
    if not methods:
        raise ValueError("Invalid methods: none given (expected at least one of " + ", ".join(METHODS) + ")")
    if not seeds:
        raise ValueError("Invalid seeds: none given (expected integers, e.g. 0,1,2)")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown method: {shown(unknown[0])} (expected one of {', '.join(METHODS)})")
    configs = []
    for seed in seeds:
        for m in methods:
            fixed = dict(preset_config(preset)) if preset else {}
            if (overrides or {}).get("model", fixed.get("model")) != fixed.get("model"):
                fixed.pop("width", None), fixed.pop("widths", None)  # the preset's widths are its own model's
            if is_adam(m):
                fixed.pop("lr", None)
            for name in ("optimizer", "momentum_rule", "lr_schedule"):  # what makes the method what it is:
                if name in METHODS[m]:  # sgd-onecycle under a cosine preset is still one-cycle
                    fixed.pop(name, None)
            over = {**fixed, **(overrides or {}), **({} if is_adam(m) else (sgd_overrides or {})), "seed": seed}
            cfg = resolve_config(m, **over)
            if cfg.data.dataset == "synthetic" and cfg.data.data_path:
                raise ValueError(f"Invalid data_path {cfg.data.data_path!r} with dataset synthetic (synthetic data "
                                 "reads no path: drop --data-path, or use --dataset folder)")
            configs.append(cfg)
    return configs


PAPER_FIRST = ("sgd-constant", "sgd-beta", "sgd-hybrid")  # the SGD rules the paper compares first


def default_methods(preset: str | None) -> list[str]:
    """The preset's methods, else the three SGD rules the paper compares first."""
    return preset_methods(preset) if preset else [m for m in METHODS if m in PAPER_FIRST]



def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; anything else is a ValueError that says what is expected."""
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"Invalid seeds: {text!r} (expected comma-separated integers, e.g. 0,1,2)") from None
    if not seeds:
        raise ValueError(f"Invalid seeds: {text!r} (expected at least one integer, e.g. 0)")
    if any(not 0 <= s <= SEED_MAX for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"Invalid seeds: {text!r} (expected distinct integers in [0, {SEED_MAX}])")
    return seeds
