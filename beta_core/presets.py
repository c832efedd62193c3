"""Named starting points for runs and comparisons.

``quick-cpu``: a three-method comparison that finishes in about a minute on 2 CPU cores
(small CNN, class-balanced subset of 6,000 training and 2,000 test images, 5 epochs) and still
shows differences between methods. Thresholds are lower than the paper's because a minute of
CPU does not reach 90%.

``paper``: the paper's setting (Pasichnyk 2026, arXiv:2603.28921), for a GPU: ResNet-18
(CIFAR variant), all of CIFAR-10, batch 128, SGD lr 0.1, weight decay 5e-4, cosine, the five
methods the paper most likely compared, thresholds 90% and 95%. 100 epochs is our choice
(the paper's count is not in what we have; docs/decisions.md, "Presets").
"""
from __future__ import annotations

__all__ = ["PRESETS", "preset_config", "preset_methods"]

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
