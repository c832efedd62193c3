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

Any other model comes from a spec (``zoo``): ``torchvision:NAME``, ``timm:NAME``, or your
factory (``file.py:factory``, ``package.module:factory``); ``ModelConfig.name`` holds either.

Layer groups (the unit of attribution, surgery, curvature per group and the localisation
benchmark), in forward order, by this rule:

1. a model's own ``layer_groups()`` method, ``{name: [modules]}``, if it has one (the
   built-in models: their top-level children); parameters it leaves out form ``other``;
2. else its top-level children that hold parameters (parameters held by the model itself
   first, as one group named after them);
3. while fewer than 4 groups hold 1% of the parameters or more, the biggest group, when it
   holds more than half the parameters, is replaced by its own children (``features`` ->
   ``features.0``, ``features.1``, ...);
4. neighbours made by step 3 that hold under 1% each are merged (``features.0-1``); then,
   while there are more than 12 groups, the neighbouring pair with the fewest parameters
   (pairs of step-3 parts first, so a stem or a head stays a group of its own).

torchvision's resnet18 keeps its seven (conv1 bn1 layer1-4 fc); mobilenet_v3_small splits
``features`` and merges to 12; efficientnet_b0 gives its nine ``features`` stages and the
classifier. ``layer_groups(model)`` returns them with their parameter counts.

Evaluation lives here too: ``predict`` and ``evaluate`` run a model over an eval loader (any
object with ``epoch(0)`` yielding ``(images, labels)``, ``device`` and ``y``) inside
``eval_mode``, which restores the model's train/eval state afterwards.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from . import zoo
from .records import train_config_of
from .subconfigs import MODELS, ModelConfig

__all__ = ["MODELS", "ModelConfig", "build_model", "layer_groups", "group_parameters", "group_param_counts",
           "group_modules", "LayerGroup", "SmallCNN", "ResNet", "AirNet", "eval_mode", "predict", "evaluate",
           "loss_fn", "check_model", "catalogue", "runs_at", "run_groups"]



class _TopLevelGroups:
    """The built-in models' groups: their top-level children that hold parameters."""

    def layer_groups(self) -> dict[str, list[nn.Module]]:
        return {n: [c] for n, c in self.named_children() if any(True for _ in c.parameters())}


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


class ResNet(_TopLevelGroups, nn.Module):
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


class SmallCNN(_TopLevelGroups, nn.Module):
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


class AirNet(_TopLevelGroups, nn.Module):
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


def _builtin(cfg: ModelConfig) -> nn.Module:
    if cfg.name == "airnet":
        return AirNet(cfg.widths or (64, 256, 256), cfg.num_classes)
    if cfg.name == "resnet18":
        return ResNet((2, 2, 2, 2), cfg.width or 64, cfg.num_classes)
    if cfg.name == "small_resnet":
        return ResNet((1, 1, 1), cfg.width or 16, cfg.num_classes)
    return SmallCNN(cfg.width or 16, cfg.num_classes)


def _upsample(size: int, module: nn.Module, args: tuple) -> tuple:
    # On the device, per batch: the loader keeps its uint8 32x32 images; the model sees size x size.
    x = args[0]
    if x.shape[-1] == size and x.shape[-2] == size:
        return args
    return (F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False), *args[1:])


def build_model(cfg: ModelConfig, pretrained: bool = True) -> nn.Module:
    """A fresh model; seed torch before calling for reproducible weights. ``pretrained=False``:
    a spec's pretrained weights are not fetched (a checkpoint is loaded over them)."""
    if zoo.is_spec(cfg.name):
        model = zoo.build(zoo.parse_spec(cfg.name), cfg.num_classes, cfg.resize or 32, 3, pretrained)
    else:
        model = _builtin(cfg)
    if cfg.resize:
        # A forward pre-hook, not a wrapper module: state_dict keys and layer groups stay the model's own.
        model.register_forward_pre_hook(partial(_upsample, cfg.resize))
    return model


def check_model(cfg: ModelConfig) -> None:
    """Before any run exists: the model builds (imports, factory, pretrained weights in the
    cache or downloadable) and runs on its input size; else one line saying why
    (``zoo.ModelSpecError``)."""
    if zoo.is_spec(cfg.name):
        zoo.check(build_model(cfg), cfg.name, cfg.resize or 32)
        return
    if cfg.resize:
        zoo.check(build_model(cfg), cfg.name, cfg.resize)


def catalogue(names: list[str] | None = None, image_size: int = 32) -> list[dict]:
    """``[{name, params, runs_at}]``: the built-in models and torchvision's classifiers, their
    parameter counts (10 classes) and whether they run on ``image_size`` inputs, found on the
    meta device (no memory, no compute: about 6 s for all of torchvision). ``runs_at`` is
    None where a model cannot be built on the meta device (regnet)."""
    out = []
    for name in names or [*MODELS, *(f"torchvision:{n}" for n in zoo.torchvision_names())]:
        row = {"name": name, "params": None, "runs_at": None}
        try:
            with torch.device("meta"), warnings.catch_warnings():
                # googlenet and inception warn about a future change of their own initialisation
                warnings.filterwarnings("ignore", "The default weight initialization", FutureWarning)
                model = build_model(ModelConfig(name), pretrained=False)
            row["params"] = sum(p.numel() for p in model.parameters())
            row["runs_at"] = runs_at(model, image_size)
        except Exception:  # noqa: BLE001 - a model that cannot be built on meta: unknown here
            pass
        out.append(row)
    return out


def runs_at(model: nn.Module, image_size: int) -> bool:
    """Whether ``model`` (on the meta device: shapes only) takes ``image_size`` x ``image_size`` inputs."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.empty(2, 3, image_size, image_size, device="meta"))
        return True
    except Exception:  # noqa: BLE001 - any shape error: it does not run at this size
        return False
    finally:
        model.train(was)


@dataclass(frozen=True)
class LayerGroup:
    name: str
    n_params: int
    fraction: float  # of the model's parameters


GROUPS_MIN, GROUPS_MAX, SMALL = 4, 12, 0.01  # the rule's aim (4-12 groups) and "small" (1% of parameters)


@dataclass
class _Unit:
    first: str                                  # name of the first part (the group's name when alone)
    last: str                                   # name of the last part (a merged group spans first..last)
    modules: list
    params: list                                # [(param name, param)]
    split: bool = False                         # made by splitting a bigger group (step 3)

    @property
    def n(self) -> int:
        return sum(p.numel() for _, p in self.params)

    @property
    def name(self) -> str:
        if self.first == self.last:
            return self.first
        a, b = self.first.rpartition("."), self.last.rpartition(".")
        return f"{a[0]}.{a[2]}-{b[2]}" if a[0] and a[0] == b[0] else f"{self.first}-{b[2]}"


def _children(model: nn.Module, prefix: str, module: nn.Module, names: dict, seen: set, split: bool) -> list:
    """Units of ``module``: its own parameters (one unit), then each child holding parameters."""
    def take(params):  # shared (tied) parameters count once, in the first group that has them
        out = [(names[id(p)], p) for p in params if id(p) not in seen]
        seen.update(id(p) for _, p in out)
        return out

    units = []
    own = take(module.parameters(recurse=False))
    if own:
        label = prefix + "+".join(n.rpartition(".")[2] for n, _ in own)
        units.append(_Unit(label, label, [], own, split))
    for n, child in module.named_children():
        params = take(child.parameters())
        if params:
            units.append(_Unit(prefix + n, prefix + n, [child], params, split))
    return units


def _grouping(model: nn.Module) -> dict[str, _Unit]:
    """The groups of ``model`` by the rule in this module's docstring."""
    names = {id(p): n for n, p in model.named_parameters()}
    seen: set = set()
    if callable(getattr(model, "layer_groups", None)):
        units = []
        for g, modules in model.layer_groups().items():
            params = [(names[id(p)], p) for m in modules for p in m.parameters() if id(p) not in seen]
            seen.update(id(p) for _, p in params)
            units.append(_Unit(g, g, list(modules), params))
        rest = [(n, p) for n, p in model.named_parameters() if id(p) not in seen]
        units += [_Unit("other", "other", [], rest)] if rest else []
    else:
        units = _children(model, "", model, names, seen, False)
        total = sum(u.n for u in units)
        while units and sum(u.n >= SMALL * total for u in units) < GROUPS_MIN:
            big = max(units, key=lambda u: u.n)
            sub = _children(model, big.first + ".", big.modules[0], names, set(), True) if big.modules else []
            if big.n <= total / 2 or len(sub) < 2:
                break
            i = units.index(big)
            units[i:i + 1] = sub
        merged = []
        for u in units:  # step 4: split neighbours under 1% each become one group
            prev = merged[-1] if merged else None
            if prev and u.split and prev.split and u.n < SMALL * total and prev.n < SMALL * total:
                merged[-1] = _Unit(prev.first, u.last, prev.modules + u.modules, prev.params + u.params, True)
            else:
                merged.append(u)
        units = merged
        while len(units) > GROUPS_MAX:
            # The smallest neighbouring pair, split parts first: the model's own top-level
            # children (a stem, a head) stay groups of their own as long as parts can merge.
            i = min(range(len(units) - 1), key=lambda j: (not (units[j].split and units[j + 1].split),
                                                          units[j].n + units[j + 1].n))
            a, b = units[i], units[i + 1]
            units[i:i + 2] = [_Unit(a.first, b.last, a.modules + b.modules, a.params + b.params, a.split)]
    groups = {u.name: u for u in units if u.params}
    if not groups:
        raise ValueError(f"Invalid model: {type(model).__name__} has no layer groups "
                         "(expected a model with parameters)")
    return groups


def group_parameters(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Ordered ``{group: [(param name, param), ...]}``: the model's layer groups in forward order."""
    return {g: u.params for g, u in _grouping(model).items()}


def group_modules(model: nn.Module) -> dict[str, list[nn.Module]]:
    """Ordered ``{group: [modules]}``; a group of parameters the model holds itself has none."""
    return {g: u.modules for g, u in _grouping(model).items()}


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


def run_groups(run: dict) -> list[tuple[str, int]]:
    """``[(group, parameters)]`` of a training run's model (or its parent's, for a surgery or an
    attribution): as recorded when it trained, else built from its stored config without
    pretrained weights."""
    if run.get("summary", {}).get("groups"):
        return [tuple(g) for g in run["summary"]["groups"]]
    c = train_config_of(run)
    widths = tuple(c["widths"]) if c.get("widths") else None
    mc = ModelConfig(c.get("model", "small_cnn"), c.get("width"), widths=widths, resize=c.get("resize"))
    return [(g.name, g.n_params) for g in layer_groups(build_model(mc, pretrained=False))]
