"""Which layer is broken? Planted faults and the localisation benchmark of the scores.

Every fault damages exactly one layer group, in place, seeded (tested bit for bit):

==========  =========================================================  ====================
fault       what                                                       severity
==========  =========================================================  ====================
noise       Gaussian noise added to every weight of the group          RMS, x the weights'
zero        a random fraction of the group's weights set to 0          fraction
signflip    a random fraction of the group's weights change sign       fraction
reinit      the group's layers re-initialised (``reset_parameters``)   (one level)
bn_stats    BatchNorm running mean shifted by s x running std and      s
            running variance scaled by (1 + s)^(+-1)
==========  =========================================================  ====================

The benchmark damages each group with each fault and severity (and seed), asks every score
for its ranking of the groups (:func:`beta_core.attribution.score_groups`) on the errors of a
held-out split, and counts how often the damaged group comes first (top-1), in the first
three (top-3), and its mean rank. Rates carry 95% Wilson intervals, the mean rank a t
interval (scipy.stats). The random ranking is the floor (1/G top-1 in expectation).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch

from .attribution import SCORES, NoErrorsError, add_weight_noise, score_groups
from .models import evaluate, group_modules, group_parameters
from .stats import mean_ci, proportion_ci

__all__ = ["FAULTS", "QUICK_SEVERITIES", "apply_fault", "fault_applies", "localisation_benchmark", "summarise"]

FAULTS = ("noise", "zero", "signflip", "reinit", "bn_stats")
QUICK_SEVERITIES = {"noise": (0.5, 1.0), "zero": (0.3, 0.6), "signflip": (0.1, 0.3), "reinit": (1.0,),
                    "bn_stats": (1.0, 3.0)}


def _bn(model: torch.nn.Module, group: str) -> list:
    return [m for c in group_modules(model)[group] for m in c.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def fault_applies(model: torch.nn.Module, group: str, fault: str) -> bool:
    """bn_stats needs BatchNorm in the group (a BatchNorm-free model such as a ViT has none);
    the others need weights (every group has some)."""
    return fault != "bn_stats" or bool(_bn(model, group))


def apply_fault(model: torch.nn.Module, group: str, fault: str, severity: float, seed: int = 0) -> None:
    """Damage ``group`` of ``model`` in place; nothing outside the group changes."""
    groups = group_parameters(model)
    if group not in groups:
        raise ValueError(f"Unknown layer group: {group!r} (expected one of {', '.join(map(str, groups))})")
    if fault not in FAULTS:
        raise ValueError(f"Unknown fault: {fault!r} (expected one of {', '.join(FAULTS)})")
    if not (isinstance(severity, (int, float)) and severity > 0):
        raise ValueError(f"Invalid severity: {severity!r} (expected a number > 0)")
    if fault in ("zero", "signflip") and severity > 1:
        raise ValueError(f"Invalid severity: {severity!r} (expected a fraction in (0, 1] for {fault})")
    if not fault_applies(model, group, fault):
        raise ValueError(f"Invalid fault: bn_stats on {group!r}, which has no BatchNorm layer")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if fault == "reinit":
            torch.manual_seed(seed)
            for m in (m for c in group_modules(model)[group] for m in c.modules()):
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            for _, p in groups[group] if not group_modules(model)[group] else ():
                torch.nn.init.normal_(p, std=0.02)  # parameters the model holds itself (a ViT's class token)
            return
        if fault == "bn_stats":
            for m in _bn(model, group):
                std = m.running_var.sqrt()
                shift = torch.randn(m.running_mean.shape, generator=g).to(std)
                m.running_mean.add_(severity * std * shift)
                up = torch.rand(m.running_var.shape, generator=g).to(std) < 0.5
                m.running_var.mul_(torch.where(up, torch.full_like(std, 1 + severity),
                                               torch.full_like(std, 1 / (1 + severity))))
            return
        for _, p in groups[group]:
            noise = torch.rand(p.shape, generator=g).to(p.device)
            if fault == "noise":
                add_weight_noise(p, severity, g)
            elif fault == "zero":
                p.masked_fill_(noise < severity, 0.0)
            else:
                p.mul_(torch.where(noise < severity, -1.0, 1.0).to(p.dtype))


def localisation_benchmark(model: torch.nn.Module, loader, train_loader, scores=SCORES,
                           severities: dict | None = None, seeds=(0,), groups=None, probe_steps: int = 20,
                           on_case: Callable[[dict], None] | None = None,
                           should_stop: Callable[[], bool] = lambda: False,
                           custom: dict[str, Callable] | None = None) -> dict:
    """Every score on every (seed, fault, severity, group) case; the model itself is untouched.

    ``loader``: eval-order loader of the held-out split whose errors the scores read (and the
    probe's held-out loss); ``train_loader``: the probe's training batches. ``custom``: more
    scores to benchmark, ``name -> f(damaged_model) -> {group: score}`` (your own diagnostic)."""
    severities = severities or QUICK_SEVERITIES
    custom = custom or {}
    scores = (*scores, *custom)
    unknown = [s for s in scores if s not in SCORES and s not in custom]
    if unknown:
        raise ValueError(f"Unknown score: {unknown[0]!r} (expected some of {SCORES})")
    names = list(groups or group_parameters(model))
    _, base_acc = evaluate(model, loader)
    # cases to score, for the progress line (a fault that does not apply to a group is skipped)
    total = len(seeds) * sum(len(levels) * sum(fault_applies(model, g, f) for g in names)
                             for f, levels in severities.items())
    cases = []
    for seed in seeds:
        for fault, levels in severities.items():
            for sev in levels:
                for group in names:
                    if should_stop():
                        return summarise(cases, base_acc, names, scores, stopped=True)
                    if not fault_applies(model, group, fault):
                        continue
                    m = copy.deepcopy(model)
                    apply_fault(m, group, fault, sev, seed)
                    _, acc = evaluate(m, loader)
                    case = {"seed": seed, "fault": fault, "severity": sev, "group": group, "acc": acc,
                            "acc_drop": base_acc - acc, "ranks": {}, "seconds": {}, "passes": {}}
                    for s in scores:
                        try:
                            r = (_custom(s, custom[s], m) if s in custom
                                 else score_groups(s, m, loader, train_loader, seed, probe_steps))
                        except NoErrorsError:
                            case["ranks"][s] = None
                            continue
                        case["ranks"][s] = r["ranking"].index(group) + 1
                        case["seconds"][s], case["passes"][s] = r["seconds"], r["passes"]
                    cases.append(case)
                    if on_case:
                        on_case({**case, "done": len(cases), "total": total})
    return summarise(cases, base_acc, names, scores)


def _custom(name: str, fn: Callable, model) -> dict:
    t0 = time.perf_counter()
    scores = fn(model)
    return {"score": name, "scores": scores, "ranking": sorted(scores, key=lambda g: -scores[g]),
            "seconds": time.perf_counter() - t0, "passes": 0}


def summarise(cases: list[dict], base_acc: float, groups: list[str], scores, stopped: bool = False) -> dict:
    """Hit rates (with Wilson intervals), mean rank and cost per score; top-1 per score and
    fault; accuracy lost per fault and severity."""
    table = {}
    for s in scores:
        ranks = [c["ranks"].get(s) for c in cases]
        n = len(ranks)
        table[s] = {"top1": proportion_ci(sum(r == 1 for r in ranks), n),
                    "top3": proportion_ci(sum(r is not None and r <= 3 for r in ranks), n),
                    "mean_rank": mean_ci([r for r in ranks if r is not None]),
                    "seconds": mean_ci([c["seconds"].get(s) for c in cases])["mean"],
                    "passes": mean_ci([c["passes"].get(s) for c in cases])["mean"],
                    "by_fault": {f: proportion_ci(sum(c["ranks"].get(s) == 1 for c in cases if c["fault"] == f),
                                                  sum(c["fault"] == f for c in cases))["rate"]
                                 for f in dict.fromkeys(c["fault"] for c in cases)}}
    damage = {}
    for c in cases:
        damage.setdefault(f"{c['fault']} {c['severity']:g}", []).append(c["acc_drop"])
    best = max((s for s in scores if s != "random"), key=lambda s: (table[s]["top1"]["rate"] or 0,
                                                                     -(table[s]["mean_rank"]["mean"] or 99)),
               default=None)
    return {"groups": groups, "n_groups": len(groups), "base_acc": base_acc, "n_cases": len(cases),
            "floor_top1": 1 / len(groups), "floor_top3": min(1.0, 3 / len(groups)), "scores": table,
            "accuracy_drop": {k: mean_ci(v) for k, v in damage.items()}, "best": best, "cases": cases,
            "stopped": stopped}
