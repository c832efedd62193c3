"""Models with ordered, named layer groups (the unit of attribution and surgery).

=============  ===============================================  ==================
name           what                                             groups
=============  ===============================================  ==================
resnet18       CIFAR ResNet-18: 3x3 stem, no max-pool, 11.17M   conv1 bn1 layer1-4 fc
small_resnet   ResNet with one BasicBlock per stage, width w    conv1 bn1 layer1-3 fc
small_cnn      stem + 3 pooled conv blocks (w, 2w, 4w, 8w)      conv1 bn1 block1-3 fc
airnet         airbench94's net: 2x2 whitening stem, 3 blocks   whiten block1-3 head
               (widths 64/256/256), max-pool, scaled linear
=============  ===============================================  ==================

A layer group is a top-level child module that holds parameters; the order is
the order of the forward pass. ``layer_groups(model)`` returns them with their
parameter counts.

Evaluation lives here too: ``predict`` and ``evaluate`` run a model over an eval loader (any
object with ``epoch(0)`` yielding ``(images, labels)``, ``device`` and ``y``) inside
``eval_mode``, which restores the model's train/eval state afterwards.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODELS", "ModelConfig", "build_model", "layer_groups", "group_parameters", "group_param_counts",
           "LayerGroup", "SmallCNN", "ResNet", "AirNet", "eval_mode", "predict", "evaluate", "loss_fn"]

MODELS = ("small_cnn", "small_resnet", "resnet18", "airnet")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "small_cnn"   # one of MODELS
    width: int | None = None  # channels of the first stage; None: 16 (small models), 64 (resnet18)
    num_classes: int = 10     # CIFAR-10
    widths: tuple | None = None  # airnet: channels of its three blocks; None: (64, 256, 256), airbench94's

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise ValueError(f"Unknown model: {self.name!r} (expected one of {MODELS})")
        if self.width is not None and (not isinstance(self.width, int) or self.width < 1):
            raise ValueError(f"Invalid width: {self.width!r} (expected an integer >= 1)")
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"Invalid num_classes: {self.num_classes!r} (expected an integer >= 2)")
        if self.widths is not None:
            if len(self.widths) != 3 or any(not isinstance(w, int) or w < 1 for w in self.widths):
                raise ValueError(f"Invalid widths: {self.widths!r} (expected three integers >= 1, e.g. 64,256,256)")
            object.__setattr__(self, "widths", tuple(self.widths))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem without max-pool, BasicBlock stages, global pool, fc."""

    def __init__(self, blocks: tuple[int, ...], width: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2 ** i
            stage = [BasicBlock(cin if j == 0 else cout, cout, 1 if (i == 0 or j > 0) else 2) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            cin = cout
        self.n_stages = len(blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    # conv -> pool -> bn -> relu: pooling before BN halves the BN work (airbench's order)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """A fast CNN for CPU demos: stem, three pooled conv blocks (2w, 4w, 8w), fc.

    The stem is pooled at once, so no block runs at full 32x32 resolution: at width 16
    this trains at about 2,500 images/s on 2 CPU cores with channels_last (vs ~1,200
    with the first block at full resolution).
    """

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.block1 = _conv_block(width, width * 2)
        self.block2 = _conv_block(width * 2, width * 4)
        self.block3 = _conv_block(width * 4, width * 8)
        self.fc = nn.Linear(width * 8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(torch.flatten(F.adaptive_max_pool2d(x, 1), 1))


class _AirBN(nn.BatchNorm2d):
    """airbench's BatchNorm: torch momentum 0.6, eps 1e-12, scale fixed at 1 (only the shift trains)."""

    def __init__(self, c: int) -> None:
        super().__init__(c, momentum=0.6, eps=1e-12)
        self.weight.requires_grad_(False)


class _AirBlock(nn.Module):
    """conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU (airbench's ConvGroup)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = _AirBN(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = _AirBN(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class AirNet(nn.Module):
    """airbench94's network (Keller Jordan, cifar10-airbench): a 2x2 patch-whitening stem
    (24 channels: the whitening filters and their negatives, fixed from the data by
    :meth:`init_from_data`; its bias trains), three blocks, 3x3 max-pool, a linear head
    without bias whose output is scaled by 1/9. Layer groups: whiten, block1-3, head."""

    def __init__(self, widths: tuple = (64, 256, 256), num_classes: int = 10) -> None:
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.block1 = _AirBlock(24, widths[0])
        self.block2 = _AirBlock(widths[0], widths[1])
        self.block3 = _AirBlock(widths[1], widths[2])
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = 1 / 9

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Whitening filters from the 2x2 patches of ``x`` (normalised images): the eigenvectors of
        their covariance scaled by 1/sqrt(eigenvalue + eps), and their negatives."""
        patches = x.float().unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3, 2, 2)
        flat = patches.reshape(len(patches), -1).double()
        cov = (flat - flat.mean(0)).T @ (flat - flat.mean(0)) / len(flat)
        vals, vecs = torch.linalg.eigh(cov)
        vals, vecs = vals.flip(0), vecs.T.flip(0)
        w = (vecs / (vals + eps).sqrt()[:, None]).reshape(-1, 3, 2, 2).float()
        self.whiten.weight.copy_(torch.cat([w, -w]).to(self.whiten.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten(x))
        x = self.block3(self.block2(self.block1(x)))
        x = torch.flatten(F.adaptive_max_pool2d(x, 1), 1)
        return self.head(x) * self.scale


def build_model(cfg: ModelConfig) -> nn.Module:
    """A fresh model; seed torch before calling for reproducible weights."""
    if cfg.name == "airnet":
        return AirNet(cfg.widths or (64, 256, 256), cfg.num_classes)
    if cfg.name == "resnet18":
        return ResNet((2, 2, 2, 2), cfg.width or 64, cfg.num_classes)
    if cfg.name == "small_resnet":
        return ResNet((1, 1, 1), cfg.width or 16, cfg.num_classes)
    return SmallCNN(cfg.width or 16, cfg.num_classes)


@dataclass(frozen=True)
class LayerGroup:
    name: str
    n_params: int
    fraction: float  # of the model's parameters


def group_parameters(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Ordered ``{group: [(param name, param), ...]}`` over top-level children with parameters."""
    groups = {}
    for name, child in model.named_children():
        params = [(f"{name}.{n}", p) for n, p in child.named_parameters()]
        if params:
            groups[name] = params
    if not groups:
        raise ValueError(f"Invalid model: {type(model).__name__} has no layer groups "
                         "(expected top-level child modules that hold parameters)")
    return groups


def group_param_counts(model: nn.Module) -> dict[str, int]:
    """``{group: number of parameters}`` in forward order."""
    return {g: sum(p.numel() for _, p in ps) for g, ps in group_parameters(model).items()}


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """The model's layer groups in forward order, with parameter counts and fractions."""
    counts = group_param_counts(model)
    total = sum(counts.values())
    return [LayerGroup(g, n, n / total) for g, n in counts.items()]


# ------------------------------------------------------------------ evaluation
def loss_fn(label_smoothing: float = 0.0):
    """The training loss, one definition for the loop, curvature and the CLI: cross-entropy in
    float32 (bf16 logits under autocast) with the run's label smoothing."""
    return lambda out, y: F.cross_entropy(out.float(), y, label_smoothing=label_smoothing)


@contextmanager
def eval_mode(model: nn.Module):
    """Eval mode (BatchNorm on running statistics) inside the block; the previous mode after it."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@torch.no_grad()
def predict(model: nn.Module, loader, autocast: bool = False, tta: bool = False) -> tuple[torch.Tensor, float]:
    """(predicted labels, mean cross-entropy) over one pass of an eval-order ``loader``.

    ``tta``: test-time augmentation, the mean of the logits of each image and its mirror
    image (airbench's level 1)."""
    preds, loss_sum, n = [], 0.0, 0
    with eval_mode(model):
        for xb, yb in loader.epoch(0):
            with torch.autocast(loader.device.type, torch.bfloat16, enabled=autocast):
                out = model(xb)
                if tta:
                    out = (out + model(xb.flip(3))) / 2
            loss_sum += F.cross_entropy(out.float(), yb, reduction="sum").item()
            preds.append(out.argmax(1))
            n += len(yb)
    return torch.cat(preds), loss_sum / n


def evaluate(model: nn.Module, loader, autocast: bool = False, tta: bool = False) -> tuple[float, float]:
    """(loss, accuracy) over one pass of ``loader``."""
    preds, loss = predict(model, loader, autocast, tta)
    return loss, (preds == loader.y).float().mean().item()
