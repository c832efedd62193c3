"""Named starting points for runs, comparisons and sweeps.

``quick-cpu``: a three-method comparison that finishes in about a minute on 2 CPU cores
(small CNN, class-balanced subset of 6,000 training and 2,000 test images, 5 epochs) and still
shows differences between methods. Thresholds are lower than the paper's because a minute of
CPU does not reach 90%.

``paper``: the paper's setting (Pasichnyk 2026, arXiv:2603.28921), for a GPU: ResNet-18
(CIFAR variant), all of CIFAR-10, batch 128, SGD lr 0.1, weight decay 5e-4, cosine, the five
methods the paper most likely compared, thresholds 90% and 95%. 100 epochs is our choice
(the paper's count is not in what we have; docs/decisions.md, "Presets").

``fast``: airbench94's recipe (Keller Jordan, cifar10-airbench) in our engine, for a GPU: the
airnet model (widths 64/256/256), batch 1024, Nesterov SGD with momentum 0.85, label
smoothing 0.2, linear warm-up then linear decay, 10 epochs, flip + 2-pixel translate,
test-time flip; all 50,000 training images (no validation split, as the reference). Its
hyperparameters in the form torch applies them to the *mean* batch loss: airbench writes
lr 11.5 and weight decay 0.0153 "per 1024 examples", decoupled from momentum, on a *summed*
loss; with kilostep_scale = 1024 (1 + 1/(1 - 0.85)) its torch lr is 11.5 / kilostep_scale per
example, i.e. 11.5 x 1024 / kilostep_scale = 1.5 for a mean loss over 1024 images, and its
decay 0.0153 / 11.5 = 0.00133; biases and BatchNorm shifts at 64x the LR (``bias_lr_scale``).
The beta rule and zeta read these torch LRs. ``fast-cpu``: the same at widths 48/96/96
(about 790 images/s on 2 CPU cores, measured), 10 epochs: 14-16 minutes a run with evaluation
(README, measured on the CIFAR-10 pack).

``sweep-cpu``: a tuned comparison that gave a verdict on 2 CPU cores in 6 min 18 s on the
CIFAR-10 pack (README, measured, first decode included): constant, beta and hybrid momentum,
each over LRs 0.025-0.2 on 2 tuning seeds (validation), then at its chosen LR on 3 fresh seeds
(test); small CNN, 5,000 training images, 8 epochs. ``sweep-gpu``: the same design sized for a
few minutes on one modern GPU (all of CIFAR-10, ResNet-style net, 4 LRs x 2 tuning seeds, 5
test seeds). A preset's ``sweep`` entry gives the sweep's defaults; flags override them.
"""
from __future__ import annotations

__all__ = ["PRESETS", "preset_config", "preset_methods", "preset_sweep", "AIRBENCH_LR", "AIRBENCH_WD",
           "KILOSTEP_SCALE"]

# airbench94's hyperparameters as torch applies them to a mean loss (see the module doc).
AIRBENCH_MOMENTUM = 0.85
KILOSTEP_SCALE = 1024 * (1 + 1 / (1 - AIRBENCH_MOMENTUM))
AIRBENCH_LR = 11.5 * 1024 / KILOSTEP_SCALE      # = 1.5: lr 11.5 "per 1024 examples", summed loss
AIRBENCH_WD = 0.0153 / 11.5                      # = 0.00133: decay 0.0153 per 1024 examples, decoupled

PRESETS: dict[str, dict] = {
    "quick-cpu": {
        "config": {"model": "small_cnn", "dataset": "auto", "train_subset": 6000, "test_subset": 2000,
                   "epochs": 5, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4, "lr_schedule": "cosine",
                   "thresholds": (0.5, 0.55, 0.6)},
        "methods": ["sgd-constant", "sgd-beta", "sgd-hybrid"],
    },
    "paper": {
        "config": {"model": "resnet18", "dataset": "cifar10", "train_subset": None, "test_subset": None,
                   "epochs": 100, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4,
                   "lr_schedule": "cosine", "thresholds": (0.9, 0.95)},
        "methods": ["sgd-constant", "sgd-beta", "sgd-hybrid", "sgd-onecycle", "adam"],
    },
    "fast": {
        "config": {"model": "airnet", "widths": (64, 256, 256), "dataset": "auto", "train_subset": None,
                   "test_subset": None, "val_fraction": 0.0, "epochs": 10, "batch_size": 1024, "lr": AIRBENCH_LR,
                   "weight_decay": AIRBENCH_WD, "nesterov": True, "mu": 0.85, "label_smoothing": 0.2,
                   "lr_schedule": "linear", "warmup_epochs": 2.0, "min_lr": 0.0, "bias_lr_scale": 64.0,
                   "tta": True, "thresholds": (0.9, 0.93, 0.94)},
        "methods": ["sgd-constant", "sgd-beta", "sgd-hybrid"],
    },
    "sweep-cpu": {
        "config": {"model": "small_cnn", "dataset": "auto", "train_subset": 5000, "test_subset": 2000,
                   "epochs": 8, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4, "lr_schedule": "cosine",
                   "thresholds": (0.5, 0.6)},
        "methods": ["sgd-constant", "sgd-beta", "sgd-hybrid"],
        "sweep": {"grid": {"*": {"lr": [0.025, 0.05, 0.1, 0.2]}}, "tune": ["lr"], "tune_seeds": [100, 101],
                  "seeds": [0, 1, 2], "baseline": "sgd-constant"},
    },
    "sweep-gpu": {
        "config": {"model": "small_resnet", "width": 32, "dataset": "cifar10", "train_subset": None,
                   "test_subset": None, "epochs": 10, "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4,
                   "lr_schedule": "cosine", "thresholds": (0.8, 0.85)},
        "methods": ["sgd-constant", "sgd-beta", "sgd-hybrid"],
        "sweep": {"grid": {"*": {"lr": [0.05, 0.1, 0.2, 0.4]}}, "tune": ["lr"], "tune_seeds": [100, 101],
                  "seeds": [0, 1, 2, 3, 4], "baseline": "sgd-constant"},
    },
}


# A variant is a setting of one preset (tinygrad's habit): fast-cpu is fast at CPU widths, on the CPU,
# with thresholds it reaches there.
PRESETS["fast-cpu"] = {**PRESETS["fast"], "config": {**PRESETS["fast"]["config"], "widths": (48, 96, 96),
                                                     "device": "cpu", "thresholds": (0.8, 0.85)}}
# Keep the README's order (fast-cpu after fast).
PRESETS = {k: PRESETS[k] for k in ("quick-cpu", "paper", "fast", "fast-cpu", "sweep-cpu", "sweep-gpu")}


def _get(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset: {name!r} (expected one of {', '.join(PRESETS)})")
    return PRESETS[name]


def preset_config(name: str) -> dict:
    """The config fields the preset sets (for every method; the planner keeps Adam's own LR)."""
    return dict(_get(name)["config"])


def preset_methods(name: str) -> list[str]:
    return list(_get(name)["methods"])


def preset_sweep(name: str) -> dict:
    """The sweep defaults of a preset (grid, tune, seeds, baseline); {} if it has none. Targets are
    fitted to the data (sweeps.derived_targets), not fixed per preset."""
    return dict(_get(name).get("sweep", {}))
