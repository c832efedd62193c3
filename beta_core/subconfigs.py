"""A run's sub-configs, without torch: :class:`DataConfig` (which data, resolved on this
machine by :func:`resolve_source`) and :class:`ModelConfig` (which model: a built-in name or a
spec). Each validates its own fields once, when made; ``data`` and ``models`` build from them,
and ``config.TrainConfig`` makes them from its fields, so reading a config (a listing, a
report, a page) never imports torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import zoo
from .env import settings

__all__ = ["SOURCES", "SYNTHETIC_MAX", "EXPECTED_TREE", "DataSourceError", "DataConfig", "resolve_source", "MODELS",
           "ModelConfig"]

SOURCES = ("auto", "synthetic", "cifar10", "folder")
SYNTHETIC_MAX = 1_000_000  # images per synthetic split: a bound nobody means to exceed
EXPECTED_TREE = "a folder or a .tar(.gz) holding train/<class>/*.jpg and test/<class>/*.jpg"
MODELS = ("small_cnn", "small_resnet", "resnet18", "airnet")


class DataSourceError(ValueError):
    """A dataset could not be found, read or understood."""


@dataclass(frozen=True)
class DataConfig:
    source: str = "auto"                # one of SOURCES
    path: str | None = None             # ImageFolder tree or .tar.gz (source "folder"/"auto")
    train_subset: int | None = None     # class-balanced number of training images; None = all
    test_subset: int | None = None      # class-balanced number of test images; None = all
    synthetic_train: int = 10000        # synthetic training images (10 classes)
    synthetic_test: int = 2000          # synthetic test images
    data_seed: int = 0                  # synthetic generation and subset choice (not training)
    val_fraction: float = 0.1           # validation images, as a share of the training images
    val_max: int = 5000                 # ... and at most this many

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"Unknown dataset: {self.source!r} (expected one of {SOURCES})")
        for name in ("train_subset", "test_subset"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 10):
                raise ValueError(f"Invalid {name}: {v!r} (expected None or an integer >= 10, one per class at least)")
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            raise ValueError(f"Invalid val_fraction: {self.val_fraction!r} (expected a share in [0, 1); 0 = no "
                             "validation split)")
        if not isinstance(self.val_max, int) or self.val_max < 0:
            raise ValueError(f"Invalid val_max: {self.val_max!r} (expected an integer >= 0)")
        for name in ("synthetic_train", "synthetic_test"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 10 <= v <= SYNTHETIC_MAX:
                raise ValueError(f"Invalid {name}: {v!r} (expected an integer in [10, {SYNTHETIC_MAX:,}]; "
                                 f"{SYNTHETIC_MAX:,} images are 3 GB)")


def resolve_source(cfg: DataConfig, data_dir: str | os.PathLike = "data") -> tuple[str, str | None]:
    """(concrete source, path) that ``cfg`` means on this machine."""
    path = cfg.path or settings().data_path
    if cfg.source == "folder" and not path:
        raise DataSourceError("Dataset 'folder' needs a path (expected --data-path PATH or BETA_DATA_PATH "
                              "pointing at an ImageFolder tree or .tar.gz)")
    if cfg.source == "auto":
        if path:
            return "folder", path
        have = (Path(data_dir) / "cifar-10-batches-py" / "data_batch_1").exists()
        return ("cifar10", None) if have else ("synthetic", None)
    return cfg.source, path if cfg.source == "folder" else None


@dataclass(frozen=True)
class ModelConfig:
    name: str = "small_cnn"   # one of MODELS, or a spec (zoo): torchvision:NAME, timm:NAME, file.py:factory
    width: int | None = None  # channels of the first stage; None: 16 (small models), 64 (resnet18)
    num_classes: int = 10     # CIFAR-10
    widths: tuple | None = None  # airnet: channels of its three blocks; None: (64, 256, 256), airbench94's
    resize: int | None = None  # input side the model sees: images upsampled on the device; None: as stored (32)

    def __post_init__(self) -> None:
        if zoo.is_spec(self.name):
            object.__setattr__(self, "name", zoo.parse_spec(self.name).text)
            if self.width is not None or self.widths is not None:
                raise ValueError(f"Invalid width/widths for {self.name!r} (expected them only with a built-in "
                                 f"model, one of {MODELS})")
        elif self.name not in MODELS:
            raise ValueError(f"Unknown model: {self.name!r} (expected one of {MODELS}, or "
                             "torchvision:NAME, timm:NAME, file.py:factory, package.module:factory)")
        if self.resize is not None and (not isinstance(self.resize, int) or not 8 <= self.resize <= 1024):
            raise ValueError(f"Invalid resize: {self.resize!r} (expected an input side in pixels in [8, 1024])")
        if self.width is not None and (not isinstance(self.width, int) or self.width < 1):
            raise ValueError(f"Invalid width: {self.width!r} (expected an integer >= 1)")
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"Invalid num_classes: {self.num_classes!r} (expected an integer >= 2)")
        if self.widths is not None:
            if len(self.widths) != 3 or any(not isinstance(w, int) or w < 1 for w in self.widths):
                raise ValueError(f"Invalid widths: {self.widths!r} (expected three integers >= 1, e.g. 64,256,256)")
            object.__setattr__(self, "widths", tuple(self.widths))
