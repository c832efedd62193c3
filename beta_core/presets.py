"""Named starting points for runs, comparisons and sweeps.

``quick-cpu``: a three-method comparison that finishes in about a minute on 2 CPU cores
(small CNN, class-balanced subset of 6,000 training and 2,000 test images, 5 epochs) and still
shows differences between methods. Thresholds are lower than the paper's because a minute of
CPU does not reach 90%.

``paper``: the paper's setting (Pasichnyk 2026, arXiv:2603.28921), for a GPU: ResNet-18
(CIFAR variant), all of CIFAR-10, batch 128, SGD lr 0.1, weight decay 5e-4, cosine, the five
methods the paper most likely compared, thresholds 90% and 95%. 100 epochs is our choice
(the paper's count is not in what we have; docs/decisions.md, "Presets").

``sweep-cpu``: a tuned comparison that gives a verdict on 2 CPU cores in about 15 minutes on
CIFAR-10: constant, beta and hybrid momentum, each over LRs 0.025-0.2 on 2 tuning seeds
(validation), then at its chosen LR on 3 fresh seeds (test); small CNN, 5,000 training
images, 8 epochs. ``sweep-gpu``: the same design sized for a few minutes on one modern GPU
(all of CIFAR-10, ResNet-style net, 4 LRs x 2 tuning seeds, 5 test seeds). A preset's
``sweep`` entry gives the sweep's defaults; flags override them.
"""
from __future__ import annotations

__all__ = ["PRESETS", "preset_config", "preset_methods", "preset_sweep"]

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
    "sweep-cpu": {
        "config": {"model": "small_cnn", "dataset": "auto", "train_subset": 5000, "test_subset": 2000,
                   "epochs": 8, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4, "lr_schedule": "cosine",
                   "thresholds": (0.5, 0.6)},
        "methods": ["sgd-constant", "sgd-beta", "sgd-hybrid"],
        "sweep": {"grid": {"*": {"lr": [0.025, 0.05, 0.1, 0.2]}}, "tune": ["lr"], "tune_seeds": [100, 101],
                  "seeds": [0, 1, 2], "targets": [0.5, 0.6], "baseline": "sgd-constant"},
    },
    "sweep-gpu": {
        "config": {"model": "small_resnet", "width": 32, "dataset": "cifar10", "train_subset": None,
                   "test_subset": None, "epochs": 10, "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4,
                   "lr_schedule": "cosine", "thresholds": (0.8, 0.85)},
        "methods": ["sgd-constant", "sgd-beta", "sgd-hybrid"],
        "sweep": {"grid": {"*": {"lr": [0.05, 0.1, 0.2, 0.4]}}, "tune": ["lr"], "tune_seeds": [100, 101],
                  "seeds": [0, 1, 2, 3, 4], "targets": [0.8, 0.85], "baseline": "sgd-constant"},
    },
}


def _get(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset: {name!r} (expected one of {tuple(PRESETS)})")
    return PRESETS[name]


def preset_config(name: str) -> dict:
    """The config fields the preset sets (for every method; the planner keeps Adam's own LR)."""
    return dict(_get(name)["config"])


def preset_methods(name: str) -> list[str]:
    return list(_get(name)["methods"])


def preset_sweep(name: str) -> dict:
    """The sweep defaults of a preset (grid, tune, seeds, targets, baseline); {} if it has none."""
    return dict(_get(name).get("sweep", {}))
