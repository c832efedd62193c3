"""Record schemas: what a run yields and the store keeps, and run statuses.

Every record says what it is in ``rec["kind"]``:

* ``step``:  step, epoch, lr, momentum, zeta, eff_lr, loss, acc, time
* ``epoch``: epoch, step, train_loss, train_acc, test_loss, test_acc, regime, zeta_median,
  lr, momentum, time, val_loss, val_acc (None without a validation split), plus optional
  extras such as ``group_scores``, kept as JSON

``time`` is seconds since the run started (wall clock, evaluation included); ``step`` counts
optimizer steps from 0. A run's status is one of :data:`STATUSES`; :data:`ACTIVE` ones can
still change.
"""
from __future__ import annotations

__all__ = ["STEP", "EPOCH", "MEMBER", "CASE", "STEP_FIELDS", "EPOCH_FIELDS", "STATUSES", "ACTIVE",
           "time_to_accuracy", "format_hit", "format_time_to_accuracy"]

STEP, EPOCH = "step", "epoch"
MEMBER = "member"  # a sweep's progress: one member run finished (not stored; the run is)
CASE = "case"      # the localisation benchmark's progress: one damaged model scored
STEP_FIELDS = ("step", "epoch", "lr", "momentum", "zeta", "eff_lr", "loss", "acc", "time")
EPOCH_FIELDS = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "regime",
                "zeta_median", "lr", "momentum", "time", "val_loss", "val_acc")

# "incomplete": a sweep whose reported stage has cells that did not count (its report says which).
STATUSES = ("queued", "running", "done", "failed", "diverged", "cancelled", "interrupted", "incomplete")
ACTIVE = ("queued", "running")


def time_to_accuracy(epochs: list[dict], thresholds) -> dict[str, dict | None]:
    """First epoch, step and second at which test accuracy reaches each threshold (None: never).

    >>> time_to_accuracy([{"epoch": 0, "step": 10, "time": 1.0, "test_acc": 0.6}], [0.5, 0.7])
    {'0.5': {'epoch': 0, 'step': 10, 'time': 1.0}, '0.7': None}
    """
    out = {}
    for t in thresholds:
        hit = next((e for e in epochs if e["test_acc"] >= t), None)
        out[f"{t:g}"] = None if hit is None else {"epoch": hit["epoch"], "step": hit["step"], "time": hit["time"]}
    return out


def format_hit(hit: dict | None) -> str:
    """One threshold's time-to-accuracy for people: ``ep 3 · 1.2 s`` (epochs 1-based) or ``—``."""
    if hit is None:
        return "—"
    return f"ep {hit['epoch'] + 1} · {hit['time']:.1f} s"


def format_time_to_accuracy(tta: dict | None) -> str:
    """All thresholds of a summary's ``time_to_accuracy``: ``0.5: ep 2 · 3.1 s, 0.6: —``."""
    return ", ".join(f"{k}: {format_hit(v)}" for k, v in (tta or {}).items())

