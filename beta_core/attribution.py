"""Per-layer-group gradient attribution on misclassified images (the paper's "Localize").

For a trained model and a split: find the misclassified samples, take the gradient of the
mean loss over only those samples, and turn each layer group's slice of it into one score.

Normalizations (DECISION, ``AttributionConfig.normalization``):

=============  ====================  =============================================
raw            ||g_G||               favours big groups
per_param      ||g_G|| / sqrt(n_G)   RMS gradient per parameter
relative       ||g_G|| / ||w_G||     Auto-RGN (surgical fine-tuning); default
=============  ====================  =============================================

Default ``relative`` because it is scale-free across groups of very different size. None
of the three passes our planted-fault check (damage one group, it must rank first): see
docs/decisions.md for the table and the strict expected failure in tests/test_attribution.py.
Selection (DECISION): top-k (k = 3, as the paper
flags 3 of 7) or a z-score threshold. Split (DECISION): the test split's errors by default,
for diagnosis; surgery then trains on the training split (see ``surgery``).

Probe (ours, beyond the paper): gradient norms answer "where does the error signal flow",
not "which group, retrained, would fix the errors". ``probe_scores`` asks the second question
directly: for each group alone, a few SGD steps on training batches, then the drop in
held-out loss. It costs ``groups x steps`` training steps; the localisation benchmark found it
the most reliable score, so it is the default flagging score (``DEFAULT_SCORE``).

Scores (``score_groups``, one interface: a ranking of groups and its cost): the paper's three
gradient norms, a first-order Taylor score, an empirical Fisher score, the probe and a
random ranking. Which one flags groups by default (``DEFAULT_SCORE``) is decided by the
localisation benchmark (``beta_core.localise``; figures in docs/decisions.md).

Planted fault (``plant_fault``): damage one chosen group on purpose (Gaussian noise scaled
to the group's own weight RMS), re-diagnose, and report where the damaged group ranks: how
the diagnostic itself is tested.

Breakdowns: group x true class and group x predicted class are computed by splitting the
errors by class before the backward pass: gradients add, so the per-class passes cost what
one pass over all errors costs. Correctly classified samples give a contrast (errors /
correct per group).
"""
from __future__ import annotations

import base64
import copy
import io
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from PIL import Image
from torch.func import functional_call, grad, vmap

from .hooks import Hook
from .models import eval_mode, evaluate, group_param_counts, group_parameters
from .records import AttributionResult

__all__ = ["NORMALIZATIONS", "STAGES", "AttributionConfig", "attribute", "error_gallery", "GALLERY", "select_groups",
           "overlap",
           "epoch_scores", "group_scores_for", "NoErrorsError", "probe_scores", "plant_fault",
           "SCORES", "PAPER_SCORES", "DEFAULT_SCORE", "score_groups", "SCORE_MEANING", "add_weight_noise",
           "EpochAttribution", "PROBE_NOISE_Z"]

NORMALIZATIONS = ("raw", "per_param", "relative")


# ------------------------------------------------------------------ scores under one interface
PAPER_SCORES = ("grad_raw", "grad_per_param", "grad_relative")
SCORES = (*PAPER_SCORES, "taylor", "fisher", "probe", "random")
# The score the Attribution page and surgery's groups="auto" use by default: the winner of
# the localisation benchmark on the default model (docs/decisions.md, "Localisation").
DEFAULT_SCORE = "probe"
# What an attribution does, in order (its progress names them; the probe is the long part).
STAGES = ("1/3 reading the images", "2/3 gradients on the errors", "3/3 the probe retraining each group")
SCORE_MEANING = {
    "grad_raw": "the paper's score: norm of the error-loss gradient per group (where the error signal flows; "
                "favours big groups)",
    "grad_per_param": "the paper's score per parameter: RMS of the error-loss gradient",
    "grad_relative": "the paper's score relative to the weights: gradient norm / weight norm (Auto-RGN)",
    "taylor": "first-order Taylor: |sum of gradient x weight| over the group, the predicted loss change if the "
              "group were zeroed",
    "fisher": "empirical Fisher: mean squared per-sample gradient of the errors, per parameter of the group",
    "probe": "retrain-one-group probe: the held-out loss drop after a few SGD steps on that group alone (what "
             "retraining the group would fix)",
    "random": "a random ranking: the floor a score must beat",
}



class NoErrorsError(ValueError):
    """The model classifies every sample of the split correctly: nothing to attribute."""


@dataclass(frozen=True)
class AttributionConfig:
    split: str = "test"                 # whose errors: test (diagnosis) or train
    normalization: str = "relative"     # raw | per_param | relative (see module doc)
    select: str = "topk"                # topk | zscore
    k: int = 3                          # groups flagged by top-k (paper: 3 of 7)
    z: float = 1.0                      # z-score threshold for select=zscore
    by_predicted: bool = True           # also group x predicted class (one more pass over errors)
    contrast: bool = True               # also the same on correctly classified samples
    max_samples: int | None = None      # cap on samples scanned (None: whole split)
    batch_size: int = 512               # samples per forward/backward
    probe_steps: int = 20               # SGD steps per group of the retrain-one-group probe (0: 20)
    probe_lr: float = 0.01              # probe's LR (momentum 0.9)
    score: str = DEFAULT_SCORE          # which score flags groups: one of SCORES

    def __post_init__(self) -> None:
        if self.split not in ("train", "test"):
            raise ValueError(f"Invalid split: {self.split!r} (expected 'train' or 'test')")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"Unknown normalization: {self.normalization!r} (expected one of "
                             f"{', '.join(NORMALIZATIONS)})")
        if self.select not in ("topk", "zscore"):
            raise ValueError(f"Unknown selection: {self.select!r} (expected 'topk' or 'zscore')")
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"Invalid k: {self.k!r} (expected an integer >= 1)")
        if not (isinstance(self.z, (int, float)) and math.isfinite(self.z)):
            raise ValueError(f"Invalid z: {self.z!r} (expected a finite z-score threshold, e.g. 1.0)")
        if not isinstance(self.probe_lr, (int, float)) or not (math.isfinite(self.probe_lr) and self.probe_lr > 0):
            raise ValueError(f"Invalid probe_lr: {self.probe_lr!r} (expected a finite number > 0)")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"Invalid batch_size: {self.batch_size!r} (expected an integer >= 1)")
        if not isinstance(self.probe_steps, int) or self.probe_steps < 0:
            raise ValueError(f"Invalid probe_steps: {self.probe_steps!r} (expected an integer >= 0)")
        if self.score not in SCORES:
            raise ValueError(f"Unknown score: {self.score!r} (expected one of {', '.join(SCORES)})")
        if self.max_samples is not None and (not isinstance(self.max_samples, int) or self.max_samples < 1):
            raise ValueError(f"Invalid max_samples: {self.max_samples!r} (expected an integer >= 1 images, or None "
                             "for the whole split)")


def _normalise(sq: dict[str, float], groups: dict, how: str) -> dict[str, float]:
    out = {}
    for g, params in groups.items():
        norm = math.sqrt(sq[g])
        if how == "per_param":
            norm /= math.sqrt(sum(p.numel() for _, p in params))
        elif how == "relative":
            norm /= max(1e-12, math.sqrt(sum(float(p.detach().float().pow(2).sum()) for _, p in params)))
        out[g] = norm
    return out


def _grad_sq(model, x: torch.Tensor, y: torch.Tensor, groups: dict, scale: float, batch: int,
             total: dict | None = None) -> dict[str, float]:
    """Squared norm per group of the gradient of ``scale * sum(loss)`` over (x, y).

    With ``total`` given, the group gradients are also added into it (to combine subsets).
    """
    model.zero_grad(set_to_none=True)
    for i in range(0, len(y), batch):
        loss = F.cross_entropy(model(x[i:i + batch]), y[i:i + batch], reduction="sum") * scale
        loss.backward()
    out = {}
    for g, params in groups.items():
        sq = 0.0
        for name, p in params:
            if p.grad is not None:
                sq += float(p.grad.float().pow(2).sum())
                if total is not None:
                    total[name] = total.get(name, 0) + p.grad.detach().clone()
        out[g] = sq
    return out


def _scan(model, loader, max_samples: int | None, on_batch=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, labels, predictions) over the split, in eval mode, without gradients."""
    xs, ys, preds, n = [], [], [], 0
    with torch.no_grad():
        for xb, yb in loader.epoch(0):
            xs.append(xb), ys.append(yb), preds.append(model(xb).argmax(1))
            n += len(yb)
            if on_batch is not None:
                on_batch(n)
            if max_samples and n >= max_samples:
                break
    x, y, p = torch.cat(xs), torch.cat(ys), torch.cat(preds)
    return (x[:max_samples], y[:max_samples], p[:max_samples]) if max_samples else (x, y, p)


def _by_class(model, x, y, keys, n_classes, groups, cfg, n_total, on_class=None) -> tuple[dict, dict]:
    """Per-class group scores, plus the combined scores of all classes."""
    total: dict = {}
    per_class = {}
    for c in range(n_classes):
        sel = keys == c
        if sel.any():
            sq = _grad_sq(model, x[sel], y[sel], groups, 1.0 / n_total, cfg.batch_size, total)
            per_class[c] = _normalise(sq, groups, cfg.normalization)
        if on_class is not None:
            on_class()
    sq_all = {g: sum(float(total[n].float().pow(2).sum()) for n, _ in ps if n in total) for g, ps in groups.items()}
    return per_class, _normalise(sq_all, groups, cfg.normalization)


def probe_scores(model: torch.nn.Module, train_loader, eval_loader, steps: int = 20, lr: float = 0.01,
                 seed: int = 0, on_group=None) -> dict[str, float]:
    """Per group: drop in ``eval_loader`` loss after ``steps`` SGD steps that train only that group.

    BatchNorm stays in eval mode (running statistics fixed), so only the group's parameters
    change; every group sees the same batches (same seed). The model itself is not modified.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Invalid steps: {steps!r} (expected an integer >= 1)")
    base, _ = evaluate(model, eval_loader)
    out = {}
    for g in group_parameters(model):
        m = copy.deepcopy(model).eval()
        params = [p for _, p in group_parameters(m)[g]]
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
        batches = train_loader.epoch(seed)
        for _ in range(steps):
            try:
                xb, yb = next(batches)
            except StopIteration:
                batches = train_loader.epoch(seed + 1)
                xb, yb = next(batches)
            loss = F.cross_entropy(m(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        out[g] = base - evaluate(m, eval_loader)[0]
        if on_group is not None:
            on_group()
    return out


def attribute(model: torch.nn.Module, loader, cfg: AttributionConfig = AttributionConfig(),  # noqa: B008 - frozen
              classes: tuple[str, ...] | None = None, train_loader=None,
              on_progress: Callable[[str, int, int | None, str], None] | None = None) -> AttributionResult:
    """Attribution result: the paper's gradient scores per group on errors (and contrast) with
    breakdowns by class, and the groups flagged by ``cfg.score``.

    ``loader`` is an eval-order :class:`~beta_core.data.DeviceLoader` over the split. The
    flagging score (default :data:`DEFAULT_SCORE`, the probe) needs a ``train_loader``.
    Raises :class:`NoErrorsError` when the model makes no mistakes on the split.
    ``on_progress(stage, done, total, unit)``: after each batch read, each class's gradients and
    each group the probe retrains (the long part: two passes over every group).
    """
    groups = group_parameters(model)
    tell = on_progress or (lambda *a: None)
    n_images = min(filter(None, (cfg.max_samples, len(getattr(loader, "y", ())))), default=None)
    tell(STAGES[0], 0, n_images, "images")
    # BN on running statistics: samples are independent, so subsets (per class) are exact.
    with eval_mode(model):
        x, y, pred = _scan(model, loader, cfg.max_samples,
                           lambda n: tell(STAGES[0], min(n, n_images or n), n_images, "images"))
        wrong = pred != y
        n_err = int(wrong.sum())
        if n_err == 0:
            raise NoErrorsError(f"No misclassified samples among the {len(y)} of the {cfg.split} split: "
                                "nothing to attribute (expected a model that makes at least one error)")
        n_classes = len(classes) if classes else int(max(y.max(), pred.max())) + 1
        xe, ye, pe = x[wrong], y[wrong], pred[wrong]
        n_grad, done = n_classes * (2 if cfg.by_predicted else 1), iter(range(1, 2 * n_classes + 1))
        step = lambda: tell(STAGES[1], next(done), n_grad, "classes")  # noqa: E731
        by_true, scores = _by_class(model, xe, ye, ye, n_classes, groups, cfg, n_err, step)
        by_pred = _by_class(model, xe, ye, pe, n_classes, groups, cfg, n_err, step)[0] if cfg.by_predicted else {}
        correct = None
        if cfg.contrast and n_err < len(y):
            sq = _grad_sq(model, x[~wrong], y[~wrong], groups, 1.0 / int((~wrong).sum()), cfg.batch_size)
            correct = _normalise(sq, groups, cfg.normalization)
        model.zero_grad(set_to_none=True)
    names = list(groups)
    counts = group_param_counts(model)
    if cfg.score == "probe" and train_loader is None:
        raise ValueError("Invalid train_loader: None (expected training batches: the probe score retrains "
                         "each group briefly; choose another score to attribute without them)")
    noise = None
    if cfg.score == f"grad_{cfg.normalization}":
        flag = {"score": cfg.score, "scores": scores, "seconds": None, "passes": 1}
    elif cfg.score == "probe":
        # Two probe runs on different batch orders: a drop counts only where it exceeds their
        # disagreement (a 0.001 drop on a converged model is no localisation).
        passes = iter(range(1, 2 * len(groups) + 1))
        on_group = lambda: tell(STAGES[2], next(passes), 2 * len(groups), "group passes")  # noqa: E731
        tell(STAGES[2], 0, 2 * len(groups), "group passes")
        a, b = (score_groups("probe", model, loader, train_loader, s, cfg.probe_steps or 20, cfg.probe_lr,
                             on_group=on_group) for s in (0, 1))
        mean = {g: (a["scores"][g] + b["scores"][g]) / 2 for g in a["scores"]}
        noise = {g: abs(a["scores"][g] - b["scores"][g]) / 2 for g in a["scores"]}  # standard error of the mean
        flag = {"score": "probe", "scores": mean, "seconds": a["seconds"] + b["seconds"],
                "passes": a["passes"] + b["passes"]}
    else:
        flag = score_groups(cfg.score, model, loader, train_loader, 0, cfg.probe_steps or 20, cfg.probe_lr,
                            cfg.max_samples)
    sel = select_groups(flag["scores"], counts, cfg, noise)
    cls = list(classes) if classes else [str(c) for c in range(n_classes)]
    probe = flag["scores"] if cfg.score == "probe" else None
    matrix = lambda d: [[d.get(c, {}).get(g) for c in range(n_classes)] for g in names]  # noqa: E731
    return {
        "config": asdict(cfg), "groups": names, "classes": cls, "n_samples": len(y), "n_errors": n_err,
        "accuracy": 1 - n_err / len(y), "param_counts": counts, "scores": scores,
        "correct_scores": correct,
        "ratio": {g: scores[g] / correct[g] if correct and correct[g] > 0 else None for g in names},
        "by_true_class": matrix(by_true), "by_pred_class": matrix(by_pred) if by_pred else None,
        "errors_per_true_class": torch.bincount(ye, minlength=n_classes).tolist(),
        "probe_scores": probe, "probe_ranking": sorted(probe, key=lambda g: -probe[g]) if probe else None,
        "score": cfg.score, "score_values": flag["scores"], "score_seconds": flag["seconds"],
        "score_meaning": SCORE_MEANING[cfg.score], "score_noise": noise, **sel,
    }


GALLERY = 48  # misclassified images kept with an attribution (thumbnails: about 2 KB each)


def error_gallery(model: torch.nn.Module, loader, n: int = GALLERY, max_samples: int | None = None,
                  side: int = 64) -> list[dict]:
    """The ``n`` most confident mistakes of the split: position in the split, true and predicted
    class, the model's probability of each, and the image as a PNG (base64, at most ``side``
    pixels a side), so a page, a report or a bundle shows them without the dataset."""
    with eval_mode(model), torch.no_grad():
        x, y, pred = _scan(model, loader, max_samples)
        where = torch.nonzero(pred != y).flatten()
        probs = torch.cat([model(x[where[i:i + 256]]).softmax(1) for i in range(0, len(where), 256)]) \
            if len(where) else torch.empty(0, 1)
    if not len(where):
        return []
    p_pred = probs.gather(1, pred[where].view(-1, 1)).flatten()
    p_true = probs.gather(1, y[where].view(-1, 1)).flatten()
    keep = torch.argsort(p_pred, descending=True)[:n]
    pixels = (x[where[keep]].float() * loader.std + loader.mean).clamp(0, 255).to(torch.uint8).cpu()
    out = []
    for k, img in zip(keep.tolist(), pixels):
        im = Image.fromarray(img.permute(1, 2, 0).numpy())
        im.thumbnail((side, side))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out.append({"index": int(where[k]), "true": int(y[where[k]]), "pred": int(pred[where[k]]),
                    "p_pred": float(p_pred[k]), "p_true": float(p_true[k]),
                    "png": base64.b64encode(buf.getvalue()).decode()})
    return out


PROBE_NOISE_Z = 2.0  # a probe drop stands out when it exceeds this many standard errors of itself


def select_groups(scores: dict[str, float], counts: dict[str, int], cfg: AttributionConfig,
                  noise: dict[str, float] | None = None) -> dict:
    """The flagged groups (highest score first), their scores and the parameter fraction they hold.

    With ``noise`` (the probe's standard error per group, from two probe runs), only a group
    whose score is positive and exceeds :data:`PROBE_NOISE_Z` times its noise can be flagged;
    ``stands_out`` is False when none does (nothing is flagged: "no group stands out")."""
    names = sorted(scores, key=lambda g: -scores[g])
    if cfg.select == "topk":
        if cfg.k > len(names):
            raise ValueError(f"Invalid k: {cfg.k} (expected at most the {len(names)} layer groups {names})")
        flagged = names[:cfg.k]
    else:
        vals = torch.tensor([scores[g] for g in names])
        std = float(vals.std()) if len(vals) > 1 else 0.0
        flagged = [g for g in names if std > 0 and (scores[g] - float(vals.mean())) / std > cfg.z] or names[:1]
    if noise is not None:
        flagged = [g for g in flagged if scores[g] > 0 and scores[g] > PROBE_NOISE_Z * noise[g]]
    total = sum(counts.values())
    return {"flagged": flagged, "flagged_scores": {g: scores[g] for g in flagged},
            "param_fraction": sum(counts[g] for g in flagged) / total, "ranking": names, "stands_out": bool(flagged)}


def overlap(a: list[str], b: list[str]) -> dict:
    """Jaccard index and shared groups of two diagnoses."""
    sa, sb = set(a), set(b)
    union = sa | sb
    return {"jaccard": len(sa & sb) / len(union) if union else 1.0, "shared": sorted(sa & sb),
            "only_a": sorted(sa - sb), "only_b": sorted(sb - sa)}


def group_scores_for(model, x: torch.Tensor, y: torch.Tensor, normalization: str = "relative") -> dict[str, float]:
    """Scores of the gradient of the mean loss over (x, y) per group (one batch, eval mode)."""
    groups = group_parameters(model)
    with eval_mode(model):
        sq = _grad_sq(model, x, y, groups, 1.0 / max(1, len(y)), len(y))
        model.zero_grad(set_to_none=True)
    return _normalise(sq, groups, normalization)


def epoch_scores(model, test_loader, n: int = 512) -> dict[str, float] | None:
    """Group scores on the errors among the first ``n`` test images: cheap enough for every epoch."""
    xb, y = test_loader.normalise(test_loader.x[:n]), test_loader.y[:n]
    with torch.no_grad(), eval_mode(model):
        wrong = model(xb).argmax(1) != y
    if not wrong.any():
        return None
    return group_scores_for(model, xb[wrong], y[wrong])


def plant_fault(model: torch.nn.Module, loader, group: str, strength: float = 1.0,
                seed: int = 0,
                cfg: AttributionConfig = AttributionConfig(by_predicted=False, contrast=False),  # noqa: B008 - frozen
                classes=None, method: str = "gradient", train_loader=None) -> dict:
    """Damage ``group`` in place, re-diagnose, and report whether it ranks first.

    ``method``: ``gradient`` (the paper's error-gradient attribution, ``cfg`` picks the
    normalization) or ``probe`` (retrain-one-group probe; needs ``train_loader``).
    """
    if method not in ("gradient", "probe"):
        raise ValueError(f"Unknown method: {method!r} (expected 'gradient' or 'probe')")
    if method == "probe" and train_loader is None:
        raise ValueError("Invalid train_loader: None (expected a training loader for method='probe')")
    groups = group_parameters(model)
    if group not in groups:
        raise ValueError(f"Unknown layer group: {group!r} (expected one of {', '.join(map(str, groups))})")
    if not (isinstance(strength, (int, float)) and math.isfinite(strength) and strength > 0):
        raise ValueError(f"Invalid strength: {strength!r} (expected > 0, noise RMS relative to the weights' RMS)")
    _, acc_before = evaluate(model, loader)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in groups[group]:
            add_weight_noise(p, strength, g)
    _, acc_after = evaluate(model, loader)
    if method == "probe":
        scores = probe_scores(model, train_loader, loader, max(cfg.probe_steps, 20), cfg.probe_lr, seed)
    else:
        scores = attribute(model, loader, replace(cfg, score=f"grad_{cfg.normalization}"), classes)["scores"]
    ranking = sorted(scores, key=lambda g: -scores[g])
    return {"group": group, "strength": strength, "method": method, "acc_before": acc_before,
            "acc_after": acc_after, "ranking": ranking, "rank_of_damaged": ranking.index(group) + 1,
            "scores": scores, "detected": ranking[0] == group}


def add_weight_noise(p: torch.Tensor, strength: float, g: torch.Generator) -> None:
    """The noise fault, in place: Gaussian noise of RMS ``strength`` x the tensor's own RMS."""
    rms = p.float().pow(2).mean().sqrt()
    p.add_((torch.randn(p.shape, generator=g) * rms * strength).to(p.device, p.dtype))


def _error_set(model, loader, max_samples: int | None = None):
    x, y, pred = _scan(model, loader, max_samples)
    wrong = pred != y
    if not wrong.any():
        raise NoErrorsError(f"No misclassified samples among the {len(y)} scanned: nothing to attribute "
                            "(expected a model that makes at least one error)")
    return x[wrong], y[wrong]


def _fisher(model, x, y, groups: dict, chunk: int = 64) -> dict[str, float]:
    """Mean over the error samples of the squared per-sample gradient, per parameter of a group."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def loss(ps, xi, yi):
        out = functional_call(model, (ps, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    sq = {n: 0.0 for n in params}
    with eval_mode(model):
        for i in range(0, len(y), chunk):
            g = per_sample(params, x[i:i + chunk], y[i:i + chunk])
            for n, t in g.items():
                sq[n] += float(t.float().pow(2).sum())
    return {gname: sum(sq[n] for n, _ in ps) / len(y) / sum(p.numel() for _, p in ps) for gname, ps in groups.items()}


def score_groups(name: str, model: torch.nn.Module, loader, train_loader=None, seed: int = 0,
                 probe_steps: int = 20, probe_lr: float = 0.01, max_samples: int | None = None,
                 on_group=None) -> dict:
    """One score's view of which group is at fault: ``{"scores", "ranking", "seconds", "passes"}``.

    ``loader``: eval-order loader of the split whose errors are diagnosed (the probe also
    measures its held-out loss there); ``train_loader``: augmented training batches (probe
    only). ``passes``: forward+backward passes over the error set, or training steps for the
    probe (plus its evaluations), the unit of cost next to seconds.
    """
    if name not in SCORES:
        raise ValueError(f"Unknown score: {name!r} (expected one of {', '.join(SCORES)})")
    groups = group_parameters(model)
    t0 = time.perf_counter()
    if name == "random":
        names = list(groups)
        random.Random(seed).shuffle(names)
        scores, passes = {g: float(len(names) - i) for i, g in enumerate(names)}, 0
    elif name == "probe":
        if train_loader is None:
            raise ValueError("Invalid train_loader: None (expected training batches for the probe)")
        scores = probe_scores(model, train_loader, loader, probe_steps, probe_lr, seed, on_group)
        passes = len(groups) * (probe_steps + 1) + 1
    else:
        x, y = _error_set(model, loader, max_samples)
        with eval_mode(model):
            if name == "fisher":
                scores, passes = _fisher(model, x, y, groups), 1
            else:
                sq = _grad_sq(model, x, y, groups, 1.0 / len(y), 512)
                passes = 1
                if name == "taylor":
                    scores = {g: abs(sum(float((p.grad * p.detach()).sum()) for _, p in ps if p.grad is not None))
                              for g, ps in groups.items()}
                else:
                    scores = _normalise(sq, groups, name.removeprefix("grad_"))
                model.zero_grad(set_to_none=True)
    ranking = sorted(scores, key=lambda g: -scores[g])
    return {"score": name, "scores": scores, "ranking": ranking, "seconds": time.perf_counter() - t0,
            "passes": passes}


class EpochAttribution(Hook):
    """Per-group error-gradient scores on the first test images, every epoch (``group_scores``;
    config ``attribution_every_epoch``)."""

    def after_epoch(self, training, record: dict) -> None:
        record["group_scores"] = epoch_scores(training.model, training.test_loader)
