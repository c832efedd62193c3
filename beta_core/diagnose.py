"""Load a finished run's model and data for diagnosis, and the planted-fault check.

Planted fault: damage one chosen layer group on purpose (add Gaussian noise scaled to the
group's own weight RMS) so accuracy drops, then attribute. A diagnostic that works must rank
the damaged group first. This is how the diagnostic itself is tested.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .attribution import AttributionConfig, attribute
from .data import DeviceLoader, Splits
from .engine import Training, TrainConfig, evaluate
from .models import group_parameters
from .store import Store, StoreError

__all__ = ["load_trained", "loaders_for", "plant_fault"]


def loaders_for(splits: Splits, device, channels_last: bool, batch: int = 1024) -> dict[str, DeviceLoader]:
    """Eval-order loaders (no augmentation) over the test and training splits, and a shuffled,
    augmented training loader (batch 128) for the probe."""
    mean, std = splits.mean_std
    mk = lambda x, y: DeviceLoader(x, y, min(batch, len(y)), mean, std, False, 0, device, channels_last)  # noqa: E731
    return {"test": mk(splits.test_x, splits.test_y), "train_eval": mk(splits.train_x, splits.train_y),
            "train": DeviceLoader(splits.train_x, splits.train_y, min(128, len(splits.train_y)), mean, std, True, 0,
                                  device, channels_last)}


def load_trained(store: Store, run_id: str, data_dir: str = "data", device: str | None = None):
    """(model with the run's final weights, its splits, eval loaders) for a finished run."""
    run = store.get_run(run_id)
    if run["kind"] not in ("train", "surgery"):
        raise StoreError(f"Run {run_id} is a {run['kind']} job (expected a training or surgery run)")
    state = store.load_checkpoint(run_id)  # clear error if the run has no checkpoint
    cfg = TrainConfig.from_dict(run["config"]["train"] if run["kind"] == "surgery" else run["config"])
    if device:
        cfg = replace(cfg, device=device)
    t = Training(cfg, data_dir, init_state=state)
    t.setup()
    t.model.eval()
    return t.model, t.splits, loaders_for(t.splits, t.device, t.channels_last)


def plant_fault(model: torch.nn.Module, loader: DeviceLoader, group: str, strength: float = 1.0,
                seed: int = 0, cfg: AttributionConfig = AttributionConfig(by_predicted=False, contrast=False),
                classes=None, method: str = "gradient", train_loader: DeviceLoader | None = None) -> dict:
    """Damage ``group`` in place, re-diagnose, and report whether it ranks first.

    ``method``: ``gradient`` (the paper's error-gradient attribution, ``cfg`` picks the
    normalisation) or ``probe`` (retrain-one-group probe; needs ``train_loader``).
    """
    if method not in ("gradient", "probe"):
        raise ValueError(f"Unknown method: {method!r} (expected 'gradient' or 'probe')")
    if method == "probe" and train_loader is None:
        raise ValueError("Invalid train_loader: None (expected a training loader for method='probe')")
    groups = group_parameters(model)
    if group not in groups:
        raise ValueError(f"Unknown layer group: {group!r} (expected one of {list(groups)})")
    if strength <= 0:
        raise ValueError(f"Invalid strength: {strength!r} (expected > 0, noise RMS relative to the weights' RMS)")
    _, acc_before = evaluate(model, loader)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in groups[group]:
            rms = p.float().pow(2).mean().sqrt()
            p.add_((torch.randn(p.shape, generator=g) * rms * strength).to(p.device, p.dtype))
    _, acc_after = evaluate(model, loader)
    if method == "probe":
        from .attribution import probe_scores

        scores = probe_scores(model, train_loader, loader, max(cfg.probe_steps, 20), cfg.probe_lr, seed)
    else:
        scores = attribute(model, loader, cfg, classes)["scores"]
    ranking = sorted(scores, key=lambda g: -scores[g])
    return {"group": group, "strength": strength, "method": method, "acc_before": acc_before,
            "acc_after": acc_after, "ranking": ranking, "rank_of_damaged": ranking.index(group) + 1,
            "scores": scores, "detected": ranking[0] == group}
