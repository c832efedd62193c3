"""A run's sub-configs, without torch: :class:`DataConfig` (which data, resolved on this
machine by :func:`resolve_source`) and :class:`ModelConfig` (which model: a built-in name or a
spec). Each is the one home of its fields (type, default, help, bounds) and validates them once,
when made; ``data`` and ``models`` build from them, and ``config.TrainConfig`` holds them (flat as
stored and as flags), so reading a config (a listing, a report, a page) never imports torch.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from . import zoo
from .env import settings
from .fieldtypes import SEED_MAX, check_fields, described, shown

__all__ = ["SOURCES", "SYNTHETIC_MAX", "SUBSET_MAX", "EXPECTED_TREE", "DataSourceError", "DataConfig",
           "resolve_source", "MODELS", "ModelConfig"]

SOURCES = ("auto", "synthetic", "cifar10", "folder")
SYNTHETIC_MAX = 1_000_000  # images per synthetic split: a bound nobody means to exceed
SUBSET_MAX = 10_000_000    # a subset nobody means (CIFAR-10 has 60,000 images; ImageNet 1.3M): a typo fails at once
EXPECTED_TREE = "a folder or a .tar(.gz) holding train/<class>/*.jpg and test/<class>/*.jpg"
MODELS = ("small_cnn", "small_resnet", "resnet18", "airnet")


class DataSourceError(ValueError):
    """A dataset could not be found, read or understood."""


@dataclass(frozen=True)
class DataConfig:
    """Which images a run reads; its fields are ``TrainConfig``'s data fields, flags and stored keys."""
    dataset: str = described("auto", " | ".join(SOURCES))
    data_path: str | None = described(None, "ImageFolder tree or .tar.gz (dataset folder/auto; or BETA_DATA_PATH)")
    train_subset: int | None = described(None, "class-balanced training images; none = all")
    test_subset: int | None = described(None, "class-balanced test images; none = all")
    synthetic_train: int = described(10000, "synthetic dataset size (train)")
    synthetic_test: int = described(2000, "synthetic dataset size (test)")
    data_seed: int = described(0, "synthetic data, subset and validation choice")
    val_fraction: float = described(0.1, "validation images as a share of the training images (0: none); carved "
                                         "from the training pool, never from test")
    val_max: int = described(5000, "at most this many validation images")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.dataset not in SOURCES:
            raise ValueError(f"Unknown dataset: {shown(self.dataset)} (expected one of {', '.join(SOURCES)})")
        for name in ("train_subset", "test_subset"):
            v = getattr(self, name)
            if v is not None and not 10 <= v <= SUBSET_MAX:
                raise ValueError(f"Invalid {name}: {shown(v)} (expected an integer in [10, {SUBSET_MAX:,}] (one image "
                                 "per class at least), or none for all)")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"Invalid val_fraction: {shown(self.val_fraction)} (expected a share in [0, 1); 0 = no "
                             "validation split)")
        if self.val_max < 0:
            raise ValueError(f"Invalid val_max: {shown(self.val_max)} (expected an integer >= 0)")
        for name in ("synthetic_train", "synthetic_test"):
            v = getattr(self, name)
            if not 10 <= v <= SYNTHETIC_MAX:
                raise ValueError(f"Invalid {name}: {shown(v)} (expected an integer in [10, {SYNTHETIC_MAX:,}]; "
                                 f"{SYNTHETIC_MAX:,} images are 3 GB)")
        if not 0 <= self.data_seed <= SEED_MAX:
            raise ValueError(f"Invalid data_seed: {shown(self.data_seed)} (expected an integer in [0, {SEED_MAX}])")


def resolve_source(cfg: DataConfig, data_dir: str | os.PathLike = "data") -> tuple[str, str | None]:
    """(concrete source, path) that ``cfg`` means on this machine."""
    path = cfg.data_path or settings().data_path
    if cfg.dataset == "folder" and not path:
        raise DataSourceError("Dataset 'folder' needs a path (expected --data-path PATH or BETA_DATA_PATH "
                              "pointing at an ImageFolder tree or .tar.gz)")
    if cfg.dataset == "auto":
        if path:
            return "folder", path
        have = (Path(data_dir) / "cifar-10-batches-py" / "data_batch_1").exists()
        return ("cifar10", None) if have else ("synthetic", None)
    return cfg.dataset, path if cfg.dataset == "folder" else None


@dataclass(frozen=True)
class ModelConfig:
    """Which network a run trains; ``name`` is ``TrainConfig``'s ``model``, ``num_classes`` comes
    from the data when the model is built."""
    name: str = described("small_cnn", " | ".join(MODELS) + " | torchvision:NAME[?weights=DEFAULT] | timm:NAME | "
                                       "file.py:factory | package.module:factory (README, 'Your model')")
    width: int | None = described(None, "first-stage channels; none = the model's default (16; resnet18 64)")
    widths: tuple | None = described(None, "airnet: channels of its three blocks, comma-separated; none = 64,256,256 "
                                           "(airbench94's)")
    resize: int | None = described(None, "input side the model sees, in pixels: images upsampled on the device, "
                                          "batch by batch (ViT: 224); none = as stored (32)")
    num_classes: int = 10     # set from the data when the model is built (CIFAR-10: 10)

    def __post_init__(self) -> None:
        check_fields(self, {"name": "model"})
        if zoo.is_spec(self.name):
            object.__setattr__(self, "name", zoo.parse_spec(self.name).text)
            if self.width is not None or self.widths is not None:
                raise ValueError(f"Invalid width/widths for {shown(self.name)} (expected them only with a built-in "
                                 f"model, one of {MODELS})")
        elif self.name not in MODELS:
            raise ValueError(f"Unknown model: {shown(self.name)} (expected one of {', '.join(MODELS)}, or "
                             "torchvision:NAME, timm:NAME, file.py:factory, package.module:factory)")
        if self.resize is not None and not 8 <= self.resize <= 1024:
            raise ValueError(f"Invalid resize: {shown(self.resize)} (expected an input side in pixels in [8, 1024])")
        if self.width is not None and self.width < 1:
            raise ValueError(f"Invalid width: {shown(self.width)} (expected an integer >= 1)")
        if self.num_classes < 2:
            raise ValueError(f"Invalid num_classes: {shown(self.num_classes)} (expected an integer >= 2)")
        if self.widths is not None and len(self.widths) == 0:  # "--widths ," and older stores: the default
            object.__setattr__(self, "widths", None)
        if self.widths is not None:
            # a flag's text parses as numbers (64.0): whole ones are the channel counts meant
            if len(self.widths) != 3 or any(isinstance(w, bool) or not isinstance(w, (int, float))
                                            or not math.isfinite(w) or w != int(w) or w < 1 for w in self.widths):
                raise ValueError(f"Invalid widths: {shown(self.widths)} (expected three integers >= 1, e.g. "
                                 "64,256,256)")
            object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
